package eventindex_test

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/eventindex"
)

// waitStreams waits until the index counts streams up to pos, and returns the count.
func waitStreams(t testing.TB, x *eventindex.Index, pos uint64) uint64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := x.Status(context.Background())
		if err != nil {
			t.Fatalf("Status: %v", err)
		}
		if st.StreamsPosition >= pos {
			if st.StreamsPosition != pos {
				t.Fatalf("StreamsPosition %d, want %d: the log has no event past it", st.StreamsPosition, pos)
			}
			return st.Streams
		}
		if time.Now().After(deadline) {
			t.Fatalf("streams counted up to %d, want %d (last error %v)", st.StreamsPosition, pos, st.LastError)
		}
		time.Sleep(time.Millisecond)
	}
}

func appendTo(t testing.TB, s verity.Store, stream string, n int) uint64 {
	t.Helper()
	evs := make([]verity.EventData, n)
	for i := range evs {
		evs[i] = verity.EventData{ID: uuid.New(), Type: "T", Data: []byte(`{}`)}
	}
	r, err := s.Append(context.Background(), stream, verity.Any(), evs...)
	if err != nil {
		t.Fatalf("append to %s: %v", stream, err)
	}
	return r.Position
}

func removeIndex(t testing.TB, path string) {
	t.Helper()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
}

func TestIndexCountsStreams(t *testing.T) {
	e := openEngine(t)
	path := filepath.Join(t.TempDir(), "index.sqlite")
	ctx := context.Background()
	x, err := eventindex.Open(e, eventindex.Config{Path: path, BatchSize: 3, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = x.Close() })

	if st, err := x.Status(ctx); err != nil || st.Streams != 0 || st.StreamsPosition != 0 {
		t.Fatalf("empty log: Status = %+v, %v; want 0 streams at 0", st, err)
	}
	// Batches of 3 split these appends, so a stream's events span batches too.
	appendTo(t, e, "order-1", 4)
	appendTo(t, e, "order-2", 1)
	last := appendTo(t, e, "order-1", 2) // an existing stream counts once
	if got := waitStreams(t, x, last); got != 2 {
		t.Errorf("after new and existing streams: %d streams, want 2", got)
	}

	// Metadata streams are not counted; deleted streams stay counted; system streams count.
	if _, err := e.SetStreamMetadata(ctx, "order-2", verity.Any(), verity.StreamMetadata{MaxCount: 5}); err != nil {
		t.Fatal(err)
	}
	appendTo(t, e, "$ops-test", 1)
	appendTo(t, e, "cart-9", 1)
	if _, err := e.DeleteStream(ctx, "cart-9", verity.Any()); err != nil {
		t.Fatal(err)
	}
	last = appendTo(t, e, "order-3", 1)
	if got := waitStreams(t, x, last); got != 5 {
		t.Errorf("after metadata, a system stream, a deleted stream and a new one: %d streams, want 5 (order-1..3, $ops-test, cart-9)", got)
	}

	t.Run("a restart keeps the count and goes on from it", func(t *testing.T) {
		if err := x.Close(); err != nil {
			t.Fatal(err)
		}
		appendTo(t, e, "order-1", 1) // written while closed
		last := appendTo(t, e, "order-4", 1)
		y := openIndex(t, e, path)
		if got := waitStreams(t, y, last); got != 6 {
			t.Errorf("after a restart: %d streams, want 6", got)
		}
		if err := y.Close(); err != nil {
			t.Fatal(err)
		}

		t.Run("and a rebuild from scratch counts the same but for streams deleted meanwhile", func(t *testing.T) {
			removeIndex(t, path)
			z := openIndex(t, e, path)
			// cart-9's events are hidden from the log by its deletion: a rebuild never
			// sees them.
			if got := waitStreams(t, z, last); got != 5 {
				t.Errorf("after a rebuild: %d streams, want 5", got)
			}
		})
	})
}

func TestIndexFromAnotherLogIsRebuilt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "index.sqlite")
	a := openEngine(t)
	aLast := appendTo(t, a, "a-1", 3)
	aLast = max(aLast, appendTo(t, a, "a-2", 3))
	first, err := a.ReadAll(context.Background(), verity.ReadAllOptions{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	x := openIndex(t, a, path)
	waitStreams(t, x, aLast)
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name string
		fill func(t *testing.T, b verity.Store) uint64 // appends to the other log, returns its last position
		want uint64                                    // streams
	}{
		{"a longer log with other events at the same positions", func(t *testing.T, b verity.Store) uint64 {
			appendTo(t, b, "b-1", 5)
			return appendTo(t, b, "b-2", 5)
		}, 2},
		{"a shorter log", func(t *testing.T, b verity.Store) uint64 { return appendTo(t, b, "b-1", 2) }, 1},
		{"an empty log", func(t *testing.T, b verity.Store) uint64 { return 0 }, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "index.sqlite")
			copyIndex(t, path, p)
			b := openEngine(t)
			last := c.fill(t, b)
			y := openIndex(t, b, p)
			if got := waitStreams(t, y, last); got != c.want {
				t.Errorf("%d streams, want %d", got, c.want)
			}
			if _, err := y.Lookup(context.Background(), first[0].ID.String()); !errors.Is(err, verity.ErrNotFound) {
				t.Errorf("Lookup of the other log's event: %v, want NotFound", err)
			}
		})
	}

	t.Run("the same log is not rebuilt", func(t *testing.T) {
		rec := &recordingStore{Store: a}
		y := openIndex(t, rec, path)
		if got := waitStreams(t, y, aLast); got != 2 {
			t.Errorf("%d streams, want 2", got)
		}
		// The index subscribes in its goroutine: wait for it.
		deadline := time.Now().Add(10 * time.Second)
		rec.mu.Lock()
		for len(rec.froms) == 0 && time.Now().Before(deadline) {
			rec.mu.Unlock()
			time.Sleep(time.Millisecond)
			rec.mu.Lock()
		}
		defer rec.mu.Unlock()
		if len(rec.froms) == 0 || rec.froms[0] != aLast+1 {
			t.Errorf("subscribed from %v, want %d (after its checkpoint)", rec.froms, aLast+1)
		}
	})
}

// copyIndex copies a closed index file (its WAL is checkpointed on close).
func copyIndex(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(from + "-wal"); err == nil {
		if err := os.WriteFile(to+"-wal", b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestIndexFileOfAnOlderLayoutIsRebuilt(t *testing.T) {
	e := openEngine(t)
	path := filepath.Join(t.TempDir(), "index.sqlite")
	last := appendTo(t, e, "order-1", 2)
	// An older release's file: its tables, no streams count, and a checkpoint at the
	// head of the log, so that without the version check the count would stay 0.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`CREATE TABLE events (position INTEGER PRIMARY KEY, id TEXT NOT NULL, stream TEXT NOT NULL, revision INTEGER NOT NULL, causation_id TEXT, correlation_id TEXT)`,
		`PRAGMA user_version = 1`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	x := openIndex(t, e, path)
	if got := waitStreams(t, x, last); got != 1 {
		t.Errorf("%d streams, want 1", got)
	}
}
