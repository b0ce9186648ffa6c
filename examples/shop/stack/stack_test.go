package stack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/examples/shop"
	"github.com/verity-dev/verity/examples/shop/internal/shoptest"
	"github.com/verity-dev/verity/examples/shop/loadgen"
	"github.com/verity-dev/verity/examples/shop/stack"
	"github.com/verity-dev/verity/gateway"
	"github.com/verity-dev/verity/registry"
)

// waitLimit bounds each wait on the asynchronous flows (generous: -race on 2 shared cores).
const waitLimit = 30 * time.Second

// routeTimeout is the gateway's route timeout in these tests: no request may hang past it.
const routeTimeout = 2 * time.Second

type fixture struct {
	t     *testing.T
	store verity.Store
	st    *stack.Stack
	http  *http.Client
}

// startStack runs the shop, gateway and consolidator over a fresh engine, with a short
// registry TTL and breaker open time so that a test sees them act.
func startStack(t *testing.T, tune ...func(*gateway.Config)) *fixture {
	t.Helper()
	ctx := t.Context()
	log := slog.New(slog.NewTextHandler(testWriter(t), nil))
	dir := t.TempDir()
	store, groups := shoptest.OpenLogged(t, log)
	reg, err := registry.New(store, registry.Config{TTL: time.Second, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })

	gcfg, err := gateway.Parse(shop.GatewayConfig)
	if err != nil {
		t.Fatal(err)
	}
	gcfg.Defaults.Timeout = routeTimeout
	gcfg.Defaults.Breaker.Failures = 3
	gcfg.Defaults.Breaker.OpenFor = 300 * time.Millisecond
	for _, f := range tune {
		f(&gcfg)
	}
	st, err := stack.Start(ctx, stack.Config{
		Store: store, Groups: groups, Registry: reg,
		GatewayListen: "127.0.0.1:0", AdminListen: "127.0.0.1:0",
		DataDir: dir, Gateway: &gcfg, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close the stack: %v", err)
		}
	})
	return &fixture{t: t, store: store, st: st, http: &http.Client{Timeout: 10 * time.Second}}
}

// call sends a JSON request through the gateway and decodes a JSON answer into out (when
// non-nil), returning the status and how long it took.
func (f *fixture) call(method, path string, body any, out any, header ...string) (int, time.Duration) {
	f.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			f.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(f.t.Context(), method, f.st.GatewayURL()+path, rd)
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	start := time.Now()
	resp, err := f.http.Do(req)
	if err != nil {
		f.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	took := time.Since(start)
	if out != nil && len(raw) > 0 && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			f.t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode, took
}

func (f *fixture) mustCall(method, path string, body any, want int, out any) {
	f.t.Helper()
	if code, _ := f.call(method, path, body, out); code != want {
		f.t.Fatalf("%s %s: status %d, want %d", method, path, code, want)
	}
}

// eventually polls cond until it holds or waitLimit passes.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not so after %v: %v", what, waitLimit, err)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
}

func (f *fixture) newCustomer(name string) string {
	var out struct{ CustomerID string }
	f.mustCall("POST", "/api/customers", map[string]string{"name": name, "email": name + "@example.com"}, http.StatusCreated, &out)
	if out.CustomerID == "" {
		f.t.Fatal("no customerId in the answer")
	}
	return out.CustomerID
}

func (f *fixture) newProduct(sku string, price, stock int) {
	f.mustCall("POST", "/api/products", map[string]any{"sku": sku, "name": sku, "priceCents": price, "stock": stock}, http.StatusCreated, nil)
}

type outcome struct {
	CommandID string          `json:"commandId"`
	State     string          `json:"state"`
	Result    json.RawMessage `json:"result"`
	Error     string          `json:"error"`
}

