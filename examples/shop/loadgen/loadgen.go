package loadgen

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/verity-dev/verity"
)

const (
	// maxBody is how much of an answer is read; the rest is drained unread.
	maxBody = 1 << 20
	// knownOrders caps the order ids kept for get-order and order-details: a ring of the
	// latest, so memory does not grow with the run.
	knownOrders = 4096
	// maxOrderAttempts bounds the sends of one order: past it, an order the gateway keeps
	// failing is given up and counted unresolved.
	maxOrderAttempts = 5
	// setupAttempts bounds the sends of one setup request.
	setupAttempts = 5
	// defaultRetryAfter is the backoff after a 503 that does not say how long to wait.
	defaultRetryAfter = 50 * time.Millisecond
	// ordersCategory is the command category of POST /api/orders, used to name an
	// acknowledged command when the answer does not.
	ordersCategory = "ordercommand"
)

// Run creates the customers and products, then sends the configured load through the
// gateway until the duration or the number of requests is reached, and reports what it
// measured. A setup that fails is an error (Unavailable, or Invalid for a bad Config). When
// ctx ends during the load, Run stops promptly and returns the report so far with ctx's
// error.
func Run(ctx context.Context, cfg Config) (Report, error) {
	if err := cfg.Validate(); err != nil {
		return Report{}, err
	}
	realClock := cfg.Now == nil
	cfg = cfg.withDefaults()
	base, err := checkBaseURL(cfg.BaseURL)
	if err != nil {
		return Report{}, err
	}
	seed := cfg.Seed
	for seed == 0 {
		seed = mrand.Uint64()
	}
	transport := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: cfg.Timeout}).DialContext,
		MaxIdleConns:        cfg.Concurrency,
		MaxIdleConnsPerHost: cfg.Concurrency,
		IdleConnTimeout:     30 * time.Second,
	}
	defer transport.CloseIdleConnections()
	g := &generator{
		cfg:  cfg,
		base: base.String(),
		seed: seed,
		client: &http.Client{
			Transport: transport,
			// A redirect could lead away from loopback; the tool never follows one.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		runID:    randomHex(4),
		stop:     make(chan struct{}),
		ackedSet: map[string]bool{},
	}
	for i := range g.stats {
		g.stats[i].errors = map[string]int64{}
	}
	rep := Report{BaseURL: g.base, Concurrency: cfg.Concurrency, Rate: cfg.Rate, Seed: seed}

	setupStart := cfg.Now()
	if err := g.setup(ctx); err != nil {
		return rep, err
	}
	rep.Customers, rep.Products = len(g.customers), len(g.skus)
	rep.Setup = cfg.Now().Sub(setupStart)

	g.start = cfg.Now()
	if cfg.Duration > 0 {
		g.deadline = g.start.Add(cfg.Duration)
		if realClock {
			// Wakes workers waiting for their open-loop slot or a backoff; an injected
			// clock is checked between requests instead.
			t := time.AfterFunc(cfg.Duration, func() { close(g.stop) })
			defer t.Stop()
		}
	}
	var wg sync.WaitGroup
	for w := range cfg.Concurrency {
		wg.Go(func() { g.worker(ctx, w) })
	}
	wg.Wait()
	rep.Elapsed = cfg.Now().Sub(g.start)

	var total histogram
	rep.Total = OpStats{Op: "total", Errors: map[string]int64{}}
	for i, op := range Ops {
		r := &g.stats[i]
		s := OpStats{Op: op, Count: r.count, OK: r.ok, Shed: r.shed, Errors: r.errors,
			Throughput: perSecond(r.count, rep.Elapsed), Latency: r.hist.latency()}
		if len(s.Errors) == 0 {
			s.Errors = nil
		}
		rep.Ops = append(rep.Ops, s)
		total.merge(&r.hist)
		rep.Total.Count += s.Count
		rep.Total.OK += s.OK
		rep.Total.Shed += s.Shed
		for k, n := range s.Errors {
			rep.Total.Errors[k] += n
		}
	}
	if len(rep.Total.Errors) == 0 {
		rep.Total.Errors = nil
	}
	rep.Total.Throughput = perSecond(rep.Total.Count, rep.Elapsed)
	rep.Total.Latency = total.latency()
	rep.Acked = g.acked
	if rep.Acked == nil {
		rep.Acked = []string{}
	}
	rep.Unresolved = int(g.unresolved.Load())
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	return rep, nil
}

