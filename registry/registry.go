package registry

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/verity-dev/verity"
)

// Config configures a Registry. The zero value of every field means its default.
type Config struct {
	// TTL is how long an instance stays registered without a heartbeat. Default 10 s.
	TTL time.Duration
	// SweepEvery is how often instances whose lease has expired are removed (and the
	// removal recorded); no dead instance stays past TTL + SweepEvery. Lookup never returns
	// an expired instance, even before it is swept. Default TTL/4, at most 1 s.
	SweepEvery time.Duration
	// Now is the clock for leases and the times recorded in events; default time.Now.
	Now func() time.Time
	// Logger receives the registry's logs; default slog.Default().
	Logger *slog.Logger
	// Stream is the system stream that records every change. Default "$registry".
	Stream string
	// WatchBuffer is how many changes a watcher may leave unread; past it the watcher is
	// sent a fresh snapshot instead of what it missed. Default 256.
	WatchBuffer int
	// SnapshotEvery is how many events of the stream go by between two RegistrySnapshot
	// events (the live instances at that revision). A starting registry folds the stream
	// from its last snapshot, so its start does not grow with the stream's history, and
	// the history before a snapshot may be let go (a $maxCount of the stream of at least
	// twice this keeps one in reach). Default 1000.
	SnapshotEvery int
}

// Defaults of Config.
const (
	DefaultTTL           = 10 * time.Second
	DefaultStream        = "$registry"
	DefaultWatchBuffer   = 256
	DefaultSnapshotEvery = 1000
	maxDefaultSweep      = time.Second
)

func (c Config) withDefaults() Config {
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.SweepEvery == 0 {
		c.SweepEvery = min(c.TTL/4, maxDefaultSweep)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.WatchBuffer == 0 {
		c.WatchBuffer = DefaultWatchBuffer
	}
	if c.SnapshotEvery == 0 {
		c.SnapshotEvery = DefaultSnapshotEvery
	}
	return c
}

// Validate names the first field that is out of range.
func (c Config) Validate() error {
	switch {
	case c.TTL < 0:
		return fmt.Errorf("registry config: TTL %v is negative", c.TTL)
	case c.TTL > 0 && c.TTL < time.Millisecond:
		return fmt.Errorf("registry config: TTL %v is under 1 ms", c.TTL)
	case c.SweepEvery < 0:
		return fmt.Errorf("registry config: SweepEvery %v is negative", c.SweepEvery)
	case c.WatchBuffer < 0:
		return fmt.Errorf("registry config: WatchBuffer %d is negative", c.WatchBuffer)
	case c.SnapshotEvery < 0:
		return fmt.Errorf("registry config: SnapshotEvery %d is negative", c.SnapshotEvery)
	}
	return nil
}

// Registry keeps the live instances of every service. Its state is a fold of its stream:
// every change is appended there first and applied once durable, so a new Registry over
// the same store finds the same instances (each with a fresh lease) and the stream is the
// audit trail. Leases (heartbeats) live in memory only.
//
// All methods may be called concurrently. Writes are serialised; the stream is appended to
// with an exact expected revision, so a write that raced another writer of the stream
// (or whose outcome was unknown) folds what it missed and decides again.
type Registry struct {
	store  verity.Store
	cfg    Config
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	closed    bool
	instances map[string]*entry // by instance id
	revision  uint64            // the stream's last revision folded, if exists
	exists    bool
	snapshot  uint64 // the revision of the stream's last RegistrySnapshot, if hasSnap
	hasSnap   bool
	snapTried uint64 // the revision at which a snapshot last failed to be written, if triedSnap
	triedSnap bool
	watchers  map[*watcher]struct{}
}

type entry struct {
	inst    Instance
	expires time.Time // the lease ends at this instant
}

var (
	_ Source    = (*Registry)(nil)
	_ Registrar = (*Registry)(nil)
)

// New folds cfg.Stream of store into a Registry and starts its sweeper. Every instance
// found gets a fresh lease of one TTL to heartbeat again. The store stays the caller's:
// Close does not close it.
func New(store verity.Store, cfg Config) (*Registry, error) {
	if err := cfg.Validate(); err != nil {
		return nil, verity.Errorf(verity.Invalid, "registry", "%v", err)
	}
	cfg = cfg.withDefaults()
	r := &Registry{
		store:     store,
		cfg:       cfg,
		instances: map[string]*entry{},
		watchers:  map[*watcher]struct{}{},
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.mu.Lock()
	err := r.startLocked(ctx)
	r.mu.Unlock()
	if err != nil {
		cancel()
		return nil, err
	}
	cfg.Logger.Info("registry started", "stream", cfg.Stream, "instances", len(r.instances), "ttl", cfg.TTL)
	r.wg.Add(1)
	go r.sweeper(ctx)
	return r, nil
}

// Close stops the sweeper and ends every watch; later calls fail with Unavailable. It
// waits for the registry's goroutines. It is idempotent.
func (r *Registry) Close() error {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		for w := range r.watchers {
			w.end(errClosed("watch"))
		}
		clear(r.watchers)
	}
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
	return nil
}

func errClosed(op string) error {
	return verity.Errorf(verity.Unavailable, op, "registry is closed")
}

func (r *Registry) sweeper(ctx context.Context) {
	defer r.wg.Done()
	t := time.NewTicker(r.cfg.SweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := r.Sweep(ctx); err != nil && ctx.Err() == nil {
				r.cfg.Logger.Warn("registry sweep failed", "err", err)
			}
		}
	}
}

