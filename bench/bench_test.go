package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain lets the scale workload re-execute the test binary as its child, and removes
// the verity binary that the verity-server tests build.
func TestMain(m *testing.M) {
	if IsChild() {
		if err := RunChild(context.Background(), os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "verity-bench-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	// Every store, subscription, worker and server process is stopped by its owner: none
	// may outlive the tests.
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

var (
	binDir    string // set by TestMain
	buildOnce sync.Once
	verityBin string
	buildErr  error
)

// verityCommand builds cmd/verity once per test binary (without -race: the server's speed is
// not what the race detector checks here) and returns the command that serves with it.
func verityCommand(t testing.TB) []string {
	t.Helper()
	buildOnce.Do(func() {
		bin := filepath.Join(binDir, "verity")
		// go test puts its own go first in PATH.
		out, err := exec.Command("go", "build", "-o", bin, "github.com/verity-dev/verity/cmd/verity").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/verity: %v\n%s", err, out)
			return
		}
		verityBin = bin
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return []string{verityBin, "serve"}
}

func tinyOptions(t testing.TB, system string) Options {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return Options{
		Systems:      []string{system},
		Workloads:    Workloads,
		Writers:      []int{1, 4},
		Batches:      []int{1, 10},
		Duration:     200 * time.Millisecond,
		Events:       2000,
		DataDir:      t.TempDir(),
		JSON:         true,
		ScaleStreams: 200,
		ScaleEvents:  2000,
		ScaleServe:   200 * time.Millisecond,
		ChildCommand: []string{exe},
	}
}

func TestEveryWorkloadReportsAResultLinePerMeasurement(t *testing.T) {
	for _, system := range []string{systemVerity, systemOwnlog, systemNATS} {
		t.Run(system, func(t *testing.T) {
			t.Parallel()
			opts := tinyOptions(t, system)
			var stdout, stderr bytes.Buffer
			if err := Run(t.Context(), opts, &stdout, &stderr); err != nil {
				t.Fatalf("run: %v\nstderr: %s", err, stderr.String())
			}
			if stderr.Len() > 0 {
				t.Errorf("with JSON, stderr should stay empty, got %q", stderr.String())
			}
			seen := map[string]int{}
			sc := bufio.NewScanner(&stdout)
			for sc.Scan() {
				line := sc.Bytes()
				var fields map[string]any
				if err := json.Unmarshal(line, &fields); err != nil {
					t.Fatalf("line %q is not JSON: %v", line, err)
				}
				for _, f := range []string{"system", "workload", "writers", "batch", "events_per_sec", "p50_ms", "p99_ms"} {
					if _, ok := fields[f]; !ok {
						t.Errorf("line %s has no field %q", line, f)
					}
				}
				var r Result
				if err := json.Unmarshal(line, &r); err != nil {
					t.Fatal(err)
				}
				// Projection lines name the SQL database projected into, not the store;
				// gateway lines the route measured (gateway or its peer).
				if r.System != system && r.Workload != WorkloadProjection && r.Workload != WorkloadGateway {
					t.Errorf("line %s: system %q, want %q", line, r.System, system)
				}
				if r.EventsPerSec <= 0 || r.Events <= 0 || r.Ops <= 0 {
					t.Errorf("line %s: want positive events_per_sec, events and ops", line)
				}
				if r.P99ms < r.P50ms {
					t.Errorf("line %s: p99 below p50", line)
				}
				if r.Workload == WorkloadScale && (r.ReopenS <= 0 || r.RSSMB <= 0) {
					t.Errorf("line %s: scale needs reopen_s and rss_mb", line)
				}
				seen[r.Workload]++
			}
			want := map[string]int{WorkloadAppend: 4, WorkloadReplay: 1, WorkloadReadStream: 2, WorkloadE2E: 1, WorkloadScale: 1}
			for w, n := range want {
				if seen[w] != n {
					t.Errorf("%s: %d result lines, want %d", w, seen[w], n)
				}
			}
			// Every store's directory was removed.
			left, err := os.ReadDir(opts.DataDir)
			if err != nil {
				t.Fatal(err)
			}
			if len(left) > 0 {
				t.Errorf("left behind in the data directory: %v", left)
			}
		})
	}
}

func TestTableComparesVerityWithEachPeer(t *testing.T) {
	results := []Result{
		{System: "verity", Workload: WorkloadAppend, Writers: 1, Batch: 1, EventsPerSec: 820, P50ms: 1, P99ms: 2},
		{System: "ownlog", Workload: WorkloadAppend, Writers: 1, Batch: 1, EventsPerSec: 1000, P50ms: 1, P99ms: 2},
		{System: "nats", Workload: WorkloadAppend, Writers: 1, Batch: 1, EventsPerSec: 410, P50ms: 1, P99ms: 2},
		{System: "verity", Workload: WorkloadE2E, Writers: 1, Batch: 1, EventsPerSec: 500, P50ms: 0.2, P99ms: 2, RateEPS: 500},
		{System: "nats", Workload: WorkloadE2E, Writers: 1, Batch: 1, EventsPerSec: 500, P50ms: 0.4, P99ms: 2, RateEPS: 500},
		{System: "verity-server", Workload: WorkloadE2E, Writers: 1, Batch: 1, EventsPerSec: 500, P50ms: 0.6, P99ms: 2, RateEPS: 500},
		{System: "verity-server", Workload: WorkloadAppend, Writers: 1, Batch: 1, EventsPerSec: 410, P50ms: 1, P99ms: 2},
	}
	var b strings.Builder
	if err := printTable(&b, results); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"verity/ownlog 0.82x", "verity/nats 2.00x", "p50 verity/nats 0.50x",
		"verity-server/verity 0.50x", "p50 verity-server/verity 3.00x (lower is better)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	// The server is compared with the engine, not the engine with the server.
	if strings.Contains(b.String(), "verity/verity-server") {
		t.Errorf("table compares the engine with its own server:\n%s", b.String())
	}
}

func TestMedianTakesEachNumberOverTheRuns(t *testing.T) {
	got := median([]Result{{EventsPerSec: 3, P99ms: 10}, {EventsPerSec: 1, P99ms: 30}, {EventsPerSec: 2, P99ms: 20}})
	if got.EventsPerSec != 2 || got.P99ms != 20 || got.Runs != 3 {
		t.Errorf("median = %+v, want events_per_sec 2, p99 20, runs 3", got)
	}
}

func TestHistogramQuantilesAreWithinTwoPercent(t *testing.T) {
	var h histogram
	for i := 1; i <= 10000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, q := range []float64{0.5, 0.99} {
		want := time.Duration(q*10000) * time.Microsecond
		got := h.quantile(q)
		if diff := float64(got-want) / float64(want); diff > 0.02 || diff < -0.02 {
			t.Errorf("quantile(%v) = %v, want %v within 2%%", q, got, want)
		}
	}
}

func TestPayloadIs200BytesOfJSONCarryingItsNumber(t *testing.T) {
	p := makePayload(123456789)
	if len(p) != PayloadSize {
		t.Errorf("payload is %d bytes, want %d", len(p), PayloadSize)
	}
	if !json.Valid(p) {
		t.Errorf("payload %s is not JSON", p)
	}
	if n, err := payloadNumber(p); err != nil || n != 123456789 {
		t.Errorf("payloadNumber = %d, %v; want 123456789", n, err)
	}
}

func TestOwnlogReopenKeepsEveryAcknowledgedEvent(t *testing.T) {
	dir := t.TempDir()
	l, err := openOwnlog(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	tok, err := l.Append(ctx, "a-1", 0, [][]byte{makePayload(0), makePayload(1)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, "a-1", 0, [][]byte{makePayload(2)}); err == nil {
		t.Error("append with a stale expected revision succeeded")
	}
	if _, err := l.Append(ctx, "a-1", tok, [][]byte{makePayload(2)}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if l, err = openOwnlog(dir); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if n, err := l.ReadStream(ctx, "a-1", 100); err != nil || n != 3 {
		t.Errorf("after reopen, read %d events (%v), want 3", n, err)
	}
}

// The append path, for go test -bench and -cpuprofile: each op is one Append of B events
// by one of W writers.
func BenchmarkAppendVerity(b *testing.B) { benchmarkAppend(b, systemVerity) }
func BenchmarkAppendOwnlog(b *testing.B) { benchmarkAppend(b, systemOwnlog) }
func BenchmarkAppendNATS(b *testing.B)   { benchmarkAppend(b, systemNATS) }
func BenchmarkAppendServer(b *testing.B) { benchmarkAppend(b, systemServer) }

func benchmarkAppend(b *testing.B, system string) {
	for _, w := range []int{1, 8, 64} {
		for _, batch := range []int{1, 10} {
			b.Run(fmt.Sprintf("W=%d/B=%d", w, batch), func(b *testing.B) {
				opts := Options{}
				if system == systemServer {
					opts.ServerCommand = verityCommand(b)
				}
				s, err := openSystem(b.Context(), system, b.TempDir(), opts.withDefaults())
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				var ops atomic.Int64
				total := int64(b.N)
				b.SetBytes(int64(batch * PayloadSize))
				b.ResetTimer()
				err = runWorkers(b.Context(), w, func(ctx context.Context, i int) error {
					var (
						tokens = map[string]uint64{}
						n      uint64
						k      int
					)
					for ops.Add(1) <= total {
						stream := streamName("bench-", i+w*(k%64))
						k++
						events := make([][]byte, batch)
						for j := range events {
							events[j] = makePayload(n)
							n++
						}
						next, err := s.Append(ctx, stream, tokens[stream], events)
						if err != nil {
							return err
						}
						tokens[stream] = next
					}
					return nil
				})
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}