func perSecond(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// generator is one run's state, shared by its workers.
type generator struct {
	cfg    Config
	base   string
	seed   uint64
	client *http.Client
	runID  string // makes this run's customer and product names unique

	customers []string // ids, set by setup
	skus      []string
	prices    []int

	start    time.Time
	deadline time.Time     // zero: no duration bound
	stop     chan struct{} // closed when the duration has passed (real clock)
	issued   atomic.Int64  // requests started, for the Requests bound
	slot     atomic.Int64  // the next open-loop slot

	stats [len(opsArray)]opRecorder

	ordersMu   sync.Mutex
	orders     []string // a ring of the latest order ids learned
	ordersNext int

	ackedMu  sync.Mutex
	acked    []string
	ackedSet map[string]bool

	unresolved atomic.Int64
}

var opsArray = [...]string{OpPlaceOrder, OpGetOrder, OpOrderDetails, OpGetCustomer}

// opRecorder gathers one operation's numbers.
type opRecorder struct {
	mu     sync.Mutex
	hist   histogram
	count  int64
	ok     int64
	shed   int64
	errors map[string]int64
}

// result is one request's outcome.
type result struct {
	status     int           // 0: no answer
	failure    string        // "timeout" or "connection" when status is 0
	retryAfter time.Duration // asked for by a 503
	cancelled  bool          // the caller's context ended: not counted
}

// order is one order to place, kept across its retries.
type order struct {
	key      string // the Idempotency-Key
	body     []byte
	attempts int
}

func (g *generator) worker(ctx context.Context, w int) {
	rng := mrand.New(mrand.NewPCG(g.seed, uint64(w)))
	var pending *order // an order to send again, with the same key
	defer func() {
		if pending != nil {
			g.unresolved.Add(1)
		}
	}()
	for {
		if g.stopped(ctx) {
			return
		}
		if g.cfg.Requests > 0 && g.issued.Add(1) > int64(g.cfg.Requests) {
			return
		}
		sent := g.cfg.Now()
		if g.cfg.Rate > 0 {
			slot := g.slot.Add(1) - 1
			at := g.start.Add(time.Duration(float64(slot) * float64(time.Second) / g.cfg.Rate))
			if !g.deadline.IsZero() && !at.Before(g.deadline) {
				return
			}
			if !g.sleep(ctx, at.Sub(sent)) {
				return
			}
			// Latency counts from the slot, not from when a busy worker got to it, so
			// that a gateway falling behind shows in the percentiles.
			sent = at
		}
		if !g.deadline.IsZero() && !g.cfg.Now().Before(g.deadline) {
			return
		}

		op := 0
		var res result
		switch {
		case pending != nil:
			res, pending = g.placeOrder(ctx, pending)
		default:
			op = g.pick(rng)
			switch op {
			case 0:
				res, pending = g.placeOrder(ctx, g.newOrder(rng))
			case 1:
				res = g.get(ctx, "/api/orders/"+g.knownOrder(rng))
			case 2:
				res = g.get(ctx, "/api/orders/"+g.knownOrder(rng)+"/details")
			case 3:
				res = g.get(ctx, "/api/customers/"+g.customers[rng.IntN(len(g.customers))])
			}
		}
		if res.cancelled {
			return
		}
		g.record(op, res, g.cfg.Now().Sub(sent))
		if res.status == http.StatusServiceUnavailable || res.status == http.StatusTooManyRequests {
			// A closed loop backs off as asked; an open loop keeps its schedule, which is
			// the point of it.
			if g.cfg.Rate == 0 && !g.sleep(ctx, min(res.retryAfter, g.cfg.MaxBackoff)) {
				return
			}
		}
	}
}

// stopped tells whether the run is over: ctx ended or the duration passed.
func (g *generator) stopped(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return true
	case <-g.stop:
		return true
	default:
		return false
	}
}

// sleep waits for d unless the run ends first; it tells whether the run goes on.
func (g *generator) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return !g.stopped(ctx)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-g.stop:
		return false
	case <-t.C:
		return true
	}
}

// pick draws an operation by the mix's weights. Reads of orders become placed orders
// until an order id is known.
func (g *generator) pick(rng *mrand.Rand) int {
	weights := g.cfg.Mix.weights()
	sum := 0
	for _, w := range weights {
		sum += w
	}
	n := rng.IntN(sum)
	op := 0
	for i, w := range weights {
		if n < w {
			op = i
			break
		}
		n -= w
	}
	if (op == 1 || op == 2) && g.knownOrder(rng) == "" {
		return 0
	}
	return op
}

func (g *generator) record(op int, res result, latency time.Duration) {
	r := &g.stats[op]
	r.mu.Lock()
	defer r.mu.Unlock()
	r.count++
	r.hist.record(latency)
	switch {
	case res.status >= 200 && res.status < 300:
		r.ok++
	case res.status == 0:
		r.errors[res.failure]++
	default:
		if res.status == http.StatusServiceUnavailable {
			r.shed++
		}
		r.errors[strconv.Itoa(res.status)]++
	}
}

