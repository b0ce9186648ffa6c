package storetest

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/verity-dev/verity"
)

func testReadStream(t *testing.T, s *suite) {
	// order-1 holds revisions 0..4, interleaved with another stream's events.
	cases := []struct {
		name string
		opts verity.ReadStreamOptions
		want []uint64
	}{
		{"forwards from the start returns every event", verity.ReadStreamOptions{}, []uint64{0, 1, 2, 3, 4}},
		{"forwards from a revision starts at it", verity.ReadStreamOptions{From: 2}, []uint64{2, 3, 4}},
		{"forwards with a limit stops after it", verity.ReadStreamOptions{Limit: 2}, []uint64{0, 1}},
		{"forwards from a revision with a limit", verity.ReadStreamOptions{From: 1, Limit: 3}, []uint64{1, 2, 3}},
		{"forwards from the last revision returns it", verity.ReadStreamOptions{From: 4}, []uint64{4}},
		{"forwards from past the end returns nothing", verity.ReadStreamOptions{From: 5}, nil},
		{"forwards from the end returns nothing", verity.ReadStreamOptions{FromEnd: true}, nil},
		{"backwards from the end returns every event last first", verity.ReadStreamOptions{Direction: verity.Backwards, FromEnd: true}, []uint64{4, 3, 2, 1, 0}},
		{"backwards from the end ignores From", verity.ReadStreamOptions{Direction: verity.Backwards, FromEnd: true, From: 1}, []uint64{4, 3, 2, 1, 0}},
		{"backwards from a revision starts at it", verity.ReadStreamOptions{Direction: verity.Backwards, From: 2}, []uint64{2, 1, 0}},
		{"backwards from revision 0 returns the first event", verity.ReadStreamOptions{Direction: verity.Backwards, From: 0}, []uint64{0}},
		{"backwards with a limit stops after it", verity.ReadStreamOptions{Direction: verity.Backwards, FromEnd: true, Limit: 2}, []uint64{4, 3}},
		{"backwards from a revision with a limit", verity.ReadStreamOptions{Direction: verity.Backwards, From: 3, Limit: 2}, []uint64{3, 2}},
	}
	for _, c := range cases {
		s.test(t, "a read "+c.name, func(t *testing.T, st verity.Store) {
			var want []verity.EventData
			for i := 0; i < 5; i++ {
				e := event("OrderChanged", i)
				want = append(want, e)
				mustAppend(t, st, "order-1", verity.Any(), e)
				mustAppend(t, st, "order-2", verity.Any(), event("OrderChanged", i))
			}
			got, err := st.ReadStream(t.Context(), "order-1", c.opts)
			if err != nil {
				t.Fatalf("ReadStream(%+v): %v", c.opts, err)
			}
			requireRevisions(t, got, c.want, "ReadStream")
			for i, e := range got {
				w := want[e.Revision]
				if e.ID != w.ID || e.Stream != "order-1" || e.Position != 2*e.Revision+1 {
					t.Fatalf("event %d is %s, want id %v of order-1 at position %d", i, describe(e), w.ID, 2*e.Revision+1)
				}
			}
		})
	}

	s.test(t, "a missing stream is NotFound", func(t *testing.T, st verity.Store) {
		mustAppend(t, st, "order-1", verity.Any(), event("OrderPlaced", 1))
		requireStreamNotFound(t, st, "order-2")
		requireStreamNotFound(t, st, "order")
	})

	s.test(t, "a zero limit returns DefaultReadLimit events", func(t *testing.T, st verity.Store) {
		appendMany(t, st, s, "tick-1", verity.DefaultReadLimit+4)
		got, err := st.ReadStream(t.Context(), "tick-1", verity.ReadStreamOptions{})
		if err != nil {
			t.Fatal(err)
		}
		requireRevisions(t, got, seq(0, verity.DefaultReadLimit), "ReadStream with limit 0")
		all, err := st.ReadAll(t.Context(), verity.ReadAllOptions{})
		if err != nil {
			t.Fatal(err)
		}
		requirePositions(t, all, seq(1, verity.DefaultReadLimit), "ReadAll with limit 0")
	})

	s.test(t, "recorded events carry every field the writer gave and the store assigned", func(t *testing.T, st verity.Store) {
		evs := []verity.EventData{
			{ID: uuid.New(), Type: "OrderPlaced", ContentType: verity.ContentTypeJSON,
				Data:     []byte("{ \"total\" : 12.50,\n  \"note\": \"caf\u00e9 \\u00e9\" }"),
				Metadata: []byte(`{"$correlationId":"c-1","$causationId":"c-0","user":"ann"}`)},
			{ID: uuid.New(), Type: "OrderNoted", Data: []byte(`[1,2,3]`)},
			{ID: uuid.New(), Type: "OrderScanned", ContentType: verity.ContentTypeBinary, Data: []byte{0, 1, 2, 0xfe, 0xff}},
			{ID: uuid.New(), Type: "OrderCommented", ContentType: "text/plain; charset=utf-8", Data: []byte("hello\n"), Metadata: []byte(`{}`)},
			{ID: uuid.New(), Type: "OrderEmpty", ContentType: verity.ContentTypeBinary},
		}
		mustAppend(t, st, "other-1", verity.Any(), event("Other", 0))
		var results []verity.AppendResult
		for i, e := range evs {
			results = append(results, mustAppend(t, st, "order-1", verity.Any(), e))
			if i == 1 {
				mustAppend(t, st, "other-1", verity.Any(), event("Other", 1))
			}
		}
		got := readStream(t, st, "order-1")
		requireWritten(t, got, evs, "the stream")
		for i, e := range got {
			if e.Stream != "order-1" || e.Revision != uint64(i) || e.Position != results[i].Position {
				t.Errorf("event %d is in %q at revision %d position %d, want order-1, %d, %d", i, e.Stream, e.Revision, e.Position, i, results[i].Position)
			}
			if e.Created.IsZero() {
				t.Errorf("event %d has no commit time", i)
			}
		}
		all := readAll(t, st, verity.Filter{})
		requireGaplessLog(t, all, len(evs)+2, "the log")
		requireSameRecorded(t, ofStream(all, "order-1"), got, "order-1 in the log")
		if s.h.Features.ControlClock {
			now := s.h.Clock.Now()
			for _, e := range got {
				if d := e.Created.Sub(now); d > createdSlack || d < -createdSlack {
					t.Fatalf("event %d was created at %v, want the store's clock, %v", e.Revision, e.Created, now)
				}
			}
		}
	})

	s.serialTest(t, "commit times come from the store's clock", func(t *testing.T, st verity.Store) {
		clock := s.needClock(t)
		var want []time.Time
		for i := 0; i < 3; i++ {
			want = append(want, clock.Now())
			mustAppend(t, st, "order-1", verity.Any(), event("OrderChanged", i))
			clock.Advance(90 * time.Second)
		}
		got := readStream(t, st, "order-1")
		for i, e := range got {
			if d := e.Created.Sub(want[i]); d > createdSlack || d < -createdSlack {
				t.Errorf("revision %d was created at %v, want the clock's %v", i, e.Created, want[i])
			}
		}
	})
}

// appendMany appends n small events to stream, in appends as large as the store accepts.
func appendMany(t testing.TB, st verity.Store, s *suite, stream string, n int) {
	t.Helper()
	for n > 0 {
		k := min(n, s.h.Limits.MaxAppendEvents)
		mustAppend(t, st, stream, verity.Any(), events("Tick", k)...)
		n -= k
	}
}
