package projection_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/engine"
	"github.com/verity-dev/verity/sdk/projection"
	"github.com/verity-dev/verity/sdk/projection/postgres"
	"github.com/verity-dev/verity/sdk/projection/sqlite"
)

// postgresEnv holds the URL of the PostgreSQL the tests use; unset, they skip.
const postgresEnv = "VERITY_TEST_POSTGRES"

// A target under test: how to open it (again) and what to call it.
type targetKind struct {
	name string
	// open opens the target; the same dsn reaches the same database.
	open func(t testing.TB, dsn string) projectionTarget
	// fresh returns a dsn for a new, empty database.
	fresh func(t testing.TB) string
}

type projectionTarget interface {
	projection.Target
	Close() error
}

var sqliteKind = targetKind{
	name: "sqlite",
	open: func(t testing.TB, dsn string) projectionTarget {
		t.Helper()
		tg, err := sqlite.Open(dsn, sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return tg
	},
	fresh: func(t testing.TB) string { return filepath.Join(t.TempDir(), "views.db") },
}

var postgresKind = targetKind{
	name: "postgres",
	open: func(t testing.TB, dsn string) projectionTarget {
		t.Helper()
		url, schema, _ := strings.Cut(dsn, "#")
		tg, err := postgres.Open(context.Background(), url, postgres.Options{Schema: schema})
		if err != nil {
			t.Fatal(err)
		}
		return tg
	},
	// A schema of its own per test: packages and tests run in parallel on one database.
	fresh: func(t testing.TB) string {
		t.Helper()
		url := os.Getenv(postgresEnv)
		schema := "proj_test_" + randomHex(6)
		t.Cleanup(func() {
			tg, err := postgres.Open(context.Background(), url, postgres.Options{})
			if err != nil {
				t.Error(err)
				return
			}
			defer tg.Close()
			if _, err := tg.Pool().Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE"); err != nil {
				t.Errorf("drop schema %s: %v", schema, err)
			}
		})
		return url + "#" + schema
	},
}

