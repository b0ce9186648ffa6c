package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/engine"
	"github.com/verity-dev/verity/examples/shop"
	"github.com/verity-dev/verity/examples/shop/stack"
	"github.com/verity-dev/verity/persistent"
	"github.com/verity-dev/verity/registry"
	"github.com/verity-dev/verity/sdk"
)

// The gateway workload: the shop reference system (examples/shop/stack: the four services,
// the gateway on 127.0.0.1:0 and the consolidator, over an embedded engine in a scratch
// directory), driven by closed-loop HTTP clients for opts.Duration per measurement. Each
// measurement through the gateway has a peer measured in the same run that does the same
// work without it, so the ratio is what the gateway costs:
//
//   - get: GET /api/customers/{id} through the gateway; peer "direct", GET /customers/{id}
//     sent straight to the customers service.
//   - place-order: POST /api/orders, the command route (append to the log, the orders
//     service handles it from its inbox, the gateway awaits the outcome); peer
//     "in-process", sdk.SubmitCommand + sdk.AwaitCommandOutcome on the same store, so the
//     ratio is what HTTP and the gateway add to a command.
//   - details: the composed GET /api/orders/{id}/details; peer "direct", the three calls
//     (order, its customer, its payment) made by the client itself in sequence straight to
//     the services.
//   - overload: GET /api/customers/{id} by 4x and 16x more closed-loop clients than the
//     gateway's limit (maxConcurrent gatewayLimit), so that the rest are shed with 503;
//     peer "gateway-unlimited", the same clients with a limit too high to shed, where the
//     requests queue instead.
//
// Every result is a Result of workload "gateway" whose strategy names the measurement and
// whose writers are the clients; events_per_sec is then answered requests per second
// (admitted ones only when some are shed), p50/p99/max_ms their latency, shed the fraction
// of requests answered 503, and limit the gateway's maxConcurrent.
const WorkloadGateway = "gateway"

// Systems of the gateway workload.
const (
	systemGateway   = "gateway"
	systemDirect    = "direct"
	systemInProcess = "in-process"
	systemUnlimited = "gateway-unlimited"
)

// Measurements of the gateway workload, as reported in the "strategy" field.
const (
	GatewayGet      = "get"
	GatewayPlace    = "place-order"
	GatewayDetails  = "details"
	GatewayOverload = "overload"
)

const (
	// gatewayLimit is the gateway's maxConcurrent in the overload measurement.
	gatewayLimit = 8
	// gatewayUnlimited is its peer's limit: more than any number of clients here.
	gatewayUnlimited = 1 << 20
	// gatewayShedPause is how long a shed client waits before its next request: a client
	// that resent at once would spin on the 2 shared cores and measure itself.
	gatewayShedPause = time.Millisecond
	gatewayCustomers = 16 // customers created at setup
	gatewayOrders    = 16 // orders placed and paid at setup, for details
	// gatewayProducts are the products created at setup: each order buys one unit of one
	// of them, in turn, so that the reservations do not all queue on one product stream.
	gatewayProducts = 16
	gatewayStock    = 1_000_000_000
	// gatewayAwait bounds the in-process peer's wait for an outcome, as the shop's
	// gateway.yaml bounds the command route's.
	gatewayAwait = 2 * time.Second
	// gatewaySettle bounds the setup's waits and the wait after a place-order
	// measurement for the orders it placed to be processed.
	gatewaySettle = 3 * time.Minute
	// orderCommandCategory and placeOrderType are the shop's place-order route.
	orderCommandCategory = "ordercommand"
	placeOrderType       = "PlaceOrder"
)

var (
	// gatewayClients are the closed-loop clients of get, place-order and details.
	gatewayClients = []int{1, 8}
	// gatewayOverloads are the clients of overload, in multiples of gatewayLimit.
	gatewayOverloads = []int{4, 16}
)

