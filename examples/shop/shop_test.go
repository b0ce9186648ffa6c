package shop_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/examples/shop"
	"github.com/verity-dev/verity/examples/shop/events"
	"github.com/verity-dev/verity/examples/shop/internal/shoptest"
	"github.com/verity-dev/verity/examples/shop/inventory"
	"github.com/verity-dev/verity/examples/shop/orders"
	"github.com/verity-dev/verity/examples/shop/payments"
	"github.com/verity-dev/verity/persistent"
	"github.com/verity-dev/verity/registry"
	"github.com/verity-dev/verity/sdk"
)

// waitLimit bounds every wait for the asynchronous flows (generous: -race is slow).
const waitLimit = 20 * time.Second

// registryTTL is the lease of the test's registry: short, so that a killed service
// disappears within the test.
const registryTTL = time.Second

type fixture struct {
	t      *testing.T
	ctx    context.Context
	store  verity.Store
	groups *persistent.Manager
	reg    *registry.Registry
	sys    *shop.System
}

// start runs the shop on a fresh store; before, when given, runs once the consumer groups'
// manager exists and before the services start.
func start(t *testing.T, before ...func(context.Context, verity.Groups)) *fixture {
	t.Helper()
	ctx := t.Context()
	log := shoptest.Quiet
	store, groups := shoptest.OpenLogged(t, log)
	reg, err := registry.New(store, registry.Config{TTL: registryTTL, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	for _, b := range before {
		b(ctx, groups)
	}
	sys, err := shop.Start(ctx, shop.Config{Store: store, Groups: groups, Registrar: reg, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sys.Close(); err != nil {
			t.Errorf("close the shop: %v", err)
		}
	})
	return &fixture{t: t, ctx: ctx, store: store, groups: groups, reg: reg, sys: sys}
}

// call sends a JSON request to a service and decodes the answer into out (when not nil),
// failing the test unless the status is want.
func (f *fixture) call(service, method, path string, body any, want int, out any) {
	f.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			f.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	addr := f.sys.Addr(service)
	if addr == "" {
		f.t.Fatalf("%s %s: service %s is not running", method, path, service)
	}
	req, err := http.NewRequestWithContext(f.ctx, method, "http://"+addr+path, rd)
	if err != nil {
		f.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatalf("%s %s %s: %v", service, method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		f.t.Fatalf("%s %s %s: status %d, want %d: %s", service, method, path, resp.StatusCode, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			f.t.Fatalf("%s %s %s: %v in %s", service, method, path, err, b)
		}
	}
}

func (f *fixture) addCustomer(name string) string {
	f.t.Helper()
	var c struct{ CustomerID string }
	f.call(shop.Customers, "POST", "/customers", map[string]string{"name": name, "email": strings.ToLower(name) + "@example.com"}, http.StatusCreated, &c)
	if c.CustomerID == "" {
		f.t.Fatalf("POST /customers answered no customerId")
	}
	return c.CustomerID
}

func (f *fixture) addProduct(sku string, price, stock int64) {
	f.t.Helper()
	f.call(shop.Inventory, "POST", "/products", map[string]any{"sku": sku, "name": strings.ToUpper(sku), "priceCents": price, "stock": stock}, http.StatusCreated, nil)
}

type product struct {
	SKU                 string
	Available, Reserved int64
}

func (f *fixture) product(sku string) product {
	f.t.Helper()
	var p product
	f.call(shop.Inventory, "GET", "/products/"+sku, nil, http.StatusOK, &p)
	return p
}

// place submits a PlaceOrder command and awaits its outcome, as the gateway does.
func (f *fixture) place(customerID string, lines ...events.ReservedLine) sdk.CommandOutcome {
	f.t.Helper()
	data, err := json.Marshal(events.PlaceOrder{CustomerID: customerID, Lines: lines})
	if err != nil {
		f.t.Fatal(err)
	}
	id := uuid.New()
	if _, err := sdk.SubmitCommand(f.ctx, f.store, sdk.Command{ID: id, Category: events.OrderCommandCategory, Type: events.PlaceOrderType, Data: data}); err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(f.ctx, waitLimit)
	defer cancel()
	out, err := sdk.AwaitCommandOutcome(ctx, f.store, events.OrderCommandCategory, id)
	if err != nil {
		f.t.Fatalf("await PlaceOrder %s: %v (outcome so far %+v)", id, err, out)
	}
	return out
}

// placeOK places an order that must be accepted and returns its id.
func (f *fixture) placeOK(customerID string, lines ...events.ReservedLine) string {
	f.t.Helper()
	out := f.place(customerID, lines...)
	var res events.PlaceOrderResult
	if out.State != sdk.CommandSucceeded || json.Unmarshal(out.Result, &res) != nil || res.OrderID == "" {
		f.t.Fatalf("PlaceOrder: %+v (result %s), want succeeded with an orderId", out, out.Result)
	}
	return res.OrderID
}

type order struct {
	OrderID, CustomerID, CustomerName, Status, Reason string
	TotalCents, ItemCount                             int64
	Lines                                             []events.OrderLine
}

// waitOrder waits until the order has the status, and returns it.
func (f *fixture) waitOrder(id, status string) order {
	f.t.Helper()
	var o order
	f.waitFor(fmt.Sprintf("order %s %s", id, status), func() bool {
		f.call(shop.Orders, "GET", "/orders/"+id, nil, http.StatusOK, &o)
		return o.Status == status
	})
	return o
}

func (f *fixture) waitFor(what string, cond func() bool) {
	f.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			f.t.Fatalf("%s: not within %v", what, waitLimit)
		}
		select {
		case <-f.ctx.Done():
			f.t.Fatal(f.ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// types lists the types of a stream's events ("" entries for none).
func (f *fixture) types(stream string) []string {
	f.t.Helper()
	recs, err := f.store.ReadStream(f.ctx, stream, verity.ReadStreamOptions{})
	if verity.KindOf(err) == verity.NotFound {
		return nil
	}
	if err != nil {
		f.t.Fatal(err)
	}
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Type
	}
	return out
}

func (f *fixture) wantTypes(stream string, want ...string) {
	f.t.Helper()
	if got := f.types(stream); !slices.Equal(got, want) {
		f.t.Errorf("stream %s holds %v, want %v", stream, got, want)
	}
}

func line(sku string, qty int64) events.ReservedLine { return events.ReservedLine{SKU: sku, Qty: qty} }

func TestAnOrderWithinStockAndLimitIsConfirmed(t *testing.T) {
	f := start(t)
	ann := f.addCustomer("Ann")
	f.addProduct("mug", 1200, 5)
	f.addProduct("tea", 500, 10)

	id := f.placeOK(ann, line("mug", 2), line("tea", 1), line("mug", 1))
	o := f.waitOrder(id, "confirmed")
	if o.CustomerName != "Ann" || o.TotalCents != 4100 || o.ItemCount != 4 || o.CustomerID != ann {
		t.Errorf("order %+v, want Ann's, 4100 cents, 4 items", o)
	}
	if p := f.product("mug"); p.Available != 2 || p.Reserved != 3 {
		t.Errorf("mug %+v, want 2 available and 3 reserved", p)
	}
	var pay struct {
		Status      string
		AmountCents int64
	}
	f.call(shop.Payments, "GET", "/payments/"+id, nil, http.StatusOK, &pay)
	if pay.Status != "succeeded" || pay.AmountCents != 4100 {
		t.Errorf("payment %+v, want succeeded for 4100", pay)
	}
	f.wantTypes(events.OrderStream(id), "OrderPlaced", "OrderConfirmed")
	f.wantTypes(events.ReservationStream(id), "ReservationSucceeded")
	f.wantTypes(events.PaymentStream(id), "PaymentSucceeded")
	f.wantTypes(events.ProductStream("mug"), "ProductAdded", "StockAdded", "StockReserved")

	var list []order
	f.call(shop.Orders, "GET", "/orders?customerId="+ann, nil, http.StatusOK, &list)
	if len(list) != 1 || list[0].OrderID != id {
		t.Errorf("Ann's orders: %+v, want the one placed", list)
	}

	// Every event of the flow carries the command's correlation id.
	recs, err := f.store.ReadStream(f.ctx, events.PaymentStream(id), verity.ReadStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := sdk.CorrelationID(recs[0]); got != id {
		t.Errorf("the payment's correlation id is %q, want the command's %q", got, id)
	}
}

func TestAnOrderBeyondStockIsCancelled(t *testing.T) {
	f := start(t)
	ann := f.addCustomer("Ann")
	f.addProduct("mug", 1200, 5)
	f.addProduct("tea", 500, 10)

	id := f.placeOK(ann, line("tea", 2), line("mug", 6))
	o := f.waitOrder(id, "cancelled")
	if !strings.Contains(o.Reason, "mug") {
		t.Errorf("reason %q does not name the sku out of stock", o.Reason)
	}
	if p := f.product("tea"); p.Available != 10 || p.Reserved != 0 {
		t.Errorf("tea %+v: nothing may be reserved when a line fails", p)
	}
	f.wantTypes(events.ReservationStream(id), "ReservationFailed")
	f.wantTypes(events.PaymentStream(id))
	f.call(shop.Payments, "GET", "/payments/"+id, nil, http.StatusNotFound, nil)
}

func TestAnOrderOverThePaymentLimitIsCancelledAndItsStockReleased(t *testing.T) {
	f := start(t)
	ann := f.addCustomer("Ann")
	f.addProduct("lamp", 60000, 3)

	id := f.placeOK(ann, line("lamp", 2)) // 120000 cents > 100000
	o := f.waitOrder(id, "cancelled")
	if !strings.Contains(o.Reason, "payment failed") {
		t.Errorf("reason %q, want a failed payment", o.Reason)
	}
	f.waitFor("lamp's stock released", func() bool {
		p := f.product("lamp")
		return p.Available == 3 && p.Reserved == 0
	})
	f.wantTypes(events.ProductStream("lamp"), "ProductAdded", "StockAdded", "StockReserved", "StockReleased")
	f.wantTypes(events.PaymentStream(id), "PaymentFailed")
	f.wantTypes(events.OrderStream(id), "OrderPlaced", "OrderCancelled")
}

func TestOrdersForUnknownCustomersOrProductsAreRejected(t *testing.T) {
	f := start(t)
	ann := f.addCustomer("Ann")
	f.addProduct("mug", 1200, 5)
	for _, c := range []struct {
		name     string
		customer string
		lines    []events.ReservedLine
		kind     string
	}{
		{"an unknown customer", uuid.NewString(), []events.ReservedLine{line("mug", 1)}, "not_found"},
		{"an unknown sku", ann, []events.ReservedLine{line("vase", 1)}, "not_found"},
		{"no lines", ann, nil, "invalid"},
		{"a zero quantity", ann, []events.ReservedLine{line("mug", 0)}, "invalid"},
		{"a malformed sku", ann, []events.ReservedLine{line("Mug-1", 1)}, "invalid"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := f.place(c.customer, c.lines...)
			if out.State != sdk.CommandRejected || out.Kind != c.kind {
				t.Errorf("outcome %+v, want rejected as %s", out, c.kind)
			}
		})
	}
	if p := f.product("mug"); p.Available != 5 {
		t.Errorf("mug %+v: a rejected order reserved stock", p)
	}
}

func TestOrdersGoOnWhileCustomersIsDown(t *testing.T) {
	f := start(t)
	ann := f.addCustomer("Ann")
	f.addProduct("mug", 1200, 5)

	f.sys.Kill(shop.Customers)
	if a := f.sys.Addr(shop.Customers); a != "" {
		t.Fatalf("a killed service still has an address %q", a)
	}
	id := f.placeOK(ann, line("mug", 1))
	if o := f.waitOrder(id, "confirmed"); o.CustomerName != "Ann" {
		t.Errorf("order %+v: want the customer's name from the orders' own view", o)
	}
	// Killed, it did not deregister: the registry drops it when its lease runs out.
	f.waitFor("the killed customers instance expired from the registry", func() bool {
		ins, err := f.reg.Lookup(f.ctx, shop.Customers)
		return err == nil && len(ins) == 0
	})

	if err := f.sys.Restart(f.ctx, shop.Customers); err != nil {
		t.Fatal(err)
	}
	bob := f.addCustomer("Bob")
	var c struct{ CustomerID, Name string }
	f.call(shop.Customers, "GET", "/customers/"+bob, nil, http.StatusOK, &c)
	if c.Name != "Bob" {
		t.Errorf("after a restart, GET /customers/%s = %+v, want Bob", bob, c)
	}
	f.call(shop.Customers, "GET", "/customers/"+ann, nil, http.StatusOK, &c)
	if c.Name != "Ann" {
		t.Errorf("after a restart, Ann is %+v", c)
	}
	// Bob, registered a moment ago, can order at once: orders waits for its view.
	if o := f.waitOrder(f.placeOK(bob, line("mug", 1)), "confirmed"); o.CustomerName != "Bob" {
		t.Errorf("Bob's order %+v", o)
	}
	ins, err := f.reg.Lookup(f.ctx, shop.Customers)
	if err != nil || len(ins) != 1 || ins[0].Address != f.sys.Addr(shop.Customers) || ins[0].Metadata["healthCheck"] != "/healthz" {
		t.Errorf("customers in the registry: %+v, %v; want the new instance only, at %s", ins, err, f.sys.Addr(shop.Customers))
	}

	// A graceful restart deregisters the old instance at once, without waiting for its
	// lease to run out.
	if err := f.sys.Restart(f.ctx, shop.Inventory); err != nil {
		t.Fatal(err)
	}
	ins, err = f.reg.Lookup(f.ctx, shop.Inventory)
	if err != nil || len(ins) != 1 || ins[0].Address != f.sys.Addr(shop.Inventory) {
		t.Errorf("inventory in the registry right after a restart: %+v, %v; want the new instance only, at %s", ins, err, f.sys.Addr(shop.Inventory))
	}
}

func TestRestartsAndRedeliveriesDoNotDoubleAnything(t *testing.T) {
	// The process managers' groups are created before the services (which then keep
	// them) with a message timeout so short that events still being handled are handed
	// out again: redeliveries, some of them concurrent with the first delivery.
	f := start(t, func(ctx context.Context, groups verity.Groups) {
		for _, spec := range []verity.GroupSpec{inventory.GroupSpec, payments.GroupSpec, orders.GroupSpec} {
			spec.Settings.MessageTimeout = time.Millisecond
			spec.Settings.MaxRetryCount = 10000
			if err := groups.CreateGroup(ctx, spec); err != nil {
				t.Fatal(err)
			}
		}
	})
	ann := f.addCustomer("Ann")
	f.addProduct("mug", 1200, 100)
	f.addProduct("lamp", 60000, 100)

	// Orders placed while inventory and payments die mid-flow and come back.
	var confirmed, cancelled []string
	for i := range 8 {
		switch i {
		case 2:
			f.sys.Kill(shop.Inventory)
		case 4:
			if err := f.sys.Restart(f.ctx, shop.Inventory); err != nil {
				t.Fatal(err)
			}
			f.sys.Kill(shop.Payments)
		case 6:
			if err := f.sys.Restart(f.ctx, shop.Payments); err != nil {
				t.Fatal(err)
			}
		}
		if i%3 == 2 {
			cancelled = append(cancelled, f.placeOK(ann, line("lamp", 2)))
		} else {
			confirmed = append(confirmed, f.placeOK(ann, line("mug", 1)))
		}
	}
	for _, id := range confirmed {
		f.waitOrder(id, "confirmed")
	}
	for _, id := range cancelled {
		f.waitOrder(id, "cancelled")
	}
	f.waitFor("lamp's stock released", func() bool { return f.product("lamp").Available == 100 })
	var timedOut uint64
	for _, g := range []string{inventory.Group, payments.Group, orders.Group} {
		info, err := f.groups.GetGroup(f.ctx, verity.AllStream, g)
		if err != nil {
			t.Fatal(err)
		}
		timedOut += info.TimedOut
	}
	t.Logf("%d deliveries timed out and were handed out again", timedOut)

	// And every event of the flows delivered once more, in order, to its handler.
	f.redeliverAll()

	check := func() {
		t.Helper()
		for _, id := range confirmed {
			f.wantTypes(events.OrderStream(id), "OrderPlaced", "OrderConfirmed")
			f.wantTypes(events.ReservationStream(id), "ReservationSucceeded")
			f.wantTypes(events.PaymentStream(id), "PaymentSucceeded")
		}
		for _, id := range cancelled {
			f.wantTypes(events.OrderStream(id), "OrderPlaced", "OrderCancelled")
			f.wantTypes(events.ReservationStream(id), "ReservationSucceeded")
			f.wantTypes(events.PaymentStream(id), "PaymentFailed")
		}
		mug := []string{"ProductAdded", "StockAdded"}
		for range confirmed {
			mug = append(mug, "StockReserved")
		}
		f.wantTypes(events.ProductStream("mug"), mug...)
		if got := f.types(events.ProductStream("lamp")); len(got) != 2+2*len(cancelled) {
			t.Errorf("lamp's stream holds %v, want %d events: added, stocked, then reserved and released %d times", got, 2+2*len(cancelled), len(cancelled))
		}
		if p := f.product("mug"); p.Available != 100-int64(len(confirmed)) || p.Reserved != int64(len(confirmed)) {
			t.Errorf("mug %+v, want %d reserved", p, len(confirmed))
		}
		if p := f.product("lamp"); p.Available != 100 || p.Reserved != 0 {
			t.Errorf("lamp %+v, want all released", p)
		}
	}
	check()
	if t.Failed() {
		return
	}
	// The last check ran after the redelivery; one more order through the whole flow
	// shows the services still work, and nothing moved meanwhile.
	confirmed = append(confirmed, f.placeOK(ann, line("mug", 1)))
	f.waitOrder(confirmed[len(confirmed)-1], "confirmed")
	check()
}

// redeliverAll hands every event the process managers react to, in log order, to the
// handler that reacts to it, as a group would after losing its checkpoint.
func (f *fixture) redeliverAll() {
	f.t.Helper()
	reg := events.NewRegistry()
	inv, err := inventory.NewProcess(f.store, reg)
	if err != nil {
		f.t.Fatal(err)
	}
	pay, err := payments.New(payments.Config{Store: f.store, Groups: f.groups})
	if err != nil {
		f.t.Fatal(err)
	}
	oh, err := sdk.NewCommandHandler(f.store, reg, orders.Decider, sdk.CommandHandlerConfig{})
	if err != nil {
		f.t.Fatal(err)
	}
	outcomes := orders.Outcomes(oh)
	recs, err := f.store.ReadAll(f.ctx, verity.ReadAllOptions{Filter: verity.Filter{
		Categories: []string{events.OrderCategory, events.ReservationCategory, events.PaymentCategory},
	}})
	if err != nil {
		f.t.Fatal(err)
	}
	n := 0
	for _, rec := range recs {
		e, err := reg.Decode(rec)
		if err != nil {
			f.t.Fatal(err)
		}
		var h sdk.HandlerFunc
		switch e.Data.(type) {
		case events.OrderPlaced, events.OrderCancelled:
			h = inv.Handle
		case events.ReservationSucceeded:
			h = pay.Charge
		case events.ReservationFailed, events.PaymentSucceeded, events.PaymentFailed:
			h = outcomes
		default:
			continue
		}
		if err := h(f.ctx, e); err != nil {
			f.t.Fatalf("redeliver %s %s: %v", rec.Type, rec.Stream, err)
		}
		n++
	}
	if n == 0 {
		f.t.Fatal("nothing to redeliver")
	}
}
