package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestGatewayWorkloadReportsEveryMeasurementBesideItsPeer runs the gateway workload
// briefly and checks the shape of its report, not its timings.
func TestGatewayWorkloadReportsEveryMeasurementBesideItsPeer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the shop stack")
	}
	opts := Options{Workloads: []string{WorkloadGateway}, Duration: 100 * time.Millisecond, Runs: 2, DataDir: t.TempDir(), JSON: true}
	rows := map[string]Result{}
	for _, r := range runJSON(t, opts) {
		if r.Workload != WorkloadGateway || r.Runs != 2 {
			t.Errorf("line %+v: workload %q, %d runs; want %q, 2", r, r.Workload, r.Runs, WorkloadGateway)
		}
		rows[fmt.Sprintf("%s %s %d", r.Strategy, r.System, r.Writers)] = r
	}

	want := map[string]int{} // row -> the gateway's limit it reports (0: not through it)
	for _, c := range gatewayClients {
		for _, m := range []string{GatewayGet, GatewayDetails, GatewayPlace} {
			want[fmt.Sprintf("%s %s %d", m, systemGateway, c)] = gatewayDefaultLimit
		}
		want[fmt.Sprintf("%s %s %d", GatewayGet, systemDirect, c)] = 0
		want[fmt.Sprintf("%s %s %d", GatewayDetails, systemDirect, c)] = 0
		want[fmt.Sprintf("%s %s %d", GatewayPlace, systemInProcess, c)] = 0
	}
	for _, k := range gatewayOverloads {
		want[fmt.Sprintf("%s %s %d", GatewayOverload, systemGateway, k*gatewayLimit)] = gatewayLimit
		want[fmt.Sprintf("%s %s %d", GatewayOverload, systemUnlimited, k*gatewayLimit)] = gatewayUnlimited
	}
	for name, limit := range want {
		r, ok := rows[name]
		if !ok {
			t.Errorf("no row for %s", name)
			continue
		}
		if r.Events < 1 || r.EventsPerSec <= 0 || r.Ops < r.Events || r.P50ms > r.P99ms || r.P99ms > r.MaxMs*1.02+0.01 || r.ElapsedS <= 0 {
			// (a quantile is its bucket's middle, up to 1/64 above the true value)
			t.Errorf("%s: %+v, want answered requests with ordered latencies", name, r)
		}
		if r.Limit != limit {
			t.Errorf("%s: limit %d, want %d", name, r.Limit, limit)
		}
		if r.Shed < 0 || r.Shed >= 1 || (r.Shed > 0) != (r.Ops > r.Events) {
			t.Errorf("%s: shed %v of %d requests with %d admitted", name, r.Shed, r.Ops, r.Events)
		}
		if r.System != systemGateway && r.Shed != 0 {
			t.Errorf("%s: shed %v without the gateway's limit", name, r.Shed)
		}
	}
	if len(rows) != len(want) {
		t.Errorf("%d rows, want %d: %v", len(rows), len(want), rows)
	}
	left, err := os.ReadDir(opts.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("left behind in the data directory: %v", left)
	}

	// The table puts each ratio on the gateway's row.
	var table bytes.Buffer
	if err := printTable(&table, mapValues(rows)); err != nil {
		t.Fatal(err)
	}
	for _, note := range []string{"gateway/direct", "gateway/in-process", "admitted p99 gateway/gateway-unlimited", "shed, admitted max"} {
		if !strings.Contains(table.String(), note) {
			t.Errorf("the table has no %q:\n%s", note, table.String())
		}
	}
}

func mapValues(m map[string]Result) []Result {
	out := make([]Result, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	return out
}

// The gateway workload's requests with the whole stack in this process, for -cpuprofile:
//
//	go test -run '^$' -bench 'Gateway/get/gateway' -cpuprofile cpu.out ./bench/
//
// Each op is one request (one composed request, or its three direct calls), sent by 8
// closed-loop clients at once; in overload, by 32 clients against a limit of 8 (or none),
// and an op is then a request admitted or shed.
func BenchmarkGateway(b *testing.B) {
	gb, err := startGatewayBench(b.Context(), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := gb.close(); err != nil {
			b.Error(err)
		}
	})
	ops := []struct {
		name string
		op   gatewayOp
	}{
		{GatewayGet + "/" + systemGateway, gb.getViaGateway},
		{GatewayGet + "/" + systemDirect, gb.getDirect},
		{GatewayDetails + "/" + systemGateway, gb.detailsViaGateway},
		{GatewayDetails + "/" + systemDirect, gb.detailsDirect},
		{GatewayPlace + "/" + systemGateway, gb.placeViaGateway},
		{GatewayPlace + "/" + systemInProcess, gb.placeInProcess},
	}
	run := func(b *testing.B, clients int, op gatewayOp) {
		var next, shed atomic.Int64
		err := runWorkers(b.Context(), clients, func(ctx context.Context, w int) error {
			for next.Add(1) <= int64(b.N) {
				s, err := op(ctx, w)
				if err != nil {
					return err
				}
				if s {
					shed.Add(1)
					time.Sleep(gatewayShedPause) // as closedLoop pauses a shed client
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(shed.Load())/float64(b.N), "shed/op")
	}
	for _, o := range ops {
		b.Run(o.name, func(b *testing.B) {
			if err := gb.setLimit(gatewayDefaultLimit); err != nil {
				b.Fatal(err)
			}
			run(b, 8, o.op)
		})
	}
	// overload: 4x more clients than the limit, each op a request admitted or shed.
	b.Run(GatewayOverload+"/"+systemGateway, func(b *testing.B) {
		if err := gb.setLimit(gatewayLimit); err != nil {
			b.Fatal(err)
		}
		run(b, 4*gatewayLimit, gb.getViaGateway)
	})
	b.Run(GatewayOverload+"/"+systemUnlimited, func(b *testing.B) {
		if err := gb.setLimit(gatewayUnlimited); err != nil {
			b.Fatal(err)
		}
		run(b, 4*gatewayLimit, gb.getViaGateway)
	})
}
