package storetest

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/verity-dev/verity"
)

func testAppend(t *testing.T, s *suite) {
	s.test(t, "a new store is empty", func(t *testing.T, st verity.Store) {
		if evs := readAll(t, st, verity.Filter{}); len(evs) != 0 {
			t.Fatalf("a new store's log holds %d events, want none", len(evs))
		}
		evs, err := st.ReadAll(t.Context(), verity.ReadAllOptions{Direction: verity.Backwards, FromEnd: true})
		if err != nil || len(evs) != 0 {
			t.Fatalf("ReadAll backwards from the end of a new store: %d events, %v; want none, nil", len(evs), err)
		}
	})

	// Each case starts from a stream that is missing or holds revisions 0 and 1.
	cases := []struct {
		name     string
		existing bool
		expected verity.ExpectedRevision
		want     uint64              // revision after a successful append of one event
		conflict *verity.StreamState // Actual of the Conflict, when the append must fail
	}{
		{"Any on a missing stream creates it", false, verity.Any(), 0, nil},
		{"Any on an existing stream appends", true, verity.Any(), 2, nil},
		{"NoStream on a missing stream creates it", false, verity.NoStream(), 0, nil},
		{"NoStream on an existing stream is a conflict", true, verity.NoStream(), 0, &verity.StreamState{Exists: true, Revision: 1}},
		{"StreamExists on a missing stream is a conflict", false, verity.StreamExists(), 0, &verity.StreamState{}},
		{"StreamExists on an existing stream appends", true, verity.StreamExists(), 2, nil},
		{"Exact(0) on a missing stream is a conflict", false, verity.Exact(0), 0, &verity.StreamState{}},
		{"Exact of the last revision appends", true, verity.Exact(1), 2, nil},
		{"Exact of an older revision is a conflict", true, verity.Exact(0), 0, &verity.StreamState{Exists: true, Revision: 1}},
		{"Exact of a revision not yet reached is a conflict", true, verity.Exact(5), 0, &verity.StreamState{Exists: true, Revision: 1}},
	}
	for _, c := range cases {
		s.test(t, c.name, func(t *testing.T, st verity.Store) {
			const stream = "order-1"
			var before []verity.EventData
			if c.existing {
				before = events("OrderPlaced", 2)
				mustAppend(t, st, stream, verity.NoStream(), before...)
			}
			e := event("OrderShipped", 9)
			res, err := st.Append(t.Context(), stream, c.expected, e)
			if c.conflict != nil {
				requireWrongRevision(t, err, stream, c.expected, *c.conflict, fmt.Sprintf("Append(expected %v)", c.expected))
				if c.existing {
					requireWritten(t, readStream(t, st, stream), before, "the stream after the refused append")
				} else {
					requireStreamNotFound(t, st, stream)
				}
				if n := len(readAll(t, st, verity.Filter{})); n != len(before) {
					t.Fatalf("the log holds %d events after a refused append, want %d", n, len(before))
				}
				return
			}
			if err != nil {
				t.Fatalf("Append(expected %v): %v", c.expected, err)
			}
			wantPos := uint64(len(before) + 1)
			if res.Revision != c.want || res.Position != wantPos {
				t.Fatalf("Append(expected %v) = %+v, want revision %d position %d", c.expected, res, c.want, wantPos)
			}
			got := readStream(t, st, stream)
			requireWritten(t, got, append(before, e), "the stream")
			requireRevisions(t, got, seq(0, len(before)+1), "the stream")
		})
	}

	s.test(t, "an append of several events returns the revision and position of the last", func(t *testing.T, st verity.Store) {
		res := mustAppend(t, st, "order-1", verity.NoStream(), events("OrderPlaced", 3)...)
		if res != (verity.AppendResult{Revision: 2, Position: 3}) {
			t.Fatalf("first append = %+v, want revision 2 position 3", res)
		}
		res = mustAppend(t, st, "order-2", verity.NoStream(), events("OrderPlaced", 2)...)
		if res != (verity.AppendResult{Revision: 1, Position: 5}) {
			t.Fatalf("second append = %+v, want revision 1 position 5", res)
		}
		res = mustAppend(t, st, "order-1", verity.Exact(2), events("OrderShipped", 1)...)
		if res != (verity.AppendResult{Revision: 3, Position: 6}) {
			t.Fatalf("third append = %+v, want revision 3 position 6", res)
		}
	})

	s.test(t, "positions are gapless from 1 across streams and match the results", func(t *testing.T, st verity.Store) {
		streams := []string{"order-1", "customer-1", "order-2", "order-1", "inventory-9", "customer-1", "order-1"}
		want := map[uint64]verity.AppendResult{}
		total := 0
		for i, stream := range streams {
			evs := events("Happened", 1+i%3)
			res := mustAppend(t, st, stream, verity.Any(), evs...)
			total += len(evs)
			if res.Position != uint64(total) {
				t.Fatalf("append %d to %q landed at position %d, want %d", i, stream, res.Position, total)
			}
			want[res.Position] = res
		}
		log := readAll(t, st, verity.Filter{})
		requireGaplessLog(t, log, total, "the log")
		next := map[string]uint64{}
		for _, e := range log {
			if e.Revision != next[e.Stream] {
				t.Fatalf("position %d is revision %d of %q, want %d", e.Position, e.Revision, e.Stream, next[e.Stream])
			}
			next[e.Stream]++
			if res, ok := want[e.Position]; ok && res.Revision != e.Revision {
				t.Fatalf("the append ending at position %d returned revision %d, the log holds %d", e.Position, res.Revision, e.Revision)
			}
		}
	})

	s.test(t, "events without an id are given distinct ones", func(t *testing.T, st verity.Store) {
		noID := verity.EventData{Type: "Ping", Data: []byte(`{}`)}
		mustAppend(t, st, "ping-1", verity.NoStream(), noID, noID)
		mustAppend(t, st, "ping-1", verity.Exact(1), noID)
		got := readStream(t, st, "ping-1")
		if len(got) != 3 {
			t.Fatalf("the stream holds %d events, want 3: appends of id-less events are not retries", len(got))
		}
		seen := map[uuid.UUID]bool{}
		for _, e := range got {
			if e.ID == (uuid.UUID{}) {
				t.Fatalf("revision %d was recorded with the zero id", e.Revision)
			}
			if seen[e.ID] {
				t.Fatalf("revision %d was given id %v, already used", e.Revision, e.ID)
			}
			seen[e.ID] = true
		}
	})

	s.test(t, "an empty append checks the expected revision and writes nothing", func(t *testing.T, st verity.Store) {
		mustAppend(t, st, "order-1", verity.NoStream(), events("OrderPlaced", 2)...)
		for _, exp := range []verity.ExpectedRevision{verity.Any(), verity.StreamExists(), verity.Exact(1)} {
			res, err := st.Append(t.Context(), "order-1", exp)
			if err != nil {
				t.Fatalf("empty Append(expected %v): %v", exp, err)
			}
			if res.Revision != 1 || res.Position != 0 {
				t.Fatalf("empty Append(expected %v) = %+v, want the current revision 1 and position 0", exp, res)
			}
		}
		_, err := st.Append(t.Context(), "order-1", verity.Exact(0))
		requireWrongRevision(t, err, "order-1", verity.Exact(0), verity.StreamState{Exists: true, Revision: 1}, "empty Append(expected 0)")
		_, err = st.Append(t.Context(), "order-1", verity.NoStream())
		requireWrongRevision(t, err, "order-1", verity.NoStream(), verity.StreamState{Exists: true, Revision: 1}, "empty Append(no stream)")
		_, err = st.Append(t.Context(), "order-2", verity.StreamExists())
		requireWrongRevision(t, err, "order-2", verity.StreamExists(), verity.StreamState{}, "empty Append(stream exists) on a missing stream")
		if _, err := st.Append(t.Context(), "order-2", verity.NoStream()); err != nil {
			t.Fatalf("empty Append(no stream) on a missing stream: %v", err)
		}
		requireStreamNotFound(t, st, "order-2")
		if n := len(readAll(t, st, verity.Filter{})); n != 2 {
			t.Fatalf("the log holds %d events after empty appends, want 2", n)
		}
	})

	s.test(t, "an event of nearly the maximum size round-trips", func(t *testing.T, st verity.Store) {
		size := s.h.Limits.MaxEventSize * 9 / 10 // 900 KiB with the default limit
		data := make([]byte, size)
		rand.Read(data)
		big := verity.EventData{ID: uuid.New(), Type: "Blob", ContentType: verity.ContentTypeBinary, Data: data, Metadata: []byte(`{"size":"large"}`)}
		small := event("Small", 1)
		mustAppend(t, st, "blob-1", verity.NoStream(), big)
		mustAppend(t, st, "blob-1", verity.Exact(0), small)
		got := readStream(t, st, "blob-1")
		requireWritten(t, got, []verity.EventData{big, small}, "the stream")
		all := readAll(t, st, verity.Filter{})
		if len(all) != 2 || !bytes.Equal(all[0].Data, data) {
			t.Fatalf("ReadAll does not return the large event intact")
		}
	})
}
