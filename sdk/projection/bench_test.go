package projection_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/verity-dev/verity/sdk/projection"
)

// go test -run '^$' -bench Projection -benchtime 200000x ./sdk/projection/
// projects b.N events (deposits to 1,000 streams, JSON decoded by the handler, two upserts
// each) from the start of the log; the time is the projecting only.
func BenchmarkProjectionSQLite(b *testing.B) { benchmarkProjection(b, sqliteKind) }

func BenchmarkProjectionPostgres(b *testing.B) {
	if os.Getenv(postgresEnv) == "" {
		b.Skipf("set %s to run it", postgresEnv)
	}
	benchmarkProjection(b, postgresKind)
}

func benchmarkProjection(b *testing.B, kind targetKind) {
	s := openStore(b, b.TempDir())
	defer s.Close()
	appendDeposits(b, s, "acct", 1000, b.N, 100)
	tg := kind.open(b, kind.fresh(b))
	defer tg.Close()
	p, err := projection.New(s, tg, ledger("bench"), projection.Config{})
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Setup(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	stop := running(b, p)
	// Polling the checkpoint row is cheap; Status would also read the log's head, on the
	// cores the projection needs.
	waitFor(b, fmt.Sprintf("checkpoint at %d", b.N), time.Minute, func() (bool, error) {
		var pos int64
		err := queryInt(tg, `SELECT position FROM verity_projections WHERE name = 'bench'`, &pos)
		return err == nil && pos >= int64(b.N), err
	})
	b.StopTimer()
	stop()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func queryInt(tg projection.Target, stmt string, dest *int64) error {
	rows, err := tg.Query(context.Background(), stmt)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		return errors.Join(rows.Err(), errors.New("no row"))
	}
	return errors.Join(rows.Scan(dest), rows.Close())
}
