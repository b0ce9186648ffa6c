package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/verity-dev/verity"
)

// waitTimeout bounds every wait for a condition (a subscription message, goroutines to
// finish). It is generous: it is only ever reached when the store is wrong.
const waitTimeout = 10 * time.Second

// createdSlack is how far a commit time may be from the controlled clock: stores may keep
// commit times at a coarser grain than nanoseconds, but not coarser than a millisecond.
const createdSlack = time.Millisecond

// event returns a JSON event of type typ with a fresh id and data {"n":n}.
func event(typ string, n int) verity.EventData {
	return verity.EventData{
		ID:          uuid.New(),
		Type:        typ,
		ContentType: verity.ContentTypeJSON,
		Data:        fmt.Appendf(nil, `{"n":%d}`, n),
	}
}

// events returns n JSON events of type typ with fresh ids.
func events(typ string, n int) []verity.EventData {
	out := make([]verity.EventData, n)
	for i := range out {
		out[i] = event(typ, i)
	}
	return out
}

func mustAppend(t testing.TB, st verity.Store, stream string, exp verity.ExpectedRevision, evs ...verity.EventData) verity.AppendResult {
	t.Helper()
	res, err := st.Append(t.Context(), stream, exp, evs...)
	if err != nil {
		t.Fatalf("Append(%q, expected %v, %d events): %v", stream, exp, len(evs), err)
	}
	return res
}

func mustAppendMulti(t testing.TB, st verity.Store, appends ...verity.StreamAppend) []verity.AppendResult {
	t.Helper()
	res, err := st.AppendMulti(t.Context(), appends...)
	if err != nil {
		t.Fatalf("AppendMulti(%d appends): %v", len(appends), err)
	}
	if len(res) != len(appends) {
		t.Fatalf("AppendMulti(%d appends) returned %d results", len(appends), len(res))
	}
	return res
}

func mustSetMetadata(t testing.TB, st verity.Store, stream string, exp verity.ExpectedRevision, meta verity.StreamMetadata) verity.AppendResult {
	t.Helper()
	res, err := st.SetStreamMetadata(t.Context(), stream, exp, meta)
	if err != nil {
		t.Fatalf("SetStreamMetadata(%q, expected %v): %v", stream, exp, err)
	}
	return res
}

// sentinel returns the *verity.Error errors.Is matches every error of kind k with.
func sentinel(k verity.ErrorKind) error { return &verity.Error{Kind: k} }

// requireKind fails unless err is a *verity.Error of kind k.
func requireKind(t testing.TB, err error, k verity.ErrorKind, what string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: got no error, want %v", what, k)
	}
	var ve *verity.Error
	if !errors.As(err, &ve) {
		t.Fatalf("%s: got %T %v, want a *verity.Error of kind %v", what, err, err, k)
	}
	if !errors.Is(err, sentinel(k)) || verity.KindOf(err) != k {
		t.Fatalf("%s: got error of kind %v (%v), want %v", what, verity.KindOf(err), err, k)
	}
}

// requireWrongRevision fails unless err is the Conflict of an expected revision that did
// not hold, carrying expected and actual.
func requireWrongRevision(t testing.TB, err error, stream string, expected verity.ExpectedRevision, actual verity.StreamState, what string) {
	t.Helper()
	requireKind(t, err, verity.Conflict, what)
	if !errors.Is(err, verity.ErrConflict) {
		t.Fatalf("%s: errors.Is(err, verity.ErrConflict) is false for %v", what, err)
	}
	var ve *verity.Error
	errors.As(err, &ve)
	if stream != "" && ve.Stream != stream {
		t.Errorf("%s: error names stream %q, want %q", what, ve.Stream, stream)
	}
	if ve.Expected == nil {
		t.Errorf("%s: Conflict has no Expected (%v)", what, err)
	} else if *ve.Expected != expected {
		t.Errorf("%s: Conflict has Expected %v, want %v", what, *ve.Expected, expected)
	}
	if ve.Actual == nil {
		t.Fatalf("%s: Conflict has no Actual (%v)", what, err)
	}
	if ve.Actual.Exists != actual.Exists || (actual.Exists && ve.Actual.Revision != actual.Revision) {
		t.Errorf("%s: Conflict has Actual %v, want %v", what, *ve.Actual, actual)
	}
}

