package consolidator

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/sdk/projection"
	"github.com/verity-dev/verity/sdk/projection/postgres"
	"github.com/verity-dev/verity/sdk/projection/sqlite"
)

// Config shapes a Consolidator. The zero value of every field means its default; one of
// Target and DSN is required.
type Config struct {
	// Target is the database the read models live in. It wins over DSN; the caller keeps
	// it (Close does not close it).
	Target projection.Target
	// DSN names the database when Target is nil: sqlite:PATH (a file, created if
	// missing) or postgres://USER@HOST:PORT/DB?sslmode=disable. Close closes it.
	DSN string
	// Logger gets a line per failed run and per restart. Default: discard.
	Logger *slog.Logger
	// Registerer, when set, gets the metrics of every projection (position, lag in
	// events and seconds, errors); Close unregisters them.
	Registerer prometheus.Registerer
	// Now is the clock of lags and error times. Default time.Now.
	Now func() time.Time
	// MinBackoff is the wait before restarting a projection after its first error,
	// doubling after each further one up to MaxBackoff. Defaults 1s and 1m.
	MinBackoff time.Duration
	MaxBackoff time.Duration
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.Target == nil && c.DSN == "":
		return verity.Errorf(verity.Invalid, op, "config: give Target or DSN (sqlite:PATH or postgres://...)")
	case c.Target == nil && !strings.HasPrefix(c.DSN, "sqlite:") && !isPostgresDSN(c.DSN):
		return verity.Errorf(verity.Invalid, op, "config: DSN %q: want sqlite:PATH or postgres://...", c.DSN)
	case c.Target == nil && c.DSN == "sqlite:":
		return verity.Errorf(verity.Invalid, op, "config: DSN %q: no file path after sqlite:", c.DSN)
	case c.MinBackoff < 0:
		return verity.Errorf(verity.Invalid, op, "config: MinBackoff %v is negative", c.MinBackoff)
	case c.MaxBackoff < 0:
		return verity.Errorf(verity.Invalid, op, "config: MaxBackoff %v is negative", c.MaxBackoff)
	}
	return nil
}

