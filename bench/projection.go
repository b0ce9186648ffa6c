package bench

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/sdk/projection"
	"github.com/verity-dev/verity/sdk/projection/postgres"
	"github.com/verity-dev/verity/sdk/projection/sqlite"
)

// Targets of the projection workload, as reported in the "system" field; each is also
// measured with a batch handler (Projection.HandleBatch), reported as TARGET-batch, and
// with the naive projection, reported as TARGET-naive.
const (
	TargetSQLite   = "sqlite"
	TargetPostgres = "postgres"
	batchSuffix    = "-batch"
	naiveSuffix    = "-naive"
)

// ProjectionTargets lists the projection workload's targets.
var ProjectionTargets = []string{TargetSQLite, TargetPostgres}

// DefaultNaiveEvents is how many events the naive projection applies by default: one
// transaction per event takes minutes for a million.
const DefaultNaiveEvents = 20_000

// The projected view: per stream a running total of the payloads' numbers and a count,
// per category a count.
const (
	benchProjection   = "bench"
	upsertBenchStream = `INSERT INTO {bench_streams} (stream, total, n) VALUES ($1, $2, 1)
		ON CONFLICT (stream) DO UPDATE SET total = {bench_streams}.total + excluded.total, n = {bench_streams}.n + 1`
	upsertBenchCategory = `INSERT INTO {bench_categories} (category, n) VALUES ($1, 1)
		ON CONFLICT (category) DO UPDATE SET n = {bench_categories}.n + 1`
)

// The same view written by a batch handler: it adds up the batch per stream and per
// category, then writes each row once.
const (
	addBenchStream = `INSERT INTO {bench_streams} (stream, total, n) VALUES ($1, $2, $3)
		ON CONFLICT (stream) DO UPDATE SET total = {bench_streams}.total + excluded.total, n = {bench_streams}.n + excluded.n`
	addBenchCategory = `INSERT INTO {bench_categories} (category, n) VALUES ($1, $2)
		ON CONFLICT (category) DO UPDATE SET n = {bench_categories}.n + excluded.n`
)

func benchView(handle projection.HandlerFunc, handleBatch projection.BatchHandlerFunc) projection.Projection {
	return projection.Projection{
		Name: benchProjection,
		Tables: []projection.Table{
			{Name: "bench_streams", Create: []string{`CREATE TABLE {bench_streams} (stream TEXT PRIMARY KEY, total BIGINT NOT NULL, n BIGINT NOT NULL)`}},
			{Name: "bench_categories", Create: []string{`CREATE TABLE {bench_categories} (category TEXT PRIMARY KEY, n BIGINT NOT NULL)`}},
		},
		Handle:      handle,
		HandleBatch: handleBatch,
	}
}

// benchHandleBatch writes the rows of the streams in the order the batch first touches
// them: the order matters to no one, and sorting would cost more than it tells.
func benchHandleBatch(ctx context.Context, tx projection.Tx, events []verity.RecordedEvent) error {
	type sums struct{ total, n int64 }
	var order []string
	streams := make(map[string]*sums, len(events))
	categories := map[string]int64{}
	for _, e := range events {
		n, err := payloadNumber(e.Data)
		if err != nil {
			return err
		}
		s := streams[e.Stream]
		if s == nil {
			s = &sums{}
			streams[e.Stream] = s
			order = append(order, e.Stream)
		}
		s.total += int64(n)
		s.n++
		categories[verity.Category(e.Stream)]++
	}
	for _, stream := range order {
		if err := tx.Exec(ctx, addBenchStream, stream, streams[stream].total, streams[stream].n); err != nil {
			return err
		}
	}
	for c, n := range categories {
		if err := tx.Exec(ctx, addBenchCategory, c, n); err != nil {
			return err
		}
	}
	return nil
}

func benchHandle(ctx context.Context, tx projection.Tx, e verity.RecordedEvent) error {
	n, err := payloadNumber(e.Data)
	if err != nil {
		return err
	}
	if err := tx.Exec(ctx, upsertBenchStream, e.Stream, int64(n)); err != nil {
		return err
	}
	return tx.Exec(ctx, upsertBenchCategory, verity.Category(e.Stream))
}

