package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/verity-dev/verity/client"
	"github.com/verity-dev/verity/server"
)

// groupOptions runs the groups workload alone on a small log; the duration is long enough
// that every event is handled before it passes.
func groupOptions(t *testing.T, systems ...string) Options {
	t.Helper()
	return Options{
		Systems:     systems,
		Workloads:   []string{WorkloadGroups},
		Duration:    time.Minute,
		GroupEvents: 2000,
		DataDir:     t.TempDir(),
		JSON:        true,
	}
}

// runJSON runs opts, which ask for JSON, and returns its result lines; stderr must stay
// empty.
func runJSON(t *testing.T, opts Options) []Result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := Run(t.Context(), opts, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\nstderr: %s", err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("with JSON, stderr should stay empty, got %q", stderr.String())
	}
	var out []Result
	for sc := bufio.NewScanner(&stdout); sc.Scan(); {
		var r Result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

// runGroupsJSON runs opts and returns the result lines by "system strategy".
func runGroupsJSON(t *testing.T, opts Options) map[string]Result {
	t.Helper()
	rows := map[string]Result{}
	for _, r := range runJSON(t, opts) {
		if r.Workload != WorkloadGroups {
			t.Errorf("line %+v: workload %q, want %q", r, r.Workload, WorkloadGroups)
		}
		rows[r.System+" "+r.Strategy] = r
	}
	left, err := os.ReadDir(opts.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("left behind in the data directory: %v", left)
	}
	return rows
}

// checkGroupRows checks that each wanted measurement handled every event of the log.
func checkGroupRows(t *testing.T, rows map[string]Result, events int64, want map[string][2]int) {
	t.Helper()
	for name, shape := range want {
		r, ok := rows[name]
		if !ok {
			t.Errorf("no result for %s (rows: %v)", name, rows)
			continue
		}
		if r.Events != events || r.EventsPerSec <= 0 || r.Ops <= 0 || r.P99ms < r.P50ms || r.Streams != int(events)/groupPerStream {
			t.Errorf("%s: %+v, want all %d events handled in %d streams with positive figures", name, r, events, events/groupPerStream)
		}
		if r.Writers != shape[0] || r.Batch != shape[1] {
			t.Errorf("%s: %d consumers with max in flight %d, want %d and %d", name, r.Writers, r.Batch, shape[0], shape[1])
		}
	}
	if len(rows) != len(want) {
		t.Errorf("%d rows, want %d: %v", len(rows), len(want), rows)
	}
}

func TestGroupsWorkloadHandlesEveryEventOnTheEngineAndNATS(t *testing.T) {
	rows := runGroupsJSON(t, groupOptions(t, systemVerity, systemOwnlog, systemNATS))
	checkGroupRows(t, rows, 2000, map[string][2]int{
		"verity round-trip":  {1, 1},
		"verity round-robin": {4, 10},
		"verity pinned":      {4, 10},
		// JetStream has no pinned strategy; ownlog has no groups at all.
		"nats round-trip":  {1, 1},
		"nats round-robin": {4, 10},
	})
}

func TestGroupsWorkloadHandlesEveryEventOverTheNetwork(t *testing.T) {
	opts := groupOptions(t, systemServer)
	opts.ServerCommand = verityCommand(t)
	rows := runGroupsJSON(t, opts)
	checkGroupRows(t, rows, 2000, map[string][2]int{
		"verity-server round-trip":  {1, 1},
		"verity-server round-robin": {4, 10},
		"verity-server pinned":      {4, 10},
	})
}

func TestGroupsWorkloadStopsWhenTheDurationPasses(t *testing.T) {
	opts := groupOptions(t, systemVerity)
	opts.GroupEvents = 20_000
	opts.Duration = 20 * time.Millisecond
	for name, r := range runGroupsJSON(t, opts) {
		if r.Events <= 0 || r.Events >= 20_000 || r.ElapsedS != opts.Duration.Seconds() {
			t.Errorf("%s: %d events in %vs, want some of the 20000 in the 0.02s the measurement lasts", name, r.Events, r.ElapsedS)
		}
	}
}

// fakeGroups delivers scripted events: script[i] to consumer i, then nothing.
type fakeGroups struct{ script [][]groupEvent }

func (f fakeGroups) create(context.Context, string, groupShape) error { return nil }
func (f fakeGroups) drop(context.Context, string) error               { return nil }
func (f fakeGroups) pins() bool                                       { return true }
func (f fakeGroups) close() error                                     { return nil }
func (f fakeGroups) join(_ context.Context, _ string, i, _ int) (groupConsumer, error) {
	var evs []groupEvent
	if i < len(f.script) {
		evs = f.script[i]
	}
	return &fakeConsumer{evs: evs}, nil
}

type fakeConsumer struct{ evs []groupEvent }

func (c *fakeConsumer) next(ctx context.Context) (groupEvent, error) {
	if len(c.evs) == 0 {
		<-ctx.Done()
		return groupEvent{}, ctx.Err()
	}
	e := c.evs[0]
	c.evs = c.evs[1:]
	return e, nil
}
func (c *fakeConsumer) ack(context.Context, groupEvent) error { return nil }
func (c *fakeConsumer) close() error                          { return nil }

func TestGroupsWorkloadFailsAPinnedGroupThatBreaksItsPromise(t *testing.T) {
	pinned := groupShapes[2]
	tests := []struct {
		name   string
		script [][]groupEvent
		want   string
	}{
		{"a stream given to two consumers", [][]groupEvent{{{stream: "grp-1", order: 0}}, {{stream: "grp-1", order: 1}}},
			"stream grp-1 delivered to consumers 0 and 1"},
		{"a stream's events out of order", [][]groupEvent{{{stream: "grp-1", order: 1}, {stream: "grp-1", order: 0}}},
			"stream grp-1: event 0 delivered after event 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runGroup(t.Context(), fakeGroups{tt.script}, "g", pinned, 2, time.Minute)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	// The same deliveries are fine for a round-robin group.
	rr := groupShapes[1]
	res, err := runGroup(t.Context(), fakeGroups{tests[0].script}, "g", rr, 2, time.Minute)
	if err != nil || res.Events != 2 || res.Strategy != GroupRoundRobin {
		t.Errorf("round robin: %+v, %v; want 2 events handled", res, err)
	}
}

func TestTableKeepsEachGroupMeasurementApart(t *testing.T) {
	results := []Result{
		{System: "verity", Workload: WorkloadGroups, Writers: 4, Batch: 10, Strategy: GroupRoundRobin, EventsPerSec: 100},
		{System: "verity-server", Workload: WorkloadGroups, Writers: 4, Batch: 10, Strategy: GroupRoundRobin, EventsPerSec: 25},
		{System: "nats", Workload: WorkloadGroups, Writers: 4, Batch: 10, Strategy: GroupRoundRobin, EventsPerSec: 50},
		{System: "verity", Workload: WorkloadGroups, Writers: 4, Batch: 10, Strategy: GroupPinned, EventsPerSec: 80},
		{System: "verity-server", Workload: WorkloadGroups, Writers: 4, Batch: 10, Strategy: GroupPinned, EventsPerSec: 40},
	}
	var b strings.Builder
	if err := printTable(&b, results); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"round-robin: 4 consumers", "verity/nats 2.00x", "verity-server/verity 0.25x",
		"pinned: 4 consumers", "verity-server/verity 0.50x"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	// The pinned rows are not compared with the round-robin ones.
	if strings.Count(b.String(), "verity/nats") != 1 {
		t.Errorf("pinned compared with round-robin NATS:\n%s", b.String())
	}
}

// The consumer-group path over the network with client and server in this process, so that
// one -cpuprofile sees both sides:
//
//	go test -run '^$' -bench 'GroupsInProcess/round-robin' -benchtime 50000x -cpuprofile cpu.out ./bench/
//
// Each op is one event delivered and acknowledged; the server is built as `verity serve
// --insecure` builds it.
func BenchmarkGroupsInProcess(b *testing.B) {
	for _, sh := range groupShapes {
		b.Run(sh.name, func(b *testing.B) {
			srv, err := server.New(server.Config{Data: b.TempDir(), Listen: "127.0.0.1:0", Insecure: true}, quiet)
			if err != nil {
				b.Fatal(err)
			}
			if err := srv.Start(); err != nil {
				srv.Close()
				b.Fatal(err)
			}
			defer srv.Shutdown(context.Background())
			c, err := client.Dial(srv.Addr().String(), client.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			events := (b.N + groupPerStream - 1) / groupPerStream * groupPerStream
			spec := logSpec{prefix: groupCategory + "-", streams: events / groupPerStream, perStream: groupPerStream, chunk: logChunk, writers: logWriters}
			if err := buildLog(b.Context(), &verityStore{s: c}, spec, func(int64) {}); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			res, err := runGroup(b.Context(), verityGroups{gs: c}, "g", sh, events, time.Hour)
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(res.EventsPerSec, "events/s")
			b.ReportMetric(res.P50ms*1000, "p50-µs")
		})
	}
}
