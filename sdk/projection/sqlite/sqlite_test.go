package sqlite_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/verity-dev/verity/sdk/projection/sqlite"
)

// SQLite has one writer: a second Begin waits for the first transaction to end, or for
// its own context to end.
func TestBeginWaitsForTheWriterOrItsContext(t *testing.T) {
	tg, err := sqlite.Open(filepath.Join(t.TempDir(), "views.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	ctx := context.Background()
	first, err := tg.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("a second Begin gives up when its context ends", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		second, err := tg.Begin(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			if err == nil {
				second.Rollback(context.Background())
			}
			t.Fatalf("Begin returned %v, want context.DeadlineExceeded", err)
		}
	})

	t.Run("a second Begin starts once the first transaction ends", func(t *testing.T) {
		began := make(chan error, 1)
		go func() {
			second, err := tg.Begin(ctx)
			if err == nil {
				err = second.Commit(ctx)
			}
			began <- err
		}()
		if err := first.Exec(ctx, `CREATE TABLE t (x INTEGER)`); err != nil {
			t.Fatal(err)
		}
		if err := first.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if err := <-began; err != nil {
			t.Fatal(err)
		}
	})
}