// forEachTarget runs a test on SQLite, and on PostgreSQL when VERITY_TEST_POSTGRES is set.
func forEachTarget(t *testing.T, test func(t *testing.T, kind targetKind)) {
	t.Run("on sqlite", func(t *testing.T) { test(t, sqliteKind) })
	t.Run("on postgres", func(t *testing.T) {
		if os.Getenv(postgresEnv) == "" {
			t.Skipf("PostgreSQL tests need %s, e.g. %s=postgres://postgres@127.0.0.1:5432/test?sslmode=disable go test ./sdk/projection/...", postgresEnv, postgresEnv)
		}
		test(t, postgresKind)
	})
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func openStore(t testing.TB, dir string) *engine.Engine {
	t.Helper()
	e, err := engine.Open(engine.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// The ledger: every "Deposited" event of a stream adds its amount to the stream's row
// and counts one in its category's row.
type deposit struct {
	Amount int64 `json:"amount"`
}

const (
	upsertAccount = `INSERT INTO {accounts} (stream, total, n) VALUES ($1, $2, 1)
		ON CONFLICT (stream) DO UPDATE SET total = {accounts}.total + excluded.total, n = {accounts}.n + 1`
	upsertCategory = `INSERT INTO {categories} (category, n) VALUES ($1, 1)
		ON CONFLICT (category) DO UPDATE SET n = {categories}.n + 1`
)

func ledgerHandle(ctx context.Context, tx projection.Tx, e verity.RecordedEvent) error {
	var d deposit
	if err := json.Unmarshal(e.Data, &d); err != nil {
		return err
	}
	if err := tx.Exec(ctx, upsertAccount, e.Stream, d.Amount); err != nil {
		return err
	}
	return tx.Exec(ctx, upsertCategory, verity.Category(e.Stream))
}

func ledger(name string) projection.Projection {
	return projection.Projection{
		Name: name,
		Tables: []projection.Table{
			{Name: "accounts", Create: []string{
				`CREATE TABLE {accounts} (stream TEXT PRIMARY KEY, total BIGINT NOT NULL, n BIGINT NOT NULL)`,
				`CREATE INDEX {accounts}_by_total ON {accounts} (total)`,
			}},
			{Name: "categories", Create: []string{`CREATE TABLE {categories} (category TEXT PRIMARY KEY, n BIGINT NOT NULL)`}},
		},
		Handle: ledgerHandle,
	}
}

// view is the ledger's tables as read back.
type view struct {
	accounts   map[string][2]int64 // stream -> total, n
	categories map[string]int64
}

func (v view) String() string {
	return fmt.Sprintf("%d accounts, categories %v", len(v.accounts), v.categories)
}

func readView(t testing.TB, tg projection.Target) view {
	t.Helper()
	return readViewOf(t, tg, "accounts", "categories")
}

// readViewOf reads the ledger from the named tables (e.g. an as-of build's).
func readViewOf(t testing.TB, tg projection.Target, accounts, categories string) view {
	t.Helper()
	v := view{accounts: map[string][2]int64{}, categories: map[string]int64{}}
	rows, err := tg.Query(context.Background(), `SELECT stream, total, n FROM `+accounts)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		var total, n int64
		if err := rows.Scan(&s, &total, &n); err != nil {
			t.Fatal(err)
		}
		v.accounts[s] = [2]int64{total, n}
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	rows, err = tg.Query(context.Background(), `SELECT category, n FROM `+categories)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var c string
		var n int64
		if err := rows.Scan(&c, &n); err != nil {
			t.Fatal(err)
		}
		v.categories[c] = n
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	return v
}

// fold computes the ledger from the log, through a filter, up to position upTo (0: all).
func fold(t testing.TB, s verity.Store, f verity.Filter, upTo uint64) view {
	t.Helper()
	v := view{accounts: map[string][2]int64{}, categories: map[string]int64{}}
	from := uint64(1)
	for {
		evs, err := s.ReadAll(context.Background(), verity.ReadAllOptions{From: from, Filter: f})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			return v
		}
		for _, e := range evs {
			if upTo > 0 && e.Position > upTo {
				return v
			}
			var d deposit
			if err := json.Unmarshal(e.Data, &d); err != nil {
				t.Fatal(err)
			}
			a := v.accounts[e.Stream]
			v.accounts[e.Stream] = [2]int64{a[0] + d.Amount, a[1] + 1}
			v.categories[verity.Category(e.Stream)]++
		}
		from = evs[len(evs)-1].Position + 1
	}
}

func sameView(t testing.TB, got, want view) {
	t.Helper()
	bad := 0
	for s, w := range want.accounts {
		if g := got.accounts[s]; g != w && bad < 5 {
			t.Errorf("account %s: total, n = %v, want %v", s, g, w)
			bad++
		}
	}
	for s := range got.accounts {
		if _, ok := want.accounts[s]; !ok && bad < 5 {
			t.Errorf("account %s in the view but not in the log", s)
			bad++
		}
	}
	if fmt.Sprint(got.categories) != fmt.Sprint(want.categories) {
		t.Errorf("categories %v, want %v", got.categories, want.categories)
	}
}

// appendDeposits appends n deposits to streams prefix-0 .. prefix-(streams-1) in turn,
// the i-th of amount i+1, batch events per append.
func appendDeposits(t testing.TB, s verity.Store, prefix string, streams, n, batch int) {
	t.Helper()
	for i := 0; i < n; i += batch {
		stream := fmt.Sprintf("%s-%d", prefix, (i/batch)%streams)
		var evs []verity.EventData
		for j := i; j < min(i+batch, n); j++ {
			evs = append(evs, verity.EventData{Type: "Deposited", Data: fmt.Appendf(nil, `{"amount":%d}`, j+1)})
		}
		if _, err := s.Append(context.Background(), stream, verity.Any(), evs...); err != nil {
			t.Fatal(err)
		}
	}
}

func head(t testing.TB, s verity.Store) uint64 {
	t.Helper()
	evs, err := s.ReadAll(context.Background(), verity.ReadAllOptions{Direction: verity.Backwards, FromEnd: true, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) == 0 {
		return 0
	}
	return evs[0].Position
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v", what, d)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitCaughtUp waits until the projection's checkpoint is at position pos.
func waitCaughtUp(t testing.TB, p *projection.Projector, pos uint64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("checkpoint at %d", pos), 30*time.Second, func() (bool, error) {
		st, err := p.Status(context.Background())
		return err == nil && st.Position >= pos, err
	})
}

// running runs p in the background until the test ends, and returns a function that
// stops it and returns Run's error.
func running(t testing.TB, p *projection.Projector) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var err error
	stopped := false
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			err = <-done
		}
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}
