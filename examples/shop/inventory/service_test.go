package inventory

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/examples/shop/events"
	"github.com/verity-dev/verity/examples/shop/internal/shoptest"
	"github.com/verity-dev/verity/sdk"
)

func TestInventoryHTTP(t *testing.T) {
	store, groups := shoptest.Open(t)
	s, err := New(Config{Store: store, Groups: groups, Logger: shoptest.Quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	url := "http://" + s.Addr()

	var p Product
	shoptest.Call(t, "POST", url+"/products", map[string]any{"sku": "mug", "name": "Mug", "priceCents": 1200, "stock": 5}, http.StatusCreated, &p)
	if p.SKU != "mug" || p.Available != 5 {
		t.Fatalf("POST /products = %+v", p)
	}
	t.Run("stock is added", func(t *testing.T) {
		shoptest.Call(t, "POST", url+"/products/mug/stock", map[string]any{"qty": 3}, http.StatusOK, nil)
		var got Product
		shoptest.Call(t, "GET", url+"/products/mug", nil, http.StatusOK, &got)
		if got.Available != 8 || got.Reserved != 0 || got.PriceCents != 1200 {
			t.Errorf("GET = %+v, want 8 available", got)
		}
	})
	t.Run("the list shows every product", func(t *testing.T) {
		shoptest.Call(t, "POST", url+"/products", map[string]any{"sku": "tea", "name": "Tea", "priceCents": 500}, http.StatusCreated, nil)
		shoptest.Eventually(t, 10*time.Second, "both products listed", func() bool {
			var list []Product
			shoptest.Call(t, "GET", url+"/products", nil, http.StatusOK, &list)
			return len(list) == 2 && list[0].SKU == "mug" && list[0].Available == 8 && list[1].SKU == "tea"
		})
	})
	for _, c := range []struct {
		name, method, path string
		body               any
		want               int
	}{
		{"a product is added once", "POST", "/products", map[string]any{"sku": "mug", "name": "Mug", "priceCents": 1}, http.StatusConflict},
		{"a sku with '-' is invalid", "POST", "/products", map[string]any{"sku": "mug-2", "name": "Mug", "priceCents": 1}, http.StatusBadRequest},
		{"a free product is invalid", "POST", "/products", map[string]any{"sku": "pen", "name": "Pen", "priceCents": 0}, http.StatusBadRequest},
		{"an unknown product is not found", "GET", "/products/vase", nil, http.StatusNotFound},
		{"stock for an unknown product is not found", "POST", "/products/vase/stock", map[string]any{"qty": 1}, http.StatusNotFound},
		{"negative stock is invalid", "POST", "/products/mug/stock", map[string]any{"qty": -1}, http.StatusBadRequest},
		{"a malformed sku is invalid", "GET", "/products/Mug", nil, http.StatusBadRequest},
		{"the health check answers", "GET", "/healthz", nil, http.StatusOK},
	} {
		t.Run(c.name, func(t *testing.T) { shoptest.Call(t, c.method, url+c.path, c.body, c.want, nil) })
	}
}

// The process reserves every line or none, and handles each event once however often it
// is delivered.
func TestProcessIsIdempotent(t *testing.T) {
	ctx := context.Background()
	store, _ := shoptest.Open(t)
	reg := events.NewRegistry()
	p, err := NewProcess(store, reg)
	if err != nil {
		t.Fatal(err)
	}
	products, err := sdk.NewCommandHandler(store, reg, Decider, sdk.CommandHandlerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []AddProduct{{SKU: "mug", Name: "Mug", PriceCents: 1200, Stock: 5}, {SKU: "tea", Name: "Tea", PriceCents: 500, Stock: 1}} {
		if _, err := products.Handle(ctx, events.ProductStream(c.SKU), c); err != nil {
			t.Fatal(err)
		}
	}
	const o1, o2 = "7b0e1c3a-1111-4111-8111-000000000001", "7b0e1c3a-2222-4222-8222-000000000002"
	// deliver appends e to stream and hands it to the process twice.
	deliver := func(stream string, v any) {
		t.Helper()
		data, err := reg.Encode(v, sdk.Metadata{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Append(ctx, stream, verity.Any(), data); err != nil {
			t.Fatal(err)
		}
		recs, err := store.ReadStream(ctx, stream, verity.ReadStreamOptions{Direction: verity.Backwards, FromEnd: true, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		e, err := reg.Decode(recs[0])
		if err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			if err := p.Handle(ctx, e); err != nil {
				t.Fatalf("delivery %d of %s: %v", i, recs[0].Type, err)
			}
		}
	}
	stock := func(sku string) Product {
		t.Helper()
		s, _, err := products.State(ctx, events.ProductStream(sku))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	reservation := func(id string) []string {
		t.Helper()
		recs, err := store.ReadStream(ctx, events.ReservationStream(id), verity.ReadStreamOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range recs {
			out = append(out, r.Type)
		}
		return out
	}

	t.Run("an order within stock is reserved once", func(t *testing.T) {
		deliver(events.OrderStream(o1), events.OrderPlaced{OrderID: o1, Lines: []events.OrderLine{{SKU: "mug", Qty: 2, PriceCents: 1200}, {SKU: "tea", Qty: 1, PriceCents: 500}}, TotalCents: 2900})
		if m, te := stock("mug"), stock("tea"); m.Available != 3 || m.Reserved != 2 || te.Available != 0 {
			t.Errorf("mug %+v, tea %+v", m, te)
		}
		if got := reservation(o1); len(got) != 1 || got[0] != "ReservationSucceeded" {
			t.Errorf("reservation %v", got)
		}
	})
	t.Run("an order beyond stock reserves nothing", func(t *testing.T) {
		deliver(events.OrderStream(o2), events.OrderPlaced{OrderID: o2, Lines: []events.OrderLine{{SKU: "mug", Qty: 1, PriceCents: 1200}, {SKU: "tea", Qty: 1, PriceCents: 500}}})
		if m := stock("mug"); m.Available != 3 {
			t.Errorf("mug %+v: a failed reservation took stock", m)
		}
		if got := reservation(o2); len(got) != 1 || got[0] != "ReservationFailed" {
			t.Errorf("reservation %v", got)
		}
	})
	t.Run("an order event someone else wrote is parked and reserves nothing", func(t *testing.T) {
		for _, c := range []struct {
			stream string
			v      events.OrderPlaced
		}{
			{"order-1", events.OrderPlaced{Lines: []events.OrderLine{{SKU: "mug", Qty: 1}}}},                           // no order id
			{events.OrderStream(o2), events.OrderPlaced{OrderID: o1, Lines: []events.OrderLine{{SKU: "mug", Qty: 1}}}}, // another stream's
		} {
			data, err := reg.Encode(c.v, sdk.Metadata{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := store.Append(ctx, c.stream, verity.Any(), data); err != nil {
				t.Fatal(err)
			}
			recs, err := store.ReadStream(ctx, c.stream, verity.ReadStreamOptions{Direction: verity.Backwards, FromEnd: true, Limit: 1})
			if err != nil {
				t.Fatal(err)
			}
			e, err := reg.Decode(recs[0])
			if err != nil {
				t.Fatal(err)
			}
			before := stock("mug")
			if err := p.Handle(ctx, e); !sdk.IsPark(err) {
				t.Errorf("%s in %s: %v, want it parked", e.Type, c.stream, err)
			}
			if after := stock("mug"); after.Available != before.Available || after.Reserved != before.Reserved {
				t.Errorf("%s in %s changed the stock: %+v -> %+v", e.Type, c.stream, before, after)
			}
		}
	})
	t.Run("a cancelled order's stock is released once", func(t *testing.T) {
		deliver(events.OrderStream(o1), events.OrderCancelled{OrderID: o1, Reason: "payment failed"})
		if m, te := stock("mug"), stock("tea"); m.Available != 5 || m.Reserved != 0 || te.Available != 1 {
			t.Errorf("mug %+v, tea %+v: want everything back", m, te)
		}
		deliver(events.OrderStream(o2), events.OrderCancelled{OrderID: o2, Reason: "no stock"})
		if m := stock("mug"); m.Available != 5 {
			t.Errorf("mug %+v: a release without reservation gave stock", m)
		}
	})
}