// Register records an instance (see Instance for what is accepted) and grants it a lease.
// An empty ID is generated. Registering an ID that is live again replaces its details; if
// nothing changed it only renews the lease and records nothing.
// Errors: Invalid (bad field, changes nothing), Conflict (the ID is live under another
// service), Unavailable (closed), or the store's error.
func (r *Registry) Register(ctx context.Context, in Instance) (Lease, error) {
	const op = "registry register"
	in, err := normalize(op, in)
	if err != nil {
		return Lease{}, err
	}
	_, err = r.update(ctx, op, func(now time.Time) ([]change, error) {
		e, ok := r.instances[in.ID]
		live := ok && r.live(e, now)
		switch {
		case live && e.inst.Service != in.Service:
			return nil, verity.Errorf(verity.Conflict, op, "instance id %q is registered to service %q, not %q", in.ID, e.inst.Service, in.Service)
		case live && sameRegistration(e.inst, in) && e.inst.Health == in.Health && e.inst.HealthReason == in.HealthReason:
			e.expires = now.Add(r.cfg.TTL)
			return nil, nil
		}
		return []change{registered(in, now)}, nil
	})
	if err != nil {
		return Lease{}, err
	}
	return Lease{InstanceID: in.ID, TTL: r.cfg.TTL}, nil
}

// Heartbeat renews an instance's lease for one more TTL. It records nothing. Once the
// instance is removed (deregistered, or its lease expired even if not yet swept) it is
// NotFound and the client must Register again.
// Errors: NotFound, Invalid (malformed id), Unavailable (closed).
func (r *Registry) Heartbeat(ctx context.Context, id string) error {
	const op = "registry heartbeat"
	if err := validateID(op, id); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return errClosed(op)
	}
	now := r.cfg.Now()
	e, ok := r.instances[id]
	if ok && r.live(e, now) {
		e.expires = now.Add(r.cfg.TTL)
		r.mu.Unlock()
		return nil
	}
	r.mu.Unlock()
	if ok {
		// Its lease ended: record the removal now rather than at the next sweep, so that
		// the client's next Register follows it in the log.
		if _, err := r.Sweep(ctx); err != nil {
			return err
		}
	}
	return notFound(op, id)
}

func notFound(op, id string) error {
	return verity.Errorf(verity.NotFound, op, "instance %q is not registered", id)
}

// Deregister removes an instance at once and records why (RemovedDeregistered).
// Errors: NotFound (not registered, or its lease already expired), Invalid, Unavailable.
func (r *Registry) Deregister(ctx context.Context, id string) error {
	const op = "registry deregister"
	if err := validateID(op, id); err != nil {
		return err
	}
	found := false
	_, err := r.update(ctx, op, func(now time.Time) ([]change, error) {
		e, ok := r.instances[id]
		found = ok && r.live(e, now)
		if !found {
			return nil, nil
		}
		return []change{removed(e.inst, RemovedDeregistered, now)}, nil
	})
	if err == nil && !found {
		return notFound(op, id)
	}
	return err
}