// runGateway starts the shop stack in a scratch directory and runs every measurement of
// the gateway workload on it, each beside its peer.
func (r *runner) runGateway(ctx context.Context) (err error) {
	dir, err := os.MkdirTemp(r.dataDir, "gateway-")
	if err != nil {
		return fmt.Errorf("scratch directory: %w", err)
	}
	defer removeStore(dir)
	r.prog.set("gateway: starting the shop stack and creating %d customers and %d orders", gatewayCustomers, gatewayOrders)
	gb, err := startGatewayBench(ctx, dir)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := gb.close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close: %w", cerr))
		}
	}()
	dur := r.opts.Duration
	// side is one side of a measurement: the system, its gateway limit and its request.
	type side struct {
		sys   string
		limit int
		op    gatewayOp
	}
	pair := func(measurement string, clients int, settle bool, sides ...side) {
		fns := make([]gatewayRun, len(sides))
		for i, sd := range sides {
			fns[i] = gatewayRun{sys: sd.sys, fn: func(ctx context.Context) (Result, error) {
				if err := gb.setLimit(sd.limit); err != nil {
					return Result{}, err
				}
				res, err := closedLoop(ctx, clients, dur, sd.op)
				if err == nil && settle {
					err = gb.settle(ctx)
				}
				res.Strategy = measurement
				if sd.sys == systemGateway || sd.sys == systemUnlimited {
					res.Limit = sd.limit
				}
				return res, err
			}}
		}
		r.measureAlternately(ctx, measurement, clients, fns...)
	}
	for _, c := range gatewayClients {
		pair(GatewayGet, c, false, side{systemGateway, gatewayDefaultLimit, gb.getViaGateway}, side{systemDirect, 0, gb.getDirect})
	}
	for _, c := range gatewayClients {
		pair(GatewayDetails, c, false, side{systemGateway, gatewayDefaultLimit, gb.detailsViaGateway}, side{systemDirect, 0, gb.detailsDirect})
	}
	// Last but overload: the orders placed keep the services busy for a while after
	// (reservation, payment, confirmation), which settle waits out.
	for _, c := range gatewayClients {
		pair(GatewayPlace, c, true, side{systemGateway, gatewayDefaultLimit, gb.placeViaGateway}, side{systemInProcess, 0, gb.placeInProcess})
	}
	for _, k := range gatewayOverloads {
		pair(GatewayOverload, k*gatewayLimit, false, side{systemGateway, gatewayLimit, gb.getViaGateway},
			side{systemUnlimited, gatewayUnlimited, gb.getViaGateway})
	}
	return gb.setLimit(gatewayDefaultLimit)
}

// gatewayRun is one side of a gateway measurement.
type gatewayRun struct {
	sys string
	fn  func(context.Context) (Result, error)
}

// measureAlternately runs the sides of one measurement in turn, opts.Runs times each, so
// that a measurement and its peer see the same moments of a noisy machine (measure would
// run all of one side's runs first), and records the median of each side.
func (r *runner) measureAlternately(ctx context.Context, measurement string, clients int, sides ...gatewayRun) {
	got := make([][]Result, len(sides))
	for i := range r.opts.Runs {
		for k, sd := range sides {
			if ctx.Err() != nil {
				return
			}
			r.prog.set("gateway: %s %s clients=%d (run %d of %d)", measurement, sd.sys, clients, i+1, r.opts.Runs)
			res, err := sd.fn(ctx)
			if err != nil && ctx.Err() != nil {
				return // interrupted: not a failure of the system
			}
			if err != nil {
				r.fail(sd.sys, fmt.Sprintf("%s %s clients=%d", WorkloadGateway, measurement, clients), err)
				return
			}
			res.System, res.Workload, res.Writers, res.Batch = sd.sys, WorkloadGateway, clients, 1
			got[k] = append(got[k], res)
		}
	}
	for k := range sides {
		r.report(median(got[k]))
	}
}

// gatewayDefaultLimit is the shop gateway's own limit (gateway.yaml sets none).
const gatewayDefaultLimit = 512

