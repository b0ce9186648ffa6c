package stack_test

// The shop as a real deployment runs it: a server (with its registry), the four services
// each in a process of its own talking to the server over the network only
// (examples/shop/cmd/shop-service), a gateway and a consolidator. Each service process in
// turn is killed with SIGKILL under load and a new one started; no acknowledged command
// may be lost, and the log must hold exactly the events each order calls for.
//
// The children run the real shop-service binary, built once per test with `go build`
// (with -race when this test binary has it), rather than this test binary re-executed:
// that runs exactly what docs/shop.md tells people to run (its flags, its dialing, its
// signal handling), and needs no hook in this package's TestMain, which is not this
// file's.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/client"
	"github.com/verity-dev/verity/consolidator"
	"github.com/verity-dev/verity/examples/shop"
	"github.com/verity-dev/verity/examples/shop/events"
	"github.com/verity-dev/verity/gateway"
	"github.com/verity-dev/verity/registry"
	"github.com/verity-dev/verity/server"
)

// crashCommandLimit bounds how long a worker retries one command (same Idempotency-Key)
// before it counts it as failed.
const crashCommandLimit = 20 * time.Second

// crashPrices are the products of the test and their prices in cents; every order stays
// far below payments.LimitCents, so that every order must be confirmed.
var crashPrices = map[string]int64{"tea": 450, "cake": 300, "jam": 725}

// crashStock is each product's initial stock: more than the test can order.
const crashStock = 1_000_000

func TestSIGKILLingEachServiceProcessUnderLoadLosesNoAcknowledgedCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds shop-service and runs the shop as processes; not in -short")
	}
	c := newCrashCluster(t)
	for _, name := range shop.Services {
		c.start(name)
	}
	var customers []string
	for i := range 3 {
		customers = append(customers, c.newCustomer(fmt.Sprintf("c%d", i)))
	}
	for _, sku := range slices.Sorted(maps.Keys(crashPrices)) {
		c.newProduct(sku, crashPrices[sku], crashStock)
	}

	load := c.startLoad(4, customers)
	for _, name := range []string{shop.Customers, shop.Inventory, shop.Payments, shop.Orders} {
		// Kill at a point of the load that differs from run to run.
		want := load.count() + 5 + rand.IntN(10)
		eventually(t, fmt.Sprintf("%d commands acknowledged before killing %s", want, name), func() error {
			if n := load.count(); n < want {
				return fmt.Errorf("%d acknowledged", n)
			}
			return nil
		})
		c.kill(name)
		// The load goes on while the service is down: its consumer group's events (for
		// orders, the commands, acknowledged with 202) pile up for the new instance.
		want = load.count() + 3
		eventually(t, fmt.Sprintf("%d commands acknowledged while %s is down", want, name), func() error {
			if n := load.count(); n < want {
				return fmt.Errorf("%d acknowledged", n)
			}
			return nil
		})
		c.start(name)
	}
	acked := load.stop()
	t.Logf("%d commands acknowledged (%d of them with 202, before their outcome); %d answers were 5xx or failed connections, retried",
		len(acked), load.pendingCount(), load.retried())
	if len(acked) == 0 {
		t.Fatal("no command was acknowledged")
	}

	c.everyCommandSucceeded(acked)
	c.theLogHoldsExactlyTheOrdersEvents(acked)
	c.viewEqualsTheLog()

	// The last instances stop gracefully on SIGTERM, deregistering themselves.
	for _, name := range shop.Services {
		c.terminate(name)
	}
	eventually(t, "the stopped services have left the registry", func() error {
		for _, name := range shop.Services {
			if ins, err := c.srv.Registry().Lookup(t.Context(), name); err != nil || len(ins) != 0 {
				return fmt.Errorf("%s: %d instances (%v)", name, len(ins), err)
			}
		}
		return nil
	})
}

// crashCluster is a server, the shop's services as child processes, and a gateway and a
// consolidator in this process, both talking to the server over the network.
type crashCluster struct {
	t       *testing.T
	dir     string
	bin     string
	srv     *server.Server
	url     string
	gateway *httptest.Server
	views   *consolidator.Consolidator
	http    *http.Client

	mu       sync.Mutex
	children map[string]*crashChild // the running instance of each service
	n        int                    // children started, for log file names
}