// placeOrder posts a PlaceOrder through the gateway's command route.
func (f *fixture) placeOrder(customer, sku string, qty int) (int, outcome) {
	var o outcome
	code, _ := f.call("POST", "/api/orders", map[string]any{"customerId": customer, "lines": []map[string]any{{"sku": sku, "qty": qty}}}, &o,
		"Idempotency-Key", uuid.NewString())
	return code, o
}

func orderIDOf(t *testing.T, o outcome) string {
	t.Helper()
	var r struct{ OrderID string }
	if err := json.Unmarshal(o.Result, &r); err != nil || r.OrderID == "" {
		t.Fatalf("outcome %+v has no orderId", o)
	}
	return r.OrderID
}

// viewRow is an orders_overview row as the consolidator's admin API returns it.
type viewRow struct {
	status string
	total  int64
}

// orderFold folds the order-* streams of the log into what orders_overview must hold, and
// checks that no order has two placements or two endings.
func (f *fixture) orderFold(ctx context.Context) (map[string]viewRow, error) {
	want := map[string]viewRow{}
	ended := map[string]bool{}
	var from uint64
	for {
		evs, err := f.store.ReadAll(ctx, verity.ReadAllOptions{From: from, Limit: 1000, Filter: verity.Filter{Categories: []string{"order"}}})
		if err != nil {
			return nil, err
		}
		if len(evs) == 0 {
			return want, nil
		}
		for _, e := range evs {
			var d struct {
				OrderID    string `json:"orderId"`
				TotalCents int64  `json:"totalCents"`
			}
			if err := json.Unmarshal(e.Data, &d); err != nil {
				return nil, err
			}
			switch e.Type {
			case "OrderPlaced":
				if _, dup := want[d.OrderID]; dup {
					return nil, fmt.Errorf("order %s placed twice", d.OrderID)
				}
				want[d.OrderID] = viewRow{"placed", d.TotalCents}
			case "OrderConfirmed", "OrderCancelled":
				if ended[d.OrderID] {
					return nil, fmt.Errorf("order %s ended twice", d.OrderID)
				}
				ended[d.OrderID] = true
				r := want[d.OrderID]
				r.status = strings.ToLower(strings.TrimPrefix(e.Type, "Order"))
				want[d.OrderID] = r
			}
			from = e.Position + 1
		}
	}
}

