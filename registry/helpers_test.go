package registry_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/engine"
	"github.com/verity-dev/verity/registry"
	"github.com/verity-dev/verity/storetest"
)

const ttl = 10 * time.Second

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func openStore(t testing.TB) verity.Store {
	t.Helper()
	e, err := engine.Open(engine.Config{Dir: t.TempDir(), Logger: quiet})
	if err != nil {
		t.Fatalf("open engine: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func newClock() *storetest.FakeClock {
	return storetest.NewFakeClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
}

// open starts a registry whose sweeper never runs on its own (SweepEvery one hour of real
// time), so the test sweeps by hand after moving the clock.
func open(t testing.TB, store verity.Store, clock *storetest.FakeClock, tweak ...func(*registry.Config)) *registry.Registry {
	t.Helper()
	cfg := registry.Config{TTL: ttl, SweepEvery: time.Hour, Now: clock.Now, Logger: quiet}
	for _, f := range tweak {
		f(&cfg)
	}
	r, err := registry.New(store, cfg)
	if err != nil {
		t.Fatalf("registry.New: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func register(t testing.TB, r *registry.Registry, service, id, addr string) registry.Lease {
	t.Helper()
	lease, err := r.Register(context.Background(), registry.Instance{Service: service, ID: id, Address: addr})
	if err != nil {
		t.Fatalf("register %s/%s: %v", service, id, err)
	}
	return lease
}

// ids returns the IDs of instances, in order.
func ids(ins []registry.Instance) []string {
	out := []string{}
	for _, in := range ins {
		out = append(out, in.ID)
	}
	return out
}

func lookup(t testing.TB, r *registry.Registry, service string) []string {
	t.Helper()
	ins, err := r.Lookup(context.Background(), service)
	if err != nil {
		t.Fatalf("lookup %s: %v", service, err)
	}
	return ids(ins)
}

// logged is one event of the registry stream, as the tests read it back.
type logged struct {
	Type, ID, Reason, Health string
}

func history(t testing.TB, store verity.Store) []logged {
	t.Helper()
	evs, err := store.ReadStream(context.Background(), registry.DefaultStream, verity.ReadStreamOptions{})
	if errors.Is(err, verity.ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatalf("read registry stream: %v", err)
	}
	var out []logged
	for _, e := range evs {
		var d struct{ ID, Reason, Health string }
		if err := json.Unmarshal(e.Data, &d); err != nil {
			t.Fatalf("event %d: %v", e.Revision, err)
		}
		out = append(out, logged{Type: e.Type, ID: d.ID, Reason: d.Reason, Health: d.Health})
	}
	return out
}

// eventually waits, up to a deadline, for cond to hold.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func wantKind(t testing.TB, err error, kind verity.ErrorKind) {
	t.Helper()
	if err == nil || verity.KindOf(err) != kind {
		t.Fatalf("got error %v, want kind %s", err, kind)
	}
}

func next(t testing.TB, w registry.Watcher) registry.Change {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := w.Next(ctx)
	if err != nil {
		t.Fatalf("watch next: %v", err)
	}
	return c
}
