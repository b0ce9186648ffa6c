package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/verity-dev/verity/bench"
)

func TestBenchHelpExplainsEveryFlag(t *testing.T) {
	var stdout bytes.Buffer
	err := runBench(t.Context(), []string{"--help"}, &stdout, &bytes.Buffer{})
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help returned %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"Usage:", "verity bench", "Examples:", "--workload LIST", "--writers LIST",
		"--batch LIST", "--duration TIME", "--peers LIST", "--json", "--data DIR", "--events N", "--runs N",
		"--scale-streams N", "--scale-events N", "read-stream", "e2e", "scale", "--target WHAT", "--server-bin BINARY",
		"verity-server", "projection", "--projection-targets LIST", "--postgres URL", "--naive-events N",
		"groups", "--group-events N", "round-trip", "pinned"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("help does not mention %q:\n%s", want, stdout.String())
		}
	}
}

func TestBenchParsesFlagsIntoOptions(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want func(bench.Options) bool
	}{
		{"defaults compare verity with both peers on the default workloads", nil, func(o bench.Options) bool {
			return strings.Join(o.Systems, ",") == "verity,ownlog,nats" &&
				strings.Join(o.Workloads, ",") == "append,replay,read-stream,e2e" &&
				len(o.Writers) == 3 && o.Writers[2] == 64 && len(o.Batches) == 2 &&
				o.Duration == 5*time.Second && o.Events == 1_000_000 && o.Runs == 1 && !o.JSON && o.DataDir == ""
		}},
		{"--peers none measures verity alone", []string{"--peers", "none"}, func(o bench.Options) bool {
			return strings.Join(o.Systems, ",") == "verity"
		}},
		{"lists and sizes are read", []string{"--workload", "scale,append", "--writers", "2, 4", "--batch", "100",
			"--runs", "3", "--json", "--data", "/x", "--scale-streams", "10", "--scale-events", "100", "--duration", "1s"},
			func(o bench.Options) bool {
				return strings.Join(o.Workloads, ",") == "scale,append" && o.Writers[1] == 4 && o.Batches[0] == 100 &&
					o.Runs == 3 && o.JSON && o.DataDir == "/x" && o.ScaleStreams == 10 && o.ScaleEvents == 100 &&
					o.Duration == time.Second
			}},
		{"--target server compares the engine with verity-server on append, replay and e2e", []string{"--target", "server"},
			func(o bench.Options) bool {
				return strings.Join(o.Systems, ",") == "verity,verity-server" &&
					strings.Join(o.Workloads, ",") == "append,replay,e2e" && len(o.ServerCommand) == 0
			}},
		{"--target server keeps named workloads and peers", []string{"--target", "server", "--workload", "append",
			"--peers", "ownlog", "--server-bin", "/opt/verity"},
			func(o bench.Options) bool {
				return strings.Join(o.Systems, ",") == "verity,verity-server,ownlog" &&
					strings.Join(o.Workloads, ",") == "append" && strings.Join(o.ServerCommand, " ") == "/opt/verity serve"
			}},
		{"--workload projection projects into sqlite alone by default", []string{"--workload", "projection"}, func(o bench.Options) bool {
			return strings.Join(o.Workloads, ",") == "projection" && len(o.ProjectionTargets) == 0 && o.PostgresURL == "" &&
				o.NaiveEvents == bench.DefaultNaiveEvents
		}},
		{"--postgres and --projection-targets are read", []string{"--workload", "projection", "--postgres", "postgres://x/y",
			"--projection-targets", "postgres", "--naive-events", "500"}, func(o bench.Options) bool {
			return strings.Join(o.ProjectionTargets, ",") == "postgres" && o.PostgresURL == "postgres://x/y" && o.NaiveEvents == 500
		}},
		{"--workload groups writes --group-events events", []string{"--workload", "groups", "--group-events", "5000"},
			func(o bench.Options) bool {
				return strings.Join(o.Workloads, ",") == "groups" && o.GroupEvents == 5000
			}},
		{"--group-events defaults to 200,000", nil, func(o bench.Options) bool { return o.GroupEvents == bench.DefaultGroupEvents }},
		{"--target embedded is the default's behaviour", []string{"--target", "embedded"}, func(o bench.Options) bool {
			return strings.Join(o.Systems, ",") == "verity,ownlog,nats" && strings.Join(o.Workloads, ",") == "append,replay,read-stream,e2e"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseBenchArgs(tt.args, &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			if !tt.want(o) {
				t.Errorf("options %+v", o)
			}
		})
	}
}

