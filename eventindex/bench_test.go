package eventindex_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/eventindex"
)

// BenchmarkCatchUp measures the index catching up from scratch with a log of
// VERITY_INDEX_BENCH_EVENTS events (default 100,000), 10 per stream, a third of them with a
// causation and correlation id: events/s of the catch-up and the index file's bytes per
// event. docs/server.md quotes it for 1,000,000 events:
//
//	VERITY_INDEX_BENCH_EVENTS=1000000 go test -run '^$' -bench CatchUp -benchtime 1x ./eventindex
func BenchmarkCatchUp(b *testing.B) {
	n := 100_000
	if s := os.Getenv("VERITY_INDEX_BENCH_EVENTS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 100 {
			b.Fatalf("VERITY_INDEX_BENCH_EVENTS=%q: want a number of events, at least 100", s)
		}
		n = v
	}
	e := openEngine(b)
	last := fillLog(b, e, n)
	b.ResetTimer()
	var secs float64
	var bytes int64
	for i := 0; i < b.N; i++ {
		path := filepath.Join(b.TempDir(), "index.sqlite")
		start := time.Now()
		x, err := eventindex.Open(e, eventindex.Config{Path: path, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		waitIndexedFor(b, x, last, time.Hour)
		secs += time.Since(start).Seconds()
		if err := x.Close(); err != nil {
			b.Fatal(err)
		}
		bytes += fileSize(b, path)
	}
	b.ReportMetric(float64(b.N)*float64(n)/secs, "events/s")
	b.ReportMetric(float64(bytes)/float64(b.N)/float64(n), "bytes/event")
}

// fillLog appends n events (rounded down to a hundred), 10 to each stream, and returns
// the last position.
func fillLog(tb testing.TB, s verity.Store, n int) uint64 {
	tb.Helper()
	ctx := context.Background()
	var last uint64
	cause := uuid.NewString()
	for i := 0; i < n/100; i++ {
		apps := make([]verity.StreamAppend, 10)
		for j := range apps {
			evs := make([]verity.EventData, 10)
			for k := range evs {
				var md []byte
				if k%3 == 0 {
					md = fmt.Appendf(nil, `{"$causationId":%q,"$correlationId":%q}`, cause, cause)
				}
				evs[k] = verity.EventData{ID: uuid.New(), Type: "ItemAdded", Data: fmt.Appendf(nil, `{"sku":"sku-%d","qty":%d}`, k, j), Metadata: md}
			}
			apps[j] = verity.StreamAppend{Stream: fmt.Sprintf("cart-%d-%d", i, j), Expected: verity.NoStream(), Events: evs}
		}
		res, err := s.AppendMulti(ctx, apps...)
		if err != nil {
			tb.Fatalf("append: %v", err)
		}
		last = res[len(res)-1].Position
	}
	return last
}

func fileSize(tb testing.TB, path string) int64 {
	tb.Helper()
	var total int64
	for _, suffix := range []string{"", "-wal"} {
		fi, err := os.Stat(path + suffix)
		if err == nil {
			total += fi.Size()
		}
	}
	return total
}