// view reads orders_overview through the consolidator's admin API.
func (f *fixture) view(ctx context.Context) (map[string]viewRow, error) {
	got := map[string]viewRow{}
	after := ""
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", f.st.AdminURL()+"/views/orders_overview/tables/orders_overview?limit=500&after="+after, nil)
		resp, err := f.http.Do(req)
		if err != nil {
			return nil, err
		}
		var page struct {
			Rows []map[string]any `json:"rows"`
			Next string           `json:"next"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		for _, r := range page.Rows {
			total, _ := r["total_cents"].(float64)
			got[fmt.Sprint(r["order_id"])] = viewRow{fmt.Sprint(r["status"]), int64(total)}
		}
		if page.Next == "" {
			return got, nil
		}
		after = page.Next
	}
}

// viewsEqualTheLog waits until every order has ended and orders_overview equals the fold
// of the log.
func (f *fixture) viewsEqualTheLog(orders []string) {
	f.t.Helper()
	ctx := f.t.Context()
	eventually(f.t, "orders_overview equals the fold of the log", func() error {
		want, err := f.orderFold(ctx)
		if err != nil {
			return err
		}
		for _, id := range orders {
			if r, ok := want[id]; !ok || r.status == "placed" {
				return fmt.Errorf("order %s: %+v in the log, want it ended", id, r)
			}
		}
		got, err := f.view(ctx)
		if err != nil {
			return err
		}
		if len(got) != len(want) {
			return fmt.Errorf("view has %d orders, the log %d", len(got), len(want))
		}
		for id, w := range want {
			if got[id] != w {
				return fmt.Errorf("order %s: view %+v, log %+v", id, got[id], w)
			}
		}
		return nil
	})
}

func TestTheShopRunsThroughTheGateway(t *testing.T) {
	f := startStack(t)
	ann := f.newCustomer("ann")
	f.newProduct("tea", 450, 10)

	code, o := f.placeOrder(ann, "tea", 2)
	if code != http.StatusOK || o.State != "succeeded" {
		t.Fatalf("place order: %d %+v, want 200 succeeded", code, o)
	}
	id := orderIDOf(t, o)
	eventually(t, "the order is confirmed", func() error {
		var ord struct{ Status string }
		if code, _ := f.call("GET", "/api/orders/"+id, nil, &ord); code != 200 || ord.Status != "confirmed" {
			return fmt.Errorf("GET order: %d %q", code, ord.Status)
		}
		return nil
	})
	// The request's trace reaches every event it led to, across the services.
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	var traced outcome
	if code, _ := f.call("POST", "/api/orders", map[string]any{"customerId": ann, "lines": []map[string]any{{"sku": "tea", "qty": 1}}}, &traced,
		"traceparent", "00-"+traceID+"-00f067aa0ba902b7-01"); code != http.StatusOK {
		t.Fatalf("place a traced order: %d", code)
	}
	tracedID := orderIDOf(t, traced)
	eventually(t, "the traced order's payment is recorded", func() error {
		_, err := f.store.ReadStream(t.Context(), "payment-"+tracedID, verity.ReadStreamOptions{Limit: 10})
		return err
	})
	for _, stream := range []string{"ordercommand-" + traced.CommandID, "order-" + tracedID, "reservation-" + tracedID, "payment-" + tracedID} {
		evs, err := f.store.ReadStream(t.Context(), stream, verity.ReadStreamOptions{Limit: 10})
		if err != nil {
			t.Fatalf("read %s: %v", stream, err)
		}
		for _, e := range evs {
			var md struct{ Traceparent string }
			json.Unmarshal(e.Metadata, &md)
			if !strings.HasPrefix(md.Traceparent, "00-"+traceID+"-") {
				t.Errorf("%s %s: traceparent %q, want the request's trace %s", stream, e.Type, md.Traceparent, traceID)
			}
		}
	}

	var details map[string]json.RawMessage
	f.mustCall("GET", "/api/orders/"+id+"/details", nil, http.StatusOK, &details)
	for _, part := range []string{"order", "customer", "payment"} {
		if v := details[part]; len(v) == 0 || string(v) == "null" {
			t.Errorf("details: %s missing in %s", part, mustJSON(details))
		}
	}
	if _, partial := details["partial"]; partial {
		t.Errorf("details marked partial with every service up: %s", mustJSON(details))
	}

	code, o = f.placeOrder(uuid.NewString(), "tea", 1)
	if code/100 != 4 || o.State != "" && o.State != "rejected" {
		t.Errorf("order for an unknown customer: %d %+v, want a 4xx rejection", code, o)
	}
	f.viewsEqualTheLog([]string{id, tracedID})
}

func TestOrdersGoOnWhileCustomersIsDownAndTheBreakerOpens(t *testing.T) {
	f := startStack(t)
	ann := f.newCustomer("ann")
	f.newProduct("tea", 450, 100)
	var placed []string
	code, o := f.placeOrder(ann, "tea", 1)
	if code != http.StatusOK {
		t.Fatalf("place order: %d %+v", code, o)
	}
	placed = append(placed, orderIDOf(t, o))

	f.st.Shop.Kill(shop.Customers)

	// Orders takes orders for known customers from its own view.
	for range 3 {
		code, o := f.placeOrder(ann, "tea", 1)
		if code != http.StatusOK || o.State != "succeeded" {
			t.Fatalf("place order with customers down: %d %+v, want 200 succeeded", code, o)
		}
		placed = append(placed, orderIDOf(t, o))
	}

	// The customers routes fail, then answer 503 quickly once the breaker is open; none
	// hangs past the route timeout.
	opened := false
	for i := 0; i < 50 && !opened; i++ {
		code, took := f.call("GET", "/api/customers/"+ann, nil, nil)
		if took > routeTimeout+time.Second {
			t.Fatalf("GET customer with customers down took %v, past the %v timeout", took, routeTimeout)
		}
		if code == http.StatusOK {
			t.Fatalf("GET customer answered 200 with customers down")
		}
		opened = breakerOpen(f.st.Gateway, "customers")
	}
	if !opened {
		t.Fatal("the breaker for customers never opened")
	}
	code, took := f.call("GET", "/api/customers/"+ann, nil, nil)
	if code != http.StatusServiceUnavailable || took > 500*time.Millisecond {
		t.Errorf("with the breaker open: %d in %v, want 503 at once", code, took)
	}

	// The composed details still show the order, marked partial.
	var details map[string]json.RawMessage
	f.mustCall("GET", "/api/orders/"+placed[0]+"/details", nil, http.StatusOK, &details)
	if string(details["partial"]) != "true" || len(details["order"]) == 0 || string(details["order"]) == "null" {
		t.Errorf("details with customers down: %s, want the order, marked partial", mustJSON(details))
	}

	// Restart: the breaker closes (a half-open probe succeeds) and customers answers again.
	if err := f.st.Shop.Restart(t.Context(), shop.Customers); err != nil {
		t.Fatal(err)
	}
	eventually(t, "customers answers through the gateway again", func() error {
		if code, _ := f.call("GET", "/api/customers/"+ann, nil, nil); code != http.StatusOK {
			return fmt.Errorf("GET customer: %d", code)
		}
		if breakerOpen(f.st.Gateway, "customers") {
			return fmt.Errorf("breaker still open")
		}
		return nil
	})
	bob := f.newCustomer("bob")
	eventually(t, "orders learns of the new customer", func() error {
		if code, o := f.placeOrder(bob, "tea", 1); code != http.StatusOK {
			return fmt.Errorf("place order for bob: %d %+v", code, o)
		} else {
			placed = append(placed, orderIDOf(t, o))
		}
		return nil
	})
	f.viewsEqualTheLog(placed)
}

// TestKillingEachServiceUnderLoadLosesNoAcknowledgedCommand places orders from several
// workers while each service in turn is killed and restarted, then checks that every
// command the gateway acknowledged (200 or 202) has an outcome and that the read model
// equals the fold of the log.
func TestKillingEachServiceUnderLoadLosesNoAcknowledgedCommand(t *testing.T) {
	f := startStack(t)
	var customers []string
	for i := range 4 {
		customers = append(customers, f.newCustomer(fmt.Sprintf("c%d", i)))
	}
	f.newProduct("tea", 450, 100000)

	type acked struct{ id string }
	var (
		mu     sync.Mutex
		acks   []string
		shed   int
		stop   = make(chan struct{})
		wg     sync.WaitGroup
		errsMu sync.Mutex
		errs   []string
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				body, _ := json.Marshal(map[string]any{"customerId": customers[(w+i)%len(customers)], "lines": []map[string]any{{"sku": "tea", "qty": 1}}})
				req, _ := http.NewRequestWithContext(t.Context(), "POST", f.st.GatewayURL()+"/api/orders", bytes.NewReader(body))
				req.Header.Set("Idempotency-Key", uuid.NewString())
				resp, err := f.http.Do(req)
				if err != nil {
					errsMu.Lock()
					errs = append(errs, err.Error())
					errsMu.Unlock()
					continue
				}
				var o outcome
				json.NewDecoder(resp.Body).Decode(&o)
				resp.Body.Close()
				mu.Lock()
				switch resp.StatusCode {
				case http.StatusOK, http.StatusAccepted:
					acks = append(acks, o.CommandID)
				case http.StatusServiceUnavailable:
					shed++
				default:
					errsMu.Lock()
					errs = append(errs, fmt.Sprintf("status %d: %+v", resp.StatusCode, o))
					errsMu.Unlock()
				}
				mu.Unlock()
			}
		}()
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acks) }
	for _, name := range []string{shop.Customers, shop.Inventory, shop.Payments, shop.Orders} {
		before := count()
		eventually(t, "orders acknowledged before killing "+name, func() error {
			if count() < before+5 {
				return fmt.Errorf("%d acknowledged", count()-before)
			}
			return nil
		})
		f.st.Shop.Kill(name)
		if err := f.st.Shop.Restart(t.Context(), name); err != nil {
			t.Fatalf("restart %s: %v", name, err)
		}
	}
	close(stop)
	wg.Wait()
	if len(errs) > 0 {
		t.Errorf("%d requests failed otherwise than 503, e.g. %s", len(errs), errs[0])
	}
	t.Logf("%d commands acknowledged, %d shed", len(acks), shed)

	// Every acknowledged command has an outcome, and every succeeded one an order that
	// ended; the view equals the log.
	var orders []string
	for _, id := range acks {
		var o outcome
		eventually(t, "command "+id+" has an outcome", func() error {
			if code, _ := f.call("GET", "/api/commands/ordercommand/"+id+"?wait=5s", nil, &o); code != 200 || o.State == "pending" {
				return fmt.Errorf("status %d, state %q", code, o.State)
			}
			return nil
		})
		if o.State != "succeeded" {
			t.Errorf("command %s: %+v, want succeeded", id, o)
			continue
		}
		orders = append(orders, orderIDOf(t, o))
	}
	f.viewsEqualTheLog(orders)
}

// TestPastTheConcurrencyLimitTheGatewaySheds drives the gateway with eight times more
// closed-loop clients than its limit admits: the rest get 503 at once (no queue), no request
// fails otherwise, none takes longer than the route timeout, and every order acknowledged
// meanwhile reaches an outcome.
func TestPastTheConcurrencyLimitTheGatewaySheds(t *testing.T) {
	const limit = 4
	f := startStack(t, func(c *gateway.Config) { c.Defaults.MaxConcurrent = limit })
	rep, err := loadgen.Run(t.Context(), loadgen.Config{
		BaseURL: f.st.GatewayURL(), Concurrency: 8 * limit, Requests: 800,
		Customers: 4, Products: 2, MaxBackoff: time.Millisecond, Seed: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	rep.WriteText(&buf)
	t.Logf("load past the limit:\n%s", buf.String())
	if rep.Total.Shed == 0 {
		t.Errorf("nothing was shed with %d clients against a limit of %d", 8*limit, limit)
	}
	for status, n := range rep.Total.Errors {
		if status != "503" {
			t.Errorf("%d requests failed with %s; only 503 (shed) is expected", n, status)
		}
	}
	if rep.Total.Latency.Max > routeTimeout {
		t.Errorf("slowest request took %v, past the route timeout %v: admitted requests queued", rep.Total.Latency.Max, routeTimeout)
	}
	for _, ack := range rep.Acked {
		var o outcome
		if code, _ := f.call("GET", "/api/commands/"+ack+"?wait=10s", nil, &o); code != http.StatusOK || o.State != "succeeded" {
			t.Errorf("acknowledged command %s: %d %+v, want succeeded", ack, code, o)
		}
	}
}

func breakerOpen(g *gateway.Gateway, service string) bool {
	for _, r := range g.Routes() {
		for _, u := range r.Upstreams {
			if u.Service == service && u.Breaker == "open" {
				return true
			}
		}
	}
	return false
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

type tw struct{ t *testing.T }

func (w tw) Write(p []byte) (int, error) { w.t.Log(strings.TrimSpace(string(p))); return len(p), nil }
func testWriter(t *testing.T) io.Writer  { return tw{t} }
