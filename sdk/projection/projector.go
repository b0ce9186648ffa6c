package projection

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/verity-dev/verity"
)

// checkpointTable holds one row per projection (name), and one per rebuild in progress
// (name + rebuildSuffix): the checkpoint and the generation of the tables it is for.
const checkpointTable = "verity_projections"

const rebuildSuffix = "@rebuild"

const createCheckpointTable = `CREATE TABLE IF NOT EXISTS verity_projections (
	name       TEXT PRIMARY KEY,
	position   BIGINT NOT NULL,
	revision   BIGINT NOT NULL,
	generation BIGINT NOT NULL
)`

const op = "projection"

// errSwapped tells Run that a rebuild was swapped in: it follows the log again from the
// new generation's checkpoint.
var errSwapped = errors.New("projection: rebuild swapped in")

// Projector keeps one projection up to date in one target. Run, Rebuild and Status may be
// called concurrently; at most one Run at a time per Projector, and at most one process
// should run a projection against a database (a second one fails its first commit with
// Conflict, and changes nothing).
type Projector struct {
	store  verity.Store
	target Target
	proj   Projection
	cfg    Config

	setupMu sync.Mutex
	setup   bool

	rebuildMu sync.Mutex // one Rebuild at a time
	asOfMu    sync.Mutex // one BuildAsOf or DropAsOf at a time

	runMu   sync.Mutex // guards the three below
	running bool
	swaps   chan *swapRequest // Run's, while it runs
	runDone chan struct{}     // closed when that Run returns

	mu          sync.Mutex // guards the fields below
	caughtUp    bool
	lastErr     error
	lastErrAt   time.Time
	rebuildLive bool
}

// swapRequest asks Run to swap in a rebuilt generation between two of its batches.
type swapRequest struct {
	rb   *view
	done chan error // buffered
}

// checkpoint says how far a generation has applied the log: every event up to position
// (log) or below revision (stream source) is applied.
type checkpoint struct {
	pos uint64
	rev uint64
}

// view is one generation of a projection's tables and its checkpoint row.
type view struct {
	key   string
	gen   int64
	repl  *strings.Replacer // {table} -> this generation's name
	names map[string]string // table -> this generation's name
	cache map[string]string // statement -> rewritten statement
	at    checkpoint        // as committed
}

// New returns a projector of p from store into target. It checks p and cfg (Invalid) and
// touches neither the store nor the target.
func New(store verity.Store, target Target, p Projection, cfg Config) (*Projector, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if bs, ok := target.(BatchSizer); ok && cfg.BatchSize == 0 && p.Handle != nil {
		cfg.BatchSize = min(max(bs.DefaultBatchSize(), 1), MaxBatchSize)
	}
	return &Projector{store: store, target: target, proj: p, cfg: cfg.withDefaults()}, nil
}

func (p *Projector) newView(key string, gen int64, at checkpoint) *view {
	return p.newViewNamed(key, gen, at, func(table string) string {
		switch {
		case key == p.proj.Name:
			return table
		case strings.HasPrefix(key, p.proj.Name+asOfSep) && key != p.proj.Name+rebuildSuffix:
			return table + "__" + strings.TrimPrefix(key, p.proj.Name+asOfSep)
		}
		return fmt.Sprintf("%s__g%d", table, gen)
	})
}

// newViewNamed is newView with the tables' names in this view given by name.
func (p *Projector) newViewNamed(key string, gen int64, at checkpoint, name func(table string) string) *view {
	v := &view{key: key, gen: gen, names: map[string]string{}, cache: map[string]string{}, at: at}
	var pairs []string
	for _, t := range p.proj.Tables {
		name := name(t.Name)
		v.names[t.Name] = name
		pairs = append(pairs, "{"+t.Name+"}", name)
	}
	v.repl = strings.NewReplacer(pairs...)
	return v
}

func (v *view) rewrite(stmt string) string {
	if s, ok := v.cache[stmt]; ok {
		return s
	}
	s := v.repl.Replace(stmt)
	v.cache[stmt] = s
	return s
}