func newCrashCluster(t *testing.T) *crashCluster {
	t.Helper()
	c := &crashCluster{t: t, dir: t.TempDir(), children: map[string]*crashChild{}, http: &http.Client{Timeout: 10 * time.Second}}
	c.bin = crashBuild(t, c.dir)
	// On failure, the children's and the server's logs say what happened.
	t.Cleanup(func() {
		if t.Failed() {
			crashDumpLogs(t, c.dir)
		}
	})

	logFile := func(name string) *slog.Logger {
		f, err := os.Create(filepath.Join(c.dir, name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return slog.New(slog.NewTextHandler(f, nil))
	}
	srv, err := server.New(server.Config{
		Insecure: true, Data: filepath.Join(c.dir, "data"), Listen: "127.0.0.1:0",
		// Killed instances leave the registry (and the gateway's choice) within a second.
		RegistryTTL: time.Second,
	}, logFile("server"))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("server shutdown: %v", err)
		}
	})
	c.srv, c.url = srv, "http://"+srv.Addr().String()

	// The gateway and the consolidator reach the server as `verity gateway --server` and
	// `verity consolidate --server` do: a store client and a registry client.
	store, err := client.Dial(c.url, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	glog := logFile("gateway")
	reg, err := registry.NewClient(c.url, registry.ClientOptions{Logger: glog})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })

	gcfg, err := gateway.Parse(shop.GatewayConfig)
	if err != nil {
		t.Fatal(err)
	}
	gcfg.Defaults.Timeout = 2 * time.Second
	gw, err := gateway.New(gcfg, gateway.Options{Source: reg, Store: store, Logger: glog})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := gw.Close(); err != nil {
			t.Errorf("gateway close: %v", err)
		}
	})
	c.gateway = httptest.NewServer(gw)
	t.Cleanup(c.gateway.Close)

	fc, err := consolidator.ParseConfig(shop.ViewsConfig)
	if err != nil {
		t.Fatal(err)
	}
	c.views, err = consolidator.New(store, consolidator.Config{
		DSN: "sqlite:" + filepath.Join(c.dir, "views.db"), Logger: logFile("consolidator"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.views.Close(); err != nil {
			t.Errorf("consolidator close: %v", err)
		}
	})
	if err := c.views.AddConfig(fc); err != nil {
		t.Fatal(err)
	}
	if err := c.views.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return c
}

// crashBuild builds shop-service into dir, with -race when this test binary has it.
func crashBuild(t *testing.T, dir string) string {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go command to build shop-service with: %v", err)
	}
	bin := filepath.Join(dir, "shop-service")
	args := []string{"build", "-o", bin}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" && s.Value == "true" {
				args = append(args, "-race")
			}
		}
	}
	args = append(args, "github.com/verity-dev/verity/examples/shop/cmd/shop-service")
	if out, err := exec.CommandContext(t.Context(), goCmd, args...).CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return bin
}

// crashChild is one shop-service process.
type crashChild struct {
	name   string
	cmd    *exec.Cmd
	addr   string
	exited chan struct{} // closed once the process has been reaped; err is then set
	err    error
}

// start starts a new instance of service name and waits until it serves (it prints its
// address once registered). The process is killed and reaped at cleanup whatever happens.
func (c *crashCluster) start(name string) {
	t := c.t
	t.Helper()
	c.mu.Lock()
	c.n++
	logPath := filepath.Join(c.dir, fmt.Sprintf("%s-%d.log", name, c.n))
	c.mu.Unlock()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	out := &crashAddrWriter{addr: make(chan string, 1)}
	ch := &crashChild{name: name, exited: make(chan struct{})}
	ch.cmd = exec.Command(c.bin, "--service", name, "--server", c.url)
	ch.cmd.Stdout, ch.cmd.Stderr = out, logf
	if err := ch.cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { // reaps the child; ends when it exits
		ch.err = ch.cmd.Wait()
		logf.Close()
		close(ch.exited)
	}()
	t.Cleanup(func() {
		ch.cmd.Process.Kill() // an error means it has exited already
		<-ch.exited
	})
	select {
	case ch.addr = <-out.addr:
	case <-ch.exited:
		t.Fatalf("%s exited before serving: %v (log %s)", name, ch.err, logPath)
	case <-time.After(waitLimit):
		t.Fatalf("%s printed no address within %v (log %s)", name, waitLimit, logPath)
	}
	c.mu.Lock()
	c.children[name] = ch
	c.mu.Unlock()
}

