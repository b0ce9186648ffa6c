package projection_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/sdk/projection"
)

func TestProjectionCatchesUpThenFollowsTheLogExactlyOnce(t *testing.T) {
	forEachTarget(t, func(t *testing.T, kind targetKind) {
		s := openStore(t, t.TempDir())
		defer s.Close()
		tg := kind.open(t, kind.fresh(t))
		defer tg.Close()
		appendDeposits(t, s, "acct", 50, 1500, 5)

		p, err := projection.New(s, tg, ledger("ledger"), projection.Config{BatchSize: 300})
		if err != nil {
			t.Fatal(err)
		}
		stop := running(t, p)
		waitCaughtUp(t, p, head(t, s))
		sameView(t, readView(t, tg), fold(t, s, verity.Filter{}, 0))

		// Live: one event at a time, then a burst.
		appendDeposits(t, s, "acct", 7, 20, 1)
		appendDeposits(t, s, "vip", 3, 300, 20)
		waitCaughtUp(t, p, head(t, s))
		if err := stop(); !errors.Is(err, context.Canceled) {
			t.Fatalf("Run returned %v, want context.Canceled", err)
		}
		sameView(t, readView(t, tg), fold(t, s, verity.Filter{}, 0))

		// A restart resumes at the checkpoint: nothing is applied twice.
		appendDeposits(t, s, "acct", 5, 100, 10)
		stop = running(t, p)
		waitCaughtUp(t, p, head(t, s))
		stop()
		sameView(t, readView(t, tg), fold(t, s, verity.Filter{}, 0))
	})
}

func TestProjectionOfAFilteredLogMovesItsCheckpointPastLeftOutEvents(t *testing.T) {
	forEachTarget(t, func(t *testing.T, kind targetKind) {
		s := openStore(t, t.TempDir())
		defer s.Close()
		tg := kind.open(t, kind.fresh(t))
		defer tg.Close()
		appendDeposits(t, s, "acct", 10, 200, 10)
		appendDeposits(t, s, "noise", 10, 3000, 50) // more than CheckpointEvery after the last match

		filter := verity.Filter{Categories: []string{"acct"}}
		p, err := projection.New(s, tg, ledger("accts"), projection.Config{Filter: filter})
		if err != nil {
			t.Fatal(err)
		}
		stop := running(t, p)
		waitCaughtUp(t, p, head(t, s))
		appendDeposits(t, s, "noise", 3, 30, 10)
		appendDeposits(t, s, "acct", 3, 30, 10)
		appendDeposits(t, s, "noise", 3, 30, 10)
		waitCaughtUp(t, p, head(t, s))
		stop()
		got, want := readView(t, tg), fold(t, s, filter, 0)
		sameView(t, got, want)
		if _, ok := got.categories["noise"]; ok {
			t.Errorf("the filter let noise through: %v", got)
		}
		st, err := p.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.LagEvents != 0 || st.Lag != 0 {
			t.Errorf("caught up, yet lag %d events, %v", st.LagEvents, st.Lag)
		}
	})
}

func TestProjectionOfOneStream(t *testing.T) {
	forEachTarget(t, func(t *testing.T, kind targetKind) {
		s := openStore(t, t.TempDir())
		defer s.Close()
		tg := kind.open(t, kind.fresh(t))
		defer tg.Close()
		appendDeposits(t, s, "acct", 4, 400, 10) // acct-0 gets 100 of them
		p, err := projection.New(s, tg, ledger("one"), projection.Config{Stream: "acct-0", BatchSize: 30})
		if err != nil {
			t.Fatal(err)
		}
		stop := running(t, p)
		waitFor(t, "100 events of acct-0", 10*time.Second, func() (bool, error) {
			st, err := p.Status(context.Background())
			return st.Revision == 100, err
		})
		appendDeposits(t, s, "acct", 1, 10, 1) // 10 more in acct-0
		waitFor(t, "110 events of acct-0", 10*time.Second, func() (bool, error) {
			st, err := p.Status(context.Background())
			return st.Revision == 110, err
		})
		stop()
		got := readView(t, tg)
		want := fold(t, s, verity.Filter{StreamRegexp: "^acct-0$"}, 0)
		sameView(t, got, want)
		if len(got.accounts) != 1 {
			t.Errorf("accounts %v, want acct-0 alone", got.accounts)
		}
		st, err := p.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.Position != head(t, s) || st.LagEvents != 0 {
			t.Errorf("status %+v: want position %d, no lag", st, head(t, s))
		}
	})
}