func TestBenchRejectsBadCommandLines(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"an unknown workload", []string{"--workload", "append,fly"}, `unknown workload "fly"`},
		{"an unknown peer", []string{"--peers", "kafka"}, `unknown system "kafka"`},
		{"none among peers", []string{"--peers", "none,nats"}, `unknown system "none"`},
		{"writers that are not numbers", []string{"--writers", "1,many"}, `"many" is not a positive number`},
		{"a zero batch", []string{"--batch", "0"}, `"0" is not a positive number`},
		{"events not in whole streams", []string{"--events", "150"}, "multiple of 100"},
		{"a zero duration", []string{"--duration", "0s"}, "--duration"},
		{"scale events not a multiple of streams", []string{"--scale-streams", "3", "--scale-events", "10"}, "multiple of scale streams"},
		{"an argument", []string{"extra"}, "unexpected arguments"},
		{"an unknown target", []string{"--target", "cloud"}, `--target "cloud": want embedded or server`},
		{"a server binary without the server target", []string{"--server-bin", "/opt/verity"}, "only used with --target server"},
		{"an unknown projection target", []string{"--workload", "projection", "--projection-targets", "mysql"}, `unknown projection target "mysql"`},
		{"postgres without a URL", []string{"--workload", "projection", "--projection-targets", "sqlite,postgres"}, "needs a PostgreSQL URL"},
		{"a zero naive count", []string{"--naive-events", "0"}, "--naive-events"},
		{"a zero group log", []string{"--group-events", "0"}, "--group-events"},
		{"a group log not in whole streams", []string{"--group-events", "250"}, "group events 250 is not a positive multiple of 100"},
		{"the scale workload on the server", []string{"--target", "server", "--workload", "scale"}, "cannot run on verity-server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout bytes.Buffer
			err := runBench(t.Context(), tt.args, &stdout, &bytes.Buffer{})
			var usage *usageError
			if !errors.As(err, &usage) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want a usage error containing %q", err, tt.want)
			}
			if stdout.Len() > 0 {
				t.Errorf("a usage error wrote to stdout: %q", stdout.String())
			}
		})
	}
}

func TestBenchPrintsJSONLinesOrATableWithRatios(t *testing.T) {
	args := []string{"--workload", "append,e2e", "--writers", "2", "--batch", "5", "--duration", "200ms",
		"--peers", "ownlog", "--data", t.TempDir()}

	var stdout, stderr bytes.Buffer
	if err := runBench(t.Context(), append(args, "--json"), &stdout, &stderr); err != nil {
		t.Fatalf("--json: %v (stderr %q)", err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("--json wrote to stderr: %q", stderr.String())
	}
	var lines int
	for sc := bufio.NewScanner(&stdout); sc.Scan(); lines++ {
		var r bench.Result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if r.EventsPerSec <= 0 || (r.System != "verity" && r.System != "ownlog") {
			t.Errorf("line %s", sc.Text())
		}
	}
	if lines != 4 {
		t.Errorf("%d result lines, want 4 (2 workloads × 2 systems)", lines)
	}

	stdout.Reset()
	stderr.Reset()
	if err := runBench(t.Context(), args, &stdout, &stderr); err != nil {
		t.Fatalf("table: %v (stderr %q)", err, stderr.String())
	}
	for _, want := range []string{"events/s", "verity/ownlog", "p50 verity/ownlog"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, stdout.String())
		}
	}
	if !strings.Contains(stderr.String(), "verity append writers=2 batch=5") {
		t.Errorf("no progress on stderr: %q", stderr.String())
	}
	if entries, _ := os.ReadDir(args[len(args)-1]); len(entries) > 0 {
		t.Errorf("stores left in --data: %v", entries)
	}
}

