package storetest

import (
	"errors"
	"testing"

	"github.com/verity-dev/verity"
)

func testDeleteStream(t *testing.T, s *suite) {
	s.test(t, "a deleted stream reads as NotFound and its events leave the log", func(t *testing.T, st verity.Store) {
		mustAppend(t, st, "order-1", verity.NoStream(), events("OrderChanged", 3)...)
		mustAppend(t, st, "order-2", verity.NoStream(), events("OrderChanged", 2)...)
		res, err := st.DeleteStream(t.Context(), "order-1", verity.Any())
		if err != nil {
			t.Fatalf("DeleteStream: %v", err)
		}
		if res.Position <= 5 {
			t.Fatalf("DeleteStream = %+v, want a position after the last event, 5", res)
		}
		requireStreamNotFound(t, st, "order-1")
		log := readAll(t, st, verity.Filter{})
		if evs := ofStream(log, "order-1"); len(evs) != 0 {
			t.Fatalf("ReadAll still returns %d events of the deleted stream", len(evs))
		}
		requireRevisions(t, ofStream(log, "order-2"), []uint64{0, 1}, "the other stream in the log")
		requireVisible(t, st, "order-2", []uint64{0, 1})
	})

	for _, exp := range []verity.ExpectedRevision{verity.NoStream(), verity.Any()} {
		s.test(t, "writing with "+exp.String()+" after a delete continues the revisions and shows only the new events", func(t *testing.T, st verity.Store) {
			mustAppend(t, st, "order-1", verity.NoStream(), events("OrderChanged", 3)...)
			if _, err := st.DeleteStream(t.Context(), "order-1", verity.Exact(2)); err != nil {
				t.Fatalf("DeleteStream: %v", err)
			}
			again := events("OrderChanged", 2)
			res := mustAppend(t, st, "order-1", exp, again...)
			if res.Revision != 4 {
				t.Fatalf("append after the delete = %+v, want revision 4", res)
			}
			got := readStream(t, st, "order-1")
			requireWritten(t, got, again, "the stream")
			requireVisible(t, st, "order-1", []uint64{3, 4})
			got, err := st.ReadStream(t.Context(), "order-1", verity.ReadStreamOptions{Direction: verity.Backwards, From: 2})
			if err == nil && len(got) != 0 {
				t.Fatalf("reading backwards from a deleted revision returned %d events", len(got))
			}
			if err != nil && !errors.Is(err, verity.ErrNotFound) {
				t.Fatalf("reading backwards from a deleted revision: %v, want nothing or NotFound", err)
			}
		})
	}

	s.test(t, "StreamExists after a delete is a conflict", func(t *testing.T, st verity.Store) {
		mustAppend(t, st, "order-1", verity.NoStream(), events("OrderChanged", 2)...)
		if _, err := st.DeleteStream(t.Context(), "order-1", verity.Any()); err != nil {
			t.Fatal(err)
		}
		_, err := st.Append(t.Context(), "order-1", verity.StreamExists(), event("OrderChanged", 2))
		requireKind(t, err, verity.Conflict, "Append(stream exists) after a delete")
		requireStreamNotFound(t, st, "order-1")
	})

	cases := []struct {
		name     string
		expected verity.ExpectedRevision
		conflict *verity.StreamState
	}{
		{"a delete with the last revision succeeds", verity.Exact(2), nil},
		{"a delete with StreamExists succeeds", verity.StreamExists(), nil},
		{"a delete with an older revision is a conflict", verity.Exact(1), &verity.StreamState{Exists: true, Revision: 2}},
		{"a delete with NoStream of an existing stream is a conflict", verity.NoStream(), &verity.StreamState{Exists: true, Revision: 2}},
	}
	for _, c := range cases {
		s.test(t, c.name, func(t *testing.T, st verity.Store) {
			mustAppend(t, st, "order-1", verity.NoStream(), events("OrderChanged", 3)...)
			_, err := st.DeleteStream(t.Context(), "order-1", c.expected)
			if c.conflict == nil {
				if err != nil {
					t.Fatalf("DeleteStream(expected %v): %v", c.expected, err)
				}
				requireStreamNotFound(t, st, "order-1")
				return
			}
			requireWrongRevision(t, err, "order-1", c.expected, *c.conflict, "DeleteStream(expected "+c.expected.String()+")")
			requireVisible(t, st, "order-1", []uint64{0, 1, 2})
			mustAppend(t, st, "order-1", verity.Exact(2), event("OrderChanged", 3))
		})
	}

	for _, exp := range []verity.ExpectedRevision{verity.NoStream(), verity.Any()} {
		s.test(t, "deleting a stream never written with "+exp.String()+" leaves it missing and writable", func(t *testing.T, st verity.Store) {
			mustAppend(t, st, "order-2", verity.NoStream(), event("OrderPlaced", 0))
			_, err := st.DeleteStream(t.Context(), "order-1", exp)
			if err != nil && !errors.Is(err, verity.ErrNotFound) {
				t.Fatalf("DeleteStream of a stream never written: %v, want success or NotFound", err)
			}
			requireStreamNotFound(t, st, "order-1")
			e := event("OrderPlaced", 1)
			mustAppend(t, st, "order-1", verity.NoStream(), e)
			requireWritten(t, readStream(t, st, "order-1"), []verity.EventData{e}, "the stream written after the delete")
			requireVisible(t, st, "order-2", []uint64{0})
		})
	}
}