// kill SIGKILLs the running instance of name and reaps it.
func (c *crashCluster) kill(name string) {
	c.t.Helper()
	ch := c.child(name)
	if err := ch.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		c.t.Fatalf("kill %s: %v", name, err)
	}
	c.reap(ch, "SIGKILL")
	var ee *exec.ExitError
	if ws, ok := crashExitStatus(ch.err, &ee); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		c.t.Fatalf("%s after SIGKILL: %v, want killed by the signal", name, ch.err)
	}
}

// terminate sends SIGTERM to the running instance of name and checks that it exits 0.
func (c *crashCluster) terminate(name string) {
	c.t.Helper()
	ch := c.child(name)
	if err := ch.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		c.t.Fatalf("SIGTERM %s: %v", name, err)
	}
	c.reap(ch, "SIGTERM")
	if ch.err != nil {
		c.t.Errorf("%s after SIGTERM: %v, want exit status 0", name, ch.err)
	}
}

func (c *crashCluster) child(name string) *crashChild {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := c.children[name]
	delete(c.children, name)
	if ch == nil {
		c.t.Fatalf("no running %s", name)
	}
	return ch
}

func (c *crashCluster) reap(ch *crashChild, after string) {
	c.t.Helper()
	select {
	case <-ch.exited:
	case <-time.After(waitLimit):
		c.t.Fatalf("%s still running %v after %s", ch.name, waitLimit, after)
	}
}

func crashExitStatus(err error, ee **exec.ExitError) (syscall.WaitStatus, bool) {
	if !errors.As(err, ee) {
		return 0, false
	}
	ws, ok := (*ee).Sys().(syscall.WaitStatus)
	return ws, ok
}

// crashAddrWriter is a child's stdout: it hands over the address of the line
// "<service> listening on <addr>".
type crashAddrWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	addr chan string
}

func (w *crashAddrWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		line, err := w.buf.ReadString('\n')
		if err != nil { // no whole line yet: keep the part
			w.buf.Reset()
			w.buf.WriteString(line)
			return len(p), nil
		}
		if _, addr, ok := strings.Cut(strings.TrimSpace(line), " listening on "); ok {
			select {
			case w.addr <- addr:
			default:
			}
		}
	}
}

// do sends a JSON request through the gateway, retrying transport errors and 5xx answers
// with the same Idempotency-Key until crashCommandLimit: what a client of the public API
// does while instances come and go. It returns the last status and body.
func (c *crashCluster) do(ctx context.Context, method, path string, body any, key string, retried *int) (int, []byte, error) {
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return 0, nil, err
		}
	}
	deadline := time.Now().Add(crashCommandLimit)
	for {
		req, err := http.NewRequestWithContext(ctx, method, c.gateway.URL+path, bytes.NewReader(raw))
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		status, answer, err := 0, []byte(nil), error(nil)
		resp, err := c.http.Do(req)
		if err == nil {
			status = resp.StatusCode
			answer, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if err == nil && status < 500 {
			return status, answer, nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return status, answer, fmt.Errorf("%s %s: still %d %s (%v) after %v", method, path, status, answer, err, crashCommandLimit)
		}
		if retried != nil {
			*retried++
		}
		time.Sleep(10 * time.Millisecond) // back off before a retry, as any client would
	}
}

func (c *crashCluster) mustDo(method, path string, body any, want ...int) []byte {
	c.t.Helper()
	status, answer, err := c.do(c.t.Context(), method, path, body, uuid.NewString(), nil)
	if err != nil {
		c.t.Fatal(err)
	}
	if !slices.Contains(want, status) {
		c.t.Fatalf("%s %s: %d %s, want %v", method, path, status, answer, want)
	}
	return answer
}

func (c *crashCluster) newCustomer(name string) string {
	var out struct{ CustomerID string }
	if err := json.Unmarshal(c.mustDo("POST", "/api/customers", map[string]string{"name": name, "email": name + "@example.com"}, http.StatusCreated), &out); err != nil || out.CustomerID == "" {
		c.t.Fatalf("POST /api/customers: no customerId (%v)", err)
	}
	return out.CustomerID
}