// runProjections builds a log of opts.Events events in an embedded store and projects
// it, from its start, into each target: with package projection (batched), then with the
// naive projection (one transaction per event) over the first opts.NaiveEvents events.
// Only the projecting is timed.
func (r *runner) runProjections(ctx context.Context) error {
	dir, err := os.MkdirTemp(r.dataDir, "projection-log-")
	if err != nil {
		return fmt.Errorf("scratch directory: %w", err)
	}
	defer removeStore(dir)
	vs, err := openVerity(dir)
	if err != nil {
		return err
	}
	defer vs.Close()
	streams := r.opts.Events / logStreamEvents
	r.prog.set("projection: building a log of %d events in %d streams", r.opts.Events, streams)
	start := time.Now()
	err = buildLog(ctx, vs, logSpec{prefix: "log-", streams: streams, perStream: logStreamEvents, chunk: logChunk, writers: logWriters},
		func(done int64) {
			r.prog.set("projection: building a log of %d events: %d%% (%.0f events/s)", r.opts.Events,
				done*100/int64(r.opts.Events), float64(done)/time.Since(start).Seconds())
		})
	if err != nil {
		return fmt.Errorf("build log: %w", err)
	}
	naive := min(r.opts.NaiveEvents, r.opts.Events)
	for _, target := range r.opts.ProjectionTargets {
		r.measure(ctx, target, WorkloadProjection, 1, handleBatchSize(target), func(ctx context.Context) (Result, error) {
			return r.projectBatched(ctx, vs.s, target, uint64(r.opts.Events), false)
		})
		r.measure(ctx, target+batchSuffix, WorkloadProjection, 1, projection.DefaultBatchSize, func(ctx context.Context) (Result, error) {
			return r.projectBatched(ctx, vs.s, target, uint64(r.opts.Events), true)
		})
		r.measure(ctx, target+naiveSuffix, WorkloadProjection, 1, 1, func(ctx context.Context) (Result, error) {
			return r.projectNaive(ctx, vs.s, target, uint64(naive))
		})
	}
	return nil
}

// handleBatchSize is the batch size a Projector picks for a per-event handler on target.
func handleBatchSize(target string) int {
	if target == TargetPostgres {
		return (*postgres.Target)(nil).DefaultBatchSize()
	}
	return projection.DefaultBatchSize
}