func testTombstoneStream(t *testing.T, s *suite) {
	// Every read and write of a tombstoned stream is Deleted and changes nothing.
	ops := []struct {
		name string
		do   func(t *testing.T, st verity.Store) error
	}{
		{"ReadStream forwards", func(t *testing.T, st verity.Store) error {
			_, err := st.ReadStream(t.Context(), "order-1", verity.ReadStreamOptions{})
			return err
		}},
		{"ReadStream backwards", func(t *testing.T, st verity.Store) error {
			_, err := st.ReadStream(t.Context(), "order-1", verity.ReadStreamOptions{Direction: verity.Backwards, FromEnd: true})
			return err
		}},
		{"Append with Any", func(t *testing.T, st verity.Store) error {
			_, err := st.Append(t.Context(), "order-1", verity.Any(), event("OrderChanged", 9))
			return err
		}},
		{"Append with NoStream", func(t *testing.T, st verity.Store) error {
			_, err := st.Append(t.Context(), "order-1", verity.NoStream(), event("OrderChanged", 9))
			return err
		}},
		{"Append with the last revision", func(t *testing.T, st verity.Store) error {
			_, err := st.Append(t.Context(), "order-1", verity.Exact(2), event("OrderChanged", 9))
			return err
		}},
		{"AppendMulti", func(t *testing.T, st verity.Store) error {
			_, err := st.AppendMulti(t.Context(),
				verity.StreamAppend{Stream: "order-3", Expected: verity.Any(), Events: events("OrderPlaced", 1)},
				verity.StreamAppend{Stream: "order-1", Expected: verity.Any(), Events: events("OrderChanged", 1)},
			)
			return err
		}},
		{"SetStreamMetadata", func(t *testing.T, st verity.Store) error {
			_, err := st.SetStreamMetadata(t.Context(), "order-1", verity.Any(), verity.StreamMetadata{MaxCount: 1})
			return err
		}},
		{"DeleteStream", func(t *testing.T, st verity.Store) error {
			_, err := st.DeleteStream(t.Context(), "order-1", verity.Any())
			return err
		}},
		{"TombstoneStream", func(t *testing.T, st verity.Store) error {
			_, err := st.TombstoneStream(t.Context(), "order-1", verity.Any())
			return err
		}},
	}
	for _, op := range ops {
		s.test(t, op.name+" of a tombstoned stream is Deleted", func(t *testing.T, st verity.Store) {
			mustAppend(t, st, "order-1", verity.NoStream(), events("OrderChanged", 3)...)
			mustAppend(t, st, "order-2", verity.NoStream(), events("OrderChanged", 1)...)
			res, err := st.TombstoneStream(t.Context(), "order-1", verity.Any())
			if err != nil {
				t.Fatalf("TombstoneStream: %v", err)
			}
			if res.Position <= 4 {
				t.Fatalf("TombstoneStream = %+v, want a position after the last event, 4", res)
			}
			before := readAll(t, st, verity.Filter{})
			err = op.do(t, st)
			requireKind(t, err, verity.Deleted, op.name)
			if !errors.Is(err, verity.ErrDeleted) {
				t.Fatalf("%s: errors.Is(err, verity.ErrDeleted) is false for %v", op.name, err)
			}
			requireSameRecorded(t, readAll(t, st, verity.Filter{}), before, "the log after "+op.name)
		})
	}

	s.test(t, "a tombstoned stream's events leave the log", func(t *testing.T, st verity.Store) {
		mustAppend(t, st, "order-1", verity.NoStream(), events("OrderChanged", 3)...)
		mustAppend(t, st, "order-2", verity.NoStream(), events("OrderChanged", 2)...)
		res, err := st.TombstoneStream(t.Context(), "order-1", verity.Exact(2))
		if err != nil {
			t.Fatalf("TombstoneStream: %v", err)
		}
		log := readAll(t, st, verity.Filter{})
		for _, e := range ofStream(log, "order-1") {
			if e.Type != verity.EventTypeStreamDeleted {
				t.Fatalf("ReadAll still returns %s of the tombstoned stream", describe(e))
			}
			if e.Position != res.Position {
				t.Fatalf("the tombstone is at position %d, TombstoneStream said %d", e.Position, res.Position)
			}
		}
		requireVisible(t, st, "order-2", []uint64{0, 1})
	})

	for _, exp := range []verity.ExpectedRevision{verity.NoStream(), verity.Any()} {
		s.test(t, "a stream never written can be tombstoned with "+exp.String(), func(t *testing.T, st verity.Store) {
			if _, err := st.TombstoneStream(t.Context(), "order-1", exp); err != nil {
				t.Fatalf("TombstoneStream of a stream never written: %v", err)
			}
			requireStreamErr(t, st, "order-1", verity.Deleted)
			_, err := st.Append(t.Context(), "order-1", verity.NoStream(), event("OrderPlaced", 0))
			requireKind(t, err, verity.Deleted, "Append to the tombstoned name")
		})
	}

	s.test(t, "a soft-deleted stream can be tombstoned", func(t *testing.T, st verity.Store) {
		mustAppend(t, st, "order-1", verity.NoStream(), events("OrderChanged", 2)...)
		if _, err := st.DeleteStream(t.Context(), "order-1", verity.Any()); err != nil {
			t.Fatal(err)
		}
		if _, err := st.TombstoneStream(t.Context(), "order-1", verity.Any()); err != nil {
			t.Fatalf("TombstoneStream after DeleteStream: %v", err)
		}
		requireStreamErr(t, st, "order-1", verity.Deleted)
	})

	cases := []struct {
		name     string
		expected verity.ExpectedRevision
	}{
		{"a tombstone with an older revision is a conflict", verity.Exact(1)},
		{"a tombstone with NoStream of an existing stream is a conflict", verity.NoStream()},
	}
	for _, c := range cases {
		s.test(t, c.name, func(t *testing.T, st verity.Store) {
			mustAppend(t, st, "order-1", verity.NoStream(), events("OrderChanged", 3)...)
			_, err := st.TombstoneStream(t.Context(), "order-1", c.expected)
			requireWrongRevision(t, err, "order-1", c.expected, verity.StreamState{Exists: true, Revision: 2}, "TombstoneStream")
			requireVisible(t, st, "order-1", []uint64{0, 1, 2})
			mustAppend(t, st, "order-1", verity.Exact(2), event("OrderChanged", 3))
		})
	}
}