func isPostgresDSN(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// State is what a projection is doing.
type State string

const (
	// StateStopped: not started (Start not called, or Close called).
	StateStopped State = "stopped"
	// StateRunning: following the log.
	StateRunning State = "running"
	// StateFailed: its last run failed; it is restarted at RetryAt.
	StateFailed State = "failed"
	// StateRebuilding: a Rebuild is in progress (the old tables still serve).
	StateRebuilding State = "rebuilding"
)

// Status is where one projection stands.
type Status struct {
	Name  string `json:"name"`
	State State  `json:"state"`
	// Position is the log position up to which the tables have applied the log.
	Position uint64 `json:"position"`
	// Generation counts the rebuilds swapped in, from 1.
	Generation int64 `json:"generation"`
	// LagEvents is the head of the log minus Position; LagSeconds the age of the oldest
	// event of the projection not yet applied.
	LagEvents  uint64  `json:"lagEvents"`
	LagSeconds float64 `json:"lagSeconds"`
	CaughtUp   bool    `json:"caughtUp"`
	// RebuildPosition is how far a rebuild in progress has got.
	RebuildPosition uint64 `json:"rebuildPosition,omitempty"`
	// Errors counts the failed runs since Start; LastError is the last one's message,
	// kept after the projection recovers, at LastErrorAt.
	Errors      uint64     `json:"errors"`
	LastError   string     `json:"lastError,omitempty"`
	LastErrorAt *time.Time `json:"lastErrorAt,omitempty"`
	// Skipped counts the events left out by invalid_events: skip; LastSkipped says why the
	// last one was, at LastSkippedAt.
	Skipped       uint64     `json:"skipped,omitempty"`
	LastSkipped   string     `json:"lastSkipped,omitempty"`
	LastSkippedAt *time.Time `json:"lastSkippedAt,omitempty"`
	// RetryAt is when a failed projection is restarted.
	RetryAt *time.Time `json:"retryAt,omitempty"`
	// Tables are the projection's tables; AsOf its as-of builds.
	Tables []string     `json:"tables"`
	AsOf   []AsOfResult `json:"asOf,omitempty"`
}

// AsOf says how far an as-of build goes: Position (every event at or below it), or Time
// (every event committed at or before it). Exactly one is set.
type AsOf struct {
	Position uint64
	Time     time.Time
}

// AsOfResult is an as-of build of a projection's tables.
type AsOfResult struct {
	Projection string `json:"projection"`
	// Suffix names the build: its tables are table__suffix (asof_POSITION).
	Suffix string `json:"suffix"`
	// Position is the log position the tables are built up to, inclusive.
	Position uint64 `json:"position"`
	// Complete is false while the build runs or after it was interrupted.
	Complete bool `json:"complete"`
	// Tables maps each table to its as-of copy.
	Tables map[string]string `json:"tables"`
}

// tableInfo is what the admin API knows of a table: its key (nil for a Go-declared
// projection's, which are paged by offset) and the columns' types.
type tableInfo struct {
	name  string
	key   []string
	types map[string]colType
}

// view is one projection the consolidator runs.
type view struct {
	name   string
	proj   *projection.Projector
	tables []tableInfo
	skips  *skipLog // declarative projections' skipped events; nil for Go ones

	mu         sync.Mutex // guards the fields below
	running    bool
	failed     bool
	rebuilding int
	errors     uint64
	lastErr    error
	lastErrAt  time.Time
	retryAt    time.Time
}

// Consolidator runs projections into SQL read models. Its methods may be called
// concurrently.
type Consolidator struct {
	store   verity.Store
	target  projection.Target
	owned   interface{ Close() error } // the target opened from DSN
	dialect dialect
	cfg     Config
	log     *slog.Logger
	metrics *collector

	mu      sync.Mutex // guards the fields below
	views   map[string]*view
	order   []string
	started bool
	closed  bool
	cancel  context.CancelFunc // of the runs and background work
	bgCtx   context.Context
	wg      sync.WaitGroup
}

// New returns a consolidator of store's log into cfg's target, opening it if cfg gives a
// DSN. Add projections, then Start.
func New(store verity.Store, cfg Config) (*Consolidator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = time.Minute
	}
	cfg.MaxBackoff = max(cfg.MaxBackoff, cfg.MinBackoff)
	c := &Consolidator{store: store, target: cfg.Target, cfg: cfg, log: cfg.Logger, views: map[string]*view{}}
	if c.target == nil {
		var err error
		switch {
		case strings.HasPrefix(cfg.DSN, "sqlite:"):
			var t *sqlite.Target
			t, err = sqlite.Open(strings.TrimPrefix(cfg.DSN, "sqlite:"), sqlite.Options{})
			c.target, c.owned = t, t
		default:
			var t *postgres.Target
			t, err = postgres.Open(context.Background(), cfg.DSN, postgres.Options{})
			c.target, c.owned = t, t
		}
		if err != nil {
			return nil, err
		}
	}
	if _, ok := c.target.(*postgres.Target); ok {
		c.dialect = dialectPostgres
	}
	c.bgCtx, c.cancel = context.WithCancel(context.Background())
	if cfg.Registerer != nil {
		c.metrics = newCollector(c)
		if err := cfg.Registerer.Register(c.metrics); err != nil {
			c.cancel()
			if c.owned != nil {
				c.owned.Close()
			}
			return nil, verity.Errorf(verity.Invalid, op, "register metrics: %v", err)
		}
	}
	return c, nil
}

// Target is the database of the read models, for readers.
func (c *Consolidator) Target() projection.Target { return c.target }

// Add adds a projection declared in Go, with the configuration of its source (the
// filter, or the stream, and batching); cfg.Now defaults to the consolidator's clock.
// Projections are added before Start. Errors: Invalid, Conflict (the name is taken).
func (c *Consolidator) Add(p projection.Projection, cfg projection.Config) error {
	var tables []tableInfo
	for _, t := range p.Tables {
		tables = append(tables, tableInfo{name: t.Name})
	}
	return c.add(p, cfg, tables)
}

func (c *Consolidator) add(p projection.Projection, cfg projection.Config, tables []tableInfo) error {
	if cfg.Now == nil {
		cfg.Now = c.cfg.Now
	}
	pr, err := projection.New(c.store, c.target, p, cfg)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return verity.Errorf(verity.Unavailable, op, "consolidator closed")
	case c.started:
		return verity.Errorf(verity.Conflict, op, "projection %q: add projections before Start", p.Name)
	case c.views[p.Name] != nil:
		return verity.Errorf(verity.Conflict, op, "projection %q added twice", p.Name)
	}
	for _, v := range c.views {
		for _, t := range v.tables {
			for _, nt := range tables {
				if t.name == nt.name {
					return verity.Errorf(verity.Conflict, op, "projection %q: table %q is also projection %q's", p.Name, t.name, v.name)
				}
			}
		}
	}
	c.views[p.Name] = &view{name: p.Name, proj: pr, tables: tables}
	c.order = append(c.order, p.Name)
	return nil
}

