package orders

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/examples/shop/events"
	"github.com/verity-dev/verity/examples/shop/internal/shoptest"
	"github.com/verity-dev/verity/sdk"
)

const ann = "0e0c6a4e-29c5-4b7e-9b0c-1f6f2f9f4a11"

func TestOrdersPlaceAndServe(t *testing.T) {
	ctx := context.Background()
	store, groups := shoptest.Open(t)
	reg := events.NewRegistry()
	write := func(stream string, v any) {
		t.Helper()
		data, err := reg.Encode(v, sdk.Metadata{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Append(ctx, stream, verity.Any(), data); err != nil {
			t.Fatal(err)
		}
	}
	// Written before the service starts: its view replays them.
	write(events.CustomerStream(ann), events.CustomerRegistered{CustomerID: ann, Name: "Ann", Email: "ann@example.com"})
	write(events.ProductStream("mug"), events.ProductAdded{SKU: "mug", Name: "Mug", PriceCents: 1200})

	s, err := New(Config{Store: store, Groups: groups, Logger: shoptest.Quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	url := "http://" + s.Addr()

	// Written after the start: a PlaceOrder naming it waits for the view.
	write(events.ProductStream("tea"), events.ProductAdded{SKU: "tea", Name: "Tea", PriceCents: 500})

	cmd := sdk.Command{ID: uuid.New(), Category: events.OrderCommandCategory, Type: events.PlaceOrderType,
		Data: json.RawMessage(`{"customerId":"` + ann + `","lines":[{"sku":"mug","qty":2},{"sku":"tea","qty":1},{"sku":"mug","qty":1}]}`)}
	if _, err := sdk.SubmitCommand(ctx, store, cmd); err != nil {
		t.Fatal(err)
	}
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	out, err := sdk.AwaitCommandOutcome(actx, store, events.OrderCommandCategory, cmd.ID)
	cancel()
	if err != nil || out.State != sdk.CommandSucceeded {
		t.Fatalf("PlaceOrder: %+v, %v", out, err)
	}
	id := cmd.ID.String()
	if string(out.Result) != `{"orderId":"`+id+`"}` {
		t.Errorf("result %s, want the order id %s", out.Result, id)
	}

	t.Run("an order is served with its customer's name", func(t *testing.T) {
		var o OrderDetails
		shoptest.Call(t, "GET", url+"/orders/"+id, nil, http.StatusOK, &o)
		want := []events.OrderLine{{SKU: "mug", Qty: 3, PriceCents: 1200}, {SKU: "tea", Qty: 1, PriceCents: 500}}
		if o.Status != StatusPlaced || o.CustomerName != "Ann" || o.TotalCents != 4100 || o.ItemCount != 4 || len(o.Lines) != 2 || o.Lines[0] != want[0] || o.Lines[1] != want[1] {
			t.Errorf("GET = %+v", o)
		}
	})
	t.Run("a customer's orders are listed", func(t *testing.T) {
		shoptest.Eventually(t, 10*time.Second, "the order listed", func() bool {
			var list []Summary
			shoptest.Call(t, "GET", url+"/orders?customerId="+ann, nil, http.StatusOK, &list)
			return len(list) == 1 && list[0].OrderID == id
		})
		var list []Summary
		shoptest.Call(t, "GET", url+"/orders?customerId="+uuid.NewString(), nil, http.StatusOK, &list)
		if len(list) != 0 {
			t.Errorf("a stranger's orders: %+v", list)
		}
	})
	t.Run("a redelivered command places nothing more", func(t *testing.T) {
		rec, err := store.ReadStream(ctx, sdk.CommandStream(events.OrderCommandCategory, cmd.ID), verity.ReadStreamOptions{Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		again := cmd
		again.Recorded = rec[0]
		res, err := s.PlaceOrder(ctx, again)
		if err != nil || res != (events.PlaceOrderResult{OrderID: id}) {
			t.Errorf("redelivery: %+v, %v", res, err)
		}
		evs, err := store.ReadStream(ctx, events.OrderStream(id), verity.ReadStreamOptions{})
		if err != nil || len(evs) != 1 {
			t.Errorf("order stream: %d events, %v; want OrderPlaced once", len(evs), err)
		}
	})
	t.Run("outcomes close the order once", func(t *testing.T) {
		write(events.PaymentStream(id), events.PaymentSucceeded{OrderID: id, AmountCents: 4100})
		shoptest.Eventually(t, 10*time.Second, "the order confirmed", func() bool {
			var o OrderDetails
			shoptest.Call(t, "GET", url+"/orders/"+id, nil, http.StatusOK, &o)
			return o.Status == StatusConfirmed
		})
		recs, err := store.ReadStream(ctx, events.PaymentStream(id), verity.ReadStreamOptions{})
		if err != nil {
			t.Fatal(err)
		}
		e, err := reg.Decode(recs[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := Outcomes(s.orders)(ctx, e); err != nil {
			t.Fatal(err)
		}
		evs, err := store.ReadStream(ctx, events.OrderStream(id), verity.ReadStreamOptions{})
		if err != nil || len(evs) != 2 {
			t.Errorf("order stream: %d events, %v; want placed and confirmed", len(evs), err)
		}
	})
	for _, c := range []struct {
		name, path string
		want       int
	}{
		{"an unknown order is not found", "/orders/" + uuid.NewString(), http.StatusNotFound},
		{"a malformed order id is invalid", "/orders/nope", http.StatusBadRequest},
		{"the health check answers", "/healthz", http.StatusOK},
	} {
		t.Run(c.name, func(t *testing.T) { shoptest.Call(t, "GET", url+c.path, nil, c.want, nil) })
	}
}
