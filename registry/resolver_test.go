package registry_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/registry"
)

func newResolver(t testing.TB, src registry.Source, bal registry.Balancer) *registry.Resolver {
	t.Helper()
	res := registry.NewResolver(src, bal)
	t.Cleanup(func() { res.Close() })
	return res
}

func pick(t testing.TB, res *registry.Resolver, service string) (string, func()) {
	t.Helper()
	in, done, err := res.Pick(context.Background(), service)
	if err != nil {
		t.Fatalf("pick %s: %v", service, err)
	}
	return in.ID, done
}

func TestRoundRobinSpreadsPicksEvenlyOverHealthyInstances(t *testing.T) {
	r := open(t, openStore(t), newClock())
	for _, id := range []string{"o1", "o2", "o3", "o4"} {
		register(t, r, "orders", id, "127.0.0.1:8080")
	}
	if err := r.SetHealth(context.Background(), "o4", registry.Unhealthy, ""); err != nil {
		t.Fatal(err)
	}
	res := newResolver(t, r, registry.RoundRobin)
	counts := map[string]int{}
	var order []string
	for i := range 300 {
		id, done := pick(t, res, "orders")
		done()
		counts[id]++
		if i < 6 {
			order = append(order, id)
		}
	}
	if counts["o1"] != 100 || counts["o2"] != 100 || counts["o3"] != 100 || counts["o4"] != 0 {
		t.Fatalf("counts = %v, want 100 each for o1..o3 and none for the unhealthy o4", counts)
	}
	if order[0] == order[1] || order[0] != order[3] || order[1] != order[4] {
		t.Fatalf("order = %v, want the instances in turn", order)
	}

	// A new instance is picked up from the watch.
	register(t, r, "orders", "o5", "127.0.0.1:8085")
	eventually(t, "the resolver to see o5", func() bool {
		ins, err := res.Instances(context.Background(), "orders")
		return err == nil && len(ins) == 4
	})
}

func TestLeastOutstandingPicksTheIdleInstance(t *testing.T) {
	r := open(t, openStore(t), newClock())
	for _, id := range []string{"o1", "o2", "o3"} {
		register(t, r, "orders", id, "127.0.0.1:8080")
	}
	res := newResolver(t, r, registry.LeastOutstanding)
	a, doneA := pick(t, res, "orders")
	b, doneB := pick(t, res, "orders")
	c, doneC := pick(t, res, "orders")
	if a == b || b == c || a == c {
		t.Fatalf("picks %s %s %s, want three different instances while each is busy", a, b, c)
	}
	doneB()
	doneB() // done twice counts once
	for range 3 {
		id, done := pick(t, res, "orders")
		if id != b {
			t.Fatalf("picked %s, want the idle %s", id, b)
		}
		done()
	}
	// All three busy again; a finishes: a is the one picked.
	if id, _ := pick(t, res, "orders"); id != b {
		t.Fatalf("picked %s, want the idle %s", id, b)
	}
	doneA()
	for range 2 {
		id, done := pick(t, res, "orders")
		if id != a {
			t.Fatalf("picked %s, want %s, idle since its request finished", id, a)
		}
		done()
	}
	doneC()
}

func TestTheResolverSaysWhyItCannotPick(t *testing.T) {
	r := open(t, openStore(t), newClock())
	res := newResolver(t, r, registry.RoundRobin)
	ctx := context.Background()
	_, _, err := res.Pick(ctx, "orders")
	wantKind(t, err, verity.Unavailable)
	_, _, err = res.Pick(ctx, "Not A Service")
	wantKind(t, err, verity.Invalid)
	res.Close()
	_, _, err = res.Pick(ctx, "orders")
	wantKind(t, err, verity.Unavailable)
}

// flakySource fails every Watch until healed.
type flakySource struct {
	registry.Source
	healed atomic.Bool
}

func (f *flakySource) Watch(ctx context.Context, service string) (registry.Watcher, error) {
	if !f.healed.Load() {
		return nil, verity.Errorf(verity.Unavailable, "watch", "registry unreachable")
	}
	return f.Source.Watch(ctx, service)
}

func TestTheResolverWatchesAgainAfterTheSourceFailed(t *testing.T) {
	r := open(t, openStore(t), newClock())
	register(t, r, "orders", "o1", "127.0.0.1:8081")
	src := &flakySource{Source: r}
	res := newResolver(t, src, registry.RoundRobin)
	_, _, err := res.Pick(context.Background(), "orders")
	wantKind(t, err, verity.Unavailable)
	var verr *verity.Error
	if !errors.As(err, &verr) || verr.Err == nil {
		t.Fatalf("error %v does not carry the source's failure", err)
	}
	src.healed.Store(true)
	eventually(t, "a pick once the source answers", func() bool {
		in, done, err := res.Pick(context.Background(), "orders")
		if err == nil {
			done()
		}
		return err == nil && in.ID == "o1"
	})
}
