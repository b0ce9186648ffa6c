package consolidator_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/consolidator"
	"github.com/verity-dev/verity/sdk/projection"
)

// countsByType is a Go-declared projection: events per type. While fail is set its
// handler fails.
func countsByType(fail *atomic.Bool) projection.Projection {
	return projection.Projection{
		Name: "by_type",
		Tables: []projection.Table{{Name: "by_type", Create: []string{
			`CREATE TABLE {by_type} (type TEXT PRIMARY KEY, n BIGINT NOT NULL)`,
		}}},
		Handle: func(ctx context.Context, tx projection.Tx, e verity.RecordedEvent) error {
			if fail.Load() {
				return verity.Errorf(verity.Unavailable, "test", "told to fail")
			}
			return tx.Exec(ctx, `INSERT INTO {by_type} (type, n) VALUES ($1, 1)
				ON CONFLICT (type) DO UPDATE SET n = {by_type}.n + 1`, e.Type)
		},
	}
}

func TestAGoDeclaredProjectionRecoversAfterErrorsKeepingTheLastOne(t *testing.T) {
	forEachTarget(t, func(t *testing.T, e env) {
		for i := range 30 {
			appendJSON(t, e.store, fmt.Sprintf("order-%d", i%4), []string{"A", "B", "C"}[i%3], `{}`)
		}
		appendJSON(t, e.store, "noise-1", "A", `{}`)
		var fail atomic.Bool
		fail.Store(true)
		c := newConsolidator(t, e, "")
		if err := c.Add(countsByType(&fail), projection.Config{Filter: verity.Filter{Categories: []string{"order"}}}); err != nil {
			t.Fatal(err)
		}
		if err := c.Add(countsByType(&fail), projection.Config{}); !errors.Is(err, verity.ErrConflict) {
			t.Fatalf("adding it twice: %v, want Conflict", err)
		}
		if err := c.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "a failed run", func() bool {
			st, err := c.Status(context.Background(), "by_type")
			return err == nil && st.Errors >= 1 && st.LastError != ""
		})
		fail.Store(false)
		waitCaughtUp(t, c, e.store)
		waitFor(t, "running again", func() bool {
			st, _ := c.Status(context.Background(), "by_type")
			return st.State == consolidator.StateRunning && st.CaughtUp
		})
		st, err := c.Status(context.Background(), "by_type")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(st.LastError, "told to fail") || st.LastErrorAt == nil || st.Errors < 1 {
			t.Errorf("status %+v: want the last error kept after recovering", st)
		}
		got := readTable(t, c, "by_type")
		if fmt.Sprint(got) != "[map[n:10 type:A] map[n:10 type:B] map[n:10 type:C]]" {
			t.Errorf("by_type = %v, want 10 of each", got)
		}
	})
}

