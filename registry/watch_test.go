package registry_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/registry"
)

func TestAWatchSeesASnapshotThenEveryChangeInOrder(t *testing.T) {
	store, clock := openStore(t), newClock()
	r := open(t, store, clock)
	ctx := context.Background()
	register(t, r, "orders", "o1", "127.0.0.1:8081")
	w, err := r.Watch(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	register(t, r, "orders", "o2", "127.0.0.1:8082")
	register(t, r, "payments", "p1", "127.0.0.1:8090") // another service: not seen
	if err := r.SetHealth(ctx, "o1", registry.Unhealthy, "disk full"); err != nil {
		t.Fatal(err)
	}
	if err := r.Deregister(ctx, "o2"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(ttl)
	if _, err := r.Sweep(ctx); err != nil {
		t.Fatal(err)
	}

	type seen struct {
		kind   registry.ChangeKind
		ids    string
		reason string
	}
	want := []seen{
		{registry.ChangeSnapshot, "o1", ""},
		{registry.ChangeRegistered, "o2", ""},
		{registry.ChangeHealthChanged, "o1", "disk full"},
		{registry.ChangeRemoved, "o2", registry.RemovedDeregistered},
		{registry.ChangeRemoved, "o1", registry.RemovedExpired},
	}
	for i, wc := range want {
		c := next(t, w)
		got := seen{c.Kind, c.Instance.ID, c.Reason}
		if c.Kind == registry.ChangeSnapshot {
			got.ids = ""
			for _, id := range ids(c.Instances) {
				got.ids += id
			}
		}
		if got != wc {
			t.Fatalf("change %d = %+v, want %+v", i, got, wc)
		}
	}
}

func TestASlowWatcherIsSentAFreshSnapshotInsteadOfABacklog(t *testing.T) {
	store, clock := openStore(t), newClock()
	r := open(t, store, clock, func(c *registry.Config) { c.WatchBuffer = 2 })
	ctx := context.Background()
	w, err := r.Watch(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if c := next(t, w); c.Kind != registry.ChangeSnapshot || len(c.Instances) != 0 {
		t.Fatalf("first change = %+v, want an empty snapshot", c)
	}
	for _, id := range []string{"a1", "a2", "a3", "a4", "a5"} {
		register(t, r, "alpha", id, "127.0.0.1:7000")
	}
	c := next(t, w)
	if c.Kind != registry.ChangeSnapshot || !slices.Equal(ids(c.Instances), []string{"a1", "a2", "a3", "a4", "a5"}) {
		t.Fatalf("after falling behind, change = %+v, want a snapshot of a1..a5", c)
	}
	register(t, r, "beta", "b1", "127.0.0.1:7001")
	if c := next(t, w); c.Kind != registry.ChangeRegistered || c.Instance.ID != "b1" {
		t.Fatalf("then change = %+v, want b1 registered", c)
	}
}

func TestAWatchEndsWithItsContextOrClose(t *testing.T) {
	r := open(t, openStore(t), newClock())
	ctx, cancel := context.WithCancel(context.Background())
	w, err := r.Watch(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	next(t, w)
	cancel()
	if _, err := w.Next(context.Background()); !errors.Is(err, context.Canceled) {
		t.Fatalf("after its context ended, next = %v, want context.Canceled", err)
	}

	w2, err := r.Watch(context.Background(), "orders")
	if err != nil {
		t.Fatal(err)
	}
	next(t, w2)
	short, stop := context.WithCancel(context.Background())
	stop()
	if _, err := w2.Next(short); !errors.Is(err, context.Canceled) {
		t.Fatalf("next with an ended context = %v, want context.Canceled", err)
	}
	w2.Close()
	_, err = w2.Next(context.Background())
	wantKind(t, err, verity.Unavailable)
}
