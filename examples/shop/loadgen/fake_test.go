package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeShop imitates the gateway's public API: setup routes, the PlaceOrder command route
// (idempotent by Idempotency-Key, answering 200 with the result or 202 pending), order and
// customer reads. Its knobs shed, delay and block answers.
type fakeShop struct {
	// Knobs, set before the server starts.
	pending   bool   // answer orders 202 pending (no orderId) instead of 200
	shedEvery int    // answer every Nth POST /api/orders 503
	retryHdr  string // the Retry-After of a 503
	// onLoad runs before a load request (not setup) is answered; n counts them from 1.
	onLoad func(w http.ResponseWriter, r *http.Request, op string, n int) (handled bool)
	// setupStatus, when set, answers POST /api/customers with it.
	setupStatus int
	// onSetup, when set, runs before POST /api/customers is answered and may answer it.
	onSetup func(w http.ResponseWriter, r *http.Request) (handled bool)

	mu           sync.Mutex
	customers    map[string]bool
	products     map[string]bool
	orders       map[string]string // idempotency key -> order id, for acked orders
	ackedNames   map[string]bool
	keySends     map[string][]time.Time
	loadByOp     map[string]int
	load         int
	orderPosts   int
	shed         int
	shedKeys     map[string]bool
	unknownReads []string
	setupPosts   int
}

func newFakeShop() *fakeShop {
	return &fakeShop{retryHdr: "0", customers: map[string]bool{}, products: map[string]bool{},
		orders: map[string]string{}, ackedNames: map[string]bool{}, keySends: map[string][]time.Time{},
		loadByOp: map[string]int{}, shedKeys: map[string]bool{}}
}

// start serves the fake on 127.0.0.1 until the test ends.
func (f *fakeShop) start(t testing.TB) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/customers", f.postCustomer)
	mux.HandleFunc("POST /api/products", f.postProduct)
	mux.HandleFunc("POST /api/orders", f.postOrder)
	mux.HandleFunc("GET /api/orders/{id}", f.read(OpGetOrder))
	mux.HandleFunc("GET /api/orders/{id}/details", f.read(OpOrderDetails))
	mux.HandleFunc("GET /api/customers/{id}", f.read(OpGetCustomer))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func (f *fakeShop) postCustomer(w http.ResponseWriter, r *http.Request) {
	if f.onSetup != nil && f.onSetup(w, r) {
		return
	}
	var in struct{ Name, Email string }
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Name == "" || in.Email == "" {
		http.Error(w, "bad customer", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.setupPosts++
	status := f.setupStatus
	id := fmt.Sprintf("c%d", len(f.customers)+1)
	if status == 0 {
		f.customers[id] = true
	}
	f.mu.Unlock()
	if status != 0 {
		http.Error(w, "customers is down", status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, `{"customerId":%q}`, id)
}

func (f *fakeShop) postProduct(w http.ResponseWriter, r *http.Request) {
	var in struct {
		SKU        string `json:"sku"`
		Name       string `json:"name"`
		PriceCents int    `json:"priceCents"`
		Stock      int    `json:"stock"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.SKU == "" || strings.Contains(in.SKU, "-") ||
		in.SKU != strings.ToLower(in.SKU) || in.PriceCents <= 0 || in.Stock <= 0 {
		http.Error(w, "bad product", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.products[in.SKU] = true
	f.mu.Unlock()
	w.WriteHeader(http.StatusCreated)
}

// loadRequest counts a load request and runs onLoad; it tells whether onLoad answered.
func (f *fakeShop) loadRequest(w http.ResponseWriter, r *http.Request, op string) bool {
	f.mu.Lock()
	f.load++
	f.loadByOp[op]++
	n := f.load
	f.mu.Unlock()
	return f.onLoad != nil && f.onLoad(w, r, op, n)
}

func (f *fakeShop) postOrder(w http.ResponseWriter, r *http.Request) {
	if f.loadRequest(w, r, OpPlaceOrder) {
		return
	}
	key := r.Header.Get("Idempotency-Key")
	var in struct {
		CustomerID string `json:"customerId"`
		Lines      []struct {
			SKU string `json:"sku"`
			Qty int    `json:"qty"`
		} `json:"lines"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || key == "" || len(in.Lines) == 0 {
		http.Error(w, "bad order", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keySends[key] = append(f.keySends[key], time.Now())
	ok := f.customers[in.CustomerID]
	for _, l := range in.Lines {
		ok = ok && f.products[l.SKU] && l.Qty > 0
	}
	if !ok {
		http.Error(w, "unknown customer or product", http.StatusUnprocessableEntity)
		return
	}
	f.orderPosts++
	if f.shedEvery > 0 && f.orderPosts%f.shedEvery == 0 {
		f.shed++
		f.shedKeys[key] = true
		w.Header().Set("Retry-After", f.retryHdr)
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
		return
	}
	id, seen := f.orders[key]
	if !seen {
		id = "o" + key[:8]
		f.orders[key] = id
	}
	name := "ordercommand/" + key
	f.ackedNames[name] = true
	w.Header().Set("Location", "/api/commands/"+name)
	w.Header().Set("Content-Type", "application/json")
	if f.pending {
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, `{"commandId":%q,"category":"ordercommand","state":"pending"}`, key)
		return
	}
	fmt.Fprintf(w, `{"commandId":%q,"category":"ordercommand","state":"succeeded","result":{"orderId":%q}}`, key, id)
}

func (f *fakeShop) read(op string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if f.loadRequest(w, r, op) {
			return
		}
		id := r.PathValue("id")
		f.mu.Lock()
		known := f.customers[id]
		if op != OpGetCustomer {
			known = false
			for _, o := range f.orders {
				known = known || o == id
			}
		}
		if !known {
			f.unknownReads = append(f.unknownReads, r.URL.Path)
		}
		f.mu.Unlock()
		if !known {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, `{"id":%q}`, id)
	}
}

// hang blocks a handler until the client gives up on r. The body is read first: the server
// notices a closed connection only once the handler has consumed the request.
func hang(r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	<-r.Context().Done()
}

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