// newOrder builds an order of 1 to 3 lines of distinct products, 1 to 3 of each: at most
// 9 times the dearest price, far under the payments provider's limit of 100000 cents, so
// that orders are confirmed.
func (g *generator) newOrder(rng *mrand.Rand) *order {
	type line struct {
		SKU string `json:"sku"`
		Qty int    `json:"qty"`
	}
	n := 1 + rng.IntN(min(3, len(g.skus)))
	lines := make([]line, 0, n)
	for _, i := range rng.Perm(len(g.skus))[:n] {
		lines = append(lines, line{SKU: g.skus[i], Qty: 1 + rng.IntN(3)})
	}
	body, _ := json.Marshal(struct {
		CustomerID string `json:"customerId"`
		Lines      []line `json:"lines"`
	}{g.customers[rng.IntN(len(g.customers))], lines})
	return &order{key: uuid.NewString(), body: body}
}

// placeOrder sends o and returns the order to send again (o itself) when the answer leaves
// its fate open: a 503 or other 5xx, or no answer at all.
func (g *generator) placeOrder(ctx context.Context, o *order) (result, *order) {
	o.attempts++
	hdr := http.Header{"Idempotency-Key": {o.key}, "Content-Type": {"application/json"}}
	res, h, body := g.do(ctx, http.MethodPost, "/api/orders", o.body, hdr)
	switch {
	case res.cancelled:
		return res, o
	case res.status == http.StatusOK || res.status == http.StatusAccepted:
		g.ack(commandName(h, body, o.key))
		if id := orderID(body); id != "" {
			g.learnOrder(id)
		}
		return res, nil
	case res.status >= 500 && res.status != http.StatusServiceUnavailable && isCommandAnswer(body):
		// The command is in the log and its handler gave up (CommandFailed): sending it
		// again would only repeat that answer.
		return res, nil
	case res.status == 0 || res.status >= 500 || res.status == http.StatusTooManyRequests:
		if o.attempts >= maxOrderAttempts {
			g.unresolved.Add(1)
			return res, nil
		}
		return res, o
	}
	return res, nil // refused (4xx): sending it again would be refused again
}

func (g *generator) get(ctx context.Context, path string) result {
	res, _, _ := g.do(ctx, http.MethodGet, path, nil, nil)
	return res
}

