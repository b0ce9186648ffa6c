package registry

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/verity-dev/verity"
)

// Source is where a Resolver learns a service's instances: the embedded Registry, or a
// network client of one. Both methods may be called concurrently.
type Source interface {
	// Lookup returns the live, healthy instances of a service.
	Lookup(ctx context.Context, service string) ([]Instance, error)
	// Watch follows a service's instances: a ChangeSnapshot first, then each change in
	// order, a fresh snapshot whenever the watcher fell behind.
	Watch(ctx context.Context, service string) (Watcher, error)
}

// Balancer chooses among a service's healthy instances.
type Balancer uint8

const (
	// RoundRobin takes the instances in turn (ordered by ID).
	RoundRobin Balancer = iota
	// LeastOutstanding takes the instance with the fewest picks not yet done, in turn
	// among those tied.
	LeastOutstanding
)

func (b Balancer) String() string {
	if b == LeastOutstanding {
		return "least-outstanding"
	}
	return "round-robin"
}

// Watch retry delays of a Resolver whose source failed.
const (
	minRetry = 50 * time.Millisecond
	maxRetry = 5 * time.Second
)

// Resolver turns a service name (a virtual address such as "orders") into one of its live,
// healthy instances. It watches each service it was asked for from the first Pick on, so a
// Pick costs no call to the source; when the source fails it keeps the instances it knew
// and watches again with a growing delay. Its methods may be called concurrently.
type Resolver struct {
	src    Source
	bal    Balancer
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	targets map[string]*target
}

type target struct {
	ready chan struct{} // closed at the first snapshot or the first failure

	// Guarded by Resolver.mu.
	known       bool                // a snapshot arrived
	instances   map[string]Instance // live instances by id, healthy or not
	healthy     []Instance          // healthy instances ordered by ID
	err         error               // the source's last failure, nil once a snapshot arrived
	next        uint64              // round-robin cursor
	outstanding map[string]int      // picks not yet done, by instance id
}

// NewResolver returns a Resolver over src that picks with bal. Close stops its watches.
func NewResolver(src Source, bal Balancer) *Resolver {
	ctx, cancel := context.WithCancel(context.Background())
	return &Resolver{src: src, bal: bal, ctx: ctx, cancel: cancel, targets: map[string]*target{}}
}

// Close ends every watch and waits for them. Later picks fail with Unavailable. It is
// idempotent.
func (r *Resolver) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
	return nil
}

// Pick returns an instance of service and a done func the caller must call once the
// request it sends there has finished (LeastOutstanding counts them; done may be called
// more than once). The first Pick of a service waits, within ctx, for the source's first
// snapshot.
// Errors: Invalid (bad service name), Unavailable (no healthy instance, the source
// failed before answering, or the resolver is closed), or ctx's error.
func (r *Resolver) Pick(ctx context.Context, service string) (Instance, func(), error) {
	const op = "resolve"
	t, err := r.wait(ctx, op, service)
	if err != nil {
		return Instance{}, nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.usableLocked(op, service, t); err != nil {
		return Instance{}, nil, err
	}
	n := len(t.healthy)
	i := int(t.next % uint64(n))
	t.next++
	if r.bal == LeastOutstanding {
		best := i
		for k := 1; k < n; k++ {
			j := (i + k) % n
			if t.outstanding[t.healthy[j].ID] < t.outstanding[t.healthy[best].ID] {
				best = j
			}
		}
		i = best
	}
	in := t.healthy[i].clone()
	t.outstanding[in.ID]++
	var once sync.Once
	done := func() {
		once.Do(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			if t.outstanding[in.ID]--; t.outstanding[in.ID] <= 0 {
				delete(t.outstanding, in.ID)
			}
		})
	}
	return in, done, nil
}

// Instances returns the healthy instances of service the resolver knows, ordered by ID;
// errors as for Pick, but none is not an error.
func (r *Resolver) Instances(ctx context.Context, service string) ([]Instance, error) {
	const op = "resolve"
	t, err := r.wait(ctx, op, service)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.closed:
		return nil, verity.Errorf(verity.Unavailable, op, "resolver is closed")
	case !t.known:
		return nil, r.usableLocked(op, service, t)
	}
	out := make([]Instance, len(t.healthy))
	for i, in := range t.healthy {
		out[i] = in.clone()
	}
	return out, nil
}

func (r *Resolver) usableLocked(op, service string, t *target) error {
	switch {
	case r.closed:
		return verity.Errorf(verity.Unavailable, op, "resolver is closed")
	case !t.known:
		return &verity.Error{Kind: verity.Unavailable, Op: op, Message: fmt.Sprintf("service %q: the registry did not answer", service), Err: t.err}
	case len(t.healthy) == 0:
		return verity.Errorf(verity.Unavailable, op, "service %q has no healthy instance", service)
	}
	return nil
}

// wait returns the service's target once it has heard from the source once.
func (r *Resolver) wait(ctx context.Context, op, service string) (*target, error) {
	if err := ValidateService(op, service); err != nil {
		return nil, err
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, verity.Errorf(verity.Unavailable, op, "resolver is closed")
	}
	t, ok := r.targets[service]
	if !ok {
		t = &target{ready: make(chan struct{}), instances: map[string]Instance{}, outstanding: map[string]int{}}
		r.targets[service] = t
		r.wg.Add(1)
		go r.follow(service, t)
	}
	r.mu.Unlock()
	select {
	case <-t.ready:
		return t, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-r.ctx.Done():
		return nil, verity.Errorf(verity.Unavailable, op, "resolver is closed")
	}
}

// follow watches one service until the resolver closes, watching again after a failure.
func (r *Resolver) follow(service string, t *target) {
	defer r.wg.Done()
	delay := minRetry
	for {
		w, err := r.src.Watch(r.ctx, service)
		if err == nil {
			var got bool
			got, err = r.consume(w, t)
			w.Close()
			if got {
				delay = minRetry
			}
		}
		if r.ctx.Err() != nil {
			return
		}
		r.mu.Lock()
		if !t.known {
			t.err = err
		}
		r.mu.Unlock()
		t.markReady()
		timer := time.NewTimer(delay)
		select {
		case <-r.ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		delay = min(2*delay, maxRetry)
	}
}

func (t *target) markReady() {
	select {
	case <-t.ready:
	default:
		close(t.ready)
	}
}

// consume applies a watch's changes to t until the watch fails; got says whether any
// change arrived.
func (r *Resolver) consume(w Watcher, t *target) (got bool, err error) {
	for {
		c, err := w.Next(r.ctx)
		if err != nil {
			return got, err
		}
		got = true
		r.mu.Lock()
		switch c.Kind {
		case ChangeSnapshot:
			clear(t.instances)
			for _, in := range c.Instances {
				t.instances[in.ID] = in
			}
			t.known, t.err = true, nil
		case ChangeRegistered, ChangeHealthChanged:
			t.instances[c.Instance.ID] = c.Instance
		case ChangeRemoved:
			delete(t.instances, c.Instance.ID)
		}
		t.healthy = t.healthy[:0]
		for _, in := range t.instances {
			if in.Health == Healthy {
				t.healthy = append(t.healthy, in)
			}
		}
		slices.SortFunc(t.healthy, func(a, b Instance) int { return strings.Compare(a.ID, b.ID) })
		r.mu.Unlock()
		if c.Kind == ChangeSnapshot {
			t.markReady()
		}
	}
}