// readStream reads every visible event of a stream forwards, a page at a time.
func readStream(t testing.TB, st verity.Store, stream string) []verity.RecordedEvent {
	t.Helper()
	var out []verity.RecordedEvent
	var from uint64
	for {
		page, err := st.ReadStream(t.Context(), stream, verity.ReadStreamOptions{From: from, Limit: 1000})
		if err != nil {
			if len(out) == 0 {
				t.Fatalf("ReadStream(%q): %v", stream, err)
			}
			t.Fatalf("ReadStream(%q, from %d): %v", stream, from, err)
		}
		if len(page) == 0 {
			return out
		}
		out = append(out, page...)
		from = page[len(page)-1].Revision + 1
	}
}

// requireStreamNotFound fails unless reading stream (either way) is NotFound.
func requireStreamNotFound(t testing.TB, st verity.Store, stream string) {
	t.Helper()
	requireStreamErr(t, st, stream, verity.NotFound)
}

func requireStreamErr(t testing.TB, st verity.Store, stream string, k verity.ErrorKind) {
	t.Helper()
	evs, err := st.ReadStream(t.Context(), stream, verity.ReadStreamOptions{})
	requireKind(t, err, k, fmt.Sprintf("ReadStream(%q) forwards (returned %d events)", stream, len(evs)))
	evs, err = st.ReadStream(t.Context(), stream, verity.ReadStreamOptions{Direction: verity.Backwards, FromEnd: true})
	requireKind(t, err, k, fmt.Sprintf("ReadStream(%q) backwards (returned %d events)", stream, len(evs)))
}

// readAll reads the whole log forwards through f, a page at a time.
func readAll(t testing.TB, st verity.Store, f verity.Filter) []verity.RecordedEvent {
	t.Helper()
	var out []verity.RecordedEvent
	var from uint64
	for {
		page, err := st.ReadAll(t.Context(), verity.ReadAllOptions{From: from, Limit: 1000, Filter: f})
		if err != nil {
			t.Fatalf("ReadAll(from %d): %v", from, err)
		}
		if len(page) == 0 {
			return out
		}
		if len(out) > 0 && page[0].Position <= out[len(out)-1].Position {
			t.Fatalf("ReadAll(from %d) went back to position %d after %d", from, page[0].Position, out[len(out)-1].Position)
		}
		out = append(out, page...)
		from = page[len(page)-1].Position + 1
	}
}

// ofStream keeps the events of one stream.
func ofStream(evs []verity.RecordedEvent, stream string) []verity.RecordedEvent {
	var out []verity.RecordedEvent
	for _, e := range evs {
		if e.Stream == stream {
			out = append(out, e)
		}
	}
	return out
}

// userEvents leaves out the events of system streams ("$" names).
func userEvents(evs []verity.RecordedEvent) []verity.RecordedEvent {
	var out []verity.RecordedEvent
	for _, e := range evs {
		if !verity.IsSystemStream(e.Stream) {
			out = append(out, e)
		}
	}
	return out
}

func revisions(evs []verity.RecordedEvent) []uint64 {
	out := make([]uint64, len(evs))
	for i, e := range evs {
		out[i] = e.Revision
	}
	return out
}

func positions(evs []verity.RecordedEvent) []uint64 {
	out := make([]uint64, len(evs))
	for i, e := range evs {
		out[i] = e.Position
	}
	return out
}

// seq returns from, from+1, ..., from+n-1.
func seq(from uint64, n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = from + uint64(i)
	}
	return out
}

func reversed[T any](s []T) []T {
	out := slices.Clone(s)
	slices.Reverse(out)
	return out
}

func requireRevisions(t testing.TB, evs []verity.RecordedEvent, want []uint64, what string) {
	t.Helper()
	if got := revisions(evs); !slices.Equal(got, want) {
		t.Fatalf("%s: revisions %v, want %v", what, got, want)
	}
}

