package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/verity-dev/verity"
)

func testReadAll(t *testing.T, s *suite) {
	// The log holds positions 1..8 across three streams.
	cases := []struct {
		name string
		opts verity.ReadAllOptions
		want []uint64
	}{
		{"forwards from the start returns every event", verity.ReadAllOptions{}, seq(1, 8)},
		{"forwards from position 1 returns every event", verity.ReadAllOptions{From: 1}, seq(1, 8)},
		{"forwards from a position starts at it", verity.ReadAllOptions{From: 4}, seq(4, 5)},
		{"forwards with a limit stops after it", verity.ReadAllOptions{Limit: 3}, seq(1, 3)},
		{"forwards from a position with a limit", verity.ReadAllOptions{From: 6, Limit: 2}, []uint64{6, 7}},
		{"forwards from the last position returns it", verity.ReadAllOptions{From: 8}, []uint64{8}},
		{"forwards from past the end returns nothing", verity.ReadAllOptions{From: 9}, nil},
		{"forwards from the end returns nothing", verity.ReadAllOptions{FromEnd: true}, nil},
		{"backwards from the end returns every event last first", verity.ReadAllOptions{Direction: verity.Backwards, FromEnd: true}, reversed(seq(1, 8))},
		{"backwards from a position starts at it", verity.ReadAllOptions{Direction: verity.Backwards, From: 5}, []uint64{5, 4, 3, 2, 1}},
		{"backwards from the end with a limit stops after it", verity.ReadAllOptions{Direction: verity.Backwards, FromEnd: true, Limit: 3}, []uint64{8, 7, 6}},
		{"backwards from position 1 returns the first event", verity.ReadAllOptions{Direction: verity.Backwards, From: 1}, []uint64{1}},
	}
	for _, c := range cases {
		s.test(t, "a read "+c.name, func(t *testing.T, st verity.Store) {
			for i, stream := range []string{"order-1", "customer-1", "order-2", "order-1", "customer-1", "order-1", "stock-1", "order-2"} {
				mustAppend(t, st, stream, verity.Any(), event("Changed", i))
			}
			full := readAll(t, st, verity.Filter{})
			requireGaplessLog(t, full, 8, "the log")
			got, err := st.ReadAll(t.Context(), c.opts)
			if err != nil {
				t.Fatalf("ReadAll(%+v): %v", c.opts, err)
			}
			requirePositions(t, got, c.want, "ReadAll")
			for _, e := range got {
				requireSameRecorded(t, []verity.RecordedEvent{e}, full[e.Position-1:e.Position], fmt.Sprintf("position %d", e.Position))
			}
		})
	}

	s.test(t, "paging forwards and backwards visits every event once", func(t *testing.T, st verity.Store) {
		for i := 0; i < 10; i++ {
			mustAppend(t, st, fmt.Sprintf("order-%d", i%3), verity.Any(), events("Changed", 1+i%2)...)
		}
		want := readAll(t, st, verity.Filter{})
		var fwd []verity.RecordedEvent
		for from := uint64(0); ; {
			page, err := st.ReadAll(t.Context(), verity.ReadAllOptions{From: from, Limit: 4})
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			if len(page) > 4 {
				t.Fatalf("a page of limit 4 held %d events", len(page))
			}
			fwd = append(fwd, page...)
			from = page[len(page)-1].Position + 1
		}
		requireSameRecorded(t, fwd, want, "forward pages")
		var back []verity.RecordedEvent
		opts := verity.ReadAllOptions{Direction: verity.Backwards, FromEnd: true, Limit: 4}
		for {
			page, err := st.ReadAll(t.Context(), opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			back = append(back, page...)
			last := page[len(page)-1].Position
			if last == 1 {
				break
			}
			opts = verity.ReadAllOptions{Direction: verity.Backwards, From: last - 1, Limit: 4}
		}
		requireSameRecorded(t, back, reversed(want), "backward pages")
	})

	s.serialTest(t, "FromTime starts at the first event at or after it forwards and the last at or before it backwards", func(t *testing.T, st verity.Store) {
		for i := 0; i < 5; i++ {
			mustAppend(t, st, fmt.Sprintf("order-%d", i%2), verity.Any(), events("Changed", 1+i%2)...)
			s.tick(time.Minute)
		}
		log := readAll(t, st, verity.Filter{})
		if s.h.Features.ControlClock {
			// The five appends were made a minute apart on the store's clock.
			distinct := map[time.Time]bool{}
			for _, e := range log {
				distinct[e.Created.UTC()] = true
			}
			if len(distinct) != 5 {
				t.Fatalf("five appends a minute apart have %d distinct commit times, want 5", len(distinct))
			}
		}
		for _, at := range fromTimes(log) {
			var fwd, back []uint64
			for _, e := range log {
				if !e.Created.Before(at.t) {
					fwd = append(fwd, e.Position)
				}
				if !e.Created.After(at.t) {
					back = append(back, e.Position)
				}
			}
			slices.Reverse(back)
			got, err := st.ReadAll(t.Context(), verity.ReadAllOptions{FromTime: at.t})
			if err != nil {
				t.Fatal(err)
			}
			requirePositions(t, got, fwd, "ReadAll forwards from "+at.name)
			got, err = st.ReadAll(t.Context(), verity.ReadAllOptions{Direction: verity.Backwards, FromTime: at.t})
			if err != nil {
				t.Fatal(err)
			}
			requirePositions(t, got, back, "ReadAll backwards from "+at.name)
			got, err = st.ReadAll(t.Context(), verity.ReadAllOptions{FromTime: at.t, From: 1, Limit: 1, Filter: verity.Filter{StreamPrefixes: []string{"order-1"}}})
			if err != nil {
				t.Fatal(err)
			}
			var want []uint64
			for _, e := range log {
				if e.Stream == "order-1" && !e.Created.Before(at.t) {
					want = append(want, e.Position)
					break
				}
			}
			requirePositions(t, got, want, "ReadAll of order-1 forwards from "+at.name+" (limit 1, From ignored)")
		}
	})
}

type namedTime struct {
	name string
	t    time.Time
}

// fromTimes are the times to read a log from: each event's commit time, the middle of
// each gap between two, and times before and after the whole log.
func fromTimes(log []verity.RecordedEvent) []namedTime {
	first, last := log[0].Created, log[len(log)-1].Created
	out := []namedTime{
		{"an hour before the first event", first.Add(-time.Hour)},
		{"an hour after the last event", last.Add(time.Hour)},
	}
	for i, e := range log {
		out = append(out, namedTime{fmt.Sprintf("the commit time of position %d", e.Position), e.Created})
		if i > 0 && e.Created.After(log[i-1].Created) {
			mid := log[i-1].Created.Add(e.Created.Sub(log[i-1].Created) / 2)
			out = append(out, namedTime{fmt.Sprintf("between positions %d and %d", log[i-1].Position, e.Position), mid})
		}
	}
	return out
}
