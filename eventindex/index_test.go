package eventindex_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/engine"
	"github.com/verity-dev/verity/eventindex"
)

func openEngine(t testing.TB) *engine.Engine {
	t.Helper()
	e, err := engine.Open(engine.Config{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("engine.Open: %v", err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func openIndex(t testing.TB, store verity.Store, path string) *eventindex.Index {
	t.Helper()
	x, err := eventindex.Open(store, eventindex.Config{Path: path, BatchSize: 3, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("eventindex.Open: %v", err)
	}
	t.Cleanup(func() { _ = x.Close() })
	return x
}

// waitIndexed waits until the index has every event up to pos.
func waitIndexed(t testing.TB, x *eventindex.Index, pos uint64) {
	t.Helper()
	waitIndexedFor(t, x, pos, 10*time.Second)
}

func waitIndexedFor(t testing.TB, x *eventindex.Index, pos uint64, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		st, err := x.Status(context.Background())
		if err != nil {
			t.Fatalf("Status: %v", err)
		}
		if st.Position >= pos {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("index at %d, want %d (last error %v)", st.Position, pos, st.LastError)
		}
		time.Sleep(time.Millisecond)
	}
}

// linked is an event with a fresh id and the given links in its metadata.
func linked(typ, causation, correlation string) verity.EventData {
	md := map[string]string{}
	if causation != "" {
		md["$causationId"] = causation
	}
	if correlation != "" {
		md["$correlationId"] = correlation
	}
	var b []byte
	if len(md) > 0 {
		parts := []string{}
		for k, v := range md {
			parts = append(parts, fmt.Sprintf("%q:%q", k, v))
		}
		b = []byte("{" + strings.Join(parts, ",") + "}")
	}
	return verity.EventData{ID: uuid.New(), Type: typ, Data: []byte(`{}`), Metadata: b}
}

// workflow appends a small causation tree across streams and returns the ids:
// root (order-1) -> a (payment-1), b (stock-1); a -> c (order-1). Plus an unrelated event.
func workflow(t testing.TB, s verity.Store) (root, a, b, c uuid.UUID, last uint64) {
	t.Helper()
	ctx := context.Background()
	must := func(stream string, e verity.EventData) uint64 {
		t.Helper()
		r, err := s.Append(ctx, stream, verity.Any(), e)
		if err != nil {
			t.Fatalf("append %s: %v", stream, err)
		}
		return r.Position
	}
	r := linked("OrderPlaced", "", "")
	must("order-1", r)
	ea := linked("PaymentTaken", r.ID.String(), r.ID.String())
	must("payment-1", ea)
	eb := linked("StockReserved", strings.ToUpper(r.ID.String()), r.ID.String()) // upper case still links
	must("stock-1", eb)
	must("other-1", linked("Unrelated", "", "someone-else"))
	ec := linked("OrderPaid", ea.ID.String(), r.ID.String())
	last = must("order-1", ec)
	return r.ID, ea.ID, eb.ID, ec.ID, last
}

func TestIndexAnswersLookupsCausationAndCorrelation(t *testing.T) {
	e := openEngine(t)
	x := openIndex(t, e, filepath.Join(t.TempDir(), "index.sqlite"))
	root, a, b, c, last := workflow(t, e)
	waitIndexed(t, x, last)
	ctx := context.Background()

	t.Run("an id finds its event's place and links", func(t *testing.T) {
		ref, err := x.Lookup(ctx, strings.ToUpper(a.String()))
		if err != nil {
			t.Fatal(err)
		}
		want := eventindex.Ref{ID: a.String(), Position: 2, Stream: "payment-1", Revision: 0, CausationID: root.String(), CorrelationID: root.String()}
		if diff := cmp.Diff(want, ref); diff != "" {
			t.Errorf("Lookup (-want +got):\n%s", diff)
		}
	})
	t.Run("an unknown id is NotFound", func(t *testing.T) {
		_, err := x.Lookup(ctx, uuid.NewString())
		if !errors.Is(err, verity.ErrNotFound) {
			t.Errorf("err = %v, want NotFound", err)
		}
	})
	t.Run("the events an event caused come in log order", func(t *testing.T) {
		refs, err := x.CausedBy(ctx, root.String(), 10)
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(refs); !cmp.Equal(got, []string{a.String(), b.String()}) {
			t.Errorf("CausedBy(root) = %v, want a, b", got)
		}
		refs, _ = x.CausedBy(ctx, root.String(), 1)
		if len(refs) != 1 {
			t.Errorf("CausedBy with limit 1 gave %d", len(refs))
		}
	})
	t.Run("a correlation holds its events and its root, newest first", func(t *testing.T) {
		refs, err := x.Correlated(ctx, root.String(), 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(refs); !cmp.Equal(got, []string{c.String(), b.String(), a.String(), root.String()}) {
			t.Errorf("Correlated = %v", got)
		}
		refs, _ = x.Correlated(ctx, root.String(), 3, 10)
		if got := ids(refs); !cmp.Equal(got, []string{a.String(), root.String()}) {
			t.Errorf("Correlated before 3 = %v, want a, root", got)
		}
	})
}

func ids(refs []eventindex.Ref) []string {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.ID
	}
	return out
}

// answers is everything the index says about a workflow, to compare two indexes.
func answers(t testing.TB, x *eventindex.Index, of ...uuid.UUID) []any {
	t.Helper()
	ctx := context.Background()
	var out []any
	for _, id := range of {
		ref, err := x.Lookup(ctx, id.String())
		caused, err2 := x.CausedBy(ctx, id.String(), 100)
		corr, err3 := x.Correlated(ctx, id.String(), 0, 100)
		if err := errors.Join(err, err2, err3); err != nil {
			t.Fatalf("answers for %s: %v", id, err)
		}
		out = append(out, ref, caused, corr)
	}
	return out
}

func TestIndexIsRebuiltFromTheLogWhenItsFileIsDeleted(t *testing.T) {
	e := openEngine(t)
	path := filepath.Join(t.TempDir(), "index.sqlite")
	x, err := eventindex.Open(e, eventindex.Config{Path: path, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	root, a, b, c, last := workflow(t, e)
	waitIndexed(t, x, last)
	before := answers(t, x, root, a, b, c)
	if err := x.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	y := openIndex(t, e, path)
	waitIndexed(t, y, last)
	if diff := cmp.Diff(before, answers(t, y, root, a, b, c)); diff != "" {
		t.Errorf("rebuilt index answers differently (-before +after):\n%s", diff)
	}
}

// recordingStore records where subscriptions start.
type recordingStore struct {
	verity.Store
	mu    sync.Mutex
	froms []uint64
}

func (s *recordingStore) Subscribe(ctx context.Context, opts verity.SubscribeOptions) (verity.Subscription, error) {
	s.mu.Lock()
	s.froms = append(s.froms, opts.From)
	s.mu.Unlock()
	return s.Store.Subscribe(ctx, opts)
}

func TestIndexResumesFromItsCheckpointAfterARestart(t *testing.T) {
	e := openEngine(t)
	path := filepath.Join(t.TempDir(), "index.sqlite")
	x, err := eventindex.Open(e, eventindex.Config{Path: path, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	root, _, _, c, last := workflow(t, e)
	waitIndexed(t, x, last)
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	// Written while the index is closed: the restarted index must pick these up.
	d := linked("OrderShipped", c.String(), root.String())
	r, err := e.Append(context.Background(), "order-1", verity.Any(), d)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recordingStore{Store: e}
	y := openIndex(t, rec, path)
	waitIndexed(t, y, r.Position)
	rec.mu.Lock()
	froms := append([]uint64(nil), rec.froms...)
	rec.mu.Unlock()
	if len(froms) == 0 || froms[0] != last+1 {
		t.Errorf("restarted index subscribed from %v, want %d (after its checkpoint)", froms, last+1)
	}
	refs, err := y.CausedBy(context.Background(), c.String(), 10)
	if err != nil || len(refs) != 1 || refs[0].ID != d.ID.String() {
		t.Errorf("CausedBy(c) = %v, %v; want the event appended while closed", refs, err)
	}
}

func TestIndexReadsOnlyStringLinksAndToleratesAnyMetadata(t *testing.T) {
	e := openEngine(t)
	x := openIndex(t, e, filepath.Join(t.TempDir(), "index.sqlite"))
	ctx := context.Background()
	cases := []struct {
		name, md     string
		caus, correl string
	}{
		{"plain names are read when the $ names are missing", `{"causationId":"cmd-1","correlationId":"w-1"}`, "cmd-1", "w-1"},
		{"the $ names win over the plain ones", `{"$causationId":"x","causationId":"y"}`, "x", ""},
		{"ids that are not strings are no links", `{"$causationId":7,"$correlationId":{"a":1}}`, "", ""},
		{"metadata that is not JSON has no links", `not json causationId`, "", ""},
	}
	var last uint64
	idsOf := map[string]uuid.UUID{}
	for i, c := range cases {
		id := uuid.New()
		idsOf[c.name] = id
		r, err := e.Append(ctx, fmt.Sprintf("md-%d", i), verity.Any(), verity.EventData{ID: id, Type: "T", ContentType: verity.ContentTypeBinary, Data: []byte("x"), Metadata: []byte(c.md)})
		if err != nil {
			t.Fatal(err)
		}
		last = r.Position
	}
	waitIndexed(t, x, last)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ref, err := x.Lookup(ctx, idsOf[c.name].String())
			if err != nil {
				t.Fatal(err)
			}
			if ref.CausationID != c.caus || ref.CorrelationID != c.correl {
				t.Errorf("links = %q, %q; want %q, %q", ref.CausationID, ref.CorrelationID, c.caus, c.correl)
			}
		})
	}
}

func TestConfigValidateNamesTheBadField(t *testing.T) {
	for _, c := range []struct {
		cfg  eventindex.Config
		want string
	}{
		{eventindex.Config{}, "Path"},
		{eventindex.Config{Path: "x", BatchSize: -1}, "BatchSize"},
		{eventindex.Config{Path: "x", RetryDelay: -time.Second}, "RetryDelay"},
	} {
		err := c.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, verity.ErrInvalid) {
			t.Errorf("Validate(%+v) = %v, want Invalid naming %s", c.cfg, err, c.want)
		}
	}
}

// TestCorrelationRootThatNamesItselfComesOnce: a root whose correlation id is its own id
// is found both as the root and as a member; it is listed once, in its place.
func TestCorrelationRootThatNamesItselfComesOnce(t *testing.T) {
	e := openEngine(t)
	x := openIndex(t, e, filepath.Join(t.TempDir(), "index.sqlite"))
	ctx := context.Background()
	root := linked("Started", "", "")
	root.Metadata = []byte(fmt.Sprintf(`{"$correlationId":%q}`, root.ID))
	var last uint64
	for _, a := range []struct {
		stream string
		e      verity.EventData
	}{{"flow-1", root}, {"flow-2", linked("Step", root.ID.String(), root.ID.String())}, {"flow-1", linked("Done", "", root.ID.String())}} {
		r, err := e.Append(ctx, a.stream, verity.Any(), a.e)
		if err != nil {
			t.Fatal(err)
		}
		last = r.Position
	}
	waitIndexed(t, x, last)
	refs, err := x.Correlated(ctx, root.ID.String(), 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := positionsOf(refs); !cmp.Equal(got, []uint64{3, 2, 1}) {
		t.Errorf("Correlated = positions %v, want 3, 2, 1", got)
	}
	refs, _ = x.Correlated(ctx, root.ID.String(), 3, 1)
	if got := positionsOf(refs); !cmp.Equal(got, []uint64{2}) {
		t.Errorf("Correlated before 3, limit 1 = positions %v, want 2", got)
	}
}

func positionsOf(refs []eventindex.Ref) []uint64 {
	out := make([]uint64, len(refs))
	for i, r := range refs {
		out[i] = r.Position
	}
	return out
}
