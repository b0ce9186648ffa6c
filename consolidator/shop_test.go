package consolidator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/consolidator"
)

// appendShopOrders appends n synthetic orders of the shop: each placed, then most
// confirmed and some cancelled (with a reason, or, every 7th, without).
func appendShopOrders(t testing.TB, s verity.Store, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		id := fmt.Sprintf("o%04d", i)
		stream := "order-" + id
		total, items := 100*(i%17+1), i%5+1
		appendJSON(t, s, stream, "OrderPlaced", fmt.Sprintf(`{"orderId":%q,"customerId":"c%d","lines":[{"sku":"sku_%d","qty":%d,"priceCents":100}],"totalCents":%d,"itemCount":%d}`, id, i%9, i%4, items, total, items))
		// Other categories and types the views must ignore.
		appendJSON(t, s, "payment-"+id, "PaymentSucceeded", fmt.Sprintf(`{"orderId":%q,"amountCents":%d}`, id, total))
		switch {
		case i%7 == 0:
			appendJSON(t, s, stream, "OrderCancelled", fmt.Sprintf(`{"orderId":%q,"customerId":"c%d","totalCents":%d}`, id, i%9, total))
		case i%5 == 0:
			appendJSON(t, s, stream, "OrderCancelled", fmt.Sprintf(`{"orderId":%q,"customerId":"c%d","reason":"no stock","totalCents":%d}`, id, i%9, total))
		case i%3 != 1:
			appendJSON(t, s, stream, "OrderConfirmed", fmt.Sprintf(`{"orderId":%q,"customerId":"c%d","totalCents":%d,"itemCount":%d}`, id, i%9, total, items))
		}
	}
}

// shopFold computes both read models from the log, up to position upTo (0: all), as
// readTable shows them.
func shopFold(t testing.TB, s verity.Store, upTo uint64) (orders, sales []map[string]string) {
	t.Helper()
	ov := map[string]map[string]string{}
	byDay := map[string][2]int64{}
	for _, e := range allEvents(t, s) {
		if upTo > 0 && e.Position > upTo {
			break
		}
		if verity.Category(e.Stream) != "order" {
			continue
		}
		var d struct {
			OrderID, CustomerID, Reason string
			TotalCents, ItemCount       int64
		}
		var raw map[string]any
		if err := json.Unmarshal(e.Data, &d); err != nil {
			t.Fatal(err)
		}
		_ = json.Unmarshal(e.Data, &raw)
		at := e.Created.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano)
		switch e.Type {
		case "OrderPlaced":
			ov[d.OrderID] = map[string]string{"order_id": d.OrderID, "customer_id": d.CustomerID, "status": "placed",
				"total_cents": strconv.FormatInt(d.TotalCents, 10), "item_count": strconv.FormatInt(d.ItemCount, 10),
				"reason": "NULL", "placed_at": at, "updated_at": at}
		case "OrderConfirmed":
			ov[d.OrderID]["status"], ov[d.OrderID]["updated_at"] = "confirmed", at
			day := e.Created.UTC().Format(time.DateOnly)
			byDay[day] = [2]int64{byDay[day][0] + 1, byDay[day][1] + d.TotalCents}
		case "OrderCancelled":
			ov[d.OrderID]["status"], ov[d.OrderID]["updated_at"] = "cancelled", at
			ov[d.OrderID]["reason"] = "NULL"
			if _, ok := raw["reason"]; ok {
				ov[d.OrderID]["reason"] = d.Reason
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(ov)) {
		orders = append(orders, ov[k])
	}
	for _, day := range slices.Sorted(maps.Keys(byDay)) {
		sales = append(sales, map[string]string{"day": day, "orders": strconv.FormatInt(byDay[day][0], 10), "revenue_cents": strconv.FormatInt(byDay[day][1], 10)})
	}
	return orders, sales
}

func sameRows(t testing.TB, what string, got, want []map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d rows, want %d", what, len(got), len(want))
	}
	bad := 0
	for i := range min(len(got), len(want)) {
		if !maps.Equal(got[i], want[i]) && bad < 3 {
			t.Errorf("%s: row %d = %v, want %v", what, i, got[i], want[i])
			bad++
		}
	}
}

func shopViews(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("../examples/shop/views.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestTheShopsViewsEqualTheFoldOfItsEvents(t *testing.T) {
	forEachTarget(t, func(t *testing.T, e env) {
		fc, err := consolidator.ParseConfig([]byte(shopViews(t)))
		if err != nil {
			t.Fatal(err)
		}
		if fc.Target != "sqlite:./verity-data/views.db" || len(fc.Projections) != 2 {
			t.Fatalf("views.yaml: target %q, %d projections", fc.Target, len(fc.Projections))
		}
		appendShopOrders(t, e.store, 0, 120)
		c := newConsolidator(t, e, shopViews(t))
		if err := c.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		waitCaughtUp(t, c, e.store)
		// Live events too.
		appendShopOrders(t, e.store, 120, 40)
		waitCaughtUp(t, c, e.store)
		orders, sales := shopFold(t, e.store, 0)
		sameRows(t, "orders_overview", readTable(t, c, "orders_overview"), orders)
		sameRows(t, "sales_by_day", readTable(t, c, "sales_by_day"), sales)
		if len(orders) != 160 {
			t.Errorf("%d orders folded, want 160", len(orders))
		}

		// A restart resumes after the checkpoint: the sums are not doubled.
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		appendShopOrders(t, e.store, 160, 30)
		c2 := newConsolidator(t, e, shopViews(t))
		if err := c2.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		waitCaughtUp(t, c2, e.store)
		orders, sales = shopFold(t, e.store, 0)
		sameRows(t, "orders_overview after a restart", readTable(t, c2, "orders_overview"), orders)
		sameRows(t, "sales_by_day after a restart", readTable(t, c2, "sales_by_day"), sales)
	})
}
