package persistent

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/google/uuid"
	"github.com/verity-dev/verity"
)

// Manager runs the consumer groups kept in a store: it implements verity.Groups over any
// verity.Store (the embedded engine or the network client). All methods may be called
// concurrently.
type Manager struct {
	store verity.Store
	cfg   Config

	admin  sync.Mutex // serialises changes of definitions and group lifecycles
	mu     sync.Mutex // guards groups and closed
	groups map[groupKey]*group
	closed bool

	ownMu sync.Mutex
	own   []uint64 // log positions of the checkpoint writes of this Manager, sorted
}

// maxOwn bounds how many checkpoint writes a Manager remembers. Forgetting one costs at
// most one checkpoint write of a log group that takes it for progress.
const maxOwn = 4096

// noteOwn remembers that this Manager wrote the event at log position pos.
func (m *Manager) noteOwn(pos uint64) {
	if pos == 0 {
		return
	}
	m.ownMu.Lock()
	defer m.ownMu.Unlock()
	i, found := slices.BinarySearch(m.own, pos)
	if found {
		return
	}
	m.own = slices.Insert(m.own, i, pos)
	if len(m.own) > maxOwn {
		m.own = slices.Delete(m.own, 0, maxOwn/2)
	}
}

// onlyOwn reports whether every log position in (from, to] holds a checkpoint this
// Manager wrote: a log group that passed only those has nothing new to write, else log
// groups would keep writing checkpoints for each other's checkpoints. Positions are
// gapless, so counting is enough.
func (m *Manager) onlyOwn(from, to uint64) bool {
	if to <= from {
		return true
	}
	m.ownMu.Lock()
	defer m.ownMu.Unlock()
	lo, _ := slices.BinarySearch(m.own, from+1)
	hi, _ := slices.BinarySearch(m.own, to+1)
	return uint64(hi-lo) == to-from
}

var _ verity.Groups = (*Manager)(nil)

// New loads the groups defined in the store's config stream and starts them.
func New(store verity.Store, cfg Config) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, verity.Errorf(verity.Invalid, "persistent", "%v", err)
	}
	m := &Manager{store: store, cfg: cfg.withDefaults(), groups: map[groupKey]*group{}}
	defs, err := loadDefinitions(context.Background(), store)
	if err != nil {
		return nil, err
	}
	for k, d := range defs {
		m.groups[k] = newGroup(m, d)
	}
	return m, nil
}

// Close stops every group, writing its checkpoint; consumers' Recv returns Unavailable.
// It waits for every goroutine the Manager started and is idempotent. Groups stop side by
// side, each within Config.StopTimeout: a store that hangs does not hang Close.
func (m *Manager) Close() error {
	m.admin.Lock()
	defer m.admin.Unlock()
	m.mu.Lock()
	m.closed = true
	groups := m.groups
	m.groups = map[groupKey]*group{}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, g := range groups {
		wg.Go(func() {
			g.stop(stopReq{err: verity.Errorf(verity.Unavailable, "recv", "persistent subscriptions closing"), checkpoint: true})
		})
	}
	wg.Wait()
	return nil
}

func (m *Manager) checkOpen(op string) error {
	if m.closed {
		return verity.Errorf(verity.Unavailable, op, "persistent subscriptions closed")
	}
	return nil
}

func (m *Manager) lookup(op, stream, name string) (*group, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.checkOpen(op); err != nil {
		return nil, err
	}
	g := m.groups[groupKey{sourceOf(stream), name}]
	if g == nil {
		return nil, verity.Errorf(verity.NotFound, op, "no group %q on %q", name, sourceOf(stream))
	}
	return g, nil
}