func (c *crashCluster) newProduct(sku string, price int64, stock int) {
	// A retry of a creation that was made (its answer lost) conflicts: the product exists.
	c.mustDo("POST", "/api/products", map[string]any{"sku": sku, "name": sku, "priceCents": price, "stock": stock}, http.StatusCreated, http.StatusConflict)
}

// crashOrder is an acknowledged PlaceOrder: its command id and its lines.
type crashOrder struct {
	id    string
	lines []events.ReservedLine
}

// crashLoad places orders through the gateway from several workers.
type crashLoad struct {
	t       *testing.T
	stopped chan struct{}
	wg      sync.WaitGroup

	mu      sync.Mutex
	acked   []crashOrder
	pending int // acknowledged with 202: no outcome within the route's await
	retries int
	errs    []string
}

func (c *crashCluster) startLoad(workers int, customers []string) *crashLoad {
	l := &crashLoad{t: c.t, stopped: make(chan struct{})}
	skus := slices.Sorted(maps.Keys(crashPrices))
	ctx := c.t.Context()
	for w := range workers {
		rnd := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stopped:
					return
				case <-ctx.Done():
					return
				default:
				}
				// One or two lines of distinct products, one to three of each.
				var lines []events.ReservedLine
				for _, i := range rnd.Perm(len(skus))[:1+rnd.IntN(2)] {
					lines = append(lines, events.ReservedLine{SKU: skus[i], Qty: int64(1 + rnd.IntN(3))})
				}
				cmd := events.PlaceOrder{CustomerID: customers[rnd.IntN(len(customers))], Lines: lines}
				var retried int
				status, answer, err := c.do(ctx, "POST", "/api/orders", cmd, uuid.NewString(), &retried)
				var out crashOutcome
				if err == nil {
					err = json.Unmarshal(answer, &out)
				}
				l.mu.Lock()
				l.retries += retried
				switch {
				case err != nil:
					if ctx.Err() == nil {
						l.errs = append(l.errs, err.Error())
					}
				case (status == http.StatusOK || status == http.StatusAccepted) && out.CommandID != "":
					l.acked = append(l.acked, crashOrder{id: out.CommandID, lines: lines})
					if status == http.StatusAccepted {
						l.pending++
					}
				default:
					l.errs = append(l.errs, fmt.Sprintf("POST /api/orders: %d %s", status, answer))
				}
				l.mu.Unlock()
			}
		}()
	}
	// Should the test stop early, the workers stop with it (t.Context ends first).
	c.t.Cleanup(func() { l.stopOnce(); l.wg.Wait() })
	return l
}

func (l *crashLoad) count() int { l.mu.Lock(); defer l.mu.Unlock(); return len(l.acked) }

func (l *crashLoad) pendingCount() int { l.mu.Lock(); defer l.mu.Unlock(); return l.pending }

func (l *crashLoad) retried() int { l.mu.Lock(); defer l.mu.Unlock(); return l.retries }

func (l *crashLoad) stopOnce() {
	select {
	case <-l.stopped:
	default:
		close(l.stopped)
	}
}

// stop lets each worker finish its command (retrying until acknowledged) and returns the
// acknowledged ones; any other answer fails the test.
func (l *crashLoad) stop() []crashOrder {
	l.stopOnce()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) > 0 {
		l.t.Errorf("%d commands were not acknowledged, e.g. %s", len(l.errs), l.errs[0])
	}
	return l.acked
}

// everyCommandSucceeded checks, through the gateway, that each acknowledged command has
// the outcome succeeded with the order it placed: the order's id is the command's.
func (c *crashCluster) everyCommandSucceeded(acked []crashOrder) {
	c.t.Helper()
	for _, o := range acked {
		var out crashOutcome
		eventually(c.t, "command "+o.id+" has an outcome", func() error {
			status, answer, err := c.do(c.t.Context(), "GET", "/api/commands/ordercommand/"+o.id+"?wait=5s", nil, "", nil)
			if err != nil {
				return err
			}
			if err := json.Unmarshal(answer, &out); status != http.StatusOK || err != nil || out.State == "pending" {
				return fmt.Errorf("status %d: %s", status, answer)
			}
			return nil
		})
		if out.State != "succeeded" {
			c.t.Errorf("command %s: %+v, want succeeded", o.id, out)
			continue
		}
		var res events.PlaceOrderResult
		if err := json.Unmarshal(out.Result, &res); err != nil || res.OrderID != o.id {
			c.t.Errorf("command %s: result %s, want the order placed under the command's id", o.id, out.Result)
		}
	}
}

