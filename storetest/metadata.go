package storetest

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/verity-dev/verity"
)

func ptr[T any](v T) *T { return &v }

// requireMetadata fails unless got holds the same metadata as want.
func requireMetadata(t testing.TB, got, want verity.StreamMetadata, what string) {
	t.Helper()
	if got.MaxAge != want.MaxAge || got.MaxCount != want.MaxCount {
		t.Errorf("%s: MaxAge %v MaxCount %d, want %v and %d", what, got.MaxAge, got.MaxCount, want.MaxAge, want.MaxCount)
	}
	if (got.TruncateBefore == nil) != (want.TruncateBefore == nil) || got.TruncateBefore != nil && *got.TruncateBefore != *want.TruncateBefore {
		t.Errorf("%s: TruncateBefore %s, want %s", what, fmtPtr(got.TruncateBefore), fmtPtr(want.TruncateBefore))
	}
	if !reflect.DeepEqual(got.ACL, want.ACL) {
		t.Errorf("%s: ACL %+v, want %+v", what, got.ACL, want.ACL)
	}
	if len(got.Custom) != len(want.Custom) {
		t.Errorf("%s: custom keys %v, want %v", what, keys(got.Custom), keys(want.Custom))
	}
	for k, v := range want.Custom {
		if !sameJSON(got.Custom[k], v) {
			t.Errorf("%s: custom key %q is %s, want %s", what, k, got.Custom[k], v)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

func fmtPtr(p *uint64) string {
	if p == nil {
		return "nil"
	}
	b, _ := json.Marshal(*p)
	return string(b)
}

func keys(m map[string]json.RawMessage) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func testMetadata(t *testing.T, s *suite) {
	s.test(t, "metadata that was never set is NotFound", func(t *testing.T, st verity.Store) {
		mustAppend(t, st, "order-1", verity.Any(), event("OrderPlaced", 0))
		for _, stream := range []string{"order-1", "order-2"} {
			_, err := st.GetStreamMetadata(t.Context(), stream)
			requireKind(t, err, verity.NotFound, "GetStreamMetadata("+stream+")")
		}
	})

	s.test(t, "metadata set is read back whole", func(t *testing.T, st verity.Store) {
		mustAppend(t, st, "order-1", verity.Any(), event("OrderPlaced", 0))
		meta := verity.StreamMetadata{
			MaxAge:         3 * time.Hour,
			MaxCount:       50,
			TruncateBefore: ptr(uint64(0)),
			ACL: &verity.StreamACL{
				Read: []string{"$all"}, Write: []string{"orders", "admin"}, Delete: []string{"$admins"},
				MetaRead: []string{"ops"}, MetaWrite: []string{"$admins"},
			},
			Custom: map[string]json.RawMessage{
				"owner":  json.RawMessage(`"sales"`),
				"limits": json.RawMessage(`{"max": 3, "tags": ["a", "b"]}`),
			},
		}
		res := mustSetMetadata(t, st, "order-1", verity.NoStream(), meta)
		if res.Revision != 0 || res.Position != 2 {
			t.Fatalf("SetStreamMetadata = %+v, want revision 0 of the metadata stream at position 2", res)
		}
		got, err := st.GetStreamMetadata(t.Context(), "order-1")
		if err != nil {
			t.Fatal(err)
		}
		if got.Stream != "order-1" || got.Revision != 0 {
			t.Errorf("GetStreamMetadata: stream %q revision %d, want order-1 and 0", got.Stream, got.Revision)
		}
		requireMetadata(t, got.Metadata, meta, "GetStreamMetadata")
	})

	s.test(t, "setting metadata replaces all of it", func(t *testing.T, st verity.Store) {
		mustSetMetadata(t, st, "order-1", verity.Any(), verity.StreamMetadata{
			MaxAge: time.Hour, TruncateBefore: ptr(uint64(3)), ACL: &verity.StreamACL{Read: []string{"ann"}},
			Custom: map[string]json.RawMessage{"owner": json.RawMessage(`"sales"`)},
		})
		next := verity.StreamMetadata{MaxCount: 7}
		res := mustSetMetadata(t, st, "order-1", verity.Any(), next)
		if res.Revision != 1 {
			t.Fatalf("the second SetStreamMetadata = %+v, want revision 1", res)
		}
		got, err := st.GetStreamMetadata(t.Context(), "order-1")
		if err != nil {
			t.Fatal(err)
		}
		if got.Revision != 1 {
			t.Errorf("GetStreamMetadata revision %d, want 1", got.Revision)
		}
		requireMetadata(t, got.Metadata, next, "GetStreamMetadata")
	})

	s.test(t, "setting metadata honours the metadata stream's expected revision", func(t *testing.T, st verity.Store) {
		const stream = "order-1"
		steps := []struct {
			expected verity.ExpectedRevision
			conflict *verity.StreamState // nil: succeeds
		}{
			{verity.StreamExists(), &verity.StreamState{}},
			{verity.Exact(0), &verity.StreamState{}},
			{verity.NoStream(), nil}, // revision 0
			{verity.NoStream(), &verity.StreamState{Exists: true, Revision: 0}},
			{verity.Exact(1), &verity.StreamState{Exists: true, Revision: 0}},
			{verity.Exact(0), nil}, // revision 1
			{verity.Exact(0), &verity.StreamState{Exists: true, Revision: 1}},
			{verity.StreamExists(), nil}, // revision 2
			{verity.Any(), nil},          // revision 3
		}
		var rev uint64
		var last uint64
		for i, step := range steps {
			meta := verity.StreamMetadata{MaxCount: uint64(100 + i)}
			res, err := st.SetStreamMetadata(t.Context(), stream, step.expected, meta)
			if step.conflict != nil {
				requireWrongRevision(t, err, "", step.expected, *step.conflict, "SetStreamMetadata(expected "+step.expected.String()+")")
			} else {
				if err != nil {
					t.Fatalf("step %d: SetStreamMetadata(expected %v): %v", i, step.expected, err)
				}
				if res.Revision != rev {
					t.Fatalf("step %d: SetStreamMetadata = %+v, want revision %d", i, res, rev)
				}
				rev++
				last = meta.MaxCount
			}
			if rev > 0 {
				got, err := st.GetStreamMetadata(t.Context(), stream)
				if err != nil {
					t.Fatal(err)
				}
				if got.Metadata.MaxCount != last || got.Revision != rev-1 {
					t.Fatalf("step %d: metadata has MaxCount %d at revision %d, want %d at %d", i, got.Metadata.MaxCount, got.Revision, last, rev-1)
				}
			}
		}
	})

	s.test(t, "setting metadata records a $metadata event in the log", func(t *testing.T, st verity.Store) {
		mustAppend(t, st, "order-1", verity.Any(), event("OrderPlaced", 0))
		res := mustSetMetadata(t, st, "order-1", verity.Any(), verity.StreamMetadata{MaxCount: 3})
		log := readAll(t, st, verity.Filter{})
		requireGaplessLog(t, log, 2, "the log")
		e := log[1]
		if e.Stream != verity.MetadataStreamOf("order-1") || e.Type != verity.EventTypeMetadata || e.Position != res.Position || e.Revision != 0 {
			t.Fatalf("the metadata event is %s, want type %s of %s at revision 0 position %d", describe(e), verity.EventTypeMetadata, verity.MetadataStreamOf("order-1"), res.Position)
		}
		var meta verity.StreamMetadata
		if err := json.Unmarshal(e.Data, &meta); err != nil || meta.MaxCount != 3 {
			t.Fatalf("the metadata event holds %s (%v), want $maxCount 3", e.Data, err)
		}
		if got := userEvents(log); len(got) != 1 {
			t.Fatalf("the log holds %d user events, want 1", len(got))
		}
	})

	s.test(t, "MaxCount hides older events at once", func(t *testing.T, st verity.Store) {
		mustAppend(t, st, "order-1", verity.NoStream(), events("OrderChanged", 5)...)
		mustAppend(t, st, "order-2", verity.NoStream(), events("OrderChanged", 2)...)
		mustSetMetadata(t, st, "order-1", verity.Any(), verity.StreamMetadata{MaxCount: 2})
		requireVisible(t, st, "order-1", []uint64{3, 4})
		requireVisible(t, st, "order-2", []uint64{0, 1})
		// The stream keeps counting revisions and the window moves on.
		mustAppend(t, st, "order-1", verity.Exact(4), event("OrderChanged", 5))
		requireVisible(t, st, "order-1", []uint64{4, 5})
		got, err := st.ReadStream(t.Context(), "order-1", verity.ReadStreamOptions{From: 1})
		if err != nil {
			t.Fatal(err)
		}
		requireRevisions(t, got, []uint64{4, 5}, "ReadStream from revision 1")
	})

	s.test(t, "metadata set before the stream exists applies once it does", func(t *testing.T, st verity.Store) {
		mustSetMetadata(t, st, "order-1", verity.NoStream(), verity.StreamMetadata{MaxCount: 2})
		requireStreamNotFound(t, st, "order-1")
		res := mustAppend(t, st, "order-1", verity.NoStream(), events("OrderChanged", 5)...)
		if res.Revision != 4 {
			t.Fatalf("the first append = %+v, want revision 4", res)
		}
		requireVisible(t, st, "order-1", []uint64{3, 4})
	})

	s.test(t, "TruncateBefore hides lower revisions", func(t *testing.T, st verity.Store) {
		mustAppend(t, st, "order-1", verity.NoStream(), events("OrderChanged", 5)...)
		mustSetMetadata(t, st, "order-1", verity.Any(), verity.StreamMetadata{TruncateBefore: ptr(uint64(3))})
		requireVisible(t, st, "order-1", []uint64{3, 4})
		got, err := st.ReadStream(t.Context(), "order-1", verity.ReadStreamOptions{From: 1})
		if err != nil {
			t.Fatal(err)
		}
		requireRevisions(t, got, []uint64{3, 4}, "ReadStream from revision 1")
	})

	s.test(t, "TruncateBefore past the last event makes the stream NotFound until it grows past it", func(t *testing.T, st verity.Store) {
		mustAppend(t, st, "order-1", verity.NoStream(), events("OrderChanged", 3)...)
		mustSetMetadata(t, st, "order-1", verity.Any(), verity.StreamMetadata{TruncateBefore: ptr(uint64(3))})
		requireStreamNotFound(t, st, "order-1")
		if evs := ofStream(readAll(t, st, verity.Filter{}), "order-1"); len(evs) != 0 {
			t.Fatalf("ReadAll returns %d truncated events of the stream", len(evs))
		}
		res := mustAppend(t, st, "order-1", verity.Exact(2), event("OrderChanged", 3))
		if res.Revision != 3 {
			t.Fatalf("append after the truncation = %+v, want revision 3", res)
		}
		requireVisible(t, st, "order-1", []uint64{3})
	})

	s.serialTest(t, "MaxAge hides events older than it", func(t *testing.T, st verity.Store) {
		clock := s.needClock(t)
		mustAppend(t, st, "order-1", verity.NoStream(), events("OrderChanged", 2)...)
		mustAppend(t, st, "order-2", verity.NoStream(), events("OrderChanged", 1)...)
		clock.Advance(2 * time.Hour)
		mustAppend(t, st, "order-1", verity.Exact(1), event("OrderChanged", 2))
		mustSetMetadata(t, st, "order-1", verity.Any(), verity.StreamMetadata{MaxAge: time.Hour})
		requireVisible(t, st, "order-1", []uint64{2})
		requireVisible(t, st, "order-2", []uint64{0})
		clock.Advance(30 * time.Minute)
		requireVisible(t, st, "order-1", []uint64{2})
		clock.Advance(time.Hour)
		requireStreamNotFound(t, st, "order-1")
		if evs := ofStream(readAll(t, st, verity.Filter{}), "order-1"); len(evs) != 0 {
			t.Fatalf("ReadAll returns %d expired events of the stream", len(evs))
		}
		mustAppend(t, st, "order-1", verity.Exact(2), event("OrderChanged", 3))
		requireVisible(t, st, "order-1", []uint64{3})
	})
}

// requireVisible fails unless stream shows exactly revisions want, through ReadStream both
// ways and through ReadAll.
func requireVisible(t testing.TB, st verity.Store, stream string, want []uint64) {
	t.Helper()
	fwd := readStream(t, st, stream)
	requireRevisions(t, fwd, want, "ReadStream("+stream+") forwards")
	back, err := st.ReadStream(t.Context(), stream, verity.ReadStreamOptions{Direction: verity.Backwards, FromEnd: true})
	if err != nil {
		t.Fatalf("ReadStream(%s) backwards: %v", stream, err)
	}
	requireRevisions(t, back, reversed(want), "ReadStream("+stream+") backwards")
	requireRevisions(t, ofStream(readAll(t, st, verity.Filter{}), stream), want, "ReadAll's events of "+stream)
	f := verity.Filter{StreamPrefixes: []string{stream}}
	all, err := st.ReadAll(t.Context(), verity.ReadAllOptions{Direction: verity.Backwards, FromEnd: true, Filter: f})
	if err != nil {
		t.Fatal(err)
	}
	requireRevisions(t, ofStream(all, stream), reversed(want), "ReadAll backwards of "+stream)
}
