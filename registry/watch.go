package registry

import (
	"context"
	"sync"

	"github.com/verity-dev/verity"
)

// ChangeKind tells what a Change reports.
type ChangeKind uint8

const (
	// ChangeSnapshot carries every live instance of the watched service (healthy or not):
	// the first change of every watch, and again whenever a watcher fell too far behind.
	// It replaces whatever the watcher knew.
	ChangeSnapshot ChangeKind = iota + 1
	// ChangeRegistered: an instance registered, or registered again with other details.
	ChangeRegistered
	// ChangeRemoved: an instance left; Reason is RemovedDeregistered or RemovedExpired.
	ChangeRemoved
	// ChangeHealthChanged: an instance's health changed; Reason is the health reason.
	ChangeHealthChanged
)

func (k ChangeKind) String() string {
	switch k {
	case ChangeSnapshot:
		return "snapshot"
	case ChangeRegistered:
		return "registered"
	case ChangeRemoved:
		return "removed"
	case ChangeHealthChanged:
		return "health-changed"
	}
	return "unknown"
}

// Change is one message of a watch.
type Change struct {
	Kind ChangeKind `json:"kind"`
	// Instances is set for ChangeSnapshot, ordered by service then ID (possibly empty).
	Instances []Instance `json:"instances,omitempty"`
	// Instance is set for the other kinds: the instance after the change (as it was, for
	// ChangeRemoved).
	Instance Instance `json:"instance,omitzero"`
	// Reason: why it was removed, or the reason given with its new health.
	Reason string `json:"reason,omitempty"`
}

// Watcher delivers a watch's changes in the order the registry recorded them. Next and
// Close may be called from different goroutines; Next must not be called concurrently with
// itself.
type Watcher interface {
	// Next blocks until the next change, ctx ends, or the watch ends: then it returns the
	// context's error (that of Next's ctx, or of the ctx the watch was started with) or
	// Unavailable (the watch was closed, or the registry was).
	Next(ctx context.Context) (Change, error)
	// Close ends the watch. It is idempotent.
	Close() error
}

// Watch follows a service's instances (every service's, when service is empty): first a
// ChangeSnapshot, then each change as it is recorded. A watcher holds at most
// Config.WatchBuffer unread changes; one that falls further behind loses them and is sent
// a fresh snapshot instead, so a slow watcher costs bounded memory and still converges.
// The watch ends when ctx ends or Close is called.
// Errors: Invalid (bad service name), Unavailable (closed).
func (r *Registry) Watch(ctx context.Context, service string) (Watcher, error) {
	const op = "registry watch"
	if service != "" {
		if err := ValidateService(op, service); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	w := &watcher{r: r, service: service, limit: r.cfg.WatchBuffer, signal: make(chan struct{}, 1)}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, errClosed(op)
	}
	w.queue = []Change{{Kind: ChangeSnapshot, Instances: r.snapshotLocked(service, r.cfg.Now())}}
	r.watchers[w] = struct{}{}
	r.mu.Unlock()
	w.stop = context.AfterFunc(ctx, func() { w.close(ctx.Err()) })
	return w, nil
}

// notifyLocked queues a change for every watcher of its service. It runs under r.mu, in
// the order changes are applied, so every watcher sees them in log order.
func (r *Registry) notifyLocked(c Change) {
	for w := range r.watchers {
		if w.service == "" || w.service == c.Instance.Service {
			w.push(c)
		}
	}
}

type watcher struct {
	r       *Registry
	service string
	limit   int
	signal  chan struct{} // holds a token when queue, lagged or err changed
	stop    func() bool   // unregisters the context's AfterFunc

	mu     sync.Mutex
	queue  []Change
	lagged bool  // the queue overflowed: the next Next sends a snapshot
	err    error // set once the watch has ended
}

// push is called under r.mu.
func (w *watcher) push(c Change) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil || w.lagged {
		return
	}
	if len(w.queue) >= w.limit {
		w.queue, w.lagged = nil, true
	} else {
		w.queue = append(w.queue, c)
	}
	w.wake()
}

func (w *watcher) wake() {
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

// end marks the watch ended with err; called under r.mu (or after w left r.watchers).
func (w *watcher) end(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err, w.queue = err, nil
		w.wake()
	}
}

func (w *watcher) close(err error) {
	w.r.mu.Lock()
	delete(w.r.watchers, w)
	w.end(err)
	w.r.mu.Unlock()
}

func (w *watcher) Close() error {
	if w.stop != nil {
		w.stop()
	}
	w.close(verity.Errorf(verity.Unavailable, "registry watch", "watch is closed"))
	return nil
}

func (w *watcher) Next(ctx context.Context) (Change, error) {
	for {
		w.mu.Lock()
		switch {
		case w.err != nil:
			err := w.err
			w.mu.Unlock()
			return Change{}, err
		case len(w.queue) > 0:
			c := w.queue[0]
			w.queue[0] = Change{}
			w.queue = w.queue[1:]
			w.mu.Unlock()
			return c, nil
		case w.lagged:
			w.mu.Unlock()
			if c, ok := w.resync(); ok {
				return c, nil
			}
			continue
		}
		w.mu.Unlock()
		select {
		case <-ctx.Done():
			return Change{}, ctx.Err()
		case <-w.signal:
		}
	}
}

// resync takes a snapshot under r.mu, so that it and the changes queued after it are in
// log order. ok is false if the watch ended meanwhile.
func (w *watcher) resync() (Change, bool) {
	r := w.r
	r.mu.Lock()
	defer r.mu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return Change{}, false
	}
	w.queue, w.lagged = nil, false
	return Change{Kind: ChangeSnapshot, Instances: r.snapshotLocked(w.service, r.cfg.Now())}, true
}