// resolveFrom turns FromEnd into the source's current end.
func (m *Manager) resolveFrom(ctx context.Context, src string, s verity.GroupSettings) (verity.GroupSettings, error) {
	if !s.FromEnd {
		return s, nil
	}
	if src == verity.AllStream {
		evs, err := m.store.ReadAll(ctx, verity.ReadAllOptions{Direction: verity.Backwards, FromEnd: true, Limit: 1})
		if err != nil {
			return s, err
		}
		s.From = 1
		if len(evs) == 1 {
			s.From = evs[0].Position + 1
		}
		return s, nil
	}
	evs, err := m.store.ReadStream(ctx, src, verity.ReadStreamOptions{Direction: verity.Backwards, FromEnd: true, Limit: 1})
	if err != nil && !errors.Is(err, verity.ErrNotFound) {
		return s, err
	}
	s.From = 0
	if len(evs) == 1 {
		s.From = evs[0].Revision + 1
	}
	return s, nil
}

func (m *Manager) record(ctx context.Context, typ string, d definition) error {
	_, err := m.store.Append(ctx, ConfigStream, verity.Any(), verity.EventData{Type: typ, Data: mustJSON(d)})
	return err
}

// CreateGroup implements verity.Groups.
func (m *Manager) CreateGroup(ctx context.Context, spec verity.GroupSpec) error {
	const op = "create group"
	if err := validateSpec(op, spec); err != nil {
		return err
	}
	m.admin.Lock()
	defer m.admin.Unlock()
	key := groupKey{sourceOf(spec.Stream), spec.Group}
	m.mu.Lock()
	err := m.checkOpen(op)
	exists := m.groups[key] != nil
	m.mu.Unlock()
	if err != nil {
		return err
	}
	if exists {
		return verity.Errorf(verity.Conflict, op, "group %q on %q already exists", spec.Group, key.source)
	}
	settings, err := m.resolveFrom(ctx, key.source, spec.Settings)
	if err != nil {
		return err
	}
	d := definition{Stream: key.source, Group: spec.Group, Filter: spec.Filter, Settings: settings, Incarnation: uuid.New()}
	if err := m.record(ctx, EventTypeGroupCreated, d); err != nil {
		return err
	}
	m.mu.Lock()
	m.groups[key] = newGroup(m, d)
	m.mu.Unlock()
	return nil
}

// UpdateGroup implements verity.Groups.
func (m *Manager) UpdateGroup(ctx context.Context, spec verity.GroupSpec) error {
	const op = "update group"
	if err := validateName(op, spec.Group); err != nil {
		return err
	}
	m.admin.Lock()
	defer m.admin.Unlock()
	g, err := m.lookup(op, spec.Stream, spec.Group)
	if err != nil {
		return err
	}
	spec.Filter = g.def.Filter
	if err := validateSpec(op, spec); err != nil {
		return err
	}
	settings, err := m.resolveFrom(ctx, g.def.Stream, spec.Settings)
	if err != nil {
		return err
	}
	d := g.def
	d.Settings = settings
	if err := m.record(ctx, EventTypeGroupUpdated, d); err != nil {
		return err
	}
	g.stop(stopReq{err: verity.Errorf(verity.Unavailable, "recv", "group %q on %q updated: join again", d.Group, d.Stream), checkpoint: true})
	m.mu.Lock()
	m.groups[d.key()] = newGroup(m, d)
	m.mu.Unlock()
	return nil
}

// DeleteGroup implements verity.Groups.
func (m *Manager) DeleteGroup(ctx context.Context, stream, name string) error {
	const op = "delete group"
	m.admin.Lock()
	defer m.admin.Unlock()
	g, err := m.lookup(op, stream, name)
	if err != nil {
		return err
	}
	if err := m.record(ctx, EventTypeGroupDeleted, g.def); err != nil {
		return err
	}
	m.mu.Lock()
	delete(m.groups, g.def.key())
	m.mu.Unlock()
	g.stop(stopReq{err: verity.Errorf(verity.NotFound, "recv", "group %q on %q deleted", g.def.Group, g.def.Stream)})
	for _, s := range []string{g.cpStream, g.parkedStream} {
		if _, err := m.store.DeleteStream(ctx, s, verity.Any()); err != nil && !errors.Is(err, verity.ErrNotFound) {
			// The group is gone; its leftovers belong to a dead incarnation and are ignored.
			m.cfg.Logger.Warn("cannot delete a deleted group's stream", "stream", s, "err", err)
		}
	}
	return nil
}