// SetHealth records an instance's health and why (reason may be empty, up to 1,024 bytes).
// Setting the health and reason it already has records nothing. It does not renew the
// lease. Errors: NotFound, Invalid, Unavailable.
func (r *Registry) SetHealth(ctx context.Context, id string, h Health, reason string) error {
	const op = "registry set health"
	if err := validateID(op, id); err != nil {
		return err
	}
	if err := validateHealth(op, h); err != nil {
		return err
	}
	if err := validateText(op, "health reason", reason, maxReasonBytes); err != nil {
		return err
	}
	found := false
	_, err := r.update(ctx, op, func(now time.Time) ([]change, error) {
		e, ok := r.instances[id]
		found = ok && r.live(e, now)
		if !found || e.inst.Health == h && e.inst.HealthReason == reason {
			return nil, nil
		}
		return []change{healthChanged(e.inst, h, reason, now)}, nil
	})
	if err == nil && !found {
		return notFound(op, id)
	}
	return err
}

// Sweep removes every instance whose lease has expired, recording each removal
// (RemovedExpired), and returns how many it removed. The sweeper calls it every
// SweepEvery; it is exported for tests and operators.
func (r *Registry) Sweep(ctx context.Context) (int, error) {
	return r.update(ctx, "registry sweep", func(time.Time) ([]change, error) { return nil, nil })
}

// Lookup returns the live, healthy instances of a service, ordered by ID; none is not an
// error. Errors: Invalid (bad service name), Unavailable (closed).
func (r *Registry) Lookup(ctx context.Context, service string) ([]Instance, error) {
	const op = "registry lookup"
	if err := ValidateService(op, service); err != nil {
		return nil, err
	}
	all, err := r.list(ctx, op, service)
	return slices.DeleteFunc(all, func(in Instance) bool { return in.Health != Healthy }), err
}

// List returns the live instances of a service, healthy or not, ordered by ID; an empty
// service lists every service's (ordered by service, then ID).
// Errors: Invalid (bad service name), Unavailable (closed).
func (r *Registry) List(ctx context.Context, service string) ([]Instance, error) {
	const op = "registry list"
	if service != "" {
		if err := ValidateService(op, service); err != nil {
			return nil, err
		}
	}
	return r.list(ctx, op, service)
}

func (r *Registry) list(ctx context.Context, op, service string) ([]Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, errClosed(op)
	}
	return r.snapshotLocked(service, r.cfg.Now()), nil
}

// snapshotLocked returns copies of the live instances of service ("" for all).
func (r *Registry) snapshotLocked(service string, now time.Time) []Instance {
	var out []Instance
	for _, e := range r.instances {
		if (service == "" || e.inst.Service == service) && r.live(e, now) {
			out = append(out, e.inst.clone())
		}
	}
	slices.SortFunc(out, func(a, b Instance) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), cmp.Compare(a.ID, b.ID))
	})
	return out
}

func (r *Registry) live(e *entry, now time.Time) bool { return now.Before(e.expires) }

// update runs one write: decide says, under the lock, what to record given the current
// state; the removals of expired leases are recorded first, in the same append. If the
// append loses a race with another writer of the stream, update folds what it missed and
// decides again. It returns how many expiries it recorded.
func (r *Registry) update(ctx context.Context, op string, decide func(now time.Time) ([]change, error)) (expired int, err error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for attempt := 1; ; attempt++ {
		if r.closed {
			return 0, errClosed(op)
		}
		now := r.cfg.Now()
		changes := r.expiredLocked(now)
		more, err := decide(now)
		if err != nil {
			return 0, err
		}
		expired := len(changes)
		changes = append(changes, more...)
		if len(changes) == 0 {
			return 0, nil
		}
		err = r.commitLocked(ctx, changes)
		if err == nil {
			return expired, nil
		}
		if verity.KindOf(err) != verity.Conflict || attempt == 3 || ctx.Err() != nil {
			return 0, err
		}
		r.cfg.Logger.Info("registry stream moved under us; folding it again", "stream", r.cfg.Stream, "err", err)
		if err := r.catchUpLocked(ctx); err != nil {
			return 0, err
		}
	}
}