// Setup creates the checkpoint table and, the first time, the projection's tables with
// its checkpoint row, all in one transaction. It is idempotent; Run, Rebuild and Status
// call it.
func (p *Projector) Setup(ctx context.Context) error {
	p.setupMu.Lock()
	defer p.setupMu.Unlock()
	if p.setup {
		return nil
	}
	// Other projectors (the other projections of a consolidator, or this one in another
	// process) may be setting up the same database at the same moment. PostgreSQL fails
	// one of two concurrent CREATE TABLE IF NOT EXISTS of one table (a unique violation in
	// its catalog), and one of two creations of a projection's tables; whichever lost finds
	// the winner's tables when it looks again.
	if err := p.inTx(ctx, func(tx *handlerTx) error { return tx.Exec(ctx, createCheckpointTable) }); err != nil {
		if ctxErr := contextError(err); ctxErr != nil {
			return ctxErr
		}
		if err := p.inTx(ctx, func(tx *handlerTx) error { return tx.Exec(ctx, createCheckpointTable) }); err != nil {
			return p.wrap("create the checkpoint table", err)
		}
	}
	if _, found, err := p.load(ctx, p.proj.Name); err != nil {
		return err
	} else if !found {
		if err := p.create(ctx, p.newView(p.proj.Name, 1, checkpoint{})); err != nil {
			if _, found, lerr := p.load(ctx, p.proj.Name); lerr != nil || !found {
				return err
			}
		}
	}
	p.setup = true
	return nil
}

// inTx runs fn in a transaction of the target and commits it.
func (p *Projector) inTx(ctx context.Context, fn func(tx *handlerTx) error) error {
	ttx, err := p.target.Begin(ctx)
	if err != nil {
		return err
	}
	tx := &handlerTx{tx: ttx, cur: -1}
	if err := fn(tx); err != nil {
		_ = ttx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	return ttx.Commit(ctx)
}

// load reads a checkpoint row.
func (p *Projector) load(ctx context.Context, key string) (*view, bool, error) {
	var pos, rev, gen int64
	err := queryRow(ctx, p.target, `SELECT position, revision, generation FROM verity_projections WHERE name = $1`, key).Scan(&pos, &rev, &gen)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, p.wrap("read the checkpoint of "+key, err)
	}
	return p.newView(key, gen, checkpoint{pos: uint64(pos), rev: uint64(rev)}), true, nil
}

// create makes v's tables and checkpoint row in one transaction.
func (p *Projector) create(ctx context.Context, v *view) error {
	err := p.inTx(ctx, func(tx *handlerTx) error {
		for _, t := range p.proj.Tables {
			for _, stmt := range t.Create {
				if err := tx.Exec(ctx, v.rewrite(stmt)); err != nil {
					return fmt.Errorf("table %s: %w", t.Name, err)
				}
			}
		}
		return tx.Exec(ctx, `INSERT INTO verity_projections (name, position, revision, generation) VALUES ($1, $2, $3, $4)`,
			v.key, int64(v.at.pos), int64(v.at.rev), v.gen)
	})
	if err != nil {
		return p.wrap(fmt.Sprintf("create the tables of generation %d", v.gen), err)
	}
	return nil
}

func (p *Projector) wrap(what string, err error) error {
	if ctxErr := contextError(err); ctxErr != nil {
		return ctxErr
	}
	kind := verity.Unavailable
	var ve *verity.Error
	if errors.As(err, &ve) {
		kind = ve.Kind
	}
	return &verity.Error{Kind: kind, Op: op, Message: fmt.Sprintf("projection %q: %s", p.proj.Name, what), Err: err}
}

// contextError returns the context error err is or wraps, if any.
func contextError(err error) error {
	switch {
	case errors.Is(err, context.Canceled):
		return context.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return context.DeadlineExceeded
	}
	return nil
}