// gatewayBench is the running stack and what the clients need to drive it.
type gatewayBench struct {
	store  verity.Store
	groups *persistent.Manager
	reg    *registry.Registry
	st     *stack.Stack

	transport *http.Transport
	http      *http.Client
	base      string // the gateway's URL
	// The services' own URLs, for the direct peers.
	customersURL, ordersURL, paymentsURL string

	customers []string // ids
	orders    []string // ids of orders placed and paid at setup
	lastOrder atomic.Pointer[string]
	placed    atomic.Uint64 // orders placed so far, to share them out among the products
}

// startGatewayBench starts the stack over a fresh engine in dir, creates the customers and
// the product, and places and waits for the orders that details reads.
func startGatewayBench(ctx context.Context, dir string) (_ *gatewayBench, err error) {
	// Errors only: a shed request or a client gone at the end of a measurement is the
	// workload working, and with --json stderr is for what went wrong.
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	gb := &gatewayBench{}
	defer func() {
		if err != nil {
			err = errors.Join(err, gb.close())
		}
	}()
	if gb.store, err = engine.Open(engine.Config{Dir: filepath.Join(dir, "data"), Logger: log}); err != nil {
		return nil, fmt.Errorf("open engine in %s: %w", dir, err)
	}
	if gb.groups, err = persistent.New(gb.store, persistent.Config{Logger: log}); err != nil {
		return nil, fmt.Errorf("consumer groups: %w", err)
	}
	if gb.reg, err = registry.New(gb.store, registry.Config{Logger: log}); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	if gb.st, err = stack.Start(ctx, stack.Config{
		Store: gb.store, Groups: gb.groups, Registry: gb.reg,
		GatewayListen: "127.0.0.1:0", AdminListen: "127.0.0.1:0",
		DataDir: dir, Logger: log,
	}); err != nil {
		return nil, err
	}
	gb.base = gb.st.GatewayURL()
	gb.customersURL = "http://" + gb.st.Shop.Addr(shop.Customers)
	gb.ordersURL = "http://" + gb.st.Shop.Addr(shop.Orders)
	gb.paymentsURL = "http://" + gb.st.Shop.Addr(shop.Payments)
	gb.transport = &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 1024, // every client keeps its connection between requests
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	gb.http = &http.Client{Transport: gb.transport, Timeout: 30 * time.Second}

	for i := range gatewayCustomers {
		body := fmt.Sprintf(`{"name":"bench%d","email":"bench%d@example.com"}`, i, i)
		var out struct{ CustomerID string }
		if err := gb.call(ctx, "POST", gb.base+"/api/customers", body, http.StatusCreated, &out); err != nil {
			return nil, fmt.Errorf("create customer: %w", err)
		}
		gb.customers = append(gb.customers, out.CustomerID)
	}
	for i := range gatewayProducts {
		product := fmt.Sprintf(`{"sku":%q,"name":"tea","priceCents":450,"stock":%d}`, gatewaySKU(i), gatewayStock)
		if err := gb.call(ctx, "POST", gb.base+"/api/products", product, http.StatusCreated, nil); err != nil {
			return nil, fmt.Errorf("create product: %w", err)
		}
	}
	for i := range gatewayOrders {
		if _, err := gb.placeViaGateway(ctx, i); err != nil {
			return nil, fmt.Errorf("place order: %w", err)
		}
		gb.orders = append(gb.orders, *gb.lastOrder.Load())
	}
	// details needs each order's payment: the composed call and the direct one alike
	// would otherwise measure a 404.
	for _, id := range gb.orders {
		if err := gb.await(ctx, "the payment of order "+id, func() (bool, error) {
			status, _, err := gb.do(ctx, "GET", gb.paymentsURL+"/payments/"+id, "", nil)
			return status == http.StatusOK, err
		}); err != nil {
			return nil, err
		}
	}
	return gb, nil
}

func (gb *gatewayBench) close() error {
	var errs []error
	if gb.transport != nil {
		gb.transport.CloseIdleConnections()
	}
	if gb.st != nil {
		errs = append(errs, gb.st.Close())
	}
	if gb.reg != nil {
		errs = append(errs, gb.reg.Close())
	}
	if gb.groups != nil {
		errs = append(errs, gb.groups.Close())
	}
	if gb.store != nil {
		errs = append(errs, gb.store.Close())
	}
	return errors.Join(errs...)
}

