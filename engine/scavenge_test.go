package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/verity-dev/verity"
)

// scavengeFixture writes streams whose events scavenging may and may not remove, into
// segments small enough to be sealed.
type scavengeFixture struct {
	e     *Engine
	dir   string
	cfg   Config
	now   *time.Time
	nowMu *sync.Mutex
	// ids of the first append to "trunc-1", retried after scavenging
	truncIDs  []uuid.UUID
	removable int64
}

func newScavengeFixture(t *testing.T) *scavengeFixture {
	t.Helper()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	f := &scavengeFixture{dir: t.TempDir(), now: &now, nowMu: &sync.Mutex{}}
	f.cfg = Config{Dir: f.dir, SegmentSize: 1 << 20, MaxEventSize: 64 << 10, MaxAppendSize: 512 << 10, IndexFlushEvents: 1024, Now: func() time.Time {
		f.nowMu.Lock()
		defer f.nowMu.Unlock()
		return *f.now
	}}
	e, err := Open(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.e = e
	ctx := context.Background()
	pad := strings.Repeat("x", 900)
	evs := func(n int, prefix string) []verity.EventData {
		out := make([]verity.EventData, n)
		for i := range out {
			out[i] = verity.EventData{ID: uuid.New(), Type: prefix + "Happened", Data: []byte(fmt.Sprintf(`{"i":%d,"pad":%q}`, i, pad))}
		}
		return out
	}
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(e.Append(ctx, "keep-1", verity.Any(), evs(200, "Keep")...))
	must(e.Append(ctx, "gone-1", verity.Any(), evs(200, "Gone")...))
	must(e.DeleteStream(ctx, "gone-1", verity.Any()))
	must(e.Append(ctx, "tomb-1", verity.Any(), evs(100, "Tomb")...))
	must(e.TombstoneStream(ctx, "tomb-1", verity.Any()))
	first := evs(100, "Trunc")
	for _, ev := range first {
		f.truncIDs = append(f.truncIDs, ev.ID)
	}
	must(e.Append(ctx, "trunc-1", verity.Any(), first...))
	must(e.Append(ctx, "trunc-1", verity.Any(), evs(200, "Trunc")...))
	tb := uint64(250)
	must(e.SetStreamMetadata(ctx, "trunc-1", verity.Any(), verity.StreamMetadata{TruncateBefore: &tb}))
	must(e.Append(ctx, "count-1", verity.Any(), evs(300, "Count")...))
	must(e.SetStreamMetadata(ctx, "count-1", verity.Any(), verity.StreamMetadata{MaxCount: 10}))
	must(e.Append(ctx, "age-1", verity.Any(), evs(100, "Age")...))
	must(e.SetStreamMetadata(ctx, "age-1", verity.Any(), verity.StreamMetadata{MaxAge: time.Hour}))
	f.nowMu.Lock()
	*f.now = f.now.Add(2 * time.Hour)
	f.nowMu.Unlock()
	must(e.Append(ctx, "age-1", verity.Any(), evs(5, "Age")...))
	// Filler, so that everything above lies in sealed segments.
	for range 5 {
		must(e.Append(ctx, "filler-1", verity.Any(), evs(300, "Fill")...))
	}
	// Removable: the soft-deleted stream's 200, the tombstoned stream's 100 (not the
	// tombstone), 250 truncated, 290 over max count, 100 over max age; no superseded
	// metadata (each metadata stream was written once, the soft delete's included).
	f.removable = 200 + 100 + 250 + 290 + 100
	return f
}

func readEverything(t *testing.T, e *Engine) (map[string][]verity.RecordedEvent, []verity.RecordedEvent) {
	t.Helper()
	ctx := context.Background()
	streams := map[string][]verity.RecordedEvent{}
	for _, s := range []string{"keep-1", "gone-1", "tomb-1", "trunc-1", "count-1", "age-1", "filler-1"} {
		evs, err := e.ReadStream(ctx, s, verity.ReadStreamOptions{Limit: 10000})
		if err != nil && !errors.Is(err, verity.ErrNotFound) && !errors.Is(err, verity.ErrDeleted) {
			t.Fatalf("read %s: %v", s, err)
		}
		streams[s] = evs
	}
	all, err := e.ReadAll(ctx, verity.ReadAllOptions{Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	return streams, all
}

func requireSameEvents(t *testing.T, what string, got, want []verity.RecordedEvent) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d events after scavenging, %d before", what, len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.Position != w.Position || g.Revision != w.Revision || string(g.Data) != string(w.Data) || g.Stream != w.Stream {
			t.Fatalf("%s: event %d is %s@%d (position %d) after scavenging, %s@%d (position %d) before", what, i, g.Stream, g.Revision, g.Position, w.Stream, w.Revision, w.Position)
		}
	}
}

