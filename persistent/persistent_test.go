package persistent

import (
	"sync"
	"testing"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/engine"
	"github.com/verity-dev/verity/persistent/grouptest"
)

// instance is a Manager over an engine in a directory.
type instance struct {
	dir string
	st  *engine.Engine
	gs  *Manager
}

func openInstance(t testing.TB, dir string) *instance {
	t.Helper()
	st, err := engine.Open(engine.Config{Dir: dir, SegmentSize: 4 << 20, MaxEventSize: 64 << 10, MaxAppendSize: 1 << 20})
	if err != nil {
		t.Fatalf("open engine: %v", err)
	}
	gs, err := New(st, Config{})
	if err != nil {
		st.Close()
		t.Fatalf("new manager: %v", err)
	}
	return &instance{dir: dir, st: st, gs: gs}
}

func (in *instance) close() {
	in.gs.Close()
	in.st.Close()
}

// harness runs Managers over the embedded engine; Reopen closes both and opens them again
// over the same directory.
func harness() grouptest.Harness {
	var mu sync.Mutex
	live := map[testing.TB]*instance{}
	return grouptest.Harness{
		New: func(t testing.TB) (verity.Groups, verity.Store) {
			in := openInstance(t, t.TempDir())
			mu.Lock()
			live[t] = in
			mu.Unlock()
			t.Cleanup(func() {
				mu.Lock()
				cur := live[t]
				delete(live, t)
				mu.Unlock()
				cur.close()
			})
			return in.gs, in.st
		},
		Reopen: func(t testing.TB) (verity.Groups, verity.Store) {
			mu.Lock()
			defer mu.Unlock()
			old := live[t]
			old.close()
			in := openInstance(t, old.dir)
			live[t] = in
			return in.gs, in.st
		},
	}
}

func TestGroupsContract(t *testing.T) {
	grouptest.Run(t, harness())
}