// handlerTx is the Tx handlers see: it rewrites {table} and remembers which event made
// each statement, to report a pipelined statement's error against its event.
type handlerTx struct {
	tx    TargetTx
	v     *view
	cur   int   // index in the batch of the event being handled; -1 for the projector's own, batchStatements for HandleBatch's
	stmts []int // Exec number -> cur at the time
}

func (h *handlerTx) sql(stmt string) string {
	if h.v == nil {
		return stmt
	}
	return h.v.rewrite(stmt)
}

func (h *handlerTx) Exec(ctx context.Context, stmt string, args ...any) error {
	h.stmts = append(h.stmts, h.cur)
	return h.tx.Exec(ctx, h.sql(stmt), args...)
}

func (h *handlerTx) Query(ctx context.Context, stmt string, args ...any) (Rows, error) {
	return h.tx.Query(ctx, h.sql(stmt), args...)
}

func (h *handlerTx) QueryRow(ctx context.Context, stmt string, args ...any) Row {
	return h.tx.QueryRow(ctx, h.sql(stmt), args...)
}

// batchStatements is handlerTx.cur while HandleBatch runs.
const batchStatements = -2

// eventOf returns the batch index of the event whose statement failed with err,
// batchStatements for one of HandleBatch's, or -1.
func (h *handlerTx) eventOf(err error) int {
	var se *StatementError
	if errors.As(err, &se) && se.Statement >= 0 && se.Statement < len(h.stmts) {
		return h.stmts[se.Statement]
	}
	return -1
}

// apply commits one batch of v with its new checkpoint, compare-and-set against the one
// v has: effects and checkpoint commit together or not at all. then, if set, runs in the
// same transaction after the checkpoint. On success v.at is to.
func (p *Projector) apply(ctx context.Context, v *view, batch []verity.RecordedEvent, to checkpoint, then func(tx *handlerTx) error) error {
	ttx, err := p.target.Begin(ctx)
	if err != nil {
		return p.wrap("begin", err)
	}
	tx := &handlerTx{tx: ttx, v: v}
	// blame reports err against the event, or the batch, whose handler made the pipelined
	// statement that failed, when err is such a statement's error (whichever later call
	// it surfaced in), and as orElse(err) otherwise. It looks at err as the target and
	// the handler returned it, before anything here wraps it.
	blame := func(err error, orElse func(error) error) error {
		switch i := tx.eventOf(err); {
		case i >= 0:
			return p.eventError(batch[i], err)
		case i == batchStatements:
			return p.batchError(batch, err)
		}
		return orElse(err)
	}
	// fail rolls the batch back and reports err, through blame.
	fail := func(err error, orElse func(error) error) error {
		_ = ttx.Rollback(context.WithoutCancel(ctx))
		if ctxErr := contextError(err); ctxErr != nil && ctx.Err() != nil {
			return ctxErr
		}
		return blame(err, orElse)
	}
	asIs := func(err error) error { return err }
	if p.proj.HandleBatch != nil {
		tx.cur = batchStatements
		if len(batch) > 0 {
			if err := p.proj.HandleBatch(ctx, tx, batch); err != nil {
				// Whatever failed, statement or not, was the batch's.
				return fail(err, func(err error) error { return p.batchError(batch, err) })
			}
		}
	} else {
		for i := range batch {
			tx.cur = i
			if err := p.proj.Handle(ctx, tx, batch[i]); err != nil {
				return fail(err, func(err error) error { return p.eventError(batch[i], err) })
			}
		}
	}
	tx.cur = -1
	var got int64
	err = tx.QueryRow(ctx, `UPDATE verity_projections SET position = $1, revision = $2
		WHERE name = $3 AND position = $4 AND revision = $5 AND generation = $6 RETURNING position`,
		int64(to.pos), int64(to.rev), v.key, int64(v.at.pos), int64(v.at.rev), v.gen).Scan(&got)
	if errors.Is(err, sql.ErrNoRows) {
		return fail(verity.Errorf(verity.Conflict, op, "projection %q: checkpoint %s moved from position %d, generation %d: is the projection running elsewhere?",
			p.proj.Name, v.key, v.at.pos, v.gen), asIs)
	}
	if err != nil {
		return fail(err, func(err error) error { return p.wrap("write the checkpoint", err) })
	}
	if then != nil {
		if err := then(tx); err != nil {
			return fail(err, asIs)
		}
	}
	if err := ttx.Commit(ctx); err != nil {
		if ctxErr := contextError(err); ctxErr != nil && ctx.Err() != nil {
			return ctxErr
		}
		return blame(err, func(err error) error { return p.wrap("commit", err) })
	}
	v.at = to
	return nil
}