// expiredLocked returns a removal for every instance whose lease has ended.
func (r *Registry) expiredLocked(now time.Time) []change {
	var out []change
	for _, e := range r.instances {
		if !r.live(e, now) {
			out = append(out, removed(e.inst, RemovedExpired, now))
		}
	}
	slices.SortFunc(out, func(a, b change) int { return cmp.Compare(a.rec.ID, b.rec.ID) })
	return out
}

// commitLocked appends changes to the stream and, once they are durable, applies them.
func (r *Registry) commitLocked(ctx context.Context, changes []change) error {
	events := make([]verity.EventData, len(changes))
	for i, c := range changes {
		ev, err := c.encode()
		if err != nil {
			return err
		}
		events[i] = ev
	}
	expected := verity.NoStream()
	if r.exists {
		expected = verity.Exact(r.revision)
	}
	res, err := r.store.Append(ctx, r.cfg.Stream, expected, events...)
	if err != nil {
		return err
	}
	for _, c := range changes {
		r.applyLocked(c)
	}
	r.revision, r.exists = res.Revision, true
	r.snapshotIfDueLocked(ctx)
	return nil
}

// snapshotIfDueLocked appends a RegistrySnapshot once SnapshotEvery events have gone by
// since the last one. It is a shortcut for the next start, not part of the state: if it
// fails (a race with another writer, a store error) the next commit tries again.
func (r *Registry) snapshotIfDueLocked(ctx context.Context) {
	since := r.revision + 1 // events in the stream so far
	if r.hasSnap {
		since = r.revision - r.snapshot
	}
	if r.triedSnap {
		since = min(since, r.revision-r.snapTried)
	}
	if since < uint64(r.cfg.SnapshotEvery) {
		return
	}
	now := r.cfg.Now()
	snap := snapshotRecord{At: now.Round(0), Instances: []record{}}
	// Every instance of the fold, whether or not its lease has run out: its removal is not
	// recorded yet, and the snapshot says what the events before it say.
	for _, e := range r.instances {
		snap.Instances = append(snap.Instances, registered(e.inst, e.inst.Registered).rec)
	}
	slices.SortFunc(snap.Instances, func(a, b record) int { return cmp.Compare(a.ID, b.ID) })
	ev, err := snap.encode()
	if err == nil {
		var res verity.AppendResult
		if res, err = r.store.Append(ctx, r.cfg.Stream, verity.Exact(r.revision), ev); err == nil {
			r.revision, r.snapshot, r.hasSnap = res.Revision, res.Revision, true
			return
		}
	}
	// Tried again SnapshotEvery events later, not at every commit: a snapshot too large
	// for the store's MaxEventSize (thousands of instances) would fail every time.
	r.snapTried, r.triedSnap = r.revision, true
	r.cfg.Logger.Warn("registry snapshot not written; starts fold from the last one written (or the stream's start) until one is",
		"stream", r.cfg.Stream, "instances", len(snap.Instances), "err", err)
}

// maxSnapshotSearch bounds, in events, how far back from the stream's end a starting
// registry looks for a snapshot before it folds the stream from its start.
func (r *Registry) maxSnapshotSearch() uint64 { return 2 * uint64(r.cfg.SnapshotEvery) }

// startLocked builds the state at start: from the stream's last snapshot, if one is near
// its end, then the events after it.
func (r *Registry) startLocked(ctx context.Context) error {
	snap, rev, found, err := r.findSnapshot(ctx)
	if err != nil {
		return err
	}
	if found {
		for _, rec := range snap.Instances {
			if rec.ID != "" && rec.Service != "" {
				r.applyLocked(change{typ: EventInstanceRegistered, rec: rec})
			}
		}
		r.revision, r.exists = rev, true
		r.snapshot, r.hasSnap = rev, true
	}
	return r.catchUpLocked(ctx)
}

