package storetest

import (
	"fmt"
	"testing"

	"github.com/verity-dev/verity"
)

func testIdempotency(t *testing.T, s *suite) {
	// The original append is made with expected, to a stream that already holds one event
	// when existing; the retry uses the same expected revision and the same events.
	originals := []struct {
		name     string
		existing bool
		expected verity.ExpectedRevision
		events   int
	}{
		{"Any", false, verity.Any(), 2},
		{"Any of one event", true, verity.Any(), 1},
		{"NoStream", false, verity.NoStream(), 2},
		{"StreamExists", true, verity.StreamExists(), 2},
		{"Exact", true, verity.Exact(0), 3},
	}
	for _, o := range originals {
		for _, between := range []bool{false, true} {
			name := fmt.Sprintf("a retry of an append with %s returns the original result and writes nothing", o.name)
			if between {
				name = fmt.Sprintf("a retry of an append with %s after other appends returns the original result and writes nothing", o.name)
			}
			s.test(t, name, func(t *testing.T, st verity.Store) {
				const stream = "order-1"
				if o.existing {
					mustAppend(t, st, stream, verity.NoStream(), event("OrderPlaced", 0))
				}
				evs := events("OrderLine", o.events)
				orig := mustAppend(t, st, stream, o.expected, evs...)
				if between {
					mustAppend(t, st, stream, verity.Any(), events("OrderShipped", 2)...)
					mustAppend(t, st, "order-2", verity.Any(), events("OrderPlaced", 1)...)
				}
				wantStream := readStream(t, st, stream)
				wantLog := readAll(t, st, verity.Filter{})

				res, err := st.Append(t.Context(), stream, o.expected, evs...)
				if err != nil {
					t.Fatalf("retry: %v", err)
				}
				if res != orig {
					t.Fatalf("retry = %+v, want the original %+v", res, orig)
				}
				requireSameRecorded(t, readStream(t, st, stream), wantStream, "the stream after the retry")
				requireSameRecorded(t, readAll(t, st, verity.Filter{}), wantLog, "the log after the retry")
			})
		}
	}

	// The original appends [a b] with Any; each retry overlaps it only in part.
	partial := []struct {
		name  string
		retry func(a, b, c verity.EventData) []verity.EventData
	}{
		{"a retry with an extra new event is a conflict", func(a, b, c verity.EventData) []verity.EventData { return []verity.EventData{a, b, c} }},
		{"a retry with one event replaced by a new one is a conflict", func(a, b, c verity.EventData) []verity.EventData { return []verity.EventData{a, c} }},
		{"a retry with a new event before the old ones is a conflict", func(a, b, c verity.EventData) []verity.EventData { return []verity.EventData{c, a, b} }},
		{"a retry with the same events in another order is a conflict", func(a, b, c verity.EventData) []verity.EventData { return []verity.EventData{b, a} }},
	}
	for _, p := range partial {
		s.test(t, p.name, func(t *testing.T, st verity.Store) {
			const stream = "order-1"
			a, b, c := event("A", 1), event("B", 2), event("C", 3)
			mustAppend(t, st, stream, verity.Any(), a, b)
			wantLog := readAll(t, st, verity.Filter{})
			_, err := st.Append(t.Context(), stream, verity.Any(), p.retry(a, b, c)...)
			requireKind(t, err, verity.Conflict, "partly overlapping retry")
			requireSameRecorded(t, readAll(t, st, verity.Filter{}), wantLog, "the log after the refused retry")
		})
	}

	s.test(t, "a retry with an outdated Exact revision after later appends returns the original result", func(t *testing.T, st verity.Store) {
		const stream = "order-1"
		mustAppend(t, st, stream, verity.NoStream(), events("OrderPlaced", 3)...)
		evs := events("OrderLine", 2)
		orig := mustAppend(t, st, stream, verity.Exact(2), evs...)
		for i := 0; i < 3; i++ {
			mustAppend(t, st, stream, verity.Any(), event("OrderLine", 10+i))
		}
		wantLog := readAll(t, st, verity.Filter{})
		res, err := st.Append(t.Context(), stream, verity.Exact(2), evs...)
		if err != nil {
			t.Fatalf("retry with Exact(2) once the stream is at revision 7: %v", err)
		}
		if res != orig {
			t.Fatalf("retry = %+v, want the original %+v", res, orig)
		}
		requireSameRecorded(t, readAll(t, st, verity.Filter{}), wantLog, "the log after the retry")
	})
}