func TestBenchProjectionComparesBatchedWithNaive(t *testing.T) {
	args := []string{"--workload", "projection", "--events", "3000", "--naive-events", "300", "--data", t.TempDir()}
	if url := os.Getenv("VERITY_TEST_POSTGRES"); url != "" {
		args = append(args, "--postgres", url)
	}
	var stdout, stderr bytes.Buffer
	if err := runBench(t.Context(), append(args, "--json"), &stdout, &stderr); err != nil {
		t.Fatalf("--json: %v (stderr %q)", err, stderr.String())
	}
	rows := map[string]bench.Result{}
	for sc := bufio.NewScanner(&stdout); sc.Scan(); {
		var r bench.Result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		rows[r.System] = r
	}
	want := map[string]int64{"sqlite": 3000, "sqlite-batch": 3000, "sqlite-naive": 300}
	if os.Getenv("VERITY_TEST_POSTGRES") != "" {
		want["postgres"], want["postgres-batch"], want["postgres-naive"] = 3000, 3000, 300
	}
	for sys, events := range want {
		r, ok := rows[sys]
		if !ok || r.Workload != "projection" || r.Events != events || r.EventsPerSec <= 0 || r.Ops <= 0 {
			t.Errorf("%s: %+v, want %d events projected", sys, r, events)
		}
	}
	if len(rows) != len(want) {
		t.Errorf("systems %v, want %v", rows, want)
	}

	stdout.Reset()
	if err := runBench(t.Context(), args, &stdout, &stderr); err != nil {
		t.Fatalf("table: %v (stderr %q)", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "sqlite/sqlite-naive ") {
		t.Errorf("table lacks the ratio of batched to naive:\n%s", stdout.String())
	}
}

func TestBenchTargetServerMeasuresAServerProcess(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "verity")
	// go test puts its own go first in PATH.
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	data := t.TempDir()
	args := []string{"--target", "server", "--workload", "append,e2e", "--writers", "2", "--batch", "1",
		"--duration", "200ms", "--server-bin", bin, "--data", data}

	var stdout, stderr bytes.Buffer
	if err := runBench(t.Context(), append(args, "--json"), &stdout, &stderr); err != nil {
		t.Fatalf("--json: %v (stderr %q)", err, stderr.String())
	}
	rows := map[string]int{}
	for sc := bufio.NewScanner(&stdout); sc.Scan(); {
		var r bench.Result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if r.EventsPerSec <= 0 || r.Events <= 0 || r.P50ms < 0 {
			t.Errorf("line %s: want positive figures", sc.Text())
		}
		rows[r.System+" "+r.Workload]++
	}
	for _, want := range []string{"verity append", "verity e2e", "verity-server append", "verity-server e2e"} {
		if rows[want] != 1 {
			t.Errorf("%d rows of %s, want 1 (rows: %v)", rows[want], want, rows)
		}
	}

	stdout.Reset()
	stderr.Reset()
	if err := runBench(t.Context(), []string{"--target", "server", "--workload", "append", "--writers", "2", "--batch", "1",
		"--duration", "200ms", "--server-bin", bin, "--data", data}, &stdout, &stderr); err != nil {
		t.Fatalf("table: %v (stderr %q)", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "verity-server/verity ") {
		t.Errorf("table lacks the server's ratio to the engine:\n%s", stdout.String())
	}
	if entries, _ := os.ReadDir(data); len(entries) > 0 {
		t.Errorf("stores left in --data: %v", entries)
	}
}