// setLimit sets the gateway-wide concurrency limit (Reload keeps the requests in
// progress, the breakers and the count of requests in flight).
func (gb *gatewayBench) setLimit(limit int) error {
	cfg := gb.st.Gateway.Config()
	if cfg.Defaults.MaxConcurrent == limit {
		return nil
	}
	cfg.Defaults.MaxConcurrent = limit
	if err := gb.st.Gateway.Reload(cfg); err != nil {
		return fmt.Errorf("set the gateway's limit to %d: %w", limit, err)
	}
	return nil
}

// settle waits until the last order placed has been processed (reserved, paid, confirmed
// or cancelled) and the read models have caught up with the log, so that the next
// measurement does not share the cores with the backlog of this one. Orders are processed
// about in the order they were placed.
func (gb *gatewayBench) settle(ctx context.Context) error {
	id := gb.lastOrder.Load()
	if id == nil {
		return nil
	}
	err := gb.await(ctx, "order "+*id+" processed", func() (bool, error) {
		var o struct{ Status string }
		status, body, err := gb.do(ctx, "GET", gb.ordersURL+"/orders/"+*id, "", nil)
		if err != nil || status != http.StatusOK {
			return false, err
		}
		if err := json.Unmarshal(body, &o); err != nil {
			return false, fmt.Errorf("GET order %s: %w", *id, err)
		}
		return o.Status != "" && o.Status != "placed", nil
	})
	if err != nil {
		return err
	}
	return gb.await(ctx, "the read models to catch up", func() (bool, error) {
		statuses, err := gb.st.Consolidator.Statuses(ctx)
		if err != nil {
			return false, err
		}
		for _, s := range statuses {
			if s.LagEvents > 0 {
				return false, nil
			}
		}
		return true, nil
	})
}

// await polls cond until it holds, for at most gatewaySettle.
func (gb *gatewayBench) await(ctx context.Context, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(gatewaySettle)
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waiting for %s: not so after %v", what, gatewaySettle)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// do sends one request and reads the whole answer.
func (gb *gatewayBench) do(ctx context.Context, method, url, body string, header http.Header) (int, []byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := gb.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: reading the answer: %w", method, url, err)
	}
	return resp.StatusCode, b, nil
}

// call sends one request, wants the status want, and decodes the answer into out
// (when not nil).
func (gb *gatewayBench) call(ctx context.Context, method, url, body string, want int, out any) error {
	status, b, err := gb.do(ctx, method, url, body, nil)
	if err != nil {
		return err
	}
	if status != want {
		return badStatus(method, url, status, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: %w", method, url, err)
		}
	}
	return nil
}

func badStatus(method, url string, status, want int, body []byte) error {
	const most = 300
	if len(body) > most {
		body = append(body[:most:most], "..."...)
	}
	return fmt.Errorf("%s %s: status %d, want %d: %s", method, url, status, want, bytes.TrimSpace(body))
}

// gatewayOp is one request of client i: shed reports a 503 from the gateway's limit; an
// error is any other unexpected answer, and ends the measurement.
type gatewayOp func(ctx context.Context, i int) (shed bool, err error)

// get sends a GET that must answer 200 (or 503, when shed is allowed).
func (gb *gatewayBench) get(ctx context.Context, url string) (bool, []byte, error) {
	status, body, err := gb.do(ctx, "GET", url, "", nil)
	switch {
	case err != nil:
		return false, nil, err
	case status == http.StatusServiceUnavailable:
		return true, nil, nil
	case status != http.StatusOK:
		return false, nil, badStatus("GET", url, status, http.StatusOK, body)
	}
	return false, body, nil
}

func (gb *gatewayBench) getViaGateway(ctx context.Context, i int) (bool, error) {
	shed, _, err := gb.get(ctx, gb.base+"/api/customers/"+gb.customers[i%len(gb.customers)])
	return shed, err
}

