package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/verity-dev/verity/consolidator"
	"github.com/verity-dev/verity/engine"
)

func TestConsolidateRunsTheViewsAndAnswersStatusRebuildAndAsOf(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	views := "../../examples/shop/views.yaml"
	target := "sqlite:" + filepath.Join(t.TempDir(), "views", "views.db")
	const orders = 12
	withEngine(t, dir, func(e *engine.Engine) {
		for i := range orders {
			stream := fmt.Sprintf("order-o%d", i)
			mustAppend(t, e, stream, jsonEvent("OrderPlaced", fmt.Sprintf(`{"orderId":"o%d","customerId":"c1","lines":[],"totalCents":%d,"itemCount":1}`, i, 100*(i+1))))
			mustAppend(t, e, stream, jsonEvent("OrderConfirmed", fmt.Sprintf(`{"orderId":"o%d","customerId":"c1","totalCents":%d,"itemCount":1}`, i, 100*(i+1))))
		}
	})

	admin, stop := startConsolidator(t, "--config", views, "--data", dir, "--target", target, "--listen", "127.0.0.1:0")

	var sts []consolidator.Status
	for range 2000 {
		sts = nil
		if err := json.Unmarshal([]byte(mustRun(t, runConsolidate, "status", "--json", "--admin", admin)), &sts); err != nil {
			t.Fatal(err)
		}
		if len(sts) == 2 && sts[0].Position == 2*orders && sts[1].Position == 2*orders {
			break
		}
	}
	if len(sts) != 2 || sts[0].Name != "orders_overview" || sts[1].Position != 2*orders {
		t.Fatalf("status = %+v, want both views at position %d", sts, 2*orders)
	}
	table := mustRun(t, runConsolidate, "status", "sales_by_day", "--admin", admin)
	if !strings.Contains(table, "sales_by_day") || !strings.Contains(table, "running") {
		t.Errorf("status sales_by_day printed %q", table)
	}
	if got := mustRun(t, runConsolidate, "asof", "orders_overview", "--position", "6", "--admin", admin); !strings.Contains(got, "orders_overview__asof_6") {
		t.Errorf("asof printed %q", got)
	}
	if got := mustRun(t, runConsolidate, "rebuild", "sales_by_day", "--admin", admin); !strings.Contains(got, "generation 2") {
		t.Errorf("rebuild printed %q", got)
	}
	if _, _, err := runCmd(t, runConsolidate, "rebuild", "nope", "--admin", admin); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("rebuild of an unknown view: %v", err)
	}
	if err := stop(); err != nil {
		t.Fatalf("consolidate returned %v", err)
	}

	// With nothing running, the same through the database and the data directory.
	got := mustRun(t, runConsolidate, "status", "--config", views, "--data", dir, "--target", target)
	if !strings.Contains(got, "orders_overview") || !strings.Contains(got, fmt.Sprint(2*orders)) {
		t.Errorf("local status printed %q", got)
	}
	if got := mustRun(t, runConsolidate, "asof", "sales_by_day", "--position", "4", "--config", views, "--data", dir, "--target", target); !strings.Contains(got, "sales_by_day__asof_4") {
		t.Errorf("local asof printed %q", got)
	}
}

// startConsolidator runs `verity consolidate` with args, which run the shop's two views
// with the admin API on a free port, until stop (or the test's end); it answers the admin
// API's URL once both views run.
func startConsolidator(t *testing.T, args ...string) (admin string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	stdout, stderr := newSyncBuffer(), newSyncBuffer()
	done := make(chan error, 1)
	go func() { done <- runConsolidate(ctx, args, stdout, stderr) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			if err = <-done; err != nil {
				err = fmt.Errorf("%w (stderr %q)", err, stderr.String())
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	out := stdout.waitFor(t, "the admin API's address", func(s string) bool { return strings.Contains(s, "consolidating 2 projections") })
	addr := regexp.MustCompile(`admin API on (http://\S+)`).FindStringSubmatch(out)
	if addr == nil {
		t.Fatalf("no admin address in %q (stop: %v)", out, stop())
	}
	return addr[1], stop
}

func TestConsolidateRejectsBadCommandLines(t *testing.T) {
	for _, args := range [][]string{
		{},                          // no --config
		{"frobnicate"},              // unknown subcommand
		{"rebuild"},                 // no name
		{"asof", "orders_overview"}, // neither --position nor --time
		{"asof", "v", "--position", "3", "--time", "2025-01-01T00:00:00Z"},
		{"status", "a", "b"},
		{"--config", "/nonexistent/views.yaml"},
	} {
		_, _, err := runCmd(t, runConsolidate, args...)
		wantUsageError(t, err)
	}
}