func TestHandlersReadTheirBatchsEarlierWrites(t *testing.T) {
	forEachTarget(t, func(t *testing.T, kind targetKind) {
		s := openStore(t, t.TempDir())
		defer s.Close()
		tg := kind.open(t, kind.fresh(t))
		defer tg.Close()
		appendDeposits(t, s, "acct", 3, 300, 3)
		// Each event records the account's total before it, read from the view.
		proj := ledger("reads")
		proj.Tables = append(proj.Tables, projection.Table{Name: "befores", Create: []string{
			`CREATE TABLE {befores} (position BIGINT PRIMARY KEY, before BIGINT NOT NULL)`}})
		proj.Handle = func(ctx context.Context, tx projection.Tx, e verity.RecordedEvent) error {
			var before int64
			err := tx.QueryRow(ctx, `SELECT total FROM {accounts} WHERE stream = $1`, e.Stream).Scan(&before)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			if err := tx.Exec(ctx, `INSERT INTO {befores} (position, before) VALUES ($1, $2)`, int64(e.Position), before); err != nil {
				return err
			}
			return ledgerHandle(ctx, tx, e)
		}
		p, err := projection.New(s, tg, proj, projection.Config{BatchSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		stop := running(t, p)
		waitCaughtUp(t, p, head(t, s))
		stop()
		rows, err := tg.Query(context.Background(), `SELECT position, before FROM befores ORDER BY position`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		totals := map[string]int64{}
		evs, err := s.ReadAll(context.Background(), verity.ReadAllOptions{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for ; rows.Next(); n++ {
			var pos, before int64
			if err := rows.Scan(&pos, &before); err != nil {
				t.Fatal(err)
			}
			e := evs[pos-1]
			if before != totals[e.Stream] {
				t.Fatalf("event at %d read total %d before it, want %d", pos, before, totals[e.Stream])
			}
			var amount int64
			fmt.Sscanf(string(e.Data), `{"amount":%d}`, &amount)
			totals[e.Stream] += amount
		}
		if n != 300 {
			t.Errorf("%d befores, want 300", n)
		}
	})
}

func TestAFailingHandlerStopsTheProjectionAndNamesTheEvent(t *testing.T) {
	forEachTarget(t, func(t *testing.T, kind targetKind) {
		s := openStore(t, t.TempDir())
		defer s.Close()
		tg := kind.open(t, kind.fresh(t))
		defer tg.Close()
		appendDeposits(t, s, "acct", 4, 100, 1)
		res, err := s.Append(context.Background(), "acct-9", verity.Any(), verity.EventData{Type: "Deposited", Data: []byte(`{"amount":"lots"}`)})
		if err != nil {
			t.Fatal(err)
		}
		appendDeposits(t, s, "acct", 4, 100, 1)

		p, err := projection.New(s, tg, ledger("fails"), projection.Config{BatchSize: 30})
		if err != nil {
			t.Fatal(err)
		}
		err = p.Run(context.Background())
		var ve *verity.Error
		if !errors.As(err, &ve) || ve.Stream != "acct-9" || !strings.Contains(err.Error(), fmt.Sprintf("position %d", res.Position)) {
			t.Fatalf("Run returned %v, want the error of acct-9 at position %d", err, res.Position)
		}
		st, err := p.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		// Batches of 30 from position 1: the one holding 101 starts at 91.
		if st.Position != 90 || st.LastError == nil || st.LagEvents != head(t, s)-90 {
			t.Errorf("status %+v: want position 90, the last error, lag %d", st, head(t, s)-90)
		}
		sameView(t, readView(t, tg), fold(t, s, verity.Filter{}, 90))
	})
}

// A statement that fails only when PostgreSQL runs it (pipelined) is still reported
// against the event whose handler made it, with the kind of a handler's error (Internal),
// whether it surfaces when the checkpoint is written or in a later event's query.
func TestAFailingStatementIsReportedAgainstItsEvent(t *testing.T) {
	for _, tt := range []struct {
		name    string
		streams int
		query   bool // every other handler queries the view after its writes
	}{
		{"when the batch commits", 4, false},
		{"when a later event of its stream queries", 1, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			forEachTarget(t, func(t *testing.T, kind targetKind) {
				s := openStore(t, t.TempDir())
				defer s.Close()
				tg := kind.open(t, kind.fresh(t))
				defer tg.Close()
				appendDeposits(t, s, "acct", tt.streams, 40, 1)
				proj := ledger("bad_sql")
				proj.Handle = func(ctx context.Context, tx projection.Tx, e verity.RecordedEvent) error {
					if e.Position == 17 {
						return tx.Exec(ctx, `INSERT INTO {categories} (category, n) VALUES ($1, NULL)`, "bad")
					}
					if err := ledgerHandle(ctx, tx, e); err != nil || !tt.query {
						return err
					}
					var n int64
					return tx.QueryRow(ctx, `SELECT n FROM {accounts} WHERE stream = $1`, e.Stream).Scan(&n)
				}
				p, err := projection.New(s, tg, proj, projection.Config{})
				if err != nil {
					t.Fatal(err)
				}
				err = p.Run(context.Background())
				if err == nil || !strings.Contains(err.Error(), "position 17,") || strings.Contains(err.Error(), "position 18,") {
					t.Fatalf("Run returned %v, want the error of the event at position 17 only", err)
				}
				if k := verity.KindOf(err); k != verity.Internal {
					t.Errorf("Run returned an error of kind %v (%v), want Internal", k, err)
				}
			})
		})
	}
}

func TestStatusReportsLagInEventsAndTime(t *testing.T) {
	forEachTarget(t, func(t *testing.T, kind targetKind) {
		s := openStore(t, t.TempDir())
		defer s.Close()
		tg := kind.open(t, kind.fresh(t))
		defer tg.Close()
		var now atomic.Int64
		p, err := projection.New(s, tg, ledger("lag"), projection.Config{Now: func() time.Time { return time.Unix(0, now.Load()) }})
		if err != nil {
			t.Fatal(err)
		}
		st, err := p.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.LagEvents != 0 || st.Lag != 0 || st.Position != 0 || st.Generation != 1 {
			t.Errorf("empty log: status %+v", st)
		}
		appendDeposits(t, s, "acct", 2, 40, 1)
		first, err := s.ReadAll(context.Background(), verity.ReadAllOptions{Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		now.Store(first[0].Created.Add(90 * time.Second).UnixNano())
		st, err = p.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.LagEvents != 40 || st.Lag != 90*time.Second {
			t.Errorf("40 events behind: lag %d events, %v; want 40, 1m30s", st.LagEvents, st.Lag)
		}
		stop := running(t, p)
		waitCaughtUp(t, p, 40)
		st, err = p.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.LagEvents != 0 || st.Lag != 0 || !st.Running {
			t.Errorf("caught up: status %+v", st)
		}
		stop()
	})
}

func TestRebuildSwapsANewGenerationInAtomically(t *testing.T) {
	forEachTarget(t, func(t *testing.T, kind targetKind) {
		s := openStore(t, t.TempDir())
		defer s.Close()
		tg := kind.open(t, kind.fresh(t))
		defer tg.Close()
		appendDeposits(t, s, "acct", 20, 1000, 10)
		p, err := projection.New(s, tg, ledger("swap"), projection.Config{BatchSize: 200})
		if err != nil {
			t.Fatal(err)
		}
		stop := running(t, p)
		waitCaughtUp(t, p, head(t, s))

		// Readers check, in one statement, that the view holds exactly the events up to its
		// checkpoint: every event counts 1 in its category.
		ctx, cancel := context.WithCancel(context.Background())
		var readers sync.WaitGroup
		var reads atomic.Int64
		var bad atomic.Value
		readers.Go(func() {
			for ctx.Err() == nil {
				var n, pos int64
				err := queryOne(ctx, tg, `SELECT (SELECT COALESCE(SUM(n), 0) FROM categories), (SELECT position FROM verity_projections WHERE name = 'swap')`, &n, &pos)
				if err != nil && ctx.Err() == nil {
					bad.Store(fmt.Sprintf("read: %v", err))
					return
				}
				if err == nil && n != pos {
					bad.Store(fmt.Sprintf("the view counts %d events at checkpoint %d", n, pos))
					return
				}
				reads.Add(1)
			}
		})
		// Writers keep the live projection busy during the rebuild.
		var writers sync.WaitGroup
		writers.Go(func() {
			for i := 0; ctx.Err() == nil && i < 25; i++ {
				appendDeposits(t, s, "acct", 20, 20, 5)
			}
		})
		if err := p.Rebuild(context.Background()); err != nil {
			t.Fatal(err)
		}
		st, err := p.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.Generation != 2 || st.Rebuilding {
			t.Errorf("after a rebuild: status %+v, want generation 2", st)
		}
		writers.Wait()
		waitCaughtUp(t, p, head(t, s))
		cancel()
		readers.Wait()
		if msg := bad.Load(); msg != nil {
			t.Fatal(msg)
		}
		if reads.Load() == 0 {
			t.Fatal("no reader read")
		}
		sameView(t, readView(t, tg), fold(t, s, verity.Filter{}, 0))

		// And again while Run is stopped: the swap happens at the head of the log.
		stop()
		appendDeposits(t, s, "acct", 3, 30, 3)
		if err := p.Rebuild(context.Background()); err != nil {
			t.Fatal(err)
		}
		st, err = p.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.Generation != 3 || st.Position != head(t, s) {
			t.Errorf("after a rebuild of a stopped projection: status %+v, want generation 3 at %d", st, head(t, s))
		}
		sameView(t, readView(t, tg), fold(t, s, verity.Filter{}, 0))
		// The old generations' tables are gone.
		for _, name := range []string{"accounts__g2", "accounts__g3", "categories__g3"} {
			if err := queryOne(context.Background(), tg, "SELECT COUNT(*) FROM "+name, new(int64)); err == nil {
				t.Errorf("table %s is left", name)
			}
		}
	})
}

func TestRebuildResumesAfterAnInterruption(t *testing.T) {
	forEachTarget(t, func(t *testing.T, kind targetKind) {
		s := openStore(t, t.TempDir())
		defer s.Close()
		tg := kind.open(t, kind.fresh(t))
		defer tg.Close()
		appendDeposits(t, s, "acct", 10, 2000, 10)
		var applied atomic.Int64
		ctx, cancel := context.WithCancel(context.Background())
		proj := ledger("resume")
		proj.Handle = func(c context.Context, tx projection.Tx, e verity.RecordedEvent) error {
			if applied.Add(1) == 1200 {
				cancel() // interrupt the rebuild midway
			}
			return ledgerHandle(c, tx, e)
		}
		p, err := projection.New(s, tg, proj, projection.Config{BatchSize: 100})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Rebuild(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted Rebuild returned %v", err)
		}
		st, err := p.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !st.Rebuilding || st.RebuildPosition == 0 || st.RebuildPosition >= 2000 || st.Generation != 1 {
			t.Fatalf("status %+v: want a rebuild in progress past 0 and generation 1", st)
		}
		applied.Store(0)
		if err := p.Rebuild(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := applied.Load(); got != int64(2000-st.RebuildPosition) {
			t.Errorf("the resumed rebuild applied %d events, want %d", got, 2000-st.RebuildPosition)
		}
		sameView(t, readView(t, tg), fold(t, s, verity.Filter{}, 0))
	})
}

func TestTwoProjectorsOfOneProjectionDoNotBothApplyABatch(t *testing.T) {
	forEachTarget(t, func(t *testing.T, kind targetKind) {
		s := openStore(t, t.TempDir())
		defer s.Close()
		dsn := kind.fresh(t)
		tg := kind.open(t, dsn)
		defer tg.Close()
		p1, err := projection.New(s, tg, ledger("twice"), projection.Config{})
		if err != nil {
			t.Fatal(err)
		}
		if err := p1.Setup(context.Background()); err != nil {
			t.Fatal(err)
		}
		appendDeposits(t, s, "acct", 2, 10, 1)
		// p2 reads the checkpoint (0) and subscribes; then p1 moves the checkpoint; p2's
		// first commit must fail.
		gated := &gatedStore{Store: s, entered: make(chan struct{}), gate: make(chan struct{})}
		tg2 := kind.open(t, dsn)
		defer tg2.Close()
		p2, err := projection.New(gated, tg2, ledger("twice"), projection.Config{})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- p2.Run(context.Background()) }()
		<-gated.entered
		stop := running(t, p1)
		waitCaughtUp(t, p1, 10)
		stop()
		close(gated.gate)
		if err := <-done; !errors.Is(err, verity.ErrConflict) {
			t.Fatalf("the second projector's Run returned %v, want Conflict", err)
		}
		sameView(t, readView(t, tg), fold(t, s, verity.Filter{}, 0))
	})
}

func TestBadProjectionsAndConfigsAreInvalid(t *testing.T) {
	ok := ledger("ok")
	tests := []struct {
		name string
		proj func(p *projection.Projection)
		cfg  projection.Config
	}{
		{"a name with a capital", func(p *projection.Projection) { p.Name = "Ledger" }, projection.Config{}},
		{"an empty name", func(p *projection.Projection) { p.Name = "" }, projection.Config{}},
		{"no handler", func(p *projection.Projection) { p.Handle = nil }, projection.Config{}},
		{"two handlers", func(p *projection.Projection) { p.HandleBatch = ledgerBatch }, projection.Config{}},
		{"a table name with __", func(p *projection.Projection) { p.Tables[0].Name = "a__b" }, projection.Config{}},
		{"a table declared twice", func(p *projection.Projection) { p.Tables[1].Name = p.Tables[0].Name }, projection.Config{}},
		{"the checkpoint table", func(p *projection.Projection) { p.Tables[0].Name = "verity_projections" }, projection.Config{}},
		{"a table without DDL", func(p *projection.Projection) { p.Tables[0].Create = nil }, projection.Config{}},
		{"a negative batch size", nil, projection.Config{BatchSize: -1}},
		{"a huge batch size", nil, projection.Config{BatchSize: projection.MaxBatchSize + 1}},
		{"a negative wait", nil, projection.Config{MaxWait: -time.Second}},
		{"a stream with a filter", nil, projection.Config{Stream: "a-1", Filter: verity.Filter{Categories: []string{"a"}}}},
		{"a bad filter", nil, projection.Config{Filter: verity.Filter{StreamRegexp: "("}}},
		{"$all as the stream", nil, projection.Config{Stream: verity.AllStream}},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is invalid", func(t *testing.T) {
			p := ok
			p.Tables = append([]projection.Table(nil), ok.Tables...)
			if tt.proj != nil {
				tt.proj(&p)
			}
			_, err := projection.New(nil, nil, p, tt.cfg)
			if !errors.Is(err, verity.ErrInvalid) {
				t.Errorf("New returned %v, want Invalid", err)
			}
		})
	}
}

func queryOne(ctx context.Context, tg projection.Target, stmt string, dest ...any) error {
	rows, err := tg.Query(ctx, stmt)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	return rows.Close()
}

// gatedStore holds its first Subscribe until gate is closed.
type gatedStore struct {
	verity.Store
	once    sync.Once
	entered chan struct{}
	gate    chan struct{}
}

func (g *gatedStore) Subscribe(ctx context.Context, opts verity.SubscribeOptions) (verity.Subscription, error) {
	g.once.Do(func() {
		close(g.entered)
		<-g.gate
	})
	return g.Store.Subscribe(ctx, opts)
}

func TestProjectorsSettingUpOneDatabaseAtOnceAllSucceed(t *testing.T) {
	forEachTarget(t, func(t *testing.T, kind targetKind) {
		s := openStore(t, t.TempDir())
		defer s.Close()
		appendDeposits(t, s, "acct", 2, 10, 1)
		for round := range 5 {
			dsn := kind.fresh(t)
			// One projection of a consolidator with its own tables, and three projectors of
			// another, each on its own connection pool as separate processes would be.
			other := projection.Projection{
				Name:   "other",
				Tables: []projection.Table{{Name: "other", Create: []string{`CREATE TABLE {other} (k TEXT PRIMARY KEY)`}}},
				Handle: func(context.Context, projection.Tx, verity.RecordedEvent) error { return nil },
			}
			var projectors []*projection.Projector
			for i := range 4 {
				tg := kind.open(t, dsn)
				defer tg.Close()
				proj := ledger("ledger")
				if i == 0 {
					proj = other
				}
				p, err := projection.New(s, tg, proj, projection.Config{})
				if err != nil {
					t.Fatal(err)
				}
				projectors = append(projectors, p)
			}
			errs := make(chan error, len(projectors))
			for _, p := range projectors {
				go func() { errs <- p.Setup(context.Background()) }()
			}
			for range projectors {
				if err := <-errs; err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
			}
			for _, p := range projectors {
				st, err := p.Status(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if st.Position != 0 || st.Generation != 1 {
					t.Fatalf("round %d: projection %s starts at position %d generation %d, want 0 and 1", round, st.Name, st.Position, st.Generation)
				}
			}
		}
	})
}