// crashOrderEvents is what the log holds for one order.
type crashOrderEvents struct {
	types       map[string]int
	placed      events.OrderPlaced
	reservedQty map[string][]int64 // StockReserved quantities by sku
	paid        int64
}

// crashFold reads the order, reservation, payment and product streams of the server's
// store (the log itself, not any service's view).
func (c *crashCluster) crashFold(ctx context.Context) (map[string]*crashOrderEvents, map[string]int64, error) {
	orders := map[string]*crashOrderEvents{}
	added := map[string]int64{} // StockAdded by sku
	of := func(id string) *crashOrderEvents {
		if orders[id] == nil {
			orders[id] = &crashOrderEvents{types: map[string]int{}, reservedQty: map[string][]int64{}}
		}
		return orders[id]
	}
	from := uint64(0)
	for {
		evs, err := c.srv.Store().ReadAll(ctx, verity.ReadAllOptions{From: from, Limit: 1000, Filter: verity.Filter{
			Categories: []string{events.OrderCategory, events.ReservationCategory, events.PaymentCategory, events.ProductCategory}}})
		if err != nil {
			return nil, nil, err
		}
		if len(evs) == 0 {
			return orders, added, nil
		}
		for _, e := range evs {
			from = e.Position + 1
			var d struct {
				OrderID     string `json:"orderId"`
				SKU         string `json:"sku"`
				Qty         int64  `json:"qty"`
				AmountCents int64  `json:"amountCents"`
			}
			if err := json.Unmarshal(e.Data, &d); err != nil {
				return nil, nil, fmt.Errorf("%s %s: %v", e.Stream, e.Type, err)
			}
			switch e.Type {
			case "ProductAdded":
				continue
			case "StockAdded":
				added[d.SKU] += d.Qty
				continue
			}
			o := of(d.OrderID)
			o.types[e.Type]++
			switch e.Type {
			case "OrderPlaced":
				if err := json.Unmarshal(e.Data, &o.placed); err != nil {
					return nil, nil, err
				}
			case "StockReserved":
				o.reservedQty[d.SKU] = append(o.reservedQty[d.SKU], d.Qty)
			case "PaymentSucceeded":
				o.paid = d.AmountCents
			}
		}
	}
}

// theLogHoldsExactlyTheOrdersEvents waits until every acknowledged order has ended, then
// checks that the log holds exactly one placement, reservation, payment and confirmation
// per order, one StockReserved per line, no order it was not asked for, and stock that
// adds up (also as inventory reports it).
func (c *crashCluster) theLogHoldsExactlyTheOrdersEvents(acked []crashOrder) {
	t := c.t
	t.Helper()
	var orders map[string]*crashOrderEvents
	var added map[string]int64
	eventually(t, "every acknowledged order has ended", func() error {
		var err error
		if orders, added, err = c.crashFold(t.Context()); err != nil {
			return err
		}
		for _, o := range acked {
			if ev := orders[o.id]; ev == nil || ev.types["OrderConfirmed"]+ev.types["OrderCancelled"] == 0 {
				return fmt.Errorf("order %s has not ended", o.id)
			}
		}
		return nil
	})

	want := map[string]int{"OrderPlaced": 1, "ReservationSucceeded": 1, "PaymentSucceeded": 1, "OrderConfirmed": 1}
	reservedBySKU := map[string]int64{}
	seen := map[string]bool{}
	for _, o := range acked {
		seen[o.id] = true
		ev := orders[o.id]
		// Every type expected, and every type present, in the expected number (none).
		check := maps.Clone(want)
		for typ := range ev.types {
			check[typ] += 0
		}
		delete(check, "StockReserved") // checked per line below
		for typ, w := range check {
			if n := ev.types[typ]; n != w {
				t.Errorf("order %s: %d %s, want %d (events %v)", o.id, n, typ, w, ev.types)
			}
		}
		var total int64
		for _, l := range o.lines {
			total += l.Qty * crashPrices[l.SKU]
			reservedBySKU[l.SKU] += l.Qty
			if got := ev.reservedQty[l.SKU]; !slices.Equal(got, []int64{l.Qty}) {
				t.Errorf("order %s: StockReserved of %s: %v, want one of %d", o.id, l.SKU, got, l.Qty)
			}
		}
		if len(ev.reservedQty) != len(o.lines) || ev.types["StockReserved"] != len(o.lines) {
			t.Errorf("order %s: %d StockReserved for %v, want one per line of %+v", o.id, ev.types["StockReserved"], ev.reservedQty, o.lines)
		}
		if ev.placed.TotalCents != total || ev.paid != total || len(ev.placed.Lines) != len(o.lines) {
			t.Errorf("order %s: placed %+v and paid %d, want lines %+v for %d cents", o.id, ev.placed, ev.paid, o.lines, total)
		}
	}
	for id := range orders {
		if !seen[id] {
			t.Errorf("the log has events of order %s (%v), which no acknowledged command placed", id, orders[id].types)
		}
	}

	for sku, reserved := range reservedBySKU {
		if added[sku] != crashStock {
			t.Errorf("%s: %d added to stock, want %d", sku, added[sku], crashStock)
		}
		eventually(t, "inventory reports the stock of "+sku, func() error {
			status, answer, err := c.do(t.Context(), "GET", "/api/products/"+sku, nil, "", nil)
			if err != nil || status != http.StatusOK {
				return fmt.Errorf("GET /api/products/%s: %d %s (%v)", sku, status, answer, err)
			}
			var p struct{ Available, Reserved int64 }
			if err := json.Unmarshal(answer, &p); err != nil {
				return err
			}
			if p.Reserved != reserved || p.Available != crashStock-reserved {
				return fmt.Errorf("available %d, reserved %d; want %d, %d", p.Available, p.Reserved, crashStock-reserved, reserved)
			}
			return nil
		})
	}
}

