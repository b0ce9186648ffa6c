package projection_test

import (
	"context"
	"os"
	"testing"

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
	waitCaughtUp(b, p, uint64(b.N))
	b.StopTimer()
	stop()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
