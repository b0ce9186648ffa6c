package engine_test

import (
	"sync"
	"testing"
	"time"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/engine"
	"github.com/verity-dev/verity/storetest"
)

// TestConformance runs the Store conformance suite against the embedded engine.
func TestConformance(t *testing.T) {
	clock := storetest.NewFakeClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	dirs := map[verity.Store]string{}
	open := func(t testing.TB, dir string) verity.Store {
		t.Helper()
		e, err := engine.Open(engine.Config{Dir: dir, Now: clock.Now})
		if err != nil {
			t.Fatalf("engine.Open(%s): %v", dir, err)
		}
		return e
	}
	var mu sync.Mutex // guards dirs: New and Reopen run in parallel tests
	remember := func(s verity.Store, dir string) {
		mu.Lock()
		defer mu.Unlock()
		dirs[s] = dir
	}
	dirOf := func(s verity.Store) string {
		mu.Lock()
		defer mu.Unlock()
		return dirs[s]
	}
	storetest.Run(t, storetest.Harness{
		New: func(t testing.TB) verity.Store {
			dir := t.TempDir()
			s := open(t, dir)
			remember(s, dir)
			return s
		},
		Reopen: func(t testing.TB, s verity.Store) verity.Store {
			dir := dirOf(s)
			_ = s.Close()
			s2 := open(t, dir)
			remember(s2, dir)
			return s2
		},
		Clock:    clock,
		Features: storetest.Features{Reopen: true, ControlClock: true},
	})
}