// findSnapshot reads the stream backwards from its end for its last readable snapshot, at
// most maxSnapshotSearch events.
func (r *Registry) findSnapshot(ctx context.Context) (snapshotRecord, uint64, bool, error) {
	opts := verity.ReadStreamOptions{Direction: verity.Backwards, FromEnd: true, Limit: 256}
	var seen uint64
	for seen < r.maxSnapshotSearch() {
		page, err := r.store.ReadStream(ctx, r.cfg.Stream, opts)
		if verity.KindOf(err) == verity.NotFound && ctx.Err() == nil {
			return snapshotRecord{}, 0, false, nil
		}
		if err != nil {
			return snapshotRecord{}, 0, false, err
		}
		for _, ev := range page {
			if ev.Type != EventRegistrySnapshot {
				continue
			}
			var snap snapshotRecord
			if err := json.Unmarshal(ev.Data, &snap); err != nil {
				r.cfg.Logger.Warn("registry skips an unreadable snapshot", "stream", r.cfg.Stream, "revision", ev.Revision, "err", err)
				continue
			}
			return snap, ev.Revision, true, nil
		}
		seen += uint64(len(page))
		if len(page) < opts.Limit || page[len(page)-1].Revision == 0 {
			break
		}
		opts.FromEnd, opts.From = false, page[len(page)-1].Revision-1
	}
	return snapshotRecord{}, 0, false, nil
}

// catchUpLocked folds the stream's events past the last one folded.
func (r *Registry) catchUpLocked(ctx context.Context) error {
	from := uint64(0)
	if r.exists {
		from = r.revision + 1
	}
	for {
		page, err := r.store.ReadStream(ctx, r.cfg.Stream, verity.ReadStreamOptions{From: from})
		if verity.KindOf(err) == verity.NotFound && ctx.Err() == nil {
			return nil
		}
		if err != nil {
			return err
		}
		for _, ev := range page {
			if ev.Type == EventRegistrySnapshot {
				r.snapshot, r.hasSnap = ev.Revision, true
			}
			c, ok, err := decode(ev)
			if err != nil {
				r.cfg.Logger.Warn("registry skips an unreadable event", "err", err)
			} else if ok {
				r.applyLocked(c)
			}
			r.revision, r.exists = ev.Revision, true
			from = ev.Revision + 1
		}
		if len(page) < verity.DefaultReadLimit {
			return nil
		}
	}
}

// applyLocked folds one change into the state and tells the watchers. A registration
// starts a fresh lease: after a restart every instance has one TTL to heartbeat again.
func (r *Registry) applyLocked(c change) {
	rec := c.rec
	var out Change
	switch c.typ {
	case EventInstanceRegistered:
		in := Instance{
			Service: rec.Service, ID: rec.ID, Address: rec.Address, Version: rec.Version,
			Metadata: rec.Metadata, Health: rec.Health, HealthReason: rec.HealthReason, Registered: rec.At,
		}
		if in.Health == "" {
			in.Health = Healthy
		}
		if old, ok := r.instances[rec.ID]; ok && old.inst.Service != rec.Service {
			// The id moved to another service: its old service's watchers see it leave.
			r.notifyLocked(Change{Kind: ChangeRemoved, Instance: old.inst.clone(), Reason: RemovedDeregistered})
		}
		r.instances[rec.ID] = &entry{inst: in, expires: r.cfg.Now().Add(r.cfg.TTL)}
		out = Change{Kind: ChangeRegistered, Instance: in.clone()}
	case EventInstanceRemoved:
		e, ok := r.instances[rec.ID]
		if !ok {
			return
		}
		delete(r.instances, rec.ID)
		out = Change{Kind: ChangeRemoved, Instance: e.inst.clone(), Reason: rec.Reason}
	case EventInstanceHealthChanged:
		e, ok := r.instances[rec.ID]
		if !ok {
			return
		}
		e.inst.Health, e.inst.HealthReason = rec.Health, rec.HealthReason
		out = Change{Kind: ChangeHealthChanged, Instance: e.inst.clone(), Reason: rec.HealthReason}
	default:
		return
	}
	r.notifyLocked(out)
}