// AddConfig adds every projection of a declarative file (its Target is not used here).
func (c *Consolidator) AddConfig(fc *FileConfig) error {
	if err := fc.Validate(); err != nil {
		return err
	}
	for _, pc := range fc.Projections {
		comp, err := pc.compile(c.dialect)
		if err != nil {
			return verity.Errorf(verity.Invalid, op, "projection%v", err)
		}
		var tables []tableInfo
		for _, t := range comp.tables {
			tables = append(tables, tableInfo{name: t.name, key: t.key, types: t.types})
		}
		comp.skips.log = c.log
		if err := c.add(comp.projection(), projection.Config{Filter: comp.filter, BatchSize: comp.batch}, tables); err != nil {
			return err
		}
		c.mu.Lock()
		c.views[comp.name].skips = comp.skips
		c.mu.Unlock()
	}
	return nil
}

// Start runs every projection in a goroutine of its own until Close (or ctx ends): each
// catches up with the log and follows it; after an error it is restarted with backoff,
// the error kept in its Status. It fails with Conflict if called twice.
func (c *Consolidator) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return verity.Errorf(verity.Unavailable, op, "consolidator closed")
	case c.started:
		return verity.Errorf(verity.Conflict, op, "consolidator already started")
	}
	c.started = true
	// The runs end with ctx or with Close, whichever comes first.
	runCtx, cancel := context.WithCancel(c.bgCtx)
	stop := context.AfterFunc(ctx, cancel)
	c.wg.Go(func() {
		<-runCtx.Done()
		stop()
	})
	for _, name := range c.order {
		v := c.views[name]
		v.mu.Lock()
		v.running = true
		v.mu.Unlock()
		c.wg.Go(func() { c.run(runCtx, v) })
	}
	return nil
}

// run runs v until ctx ends, restarting it with backoff after each failure.
func (c *Consolidator) run(ctx context.Context, v *view) {
	defer func() {
		v.mu.Lock()
		v.running, v.failed = false, false
		v.mu.Unlock()
	}()
	consecutive := 0
	for {
		began := c.cfg.Now()
		err := v.proj.Run(ctx)
		if ctx.Err() != nil {
			return
		}
		if c.cfg.Now().Sub(began) > c.cfg.MaxBackoff {
			consecutive = 0 // it ran well for a while: start the backoff afresh
		}
		wait := c.cfg.MinBackoff << min(consecutive, 30)
		if wait > c.cfg.MaxBackoff || wait <= 0 {
			wait = c.cfg.MaxBackoff
		}
		consecutive++
		now := c.cfg.Now()
		v.mu.Lock()
		v.failed, v.errors, v.lastErr, v.lastErrAt, v.retryAt = true, v.errors+1, err, now, now.Add(wait)
		v.mu.Unlock()
		c.log.Error("projection failed; restarting", "projection", v.name, "error", err, "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		v.mu.Lock()
		v.failed = false
		v.mu.Unlock()
	}
}

// Close stops every projection and background rebuild, waits for them, unregisters the
// metrics and closes the target if New opened it. Later calls do nothing.
func (c *Consolidator) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	if c.metrics != nil {
		c.cfg.Registerer.Unregister(c.metrics)
	}
	if c.owned != nil {
		return c.owned.Close()
	}
	return nil
}

func (c *Consolidator) view(name string) (*view, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, verity.Errorf(verity.Unavailable, op, "consolidator closed")
	}
	v := c.views[name]
	if v == nil {
		return nil, verity.Errorf(verity.NotFound, op, "no projection %q", name)
	}
	return v, nil
}

// Names lists the projections in the order they were added.
func (c *Consolidator) Names() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.order)
}

// Status reports one projection. Errors: NotFound, and those of reading the target and
// the store.
func (c *Consolidator) Status(ctx context.Context, name string) (Status, error) {
	v, err := c.view(name)
	if err != nil {
		return Status{}, err
	}
	ps, err := v.proj.Status(ctx)
	if err != nil {
		return Status{}, err
	}
	st := Status{Name: name, Position: ps.Position, Generation: ps.Generation, LagEvents: ps.LagEvents,
		LagSeconds: ps.Lag.Seconds(), CaughtUp: ps.CaughtUp, State: StateStopped}
	if ps.Rebuilding {
		st.RebuildPosition = ps.RebuildPosition
	}
	for _, t := range v.tables {
		st.Tables = append(st.Tables, t.name)
	}
	if v.skips != nil {
		if n, last, at := v.skips.get(); n > 0 {
			st.Skipped, st.LastSkipped, st.LastSkippedAt = n, last, &at
		}
	}
	v.mu.Lock()
	switch {
	case v.rebuilding > 0:
		st.State = StateRebuilding
	case v.failed:
		st.State = StateFailed
		at := v.retryAt
		st.RetryAt = &at
	case v.running:
		st.State = StateRunning
	}
	st.Errors = v.errors
	if v.lastErr != nil {
		at := v.lastErrAt
		st.LastError, st.LastErrorAt = v.lastErr.Error(), &at
	}
	v.mu.Unlock()
	asofs, err := v.proj.AsOfs(ctx)
	if err != nil {
		return Status{}, err
	}
	for _, a := range asofs {
		st.AsOf = append(st.AsOf, asOfResult(name, a))
	}
	return st, nil
}