// openTarget opens a fresh database of a target, and returns what drops it.
func (r *runner) openTarget(ctx context.Context, target string) (projection.Target, func() error, error) {
	switch target {
	case TargetSQLite:
		dir, err := os.MkdirTemp(r.dataDir, "projection-sqlite-")
		if err != nil {
			return nil, nil, err
		}
		tg, err := sqlite.Open(filepath.Join(dir, "views.db"), sqlite.Options{})
		if err != nil {
			os.RemoveAll(dir)
			return nil, nil, err
		}
		return tg, func() error { return errors.Join(tg.Close(), os.RemoveAll(dir)) }, nil
	case TargetPostgres:
		schema := "verity_bench_" + randomSuffix()
		tg, err := postgres.Open(ctx, r.opts.PostgresURL, postgres.Options{Schema: schema})
		if err != nil {
			return nil, nil, err
		}
		return tg, func() error {
			_, err := tg.Pool().Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
			return errors.Join(err, tg.Close())
		}, nil
	}
	return nil, nil, fmt.Errorf("unknown projection target %q", target)
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// projectBatched runs package projection from the start of the log until its checkpoint
// reaches head, with the per-event handler or the batch handler; the latency is that of
// each batch's transaction.
func (r *runner) projectBatched(ctx context.Context, s verity.Store, target string, head uint64, batchHandler bool) (_ Result, err error) {
	tg, drop, err := r.openTarget(ctx, target)
	if err != nil {
		return Result{}, err
	}
	defer func() { err = errors.Join(err, drop()) }()
	tt := &timedTarget{Target: tg, head: head, done: make(chan struct{})}
	// tt.last is set on Run's goroutine, as Commit reads it.
	view := benchView(func(ctx context.Context, tx projection.Tx, e verity.RecordedEvent) error {
		tt.last = e.Position
		return benchHandle(ctx, tx, e)
	}, nil)
	if batchHandler {
		view = benchView(nil, func(ctx context.Context, tx projection.Tx, events []verity.RecordedEvent) error {
			tt.last = events[len(events)-1].Position
			return benchHandleBatch(ctx, tx, events)
		})
	}
	p, err := projection.New(s, tt, view, projection.Config{})
	if err != nil {
		return Result{}, err
	}
	if err := p.Setup(ctx); err != nil {
		return Result{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	runErr := make(chan error, 1)
	start := time.Now()
	go func() { runErr <- p.Run(ctx) }()
	select {
	case <-tt.done:
	case err := <-runErr:
		return Result{}, fmt.Errorf("projection ended early: %w", err)
	}
	elapsed := time.Since(start)
	cancel()
	if err := <-runErr; !errors.Is(err, context.Canceled) {
		return Result{}, err
	}
	var n int64
	if err := queryInt(ctx, tg, "SELECT SUM(n) FROM bench_categories", &n); err != nil {
		return Result{}, fmt.Errorf("count the view: %w", err)
	}
	if uint64(n) != head {
		return Result{}, fmt.Errorf("the view counts %d events, want %d", n, head)
	}
	return Result{
		EventsPerSec: float64(head) / elapsed.Seconds(),
		P50ms:        ms(tt.hist.quantile(0.50)),
		P99ms:        ms(tt.hist.quantile(0.99)),
		Events:       int64(head),
		ElapsedS:     elapsed.Seconds(),
		Ops:          int64(tt.hist.n),
	}, nil
}

func queryInt(ctx context.Context, tg projection.Target, stmt string, dest *int64) error {
	rows, err := tg.Query(context.WithoutCancel(ctx), stmt)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		return errors.Join(rows.Err(), errors.New("no row"))
	}
	return errors.Join(rows.Scan(dest), rows.Close())
}

// timedTarget times each transaction and closes done once one commits with the event at
// head. Transactions of one projection run one at a time, on Run's goroutine.
type timedTarget struct {
	projection.Target
	head uint64
	last uint64 // position of the last event handled
	hist histogram
	once sync.Once
	done chan struct{}
}

// DefaultBatchSize passes the target's choice on to the Projector.
func (t *timedTarget) DefaultBatchSize() int {
	if bs, ok := t.Target.(projection.BatchSizer); ok {
		return bs.DefaultBatchSize()
	}
	return projection.DefaultBatchSize
}

func (t *timedTarget) Begin(ctx context.Context) (projection.TargetTx, error) {
	tx, err := t.Target.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return &timedTx{TargetTx: tx, t: t, start: time.Now()}, nil
}

type timedTx struct {
	projection.TargetTx
	t     *timedTarget
	start time.Time
}

func (x *timedTx) Commit(ctx context.Context) error {
	if err := x.TargetTx.Commit(ctx); err != nil {
		return err
	}
	x.t.hist.record(time.Since(x.start))
	if x.t.last >= x.t.head {
		x.t.once.Do(func() { close(x.t.done) })
	}
	return nil
}

// projectNaive is what a projection written without package projection tends to be: one
// transaction per event, holding the event's upserts and the checkpoint, with the
// driver's defaults.
func (r *runner) projectNaive(ctx context.Context, s verity.Store, target string, upTo uint64) (_ Result, err error) {
	var apply func(ctx context.Context, e verity.RecordedEvent) error
	switch target {
	case TargetSQLite:
		dir, err := os.MkdirTemp(r.dataDir, "projection-naive-")
		if err != nil {
			return Result{}, err
		}
		defer os.RemoveAll(dir)
		q := url.Values{}
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(NORMAL)")
		q.Add("_pragma", "busy_timeout(5000)")
		db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "views.db")+"?"+q.Encode())
		if err != nil {
			return Result{}, err
		}
		defer db.Close()
		db.SetMaxOpenConns(1)
		if err := naiveSetup(ctx, func(stmt string) error { _, err := db.ExecContext(ctx, stmt); return err }); err != nil {
			return Result{}, err
		}
		apply = func(ctx context.Context, e verity.RecordedEvent) error {
			n, err := payloadNumber(e.Data)
			if err != nil {
				return err
			}
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			if _, err := tx.ExecContext(ctx, naiveUpsertStream, e.Stream, int64(n)); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, naiveUpsertCategory, verity.Category(e.Stream)); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, naiveCheckpoint, int64(e.Position)); err != nil {
				return err
			}
			return tx.Commit()
		}
	case TargetPostgres:
		schema := "verity_bench_" + randomSuffix()
		cfg, err := pgxpool.ParseConfig(r.opts.PostgresURL)
		if err != nil {
			return Result{}, err
		}
		cfg.ConnConfig.RuntimeParams["search_path"] = schema
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			return Result{}, err
		}
		defer pool.Close()
		if _, err := pool.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
			return Result{}, err
		}
		defer func() {
			_, derr := pool.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
			err = errors.Join(err, derr)
		}()
		if err := naiveSetup(ctx, func(stmt string) error { _, err := pool.Exec(ctx, stmt); return err }); err != nil {
			return Result{}, err
		}
		apply = func(ctx context.Context, e verity.RecordedEvent) error {
			n, err := payloadNumber(e.Data)
			if err != nil {
				return err
			}
			return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, naiveUpsertStream, e.Stream, int64(n)); err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, naiveUpsertCategory, verity.Category(e.Stream)); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, naiveCheckpoint, int64(e.Position))
				return err
			})
		}
	default:
		return Result{}, fmt.Errorf("unknown projection target %q", target)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sub, err := s.Subscribe(ctx, verity.SubscribeOptions{})
	if err != nil {
		return Result{}, err
	}
	defer sub.Close()
	var h histogram
	var n int64
	start := time.Now()
	for uint64(n) < upTo {
		m, err := sub.Recv(ctx)
		if err != nil {
			return Result{}, err
		}
		if m.Kind != verity.MessageEvent {
			continue
		}
		t0 := time.Now()
		if err := apply(ctx, m.Event); err != nil {
			return Result{}, fmt.Errorf("event at %d: %w", m.Event.Position, err)
		}
		h.record(time.Since(t0))
		n++
	}
	elapsed := time.Since(start)
	return Result{
		EventsPerSec: float64(n) / elapsed.Seconds(),
		P50ms:        ms(h.quantile(0.50)),
		P99ms:        ms(h.quantile(0.99)),
		Events:       n,
		ElapsedS:     elapsed.Seconds(),
		Ops:          int64(h.n),
	}, nil
}

const (
	naiveUpsertStream = `INSERT INTO bench_streams (stream, total, n) VALUES ($1, $2, 1)
		ON CONFLICT (stream) DO UPDATE SET total = bench_streams.total + excluded.total, n = bench_streams.n + 1`
	naiveUpsertCategory = `INSERT INTO bench_categories (category, n) VALUES ($1, 1)
		ON CONFLICT (category) DO UPDATE SET n = bench_categories.n + 1`
	naiveCheckpoint = `UPDATE bench_checkpoint SET position = $1`
)

func naiveSetup(_ context.Context, exec func(string) error) error {
	for _, stmt := range []string{
		`CREATE TABLE bench_streams (stream TEXT PRIMARY KEY, total BIGINT NOT NULL, n BIGINT NOT NULL)`,
		`CREATE TABLE bench_categories (category TEXT PRIMARY KEY, n BIGINT NOT NULL)`,
		`CREATE TABLE bench_checkpoint (position BIGINT NOT NULL)`,
		`INSERT INTO bench_checkpoint (position) VALUES (0)`,
	} {
		if err := exec(stmt); err != nil {
			return fmt.Errorf("%s: %w", stmt, err)
		}
	}
	return nil
}