// viewEqualsTheLog waits until orders_overview, read through the consolidator's HTTP API,
// equals the fold of the log's order streams.
func (c *crashCluster) viewEqualsTheLog() {
	t := c.t
	t.Helper()
	eventually(t, "orders_overview equals the fold of the log", func() error {
		orders, _, err := c.crashFold(t.Context())
		if err != nil {
			return err
		}
		got, err := c.crashView()
		if err != nil {
			return err
		}
		n := 0
		for id, ev := range orders {
			if ev.types["OrderPlaced"] == 0 {
				continue
			}
			n++
			w := crashRow{status: "placed", total: ev.placed.TotalCents}
			switch {
			case ev.types["OrderConfirmed"] > 0:
				w.status = "confirmed"
			case ev.types["OrderCancelled"] > 0:
				w.status = "cancelled"
			}
			if got[id] != w {
				return fmt.Errorf("order %s: view %+v, log %+v", id, got[id], w)
			}
		}
		if len(got) != n {
			return fmt.Errorf("view has %d orders, the log %d", len(got), n)
		}
		return nil
	})
}

func (c *crashCluster) crashView() (map[string]crashRow, error) {
	got := map[string]crashRow{}
	h := c.views.Handler()
	after := ""
	for {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/views/orders_overview/tables/orders_overview?limit=500&after="+after, nil))
		if rec.Code != http.StatusOK {
			return nil, fmt.Errorf("GET orders_overview: %d %s", rec.Code, rec.Body)
		}
		var page struct {
			Rows []map[string]any `json:"rows"`
			Next string           `json:"next"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil {
			return nil, err
		}
		for _, r := range page.Rows {
			total, _ := r["total_cents"].(float64)
			got[fmt.Sprint(r["order_id"])] = crashRow{fmt.Sprint(r["status"]), int64(total)}
		}
		if page.Next == "" {
			return got, nil
		}
		after = page.Next
	}
}

// crashDumpLogs logs the last lines of every log file in dir.
func crashDumpLogs(t *testing.T, dir string) {
	paths, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		var lines []string
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if len(lines) > 40 {
				lines = lines[1:]
			}
		}
		f.Close()
		t.Logf("--- last lines of %s:\n%s", filepath.Base(p), strings.Join(lines, "\n"))
	}
}

// crashOutcome is a command's outcome as the gateway answers it.
type crashOutcome struct {
	CommandID string          `json:"commandId"`
	State     string          `json:"state"`
	Result    json.RawMessage `json:"result"`
	Error     string          `json:"error"`
}

// crashRow is what orders_overview holds of an order, as far as this test checks it.
type crashRow struct {
	status string
	total  int64
}