func asOfResult(name string, a projection.AsOf) AsOfResult {
	return AsOfResult{Projection: name, Suffix: a.Suffix, Position: a.Until, Complete: a.Complete, Tables: a.Tables}
}

// Statuses reports every projection, in the order they were added.
func (c *Consolidator) Statuses(ctx context.Context) ([]Status, error) {
	var out []Status
	for _, name := range c.Names() {
		st, err := c.Status(ctx, name)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// Rebuild rebuilds a projection from the start of the log into a new generation of its
// tables and swaps it in atomically (see projection.Projector.Rebuild); the old tables
// serve, and are kept up to date if it runs, until then. It returns once swapped in, or
// when ctx ends (a later Rebuild resumes).
func (c *Consolidator) Rebuild(ctx context.Context, name string) error {
	v, err := c.view(name)
	if err != nil {
		return err
	}
	v.mu.Lock()
	v.rebuilding++
	v.mu.Unlock()
	defer func() {
		v.mu.Lock()
		v.rebuilding--
		v.mu.Unlock()
	}()
	return v.proj.Rebuild(ctx)
}

// RebuildInBackground starts Rebuild in a goroutine that Close stops (a stopped rebuild
// resumes at the next one); its error shows in the log and the projection's Status.
func (c *Consolidator) RebuildInBackground(name string) error {
	v, err := c.view(name)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return verity.Errorf(verity.Unavailable, op, "consolidator closed")
	}
	v.mu.Lock()
	v.rebuilding++ // at once, so that a Status right after shows it
	v.mu.Unlock()
	c.wg.Go(func() {
		err := c.Rebuild(c.bgCtx, name)
		v.mu.Lock()
		v.rebuilding--
		if err != nil && c.bgCtx.Err() == nil {
			v.errors, v.lastErr, v.lastErrAt = v.errors+1, fmt.Errorf("rebuild: %w", err), c.cfg.Now()
		}
		v.mu.Unlock()
		if err != nil && c.bgCtx.Err() == nil {
			c.log.Error("rebuild failed", "projection", name, "error", err)
		}
	})
	return nil
}

// BuildAsOf builds a projection's tables as of a log position or a time into tables of
// their own, table__asof_POSITION (a time is resolved to the position of the last event
// committed at or before it), and stops there. Building the same position again returns
// the existing build (or resumes an interrupted one). Errors: NotFound, Invalid (neither
// or both of Position and Time, a position beyond the head of the log).
func (c *Consolidator) BuildAsOf(ctx context.Context, name string, at AsOf) (AsOfResult, error) {
	v, err := c.view(name)
	if err != nil {
		return AsOfResult{}, err
	}
	pos := at.Position
	switch {
	case pos == 0 && at.Time.IsZero():
		return AsOfResult{}, verity.Errorf(verity.Invalid, op, "as of: give a position (from 1) or a time")
	case pos != 0 && !at.Time.IsZero():
		return AsOfResult{}, verity.Errorf(verity.Invalid, op, "as of: give a position (%d) or a time (%s), not both", pos, at.Time.Format(time.RFC3339))
	case pos == 0:
		if pos, err = c.positionAt(ctx, at.Time); err != nil {
			return AsOfResult{}, err
		}
	}
	a, err := v.proj.BuildAsOf(ctx, "asof_"+strconv.FormatUint(pos, 10), pos)
	if err != nil {
		return AsOfResult{}, err
	}
	return asOfResult(name, a), nil
}

// positionAt is the position of the last event committed at or before t, 0 if none.
func (c *Consolidator) positionAt(ctx context.Context, t time.Time) (uint64, error) {
	evs, err := c.store.ReadAll(ctx, verity.ReadAllOptions{Direction: verity.Backwards, FromTime: t, Limit: 1})
	if err != nil {
		return 0, err
	}
	if len(evs) == 0 || evs[0].Created.After(t) {
		return 0, nil
	}
	return evs[0].Position, nil
}

// DropAsOf drops an as-of build (suffix asof_POSITION) of a projection. Errors: NotFound.
func (c *Consolidator) DropAsOf(ctx context.Context, name, suffix string) error {
	v, err := c.view(name)
	if err != nil {
		return err
	}
	return v.proj.DropAsOf(ctx, suffix)
}