// eventError reports a failure to apply e: its kind is the cause's (Internal when the
// cause is no *verity.Error).
func (p *Projector) eventError(e verity.RecordedEvent, cause error) error {
	var ve *verity.Error
	errors.As(cause, &ve)
	kind := verity.Internal
	if ve != nil {
		kind = ve.Kind
	}
	return &verity.Error{Kind: kind, Op: op, Stream: e.Stream, Err: cause,
		Message: fmt.Sprintf("projection %q: event %s of type %q at position %d, revision %d", p.proj.Name, e.ID, e.Type, e.Position, e.Revision)}
}

// batchError reports a failure of HandleBatch on batch (or of a statement it made): its
// kind is the cause's (Internal when the cause is no *verity.Error).
func (p *Projector) batchError(batch []verity.RecordedEvent, cause error) error {
	var ve *verity.Error
	errors.As(cause, &ve)
	kind := verity.Internal
	if ve != nil {
		kind = ve.Kind
	}
	first, last := batch[0], batch[len(batch)-1]
	return &verity.Error{Kind: kind, Op: op, Err: cause,
		Message: fmt.Sprintf("projection %q: batch of %d events at positions %d to %d", p.proj.Name, len(batch), first.Position, last.Position)}
}

// Run follows the source from the projection's checkpoint: it catches up with the log and
// then applies new events as they are committed, at most BatchSize per transaction, until
// ctx ends (it then returns ctx's error) or something fails. A handler's error rolls its
// batch back and stops the projection: Run returns a *verity.Error naming the event
// (stream, id, type, position, revision) whose kind is the handler error's (Internal if it
// is no *verity.Error), or, with HandleBatch, naming the batch (its size and its first
// and last positions); Status reports it until a later Run commits. Nothing of the failed
// batch is applied, so running again after a fix resumes exactly there. Run fails with
// Conflict if this Projector already runs.
func (p *Projector) Run(ctx context.Context) error {
	p.runMu.Lock()
	if p.running {
		p.runMu.Unlock()
		return verity.Errorf(verity.Conflict, op, "projection %q is already running", p.proj.Name)
	}
	swaps, done := make(chan *swapRequest), make(chan struct{})
	p.running, p.swaps, p.runDone = true, swaps, done
	p.runMu.Unlock()
	defer func() {
		p.runMu.Lock()
		p.running, p.swaps = false, nil
		close(done)
		p.runMu.Unlock()
		p.mu.Lock()
		p.caughtUp = false
		p.mu.Unlock()
	}()
	err := p.run(ctx, swaps)
	if ctx.Err() == nil {
		p.mu.Lock()
		p.lastErr, p.lastErrAt = err, p.cfg.Now()
		p.mu.Unlock()
	}
	return err
}

func (p *Projector) run(ctx context.Context, swaps <-chan *swapRequest) error {
	if err := p.Setup(ctx); err != nil {
		return err
	}
	for {
		v, found, err := p.load(ctx, p.proj.Name)
		if err != nil {
			return err
		}
		if !found {
			return verity.Errorf(verity.NotFound, op, "projection %q: its checkpoint row is gone", p.proj.Name)
		}
		err = p.follow(ctx, v, false, swaps)
		if !errors.Is(err, errSwapped) {
			return err
		}
	}
}