func TestStatusReportsLagBeforeStartAndNoneOnceCaughtUp(t *testing.T) {
	forEachTarget(t, func(t *testing.T, e env) {
		appendShopOrders(t, e.store, 0, 10)
		first := allEvents(t, e.store)[0]
		now := first.Created.Add(90 * time.Second)
		cfg := e.config()
		cfg.Now = func() time.Time { return now }
		c, err := consolidator.New(e.store, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fc, err := consolidator.ParseConfig([]byte(shopViews(t)))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.AddConfig(fc); err != nil {
			t.Fatal(err)
		}
		st, err := c.Status(context.Background(), "orders_overview")
		if err != nil {
			t.Fatal(err)
		}
		if st.State != consolidator.StateStopped || st.Position != 0 || st.LagEvents != head(t, e.store) || st.LagSeconds != 90 {
			t.Errorf("before Start: %+v; want stopped at 0, lag %d events and 90s", st, head(t, e.store))
		}
		if _, err := c.Status(context.Background(), "nope"); !errors.Is(err, verity.ErrNotFound) {
			t.Errorf("Status of an unknown projection: %v, want NotFound", err)
		}
		if err := c.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		waitCaughtUp(t, c, e.store)
		sts, err := c.Statuses(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range sts {
			if st.State != consolidator.StateRunning || st.LagEvents != 0 || st.LagSeconds != 0 {
				t.Errorf("caught up: %+v; want running with no lag", st)
			}
		}
	})
}

func TestRebuildAndAsOfBuildsEqualTheFold(t *testing.T) {
	forEachTarget(t, func(t *testing.T, e env) {
		ctx := context.Background()
		appendShopOrders(t, e.store, 0, 60)
		mid := head(t, e.store)
		appendShopOrders(t, e.store, 60, 60)
		c := newConsolidator(t, e, shopViews(t))
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		waitCaughtUp(t, c, e.store)

		if err := c.Rebuild(ctx, "sales_by_day"); err != nil {
			t.Fatal(err)
		}
		st, err := c.Status(ctx, "sales_by_day")
		if err != nil || st.Generation != 2 {
			t.Fatalf("after Rebuild: %+v, %v; want generation 2", st, err)
		}
		orders, sales := shopFold(t, e.store, 0)
		sameRows(t, "sales_by_day rebuilt", readTable(t, c, "sales_by_day"), sales)
		sameRows(t, "orders_overview", readTable(t, c, "orders_overview"), orders)

		// As of a position.
		res, err := c.BuildAsOf(ctx, "orders_overview", consolidator.AsOf{Position: mid})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Complete || res.Suffix != fmt.Sprintf("asof_%d", mid) || res.Tables["orders_overview"] != "orders_overview__"+res.Suffix {
			t.Fatalf("BuildAsOf = %+v", res)
		}
		wantOrders, wantSales := shopFold(t, e.store, mid)
		sameRows(t, "orders_overview as of "+res.Suffix, readTable(t, c, res.Tables["orders_overview"]), wantOrders)
		if len(wantOrders) != 60 {
			t.Errorf("%d orders as of %d, want 60", len(wantOrders), mid)
		}

		// As of a time: the last event committed at or before it.
		evs := allEvents(t, e.store)
		at := evs[len(evs)/3].Created
		var want uint64
		for _, ev := range evs {
			if !ev.Created.After(at) {
				want = ev.Position
			}
		}
		res, err = c.BuildAsOf(ctx, "sales_by_day", consolidator.AsOf{Time: at})
		if err != nil {
			t.Fatal(err)
		}
		if res.Position != want || !res.Complete {
			t.Fatalf("BuildAsOf(time %v) = %+v, want position %d", at, res, want)
		}
		_, wantSales = shopFold(t, e.store, want)
		sameRows(t, "sales_by_day as of a time", readTable(t, c, res.Tables["sales_by_day"]), wantSales)

		// The live tables are untouched; the builds show in the status; drop them.
		sameRows(t, "sales_by_day live", readTable(t, c, "sales_by_day"), sales)
		st, _ = c.Status(ctx, "sales_by_day")
		if len(st.AsOf) != 1 || st.AsOf[0].Suffix != res.Suffix {
			t.Errorf("status as-of builds %+v, want %s", st.AsOf, res.Suffix)
		}
		if err := c.DropAsOf(ctx, "sales_by_day", res.Suffix); err != nil {
			t.Fatal(err)
		}
		if _, err := c.BuildAsOf(ctx, "sales_by_day", consolidator.AsOf{}); !errors.Is(err, verity.ErrInvalid) {
			t.Errorf("BuildAsOf of nothing: %v, want Invalid", err)
		}
		if _, err := c.BuildAsOf(ctx, "sales_by_day", consolidator.AsOf{Position: head(t, e.store) + 5}); !errors.Is(err, verity.ErrInvalid) {
			t.Errorf("BuildAsOf beyond the head: %v, want Invalid", err)
		}
	})
}

func TestTheAdminAPI(t *testing.T) {
	forEachTarget(t, func(t *testing.T, e env) {
		ctx := context.Background()
		appendShopOrders(t, e.store, 0, 45)
		reg := prometheus.NewRegistry()
		cfg := e.config()
		cfg.Registerer = reg
		c, err := consolidator.New(e.store, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fc, _ := consolidator.ParseConfig([]byte(shopViews(t)))
		if err := c.AddConfig(fc); err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		waitCaughtUp(t, c, e.store)
		srv := httptest.NewServer(c.Handler())
		defer srv.Close()
		call := func(method, path string, wantStatus int, out any) {
			t.Helper()
			req, _ := http.NewRequest(method, srv.URL+path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != wantStatus {
				t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, body, wantStatus)
			}
			if out != nil {
				if err := json.Unmarshal(body, out); err != nil {
					t.Fatalf("%s %s: %v in %s", method, path, err, body)
				}
			}
		}

		var list struct{ Views []consolidator.Status }
		call("GET", "/views", 200, &list)
		if len(list.Views) != 2 || list.Views[0].Name != "orders_overview" || list.Views[0].Position != head(t, e.store) {
			t.Errorf("GET /views = %+v", list)
		}
		// Page through a table by key.
		var ids []string
		after := ""
		for range 10 {
			var page consolidator.Page
			call("GET", "/views/orders_overview/tables/orders_overview?limit=20"+after, 200, &page)
			for _, r := range page.Rows {
				ids = append(ids, r["order_id"].(string))
			}
			if page.Next == "" {
				break
			}
			after = "&after=" + page.Next
		}
		if len(ids) != 45 || ids[0] != "o0000" || ids[44] != "o0044" {
			t.Errorf("paged %d order ids %v..., want o0000 to o0044", len(ids), ids[:min(3, len(ids))])
		}
		var res consolidator.AsOfResult
		call("POST", "/views/orders_overview/asof?position=10", 200, &res)
		if res.Position != 10 || !res.Complete {
			t.Errorf("POST asof = %+v", res)
		}
		var page consolidator.Page
		call("GET", "/views/orders_overview/tables/orders_overview__asof_10", 200, &page)
		want, _ := shopFold(t, e.store, 10)
		if len(page.Rows) != len(want) {
			t.Errorf("as-of table has %d rows, want %d", len(page.Rows), len(want))
		}
		call("DELETE", "/views/orders_overview/asof/asof_10", 204, nil)
		call("GET", "/views/orders_overview/tables/orders_overview__asof_10", 404, nil)
		call("POST", "/views/orders_overview/asof?time="+time.Now().UTC().Format(time.RFC3339Nano), 200, &res)
		if res.Position != head(t, e.store) {
			t.Errorf("POST asof?time=now = %+v, want the head", res)
		}
		var errBody struct {
			Error struct{ Kind, Message string }
		}
		call("POST", "/views/orders_overview/asof?position=x", 400, &errBody)
		if errBody.Error.Kind != "invalid" || !strings.Contains(errBody.Error.Message, `"x"`) {
			t.Errorf("bad position: %+v", errBody)
		}
		call("GET", "/views/nope", 404, nil)
		call("GET", "/views/orders_overview/tables/verity_projections", 404, nil)
		call("GET", "/views/orders_overview/tables/orders_overview?limit=0", 400, nil)

		var st consolidator.Status
		call("POST", "/views/sales_by_day/rebuild", 202, &st)
		waitFor(t, "the rebuild swapped in", func() bool {
			st, err := c.Status(ctx, "sales_by_day")
			return err == nil && st.Generation == 2 && st.State == consolidator.StateRunning
		})
		call("POST", "/views/sales_by_day/rebuild?wait=true", 200, &st)
		if st.Generation != 3 {
			t.Errorf("after a waited rebuild: generation %d, want 3", st.Generation)
		}

		// Metrics.
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, mf := range mfs {
			if mf.GetName() != "verity_consolidator_position" {
				continue
			}
			for _, m := range mf.GetMetric() {
				if m.GetLabel()[0].GetValue() == "orders_overview" && m.GetGauge().GetValue() == float64(head(t, e.store)) {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("no verity_consolidator_position of orders_overview at %d in %v", head(t, e.store), mfs)
		}
	})
}
