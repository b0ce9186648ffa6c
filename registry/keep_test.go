package registry_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/registry"
)

// swappable forwards to whichever registry is current (none: Unavailable), as a network
// client would while its registry restarts; it counts successful heartbeats.
type swappable struct {
	mu         sync.Mutex
	r          *registry.Registry
	heartbeats atomic.Int64
}

func (s *swappable) set(r *registry.Registry) {
	s.mu.Lock()
	s.r = r
	s.mu.Unlock()
}

func (s *swappable) get() (*registry.Registry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.r == nil {
		return nil, verity.Errorf(verity.Unavailable, "test", "registry down")
	}
	return s.r, nil
}

func (s *swappable) Register(ctx context.Context, in registry.Instance) (registry.Lease, error) {
	r, err := s.get()
	if err != nil {
		return registry.Lease{}, err
	}
	return r.Register(ctx, in)
}

func (s *swappable) Heartbeat(ctx context.Context, id string) error {
	r, err := s.get()
	if err != nil {
		return err
	}
	err = r.Heartbeat(ctx, id)
	if err == nil {
		s.heartbeats.Add(1)
	}
	return err
}

func (s *swappable) Deregister(ctx context.Context, id string) error {
	r, err := s.get()
	if err != nil {
		return err
	}
	return r.Deregister(ctx, id)
}

// keep runs KeepRegistered in the background; the returned func stops it and returns its
// result.
func keep(t testing.TB, reg registry.Registrar, in registry.Instance) func() error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	result := make(chan error, 1)
	go func() { result <- registry.KeepRegistered(ctx, reg, in, time.Millisecond) }()
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() { cancel(); err = <-result })
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

func TestKeepRegisteredHeartbeatsAndDeregistersWhenStopped(t *testing.T) {
	store, clock := openStore(t), newClock()
	r := open(t, store, clock)
	s := &swappable{r: r}
	stop := keep(t, s, registry.Instance{Service: "orders", ID: "o1", Address: "127.0.0.1:8081"})
	eventually(t, "a few heartbeats", func() bool { return s.heartbeats.Load() >= 3 })
	if got := lookup(t, r, "orders"); !slices.Equal(got, []string{"o1"}) {
		t.Fatalf("lookup = %v, want [o1]", got)
	}
	if err := stop(); err != nil {
		t.Fatalf("KeepRegistered returned %v, want nil", err)
	}
	if got := lookup(t, r, "orders"); len(got) != 0 {
		t.Fatalf("after stop, lookup = %v, want none", got)
	}
	h := history(t, store)
	if len(h) != 2 || h[1].Reason != registry.RemovedDeregistered {
		t.Fatalf("history = %+v, want a registration and a deregistration", h)
	}
}

func TestKeepRegisteredRegistersAgainAfterLosingItsLease(t *testing.T) {
	store, clock := openStore(t), newClock()
	r := open(t, store, clock)
	keep(t, r, registry.Instance{Service: "orders", ID: "o1", Address: "127.0.0.1:8081"})
	eventually(t, "o1 registered", func() bool { return len(lookup(t, r, "orders")) == 1 })
	if err := r.Deregister(context.Background(), "o1"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "o1 registered again", func() bool { return len(history(t, store)) == 3 })
	if got := lookup(t, r, "orders"); !slices.Equal(got, []string{"o1"}) {
		t.Fatalf("lookup = %v, want o1 back under the same id", got)
	}
}

func TestKeepRegisteredRidesOutARegistryRestart(t *testing.T) {
	store, clock := openStore(t), newClock()
	s := &swappable{}
	r1 := open(t, store, clock)
	s.set(r1)
	keep(t, s, registry.Instance{Service: "orders", Address: "127.0.0.1:8081"}) // id generated
	eventually(t, "a registration", func() bool { return len(lookup(t, r1, "orders")) == 1 })
	id := lookup(t, r1, "orders")[0]

	t.Run("that kept the log: heartbeats carry on", func(t *testing.T) {
		s.set(nil)
		r1.Close()
		r2 := open(t, store, clock)
		s.set(r2)
		from := s.heartbeats.Load()
		eventually(t, "heartbeats to r2", func() bool { return s.heartbeats.Load() >= from+3 })
		if got := lookup(t, r2, "orders"); !slices.Equal(got, []string{id}) {
			t.Fatalf("lookup = %v, want [%s]", got, id)
		}
		if got := history(t, store); len(got) != 1 {
			t.Fatalf("history = %+v, want the one registration", got)
		}
		s.set(nil)
		r2.Close()
	})
	t.Run("that lost its state: the instance registers again with its id", func(t *testing.T) {
		r3 := open(t, openStore(t), clock)
		s.set(r3)
		eventually(t, "a registration with r3", func() bool { return len(lookup(t, r3, "orders")) == 1 })
		if got := lookup(t, r3, "orders"); !slices.Equal(got, []string{id}) {
			t.Fatalf("lookup = %v, want [%s]", got, id)
		}
	})
}

func TestKeepRegisteredGivesUpOnAnInvalidInstance(t *testing.T) {
	r := open(t, openStore(t), newClock())
	err := registry.KeepRegistered(context.Background(), r, registry.Instance{Service: "Orders", Address: "x:1"}, time.Millisecond)
	wantKind(t, err, verity.Invalid)
	err = registry.KeepRegistered(context.Background(), r, registry.Instance{Service: "orders", Address: "x:1"}, -time.Second)
	wantKind(t, err, verity.Invalid)
}