func TestScavengeReclaimsHiddenEventsAndChangesNoRead(t *testing.T) {
	f := newScavengeFixture(t)
	e := f.e
	ctx := context.Background()
	streamsBefore, allBefore := readEverything(t, e)
	diskBefore := e.Stats().DiskBytes

	// Appends go on while scavenging runs.
	done := make(chan error, 1)
	go func() {
		for i := 0; i < 200; i++ {
			if _, err := e.Append(ctx, "during-1", verity.Any(), verity.EventData{Type: "During", Data: []byte(`{}`)}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	res, err := e.Scavenge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("append during scavenge: %v", err)
	}
	if res.EventsRemoved != f.removable {
		t.Errorf("scavenge removed %d events, want %d", res.EventsRemoved, f.removable)
	}
	if res.SegmentsRewritten == 0 || res.BytesReclaimed <= 0 {
		t.Errorf("scavenge result %+v: want segments rewritten and bytes reclaimed", res)
	}
	if after := e.Stats().DiskBytes; after >= diskBefore-res.BytesReclaimed/2 {
		t.Errorf("disk use %d after scavenging, %d before: the reclaimed %d bytes did not show", after, diskBefore, res.BytesReclaimed)
	}
	streamsAfter, allAfter := readEverything(t, e)
	for s, want := range streamsBefore {
		requireSameEvents(t, "stream "+s, streamsAfter[s], want)
	}
	var allAfterOld []verity.RecordedEvent
	for _, ev := range allAfter {
		if ev.Stream != "during-1" {
			allAfterOld = append(allAfterOld, ev)
		}
	}
	requireSameEvents(t, "$all", allAfterOld, allBefore)

	// A retry of a scavenged append is still recognised: stubs keep ids.
	evs := make([]verity.EventData, len(f.truncIDs))
	for i, id := range f.truncIDs {
		evs[i] = verity.EventData{ID: id, Type: "TruncHappened", Data: []byte(`{}`)}
	}
	r, err := e.Append(ctx, "trunc-1", verity.Any(), evs...)
	if err != nil || r.Revision != 99 {
		t.Fatalf("retry of a scavenged append: %+v, %v; want the original result, revision 99", r, err)
	}

	again, err := e.Scavenge(ctx)
	if err != nil || again.EventsRemoved != 0 {
		t.Fatalf("second scavenge: %+v, %v; want nothing removed", again, err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	v, err := Verify(ctx, f.dir)
	if err != nil || !v.OK {
		t.Fatalf("verify after scavenging: %+v, %v", v, err)
	}
	e2, err := Open(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	streamsReopened, _ := readEverything(t, e2)
	for s, want := range streamsBefore {
		requireSameEvents(t, "stream "+s+" after reopen", streamsReopened[s], want)
	}
}

func TestScavengeLeavesNoTemporaryFiles(t *testing.T) {
	f := newScavengeFixture(t)
	if _, err := f.e.Scavenge(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := f.e.Close(); err != nil {
		t.Fatal(err)
	}
	tmps, _ := filepath.Glob(filepath.Join(f.dir, "log", "*.tmp"))
	if len(tmps) != 0 {
		t.Fatalf("temporary files left behind: %v", tmps)
	}
}

func TestOnlineScavengeRunsByItself(t *testing.T) {
	f := newScavengeFixture(t)
	if err := f.e.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := f.cfg
	cfg.ScavengeInterval = 10 * time.Millisecond
	e, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	before := e.Stats().DiskBytes
	deadline := time.Now().Add(10 * time.Second)
	for e.Stats().DiskBytes >= before {
		if time.Now().After(deadline) {
			t.Fatalf("the online scavenge reclaimed nothing within 10 s (disk %d bytes)", before)
		}
		select {
		case <-e.waitChan():
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func TestIndexesAreRebuiltFromTheLog(t *testing.T) {
	for _, damage := range []string{"removed", "truncated"} {
		t.Run("when the index runs are "+damage, func(t *testing.T) {
			dir := t.TempDir()
			cfg := Config{Dir: dir, IndexFlushEvents: 1024}
			e, err := Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			var firstIDs []uuid.UUID
			for i := 0; i < 50; i++ {
				evs := make([]verity.EventData, 100)
				for j := range evs {
					evs[j] = verity.EventData{ID: uuid.New(), Type: fmt.Sprintf("T%d", j%3), Data: []byte(`{}`)}
					if i == 0 {
						firstIDs = append(firstIDs, evs[j].ID)
					}
				}
				if _, err := e.Append(ctx, fmt.Sprintf("c%d-%d", i%4, i), verity.NoStream(), evs...); err != nil {
					t.Fatal(err)
				}
			}
			read := func(e *Engine) string {
				var b strings.Builder
				for _, opts := range []verity.ReadAllOptions{
					{Filter: verity.Filter{Categories: []string{"c1"}}, Limit: 10000},
					{Filter: verity.Filter{EventTypes: []string{"T2"}}, Limit: 10000},
					{Filter: verity.Filter{EventTypes: []string{"T0"}}, Limit: 10000, Direction: verity.Backwards},
				} {
					evs, err := e.ReadAll(ctx, opts)
					if err != nil {
						t.Fatal(err)
					}
					for _, ev := range evs {
						fmt.Fprintf(&b, "%d ", ev.Position)
					}
					b.WriteString("| ")
				}
				for i := 0; i < 50; i += 7 {
					evs, err := e.ReadStream(ctx, fmt.Sprintf("c%d-%d", i%4, i), verity.ReadStreamOptions{From: 10, Limit: 5})
					if err != nil {
						t.Fatal(err)
					}
					for _, ev := range evs {
						fmt.Fprintf(&b, "%s@%d ", ev.Stream, ev.Revision)
					}
				}
				return b.String()
			}
			want := read(e)
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			runs, _ := filepath.Glob(filepath.Join(dir, "index", "*.run"))
			if len(runs) == 0 {
				t.Fatal("no index runs were written")
			}
			for _, r := range runs {
				if damage == "removed" {
					os.Remove(r)
				} else if err := os.Truncate(r, 100); err != nil {
					t.Fatal(err)
				}
			}
			e, err = Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			if got := read(e); got != want {
				t.Fatalf("reads after rebuilding the index differ:\n got %s\nwant %s", got, want)
			}
			evs := make([]verity.EventData, len(firstIDs))
			for j, id := range firstIDs {
				evs[j] = verity.EventData{ID: id, Type: fmt.Sprintf("T%d", j%3), Data: []byte(`{}`)}
			}
			if r, err := e.Append(ctx, "c0-0", verity.Any(), evs...); err != nil || r.Revision != 99 || r.Position != 100 {
				t.Fatalf("retry after rebuilding the index: %+v, %v; want the original result (revision 99, position 100)", r, err)
			}
		})
	}
}