func (gb *gatewayBench) getDirect(ctx context.Context, i int) (bool, error) {
	shed, _, err := gb.get(ctx, gb.customersURL+"/customers/"+gb.customers[i%len(gb.customers)])
	return shed, err
}

func (gb *gatewayBench) detailsViaGateway(ctx context.Context, i int) (bool, error) {
	url := gb.base + "/api/orders/" + gb.orders[i%len(gb.orders)] + "/details"
	shed, body, err := gb.get(ctx, url)
	if err == nil && !shed && bytes.Contains(body, []byte(`"partial"`)) {
		// A part missing would make the composition cheaper than the direct calls.
		return false, fmt.Errorf("GET %s: a partial answer: %s", url, body)
	}
	return shed, err
}

// detailsDirect makes the composition's three calls itself, in sequence, as a client
// without the gateway would: the order, then its customer, then its payment.
func (gb *gatewayBench) detailsDirect(ctx context.Context, i int) (bool, error) {
	id := gb.orders[i%len(gb.orders)]
	_, body, err := gb.get(ctx, gb.ordersURL+"/orders/"+id)
	if err != nil {
		return false, err
	}
	var o struct{ CustomerID string }
	if err := json.Unmarshal(body, &o); err != nil || o.CustomerID == "" {
		return false, fmt.Errorf("GET order %s: no customerId in %s (%v)", id, body, err)
	}
	if _, _, err := gb.get(ctx, gb.customersURL+"/customers/"+o.CustomerID); err != nil {
		return false, err
	}
	_, _, err = gb.get(ctx, gb.paymentsURL+"/payments/"+id)
	return false, err
}

func gatewaySKU(i int) string { return fmt.Sprintf("bench_tea_%d", i) }

// orderBody is the body of the next place-order command, in the form the gateway
// re-encodes it to (a JSON object with its keys sorted), so that both routes append the
// same bytes.
func (gb *gatewayBench) orderBody() string {
	n := int(gb.placed.Add(1))
	return fmt.Sprintf(`{"customerId":%q,"lines":[{"qty":1,"sku":%q}]}`, gb.customers[n%len(gb.customers)], gatewaySKU(n%gatewayProducts))
}

// placeViaGateway places an order through the command route, which answers 200 only once
// the orders service has recorded that the command succeeded.
func (gb *gatewayBench) placeViaGateway(ctx context.Context, _ int) (bool, error) {
	url := gb.base + "/api/orders"
	req, err := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(gb.orderBody()))
	if err != nil {
		return false, err
	}
	req.Header.Set("Idempotency-Key", uuid.NewString())
	req.Header.Set("Content-Type", "application/json")
	resp, err := gb.http.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	switch {
	case err != nil:
		return false, fmt.Errorf("POST %s: reading the answer: %w", url, err)
	case resp.StatusCode == http.StatusServiceUnavailable:
		return true, nil
	case resp.StatusCode != http.StatusOK:
		return false, badStatus("POST", url, resp.StatusCode, http.StatusOK, body)
	}
	id := resp.Header.Get("X-Command-Id") // the command's id is the order's
	gb.lastOrder.Store(&id)
	return false, nil
}

// placeInProcess appends the same command to the same store and awaits its outcome, as
// the command route does, without HTTP and the gateway.
func (gb *gatewayBench) placeInProcess(ctx context.Context, _ int) (bool, error) {
	id := uuid.New()
	cmd := sdk.Command{ID: id, Category: orderCommandCategory, Type: placeOrderType,
		Data: json.RawMessage(gb.orderBody()), Meta: sdk.Metadata{CorrelationID: id.String()}}
	if _, err := sdk.SubmitCommand(ctx, gb.store, cmd); err != nil {
		return false, fmt.Errorf("submit command %s: %w", id, err)
	}
	actx, cancel := context.WithTimeout(ctx, gatewayAwait)
	out, err := sdk.AwaitCommandOutcome(actx, gb.store, orderCommandCategory, id)
	cancel()
	if err != nil {
		return false, fmt.Errorf("await command %s: %w", id, err)
	}
	if out.State != sdk.CommandSucceeded {
		return false, fmt.Errorf("command %s: %s %s", id, out.State, out.Error)
	}
	s := id.String()
	gb.lastOrder.Store(&s)
	return false, nil
}