// callGroup sends an op to a group's actor. A group that stopped under the call (updated,
// restarted) is asked again once the change that stopped it is done, so callers do not see
// the swap.
func (m *Manager) callGroup(ctx context.Context, opName, stream, name string, o op) (reply, error) {
	for attempt := 0; ; attempt++ {
		g, err := m.lookup(opName, stream, name)
		if err != nil {
			return reply{}, err
		}
		r, err := g.call(ctx, o)
		if err == nil || ctx.Err() != nil || attempt == 2 || !g.stopped() {
			return r, err
		}
		// Every stop happens under admin, together with the swap to its successor: taking
		// admin waits for that change to finish.
		m.admin.Lock()
		m.admin.Unlock()
	}
}

// GetGroup implements verity.Groups.
func (m *Manager) GetGroup(ctx context.Context, stream, name string) (verity.GroupInfo, error) {
	r, err := m.callGroup(ctx, "get group", stream, name, op{kind: opInfo})
	return r.info, err
}

// ListGroups implements verity.Groups.
func (m *Manager) ListGroups(ctx context.Context, stream string) ([]verity.GroupInfo, error) {
	m.mu.Lock()
	if err := m.checkOpen("list groups"); err != nil {
		m.mu.Unlock()
		return nil, err
	}
	var gs []*group
	for k, g := range m.groups {
		if stream == "" || k.source == stream {
			gs = append(gs, g)
		}
	}
	m.mu.Unlock()
	slices.SortFunc(gs, func(a, b *group) int {
		return cmp.Or(cmp.Compare(a.def.Stream, b.def.Stream), cmp.Compare(a.def.Group, b.def.Group))
	})
	out := make([]verity.GroupInfo, 0, len(gs))
	for _, g := range gs {
		r, err := m.callGroup(ctx, "list groups", g.def.Stream, g.def.Group, op{kind: opInfo})
		if errors.Is(err, verity.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r.info)
	}
	return out, nil
}

// ReplayParked implements verity.Groups.
func (m *Manager) ReplayParked(ctx context.Context, stream, name string, opts verity.ReplayParkedOptions) error {
	const opName = "replay parked"
	if opts.Limit < 0 {
		return verity.Errorf(verity.Invalid, opName, "limit %d is negative", opts.Limit)
	}
	_, err := m.callGroup(ctx, opName, stream, name, op{kind: opReplay, limit: opts.Limit})
	return err
}

// JoinGroup implements verity.Groups.
func (m *Manager) JoinGroup(ctx context.Context, stream, name string, opts verity.JoinOptions) (verity.GroupConsumer, error) {
	const opName = "join group"
	if opts.MaxInFlight < 0 {
		return nil, verity.Errorf(verity.Invalid, opName, "MaxInFlight %d is negative", opts.MaxInFlight)
	}
	r, err := m.callGroup(ctx, opName, stream, name, op{kind: opJoin, join: opts})
	if err != nil {
		return nil, err
	}
	return r.c, nil
}

// RestartGroups implements verity.Groups.
func (m *Manager) RestartGroups(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err // an ended call changes nothing
	}
	m.admin.Lock()
	defer m.admin.Unlock()
	m.mu.Lock()
	if err := m.checkOpen("restart groups"); err != nil {
		m.mu.Unlock()
		return err
	}
	groups := make([]*group, 0, len(m.groups))
	for _, g := range m.groups {
		groups = append(groups, g)
	}
	m.mu.Unlock()
	for _, g := range groups {
		g.stop(stopReq{err: verity.Errorf(verity.Unavailable, "recv", "group %q on %q restarted: join again", g.def.Group, g.def.Stream), checkpoint: true})
		ng := newGroup(m, g.def)
		m.mu.Lock()
		m.groups[g.def.key()] = ng
		m.mu.Unlock()
	}
	// Every group was restarted: a caller whose ctx ended meanwhile is not told otherwise.
	return nil
}