// do sends one request under the request timeout and reads its answer whole.
func (g *generator) do(ctx context.Context, method, path string, body []byte, hdr http.Header) (result, http.Header, []byte) {
	rctx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(rctx, method, g.base+path, rd)
	if err != nil {
		return result{failure: "connection"}, nil, nil
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return g.failed(ctx, err), nil, nil
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
	}
	if err != nil {
		return g.failed(ctx, err), nil, nil
	}
	res := result{status: resp.StatusCode}
	if resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests {
		res.retryAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return res, resp.Header, data
}

// failed classifies a request that got no (whole) answer.
func (g *generator) failed(ctx context.Context, err error) result {
	if ctx.Err() != nil {
		return result{cancelled: true}
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return result{failure: "timeout"}
	}
	return result{failure: "connection"}
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return defaultRetryAfter
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil && s >= 0 && !math.IsInf(s, 0) {
		return time.Duration(min(s, 3600) * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return defaultRetryAfter
}

// isCommandAnswer tells whether an answer is the gateway's account of a command (its
// commandId and state) rather than an error from in front of it.
func isCommandAnswer(body []byte) bool {
	var out struct {
		CommandID string `json:"commandId"`
		State     string `json:"state"`
	}
	return json.Unmarshal(body, &out) == nil && out.CommandID != "" && out.State != ""
}

// commandName names an acknowledged command "category/id": from the status URL in
// Location (".../commands/<category>/<id>"), else from the answer's commandId and
// category, else from its X-Command-Id header, else (an answer that says nothing) the
// idempotency key in the orders' category.
func commandName(h http.Header, body []byte, key string) string {
	if loc := strings.Trim(h.Get("Location"), "/"); loc != "" {
		if i := strings.Index(loc, "?"); i >= 0 {
			loc = loc[:i]
		}
		parts := strings.Split(loc, "/")
		if n := len(parts); n >= 2 && parts[n-2] != "" && parts[n-1] != "" {
			return parts[n-2] + "/" + parts[n-1]
		}
	}
	var out struct {
		CommandID string `json:"commandId"`
		Category  string `json:"category"`
	}
	if json.Unmarshal(body, &out) == nil && out.CommandID != "" {
		if out.Category == "" {
			out.Category = ordersCategory
		}
		return out.Category + "/" + out.CommandID
	}
	if id := h.Get("X-Command-Id"); id != "" {
		return ordersCategory + "/" + id
	}
	return ordersCategory + "/" + key
}

// orderID finds the placed order's id in a command answer: {"orderId"} or
// {"result": {"orderId"}}.
func orderID(body []byte) string {
	var out struct {
		OrderID string `json:"orderId"`
		Result  struct {
			OrderID string `json:"orderId"`
		} `json:"result"`
	}
	if json.Unmarshal(body, &out) != nil {
		return ""
	}
	if out.OrderID != "" {
		return out.OrderID
	}
	return out.Result.OrderID
}

func (g *generator) ack(name string) {
	g.ackedMu.Lock()
	defer g.ackedMu.Unlock()
	if !g.ackedSet[name] {
		g.ackedSet[name] = true
		g.acked = append(g.acked, name)
	}
}

func (g *generator) learnOrder(id string) {
	g.ordersMu.Lock()
	defer g.ordersMu.Unlock()
	if len(g.orders) < knownOrders {
		g.orders = append(g.orders, id)
		return
	}
	g.orders[g.ordersNext] = id
	g.ordersNext = (g.ordersNext + 1) % knownOrders
}

// knownOrder is a random order id learned so far, or "" for none.
func (g *generator) knownOrder(rng *mrand.Rand) string {
	g.ordersMu.Lock()
	defer g.ordersMu.Unlock()
	if len(g.orders) == 0 {
		return ""
	}
	return g.orders[rng.IntN(len(g.orders))]
}

// setup creates the customers and the products, Concurrency at a time.
func (g *generator) setup(ctx context.Context) error {
	g.customers = make([]string, g.cfg.Customers)
	g.skus = make([]string, g.cfg.Products)
	g.prices = make([]int, g.cfg.Products)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan func(context.Context) error)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for range min(g.cfg.Concurrency, g.cfg.Customers+g.cfg.Products) {
		wg.Go(func() {
			for job := range jobs {
				if err := job(ctx); err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
				}
			}
		})
	}
	send := func(job func(context.Context) error) bool {
		select {
		case jobs <- job:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for i := range g.cfg.Products {
		g.skus[i] = fmt.Sprintf("lg%s_%d", g.runID, i)
		g.prices[i] = 199 + 100*(i%20)
		body, _ := json.Marshal(map[string]any{"sku": g.skus[i], "name": fmt.Sprintf("Load product %d", i),
			"priceCents": g.prices[i], "stock": g.cfg.Stock})
		if !send(func(ctx context.Context) error {
			_, err := g.create(ctx, "/api/products", body)
			return err
		}) {
			break
		}
	}
	for i := range g.cfg.Customers {
		body, _ := json.Marshal(map[string]any{"name": fmt.Sprintf("Load customer %s-%d", g.runID, i),
			"email": fmt.Sprintf("load-%s-%d@example.com", g.runID, i)})
		if !send(func(ctx context.Context) error {
			answer, err := g.create(ctx, "/api/customers", body)
			if err != nil {
				return err
			}
			var out struct {
				CustomerID string `json:"customerId"`
			}
			if json.Unmarshal(answer, &out) != nil || out.CustomerID == "" {
				return verity.Errorf(verity.Unavailable, "loadgen setup",
					"POST %s/api/customers: the answer %q has no customerId", g.base, snippet(answer))
			}
			g.customers[i] = out.CustomerID
			return nil
		}) {
			break
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	return firstErr
}

// create POSTs a setup request, retrying what the gateway could not take yet.
func (g *generator) create(ctx context.Context, path string, body []byte) ([]byte, error) {
	hdr := http.Header{"Content-Type": {"application/json"}}
	for attempt := 1; ; attempt++ {
		res, _, answer := g.do(ctx, http.MethodPost, path, body, hdr)
		switch {
		case res.cancelled:
			return nil, ctx.Err()
		case res.status >= 200 && res.status < 300:
			return answer, nil
		}
		retriable := res.status == 0 || res.status >= 500 || res.status == http.StatusTooManyRequests
		if !retriable || attempt == setupAttempts {
			what := res.failure
			if res.status != 0 {
				what = fmt.Sprintf("status %d %q", res.status, snippet(answer))
			}
			return nil, verity.Errorf(verity.Unavailable, "loadgen setup", "POST %s%s: %s (is the shop running behind the gateway?)",
				g.base, path, what)
		}
		wait := res.retryAfter
		if wait == 0 {
			wait = defaultRetryAfter << (attempt - 1)
		}
		t := time.NewTimer(min(wait, g.cfg.MaxBackoff))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// snippet is the start of an answer, for an error message.
func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
