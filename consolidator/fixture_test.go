package consolidator_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/consolidator"
	"github.com/verity-dev/verity/engine"
	"github.com/verity-dev/verity/sdk/projection/postgres"
)

const postgresEnv = "VERITY_TEST_POSTGRES"

// env is a store and a database for the read models; config returns a Config that reaches
// the same database every time (a restart).
type env struct {
	store  *engine.Engine
	kind   string
	config func() consolidator.Config
}

// forEachTarget runs test on SQLite, and on PostgreSQL when VERITY_TEST_POSTGRES is set.
func forEachTarget(t *testing.T, test func(t *testing.T, e env)) {
	t.Run("on sqlite", func(t *testing.T) {
		dsn := "sqlite:" + filepath.Join(t.TempDir(), "views.db")
		test(t, env{store: openStore(t), kind: "sqlite", config: func() consolidator.Config {
			return consolidator.Config{DSN: dsn, MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}
		}})
	})
	t.Run("on postgres", func(t *testing.T) {
		url := os.Getenv(postgresEnv)
		if url == "" {
			t.Skipf("PostgreSQL tests need %s, e.g. %s=postgres://postgres@127.0.0.1:5432/test?sslmode=disable go test ./consolidator/", postgresEnv, postgresEnv)
		}
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		schema := "consolidator_test_" + hex.EncodeToString(b)
		tg, err := postgres.Open(context.Background(), url, postgres.Options{Schema: schema})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if _, err := tg.Pool().Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE"); err != nil {
				t.Errorf("drop schema %s: %v", schema, err)
			}
			tg.Close()
		})
		test(t, env{store: openStore(t), kind: "postgres", config: func() consolidator.Config {
			return consolidator.Config{Target: tg, MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}
		}})
	})
}

func openStore(t testing.TB) *engine.Engine {
	t.Helper()
	e, err := engine.Open(engine.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// newConsolidator returns a consolidator of e with the YAML projections, closed when the
// test ends.
func newConsolidator(t testing.TB, e env, yaml string) *consolidator.Consolidator {
	t.Helper()
	c, err := consolidator.New(e.store, e.config())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if yaml != "" {
		fc, err := consolidator.ParseConfig([]byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.AddConfig(fc); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func appendJSON(t testing.TB, s verity.Store, stream, typ string, data string, meta ...string) verity.AppendResult {
	t.Helper()
	ev := verity.EventData{Type: typ, Data: []byte(data)}
	if len(meta) > 0 {
		ev.Metadata = []byte(meta[0])
	}
	res, err := s.Append(context.Background(), stream, verity.Any(), ev)
	if err != nil {
		t.Fatal(err)
	}
	return res
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

// allEvents reads the whole log.
func allEvents(t testing.TB, s verity.Store) []verity.RecordedEvent {
	t.Helper()
	var out []verity.RecordedEvent
	from := uint64(1)
	for {
		evs, err := s.ReadAll(context.Background(), verity.ReadAllOptions{From: from, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			return out
		}
		out = append(out, evs...)
		from = evs[len(evs)-1].Position + 1
	}
}

// waitFor polls cond until it holds or 30s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 30s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitCaughtUp waits until every projection's position is the head of the log.
func waitCaughtUp(t testing.TB, c *consolidator.Consolidator, s verity.Store) {
	t.Helper()
	h := head(t, s)
	for _, name := range c.Names() {
		waitFor(t, fmt.Sprintf("%s at position %d", name, h), func() bool {
			st, err := c.Status(context.Background(), name)
			if err != nil {
				t.Fatal(err)
			}
			return st.Position >= h
		})
	}
}

// readTable reads a table's rows, ordered by its first column, each as column -> text.
func readTable(t testing.TB, c *consolidator.Consolidator, table string) []map[string]string {
	t.Helper()
	rows, err := c.Target().Query(context.Background(), "SELECT * FROM "+table+" ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var cols []string
	switch r := rows.(type) {
	case interface{ Columns() ([]string, error) }:
		if cols, err = r.Columns(); err != nil {
			t.Fatal(err)
		}
	case interface {
		FieldDescriptions() []pgconn.FieldDescription
	}:
		for _, f := range r.FieldDescriptions() {
			cols = append(cols, f.Name)
		}
	}
	var out []map[string]string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := map[string]string{}
		for i, col := range cols {
			row[col] = text(vals[i])
		}
		out = append(out, row)
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}

// text normalizes a value read back from either target.
func text(v any) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case time.Time:
		return v.UTC().Format(time.RFC3339Nano)
	case []byte:
		return text(string(v))
	case string:
		if tm, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return tm.UTC().Format(time.RFC3339Nano)
		}
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	case int32:
		return strconv.FormatInt(int64(v), 10)
	case map[string]any, []any:
		b, _ := json.Marshal(v)
		return string(b)
	case bool:
		if v {
			return "1"
		}
		return "0"
	}
	return fmt.Sprint(v)
}
