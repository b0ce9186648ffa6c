package storetest

import (
	"errors"
	"fmt"
	"testing"

	"github.com/verity-dev/verity"
)

func testAppendMulti(t *testing.T, s *suite) {
	s.test(t, "every append commits together at consecutive positions with results in order", func(t *testing.T, st verity.Store) {
		mustAppend(t, st, "stock-1", verity.NoStream(), event("StockAdded", 0))
		a := events("OrderPlaced", 2)
		b := events("CustomerCharged", 1)
		c := events("StockReserved", 2)
		res := mustAppendMulti(t, st,
			verity.StreamAppend{Stream: "order-1", Expected: verity.NoStream(), Events: a},
			verity.StreamAppend{Stream: "customer-1", Expected: verity.Any(), Events: b},
			verity.StreamAppend{Stream: "stock-1", Expected: verity.Exact(0), Events: c},
		)
		want := []verity.AppendResult{{Revision: 1, Position: 3}, {Revision: 0, Position: 4}, {Revision: 2, Position: 6}}
		for i := range want {
			if res[i] != want[i] {
				t.Errorf("result %d = %+v, want %+v", i, res[i], want[i])
			}
		}
		log := readAll(t, st, verity.Filter{})
		requireGaplessLog(t, log, 6, "the log")
		requireWritten(t, log[1:], append(append(append([]verity.EventData{}, a...), b...), c...), "the log after the multi-stream append")
		requireWritten(t, readStream(t, st, "stock-1")[1:], c, "stream stock-1")
		requireRevisions(t, readStream(t, st, "stock-1"), seq(0, 3), "stream stock-1")
	})

	// Three appends, one of them with a condition that does not hold.
	for _, bad := range []int{0, 1, 2} {
		s.test(t, fmt.Sprintf("a failing condition in append %d of 3 writes nothing in any stream", bad+1), func(t *testing.T, st verity.Store) {
			mustAppend(t, st, "stock-1", verity.NoStream(), event("StockAdded", 0))
			appends := []verity.StreamAppend{
				{Stream: "order-1", Expected: verity.NoStream(), Events: events("OrderPlaced", 2)},
				{Stream: "customer-1", Expected: verity.Any(), Events: events("CustomerCharged", 1)},
				{Stream: "stock-1", Expected: verity.Exact(0), Events: events("StockReserved", 2)},
			}
			wrong := []verity.ExpectedRevision{verity.StreamExists(), verity.Exact(3), verity.NoStream()}
			actual := []verity.StreamState{{}, {}, {Exists: true, Revision: 0}}
			appends[bad].Expected = wrong[bad]
			res, err := st.AppendMulti(t.Context(), appends...)
			requireWrongRevision(t, err, appends[bad].Stream, wrong[bad], actual[bad], "AppendMulti")
			if res != nil {
				t.Errorf("a failed AppendMulti returned results %+v", res)
			}
			if n := len(readAll(t, st, verity.Filter{})); n != 1 {
				t.Fatalf("the log holds %d events after a failed AppendMulti, want 1", n)
			}
			requireStreamNotFound(t, st, "order-1")
			requireStreamNotFound(t, st, "customer-1")
			requireRevisions(t, readStream(t, st, "stock-1"), []uint64{0}, "stream stock-1")
		})
	}

	s.test(t, "the first failing condition is the one reported", func(t *testing.T, st verity.Store) {
		_, err := st.AppendMulti(t.Context(),
			verity.StreamAppend{Stream: "order-1", Expected: verity.Any(), Events: events("OrderPlaced", 1)},
			verity.StreamAppend{Stream: "order-2", Expected: verity.Exact(4), Events: events("OrderPlaced", 1)},
			verity.StreamAppend{Stream: "order-3", Expected: verity.StreamExists(), Events: events("OrderPlaced", 1)},
		)
		requireWrongRevision(t, err, "order-2", verity.Exact(4), verity.StreamState{}, "AppendMulti")
		if n := len(readAll(t, st, verity.Filter{})); n != 0 {
			t.Fatalf("the log holds %d events after a failed AppendMulti, want none", n)
		}
	})

	s.test(t, "a stream that appears twice is invalid", func(t *testing.T, st verity.Store) {
		_, err := st.AppendMulti(t.Context(),
			verity.StreamAppend{Stream: "order-1", Expected: verity.Any(), Events: events("OrderPlaced", 1)},
			verity.StreamAppend{Stream: "order-2", Expected: verity.Any(), Events: events("OrderPlaced", 1)},
			verity.StreamAppend{Stream: "order-1", Expected: verity.Any(), Events: events("OrderShipped", 1)},
		)
		requireKind(t, err, verity.Invalid, "AppendMulti naming order-1 twice")
		if n := len(readAll(t, st, verity.Filter{})); n != 0 {
			t.Fatalf("the log holds %d events after an invalid AppendMulti, want none", n)
		}
	})

	s.test(t, "an invalid event in one append writes nothing in any stream", func(t *testing.T, st verity.Store) {
		_, err := st.AppendMulti(t.Context(),
			verity.StreamAppend{Stream: "order-1", Expected: verity.Any(), Events: events("OrderPlaced", 1)},
			verity.StreamAppend{Stream: "order-2", Expected: verity.Any(), Events: []verity.EventData{event("OrderPlaced", 1), {Type: "", Data: []byte(`{}`)}}},
		)
		requireKind(t, err, verity.Invalid, "AppendMulti with an event without a type")
		if n := len(readAll(t, st, verity.Filter{})); n != 0 {
			t.Fatalf("the log holds %d events after an invalid AppendMulti, want none", n)
		}
	})

	s.test(t, "a single append behaves as Append", func(t *testing.T, st verity.Store) {
		evs := events("OrderPlaced", 2)
		res := mustAppendMulti(t, st, verity.StreamAppend{Stream: "order-1", Expected: verity.NoStream(), Events: evs})
		if res[0] != (verity.AppendResult{Revision: 1, Position: 2}) {
			t.Fatalf("result = %+v, want revision 1 position 2", res[0])
		}
		requireWritten(t, readStream(t, st, "order-1"), evs, "the stream")
		_, err := st.AppendMulti(t.Context(), verity.StreamAppend{Stream: "order-1", Expected: verity.NoStream(), Events: events("OrderPlaced", 1)})
		var ve *verity.Error
		if !errors.As(err, &ve) || ve.Kind != verity.Conflict {
			t.Fatalf("AppendMulti(no stream) on an existing stream: %v, want a Conflict", err)
		}
	})
}