// subscribeFrom subscribes to the source just after checkpoint at.
func (p *Projector) subscribeFrom(ctx context.Context, at checkpoint) (verity.Subscription, error) {
	opts := verity.SubscribeOptions{Filter: p.cfg.Filter}
	if p.cfg.Stream != "" {
		opts.Stream, opts.From = p.cfg.Stream, at.rev
	} else {
		opts.From = at.pos + 1
	}
	return p.store.Subscribe(ctx, opts)
}

// follow applies the source's events to v from its checkpoint on, in batches. With
// untilCaughtUp it returns nil once it has caught up with the log; otherwise it runs until
// ctx ends or something fails, swapping rebuilt generations in between batches (it then
// returns errSwapped).
func (p *Projector) follow(ctx context.Context, v *view, untilCaughtUp bool, swaps <-chan *swapRequest) error {
	ctx, cancel := context.WithCancel(ctx)
	sub, err := p.subscribeFrom(ctx, v.at)
	if err != nil {
		cancel()
		return p.wrap("subscribe", err)
	}
	// The pump lets a batch wait for its next event with a deadline: Recv has none.
	msgs := make(chan verity.SubscriptionMessage, 1024)
	var recvErr error
	var pump sync.WaitGroup
	pump.Go(func() {
		defer close(msgs)
		for {
			m, err := sub.Recv(ctx)
			if err != nil {
				recvErr = err
				return
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	})
	defer func() {
		cancel()
		_ = sub.Close()
		pump.Wait()
	}()

	stream := p.cfg.Stream != ""
	batch := make([]verity.RecordedEvent, 0, p.cfg.BatchSize)
	next := v.at
	dirty := false // batch or next not yet committed
	var deadline time.Time
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	flush := func() error {
		if !dirty {
			return nil
		}
		if err := p.apply(ctx, v, batch, next, nil); err != nil {
			return err
		}
		clear(batch)
		batch, dirty = batch[:0], false
		return nil
	}
	swap := func(req *swapRequest) error {
		if err := flush(); err != nil {
			req.done <- err
			return err
		}
		err := p.finishRebuild(ctx, v, req.rb, v.at)
		req.done <- err
		if err != nil {
			return err
		}
		return errSwapped
	}
	for {
		if len(batch) >= p.cfg.BatchSize {
			if err := flush(); err != nil {
				return err
			}
		}
		var m verity.SubscriptionMessage
		var ok bool
		if !dirty {
			select {
			case m, ok = <-msgs:
			case req := <-swaps:
				return swap(req)
			case <-ctx.Done():
				return ctx.Err()
			}
		} else {
			select {
			case m, ok = <-msgs:
			default:
				d := time.Until(deadline)
				if d <= 0 {
					if err := flush(); err != nil {
						return err
					}
					continue
				}
				timer.Reset(d)
				select {
				case m, ok = <-msgs:
					timer.Stop()
				case <-timer.C:
					if err := flush(); err != nil {
						return err
					}
					continue
				case req := <-swaps:
					timer.Stop()
					return swap(req)
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		if !ok {
			if err := ctx.Err(); err != nil {
				return err
			}
			return p.wrap("subscription ended", recvErr)
		}
		switch m.Kind {
		case verity.MessageEvent:
			if !dirty {
				dirty, deadline = true, time.Now().Add(p.cfg.MaxWait)
			}
			batch = append(batch, m.Event)
			next.pos = m.Event.Position
			if stream {
				next.rev = m.Event.Revision + 1
			}
		case verity.MessageCheckpoint:
			if !stream && m.Position > next.pos {
				next.pos = m.Position
				if !dirty {
					dirty, deadline = true, time.Now().Add(p.cfg.MaxWait)
				}
			}
		case verity.MessageCaughtUp:
			if !stream && m.Position > next.pos {
				next.pos, dirty = m.Position, true
			}
			if err := flush(); err != nil {
				return err
			}
			if untilCaughtUp {
				return nil
			}
			p.mu.Lock()
			p.caughtUp = true
			p.lastErr = nil
			p.mu.Unlock()
		}
	}
}