func requirePositions(t testing.TB, evs []verity.RecordedEvent, want []uint64, what string) {
	t.Helper()
	if got := positions(evs); !slices.Equal(got, want) {
		t.Fatalf("%s: positions %v, want %v", what, got, want)
	}
}

// requireWritten fails unless got are the events of want, in order, as the writer gave
// them: id, type, content type (empty read as JSON), data and metadata byte for byte.
func requireWritten(t testing.TB, got []verity.RecordedEvent, want []verity.EventData, what string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d events, want %d", what, len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if w.ID != (uuid.UUID{}) && g.ID != w.ID {
			t.Errorf("%s: event %d has id %v, want %v", what, i, g.ID, w.ID)
		}
		if g.ID == (uuid.UUID{}) {
			t.Errorf("%s: event %d has the zero id", what, i)
		}
		if g.Type != w.Type {
			t.Errorf("%s: event %d has type %q, want %q", what, i, g.Type, w.Type)
		}
		wantCT := w.ContentType
		if wantCT == "" {
			wantCT = verity.ContentTypeJSON
		}
		if g.ContentType != wantCT {
			t.Errorf("%s: event %d has content type %q, want %q", what, i, g.ContentType, wantCT)
		}
		if !bytes.Equal(g.Data, w.Data) {
			t.Errorf("%s: event %d has data %s, want %s", what, i, clip(g.Data), clip(w.Data))
		}
		if !bytes.Equal(g.Metadata, w.Metadata) {
			t.Errorf("%s: event %d has metadata %s, want %s", what, i, clip(g.Metadata), clip(w.Metadata))
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// requireSameRecorded fails unless got and want are the same recorded events, every field.
func requireSameRecorded(t testing.TB, got, want []verity.RecordedEvent, what string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d events, want %d", what, len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		same := g.ID == w.ID && g.Type == w.Type && g.ContentType == w.ContentType &&
			bytes.Equal(g.Data, w.Data) && bytes.Equal(g.Metadata, w.Metadata) &&
			g.Stream == w.Stream && g.Revision == w.Revision && g.Position == w.Position &&
			g.Created.Equal(w.Created)
		if !same {
			t.Fatalf("%s: event %d is\n\t%s\nwant\n\t%s", what, i, describe(g), describe(w))
		}
	}
}

func describe(e verity.RecordedEvent) string {
	return fmt.Sprintf("{id %v type %q content %q data %s metadata %s stream %q revision %d position %d created %v}",
		e.ID, e.Type, e.ContentType, clip(e.Data), clip(e.Metadata), e.Stream, e.Revision, e.Position, e.Created)
}

func clip(b []byte) string {
	if len(b) > 64 {
		return fmt.Sprintf("%q... (%d bytes)", b[:64], len(b))
	}
	return fmt.Sprintf("%q", b)
}

// requireGaplessLog fails unless the log holds exactly positions 1..n, in order, with commit
// times that never decrease.
func requireGaplessLog(t testing.TB, evs []verity.RecordedEvent, n int, what string) {
	t.Helper()
	if len(evs) != n {
		t.Fatalf("%s: the log holds %d events, want %d", what, len(evs), n)
	}
	for i, e := range evs {
		if e.Position != uint64(i+1) {
			t.Fatalf("%s: event %d of the log has position %d, want %d", what, i, e.Position, i+1)
		}
		if i > 0 && e.Created.Before(evs[i-1].Created) {
			t.Fatalf("%s: position %d was created at %v, before position %d at %v", what, e.Position, e.Created, evs[i-1].Position, evs[i-1].Created)
		}
	}
}

// sameJSON reports whether a and b hold the same JSON value.
func sameJSON(a, b []byte) bool {
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

// waitGroup waits for wg, failing the test if it takes longer than waitTimeout: a writer
// that never returns is a failure, not a hang.
func waitFor(t testing.TB, done <-chan struct{}, what string) {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		t.Fatalf("%s did not finish within %v", what, waitTimeout)
	}
}

// recvCtx bounds one Recv.
func recvCtx(t testing.TB) (context.Context, context.CancelFunc) {
	return context.WithTimeout(t.Context(), waitTimeout)
}