// closedLoop runs clients that each send their next request as soon as the last is
// answered (or gatewayShedPause after a shed one), for dur, and at least one each. The
// latencies are of admitted requests; a shed one counts in Shed only.
func closedLoop(ctx context.Context, clients int, dur time.Duration, op gatewayOp) (Result, error) {
	hists := make([]histogram, clients)
	sheds := make([]int64, clients)
	slowest := make([]time.Duration, clients)
	start := time.Now()
	deadline := start.Add(dur)
	err := runWorkers(ctx, clients, func(ctx context.Context, w int) error {
		// One timer per client for the pauses after a shed, drained here so that each
		// pause is a Reset.
		pause := time.NewTimer(0)
		defer pause.Stop()
		<-pause.C
		for first := true; first || time.Now().Before(deadline); first = false {
			t0 := time.Now()
			shed, err := op(ctx, w)
			d := time.Since(t0)
			if err != nil {
				return err
			}
			if shed {
				sheds[w]++
				pause.Reset(gatewayShedPause)
				select {
				case <-pause.C:
				case <-ctx.Done():
					return ctx.Err()
				}
				continue
			}
			hists[w].record(d)
			slowest[w] = max(slowest[w], d)
		}
		return nil
	})
	elapsed := time.Since(start)
	if err != nil {
		return Result{}, err
	}
	var (
		h    histogram
		shed int64
		most time.Duration
	)
	for i := range hists {
		h.merge(&hists[i])
		shed += sheds[i]
		most = max(most, slowest[i])
	}
	admitted := int64(h.n)
	res := Result{
		EventsPerSec: float64(admitted) / elapsed.Seconds(),
		P50ms:        ms(h.quantile(0.50)),
		P99ms:        ms(h.quantile(0.99)),
		MaxMs:        ms(most),
		Events:       admitted,
		ElapsedS:     elapsed.Seconds(),
		Ops:          admitted + shed,
	}
	if res.Ops > 0 {
		res.Shed = float64(shed) / float64(res.Ops)
	}
	return res, nil
}

// gatewayNotes are the notes of a gateway row in the table: the measurement, then for a
// row through the gateway its ratio to the peer of the same measurement (g is the rows of
// that measurement), else what the peer is.
func gatewayNotes(r Result, g []Result) []string {
	notes := []string{r.Strategy + ", requests/s"}
	switch r.System {
	case systemGateway:
		if r.Strategy == GatewayOverload {
			notes = append(notes, fmt.Sprintf("limit %d: %.0f%% shed, admitted max %.1f ms", r.Limit, 100*r.Shed, r.MaxMs))
		} else if r.Shed > 0 {
			notes = append(notes, fmt.Sprintf("%.1f%% shed", 100*r.Shed))
		}
		for _, p := range g {
			if p.System == systemGateway {
				continue
			}
			if r.Strategy == GatewayOverload {
				if p.P99ms > 0 {
					notes = append(notes, fmt.Sprintf("admitted p99 %s/%s %.2fx (lower is better)", r.System, p.System, r.P99ms/p.P99ms))
				}
				continue
			}
			if p.EventsPerSec > 0 {
				notes = append(notes, fmt.Sprintf("%s/%s %.2fx", r.System, p.System, r.EventsPerSec/p.EventsPerSec))
			}
			notes = append(notes, fmt.Sprintf("p50 %+.3f ms", r.P50ms-p.P50ms))
		}
	case systemDirect:
		if r.Strategy == GatewayDetails {
			notes = append(notes, "the 3 calls in sequence, straight to the services")
		} else {
			notes = append(notes, "straight to the service")
		}
	case systemInProcess:
		notes = append(notes, "sdk.SubmitCommand + AwaitCommandOutcome, no HTTP")
	case systemUnlimited:
		notes = append(notes, fmt.Sprintf("no shedding: max %.1f ms", r.MaxMs))
	}
	return notes
}
