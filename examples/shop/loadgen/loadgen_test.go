package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verity-dev/verity"
)

// opStats is the report's entry for op.
func opStats(t testing.TB, rep Report, op string) OpStats {
	t.Helper()
	for _, s := range rep.Ops {
		if s.Op == op {
			return s
		}
	}
	t.Fatalf("report has no %s", op)
	return OpStats{}
}

func TestRunSendsTheMixAndAccountsForEveryAnswer(t *testing.T) {
	for _, pending := range []bool{false, true} {
		name := "orders answered 200 with their ids"
		if pending {
			name = "orders answered 202 pending"
		}
		t.Run(name, func(t *testing.T) {
			shop := newFakeShop()
			shop.pending, shop.shedEvery = pending, 7
			srv := shop.start(t)
			rep, err := Run(t.Context(), Config{BaseURL: srv.URL, Concurrency: 4, Requests: 300, Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			shop.mu.Lock()
			defer shop.mu.Unlock()

			if len(shop.customers) != DefaultCustomers || len(shop.products) != DefaultProducts ||
				rep.Customers != DefaultCustomers || rep.Products != DefaultProducts {
				t.Errorf("setup made %d customers and %d products, reported %d and %d",
					len(shop.customers), len(shop.products), rep.Customers, rep.Products)
			}
			if rep.Total.Count != 300 || shop.load != 300 {
				t.Errorf("report counts %d requests, the shop saw %d; want 300", rep.Total.Count, shop.load)
			}
			for _, op := range Ops {
				if s := opStats(t, rep, op); s.Count != int64(shop.loadByOp[op]) {
					t.Errorf("%s: reported %d, the shop saw %d", op, s.Count, shop.loadByOp[op])
				}
			}
			place := opStats(t, rep, OpPlaceOrder)
			if shop.shed == 0 || place.Shed != int64(shop.shed) || place.Errors["503"] != int64(shop.shed) || rep.Total.Shed != place.Shed {
				t.Errorf("shop shed %d, report: shed %d, errors %v, total shed %d", shop.shed, place.Shed, place.Errors, rep.Total.Shed)
			}
			if place.OK+place.Shed != place.Count {
				t.Errorf("place-order: %d ok + %d shed != %d", place.OK, place.Shed, place.Count)
			}
			// Every command the shop acknowledged is in Acked, once, and nothing else.
			acked := slices.Sorted(slices.Values(rep.Acked))
			if len(slices.Compact(slices.Clone(acked))) != len(acked) {
				t.Errorf("Acked has duplicates")
			}
			var want []string
			for name := range shop.ackedNames {
				want = append(want, name)
			}
			slices.Sort(want)
			if !slices.Equal(acked, want) {
				t.Errorf("Acked %d commands, the shop acknowledged %d", len(acked), len(want))
			}
			// A shed order is sent again with its key until acknowledged, or left unresolved
			// when the run ends.
			var resent, unresolved int
			for key := range shop.shedKeys {
				if shop.ackedNames["ordercommand/"+key] {
					resent++
				} else {
					unresolved++
				}
			}
			if unresolved != rep.Unresolved || resent == 0 {
				t.Errorf("%d shed orders acknowledged later, %d never; report says %d unresolved", resent, unresolved, rep.Unresolved)
			}
			if len(shop.unknownReads) > 0 {
				t.Errorf("reads of unknown ids: %v", shop.unknownReads[:min(5, len(shop.unknownReads))])
			}
			reads := shop.loadByOp[OpGetOrder] + shop.loadByOp[OpOrderDetails]
			if pending && reads != 0 {
				t.Errorf("%d reads of orders whose id no answer gave", reads)
			}
			if !pending && (reads == 0 || shop.loadByOp[OpGetCustomer] == 0) {
				t.Errorf("the mix was not followed: %v", shop.loadByOp)
			}
		})
	}
}

func TestLatencyPercentilesMatchAnInjectedDistribution(t *testing.T) {
	clock := newFakeClock()
	shop := newFakeShop()
	// Request n takes (n mod 100) + 1 ms: 1..100 ms, ten times each.
	shop.onLoad = func(w http.ResponseWriter, r *http.Request, op string, n int) bool {
		clock.Advance(time.Duration(n%100+1) * time.Millisecond)
		return false
	}
	srv := shop.start(t)
	rep, err := Run(t.Context(), Config{BaseURL: srv.URL, Concurrency: 1, Requests: 1000,
		Mix: Mix{GetCustomer: 1}, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	got := opStats(t, rep, OpGetCustomer)
	if got.Count != 1000 || got.OK != 1000 {
		t.Fatalf("get-customer: %+v", got)
	}
	near := func(d, want time.Duration) bool {
		return d >= want-want/64 && d <= want+want/64
	}
	l := got.Latency
	if !near(l.P50, 50*time.Millisecond) || !near(l.P90, 90*time.Millisecond) || !near(l.P99, 99*time.Millisecond) ||
		l.Max != 100*time.Millisecond || !near(l.Mean, 50500*time.Microsecond) {
		t.Errorf("latency %+v, want p50 50ms, p90 90ms, p99 99ms, max 100ms, mean 50.5ms", l)
	}
	if rep.Elapsed != 50500*time.Millisecond {
		t.Errorf("elapsed %v, want the 50.5s the requests took", rep.Elapsed)
	}
	if rep.Total.Latency != l {
		t.Errorf("total latency %+v, want that of its one operation %+v", rep.Total.Latency, l)
	}
}

func TestDurationBoundsTheRun(t *testing.T) {
	t.Run("on an injected clock, no request starts after the duration", func(t *testing.T) {
		clock := newFakeClock()
		shop := newFakeShop()
		shop.onLoad = func(w http.ResponseWriter, r *http.Request, op string, n int) bool {
			clock.Advance(10 * time.Millisecond)
			return false
		}
		srv := shop.start(t)
		rep, err := Run(t.Context(), Config{BaseURL: srv.URL, Concurrency: 1, Duration: time.Second, Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Total.Count != 100 || rep.Elapsed != time.Second {
			t.Errorf("%d requests in %v, want 100 of 10ms in 1s", rep.Total.Count, rep.Elapsed)
		}
	})
	t.Run("on the real clock, the run ends at the duration", func(t *testing.T) {
		srv := newFakeShop().start(t)
		began := time.Now()
		rep, err := Run(t.Context(), Config{BaseURL: srv.URL, Concurrency: 4, Duration: 300 * time.Millisecond})
		took := time.Since(began)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Elapsed < 300*time.Millisecond || took > 5*time.Second || rep.Total.Count == 0 {
			t.Errorf("%d requests, elapsed %v, Run took %v", rep.Total.Count, rep.Elapsed, took)
		}
	})
	t.Run("the request bound ends it before the duration", func(t *testing.T) {
		srv := newFakeShop().start(t)
		rep, err := Run(t.Context(), Config{BaseURL: srv.URL, Concurrency: 3, Duration: time.Hour, Requests: 25})
		if err != nil || rep.Total.Count != 25 {
			t.Errorf("%d requests (err %v), want 25", rep.Total.Count, err)
		}
	})
}

func TestOpenLoopKeepsItsRate(t *testing.T) {
	srv := newFakeShop().start(t)
	rep, err := Run(t.Context(), Config{BaseURL: srv.URL, Concurrency: 4, Rate: 200,
		Duration: 500 * time.Millisecond, Mix: Mix{GetCustomer: 1}})
	if err != nil {
		t.Fatal(err)
	}
	// 200/s for 0.5s schedules slots at 0, 5, ..., 495 ms: 100 at most.
	if n := rep.Total.Count; n > 100 || n < 30 {
		t.Errorf("%d requests at 200/s in 0.5s, want at most 100 (and not far fewer)", n)
	}
	if rep.Rate != 200 {
		t.Errorf("report rate %v", rep.Rate)
	}
}

func TestUnansweredOrdersAreSentAgainWithTheSameKey(t *testing.T) {
	t.Run("a timed-out order", func(t *testing.T) {
		shop := newFakeShop()
		// The first order hangs until the client gives up on it.
		shop.onLoad = func(w http.ResponseWriter, r *http.Request, op string, n int) bool {
			if n == 1 {
				hang(r)
				return true
			}
			return false
		}
		srv := shop.start(t)
		rep, err := Run(t.Context(), Config{BaseURL: srv.URL, Concurrency: 1, Requests: 5,
			Mix: Mix{PlaceOrder: 1}, Timeout: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		place := opStats(t, rep, OpPlaceOrder)
		if place.Errors["timeout"] != 1 || place.OK != 4 {
			t.Errorf("place-order %+v, want 1 timeout and 4 ok", place)
		}
		if len(rep.Acked) != 4 {
			t.Errorf("acked %d, want 4 (the timed-out order acknowledged on its second send)", len(rep.Acked))
		}
		shop.mu.Lock()
		defer shop.mu.Unlock()
		if len(shop.keySends) != 4 {
			t.Errorf("%d keys sent, want 4: the retry reuses the key", len(shop.keySends))
		}
	})
	t.Run("a shed order waits for Retry-After, capped", func(t *testing.T) {
		shop := newFakeShop()
		shop.shedEvery, shop.retryHdr = 2, "1"
		srv := shop.start(t)
		rep, err := Run(t.Context(), Config{BaseURL: srv.URL, Concurrency: 1, Requests: 3,
			Mix: Mix{PlaceOrder: 1}, MaxBackoff: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		shop.mu.Lock()
		defer shop.mu.Unlock()
		if len(shop.shedKeys) != 1 || rep.Total.Shed != 1 {
			t.Fatalf("shed keys %v, reported %d", shop.shedKeys, rep.Total.Shed)
		}
		for key := range shop.shedKeys {
			sends := shop.keySends[key]
			if len(sends) != 2 {
				t.Fatalf("the shed order was sent %d times, want 2", len(sends))
			}
			if gap := sends[1].Sub(sends[0]); gap < 100*time.Millisecond || gap >= time.Second {
				t.Errorf("resent after %v, want the 100ms cap on Retry-After: 1", gap)
			}
		}
	})
}

func TestRunRefusesHostsOffLoopback(t *testing.T) {
	for _, url := range []string{"http://example.com:8080", "http://10.0.0.1:8080", "https://8.8.8.8",
		"http://127.0.0.1.example.com", "ftp://127.0.0.1/", "127.0.0.1:8080", "http://[2001:db8::1]:80"} {
		t.Run(url, func(t *testing.T) {
			_, err := Run(t.Context(), Config{BaseURL: url, Requests: 1})
			if !errors.Is(err, verity.ErrInvalid) || !strings.Contains(err.Error(), url) {
				t.Errorf("got %v, want an Invalid error naming %q", err, url)
			}
		})
	}
	for _, url := range []string{"http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:8080/", "https://127.0.0.2"} {
		if err := (Config{BaseURL: url}).Validate(); err != nil {
			t.Errorf("%s: %v", url, err)
		}
	}
}

func TestValidateNamesTheBadField(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"negative concurrency", Config{Concurrency: -1}, "concurrency -1"},
		{"negative duration", Config{Duration: -time.Second}, "duration -1s"},
		{"negative requests", Config{Requests: -5}, "requests -5"},
		{"negative rate", Config{Rate: -2}, "rate -2"},
		{"negative customers", Config{Customers: -1}, "customers -1"},
		{"negative products", Config{Products: -1}, "products -1"},
		{"negative timeout", Config{Timeout: -time.Second}, "timeout -1s"},
		{"a negative weight", Config{Mix: Mix{GetOrder: -1}}, "get-order weight -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if !errors.Is(err, verity.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want Invalid with %q", err, tt.want)
			}
		})
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("the zero Config: %v", err)
	}
}

func TestCancellingTheContextStopsPromptly(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		inSetup bool
	}{
		{"with requests in flight", Config{Duration: time.Hour}, false},
		{"with workers waiting for their open-loop slot", Config{Duration: time.Hour, Rate: 0.001}, false},
		{"during setup", Config{Duration: time.Hour}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			shop := newFakeShop()
			started := make(chan struct{}, 1)
			hangHere := func(w http.ResponseWriter, r *http.Request) bool {
				select {
				case started <- struct{}{}:
				default:
				}
				hang(r)
				return true
			}
			if tt.inSetup {
				shop.onSetup = hangHere
			} else {
				shop.onLoad = func(w http.ResponseWriter, r *http.Request, op string, n int) bool { return hangHere(w, r) }
			}
			srv := shop.start(t)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			cfg := tt.cfg
			cfg.BaseURL, cfg.Timeout, cfg.Concurrency = srv.URL, time.Hour, 4
			done := make(chan error, 1)
			go func() {
				rep, err := Run(ctx, cfg)
				if errors.Is(err, context.Canceled) && rep.Total.Count != 0 {
					err = fmt.Errorf("%d cancelled requests were counted", rep.Total.Count)
				}
				done <- err
			}()
			select {
			case <-started:
			case <-time.After(10 * time.Second):
				t.Fatal("no request arrived")
			}
			cancel()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("Run returned %v, want context.Canceled", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Run did not return within 5s of its context's end")
			}
		})
	}
}

func TestSetupFailuresAreErrorsThatSayWhere(t *testing.T) {
	for _, status := range []int{http.StatusInternalServerError, http.StatusBadRequest} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			shop := newFakeShop()
			shop.setupStatus = status
			srv := shop.start(t)
			_, err := Run(t.Context(), Config{BaseURL: srv.URL, Requests: 1, Customers: 1, MaxBackoff: time.Millisecond})
			if !errors.Is(err, verity.ErrUnavailable) || !strings.Contains(err.Error(), "/api/customers") ||
				!strings.Contains(err.Error(), fmt.Sprintf("status %d", status)) {
				t.Errorf("got %v", err)
			}
			shop.mu.Lock()
			defer shop.mu.Unlock()
			want := 1 // a refusal is final
			if status >= 500 {
				want = setupAttempts // a failure may pass
			}
			if shop.setupPosts != want || shop.load != 0 {
				t.Errorf("%d customer posts and %d load requests, want %d and none", shop.setupPosts, shop.load, want)
			}
		})
	}
}

func TestReportReadsAsTextAndRoundTripsAsJSON(t *testing.T) {
	shop := newFakeShop()
	shop.shedEvery = 3
	srv := shop.start(t)
	rep, err := Run(t.Context(), Config{BaseURL: srv.URL, Concurrency: 2, Requests: 50, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range append(slices.Clone(Ops), "total", "p99", "shed", "seed 7", "place-order 503×",
		"commands acknowledged: ", "2 workers, closed loop") {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"p99Ms"`, `"elapsedSeconds"`, `"acked"`, `"503"`} {
		if !strings.Contains(js.String(), want) {
			t.Errorf("JSON lacks %s:\n%s", want, js.String())
		}
	}
	var back Report
	if err := back.UnmarshalJSON(js.Bytes()); err != nil {
		t.Fatal(err)
	}
	close := func(a, b time.Duration) bool { return (a - b).Abs() <= time.Microsecond }
	if back.Total.Count != 50 || back.Total.Shed != rep.Total.Shed || len(back.Acked) != len(rep.Acked) ||
		!close(back.Elapsed, rep.Elapsed) || !close(back.Total.Latency.P99, rep.Total.Latency.P99) || back.Seed != 7 {
		t.Errorf("JSON round trip: %+v\nwant %+v", back, rep)
	}
}

func TestFailedCommandsAreFinalAndOtherFailuresAreResent(t *testing.T) {
	shop := newFakeShop()
	var mu sync.Mutex
	var keys []string
	shop.onLoad = func(w http.ResponseWriter, r *http.Request, op string, n int) bool {
		mu.Lock()
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		mu.Unlock()
		switch n {
		case 1: // the command is recorded and its handler gave up
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, `{"commandId":"3f1e","category":"ordercommand","state":"failed","error":"boom"}`)
			return true
		case 2: // something in front of the command broke
			http.Error(w, "bad gateway", http.StatusBadGateway)
			return true
		}
		return false
	}
	srv := shop.start(t)
	rep, err := Run(t.Context(), Config{BaseURL: srv.URL, Concurrency: 1, Requests: 4, Mix: Mix{PlaceOrder: 1}})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(keys) != 4 || keys[0] == keys[1] || keys[1] != keys[2] || keys[2] == keys[3] {
		t.Errorf("keys sent %q: want the failed command once, the 502 resent, then a new order", keys)
	}
	place := opStats(t, rep, OpPlaceOrder)
	if place.Errors["500"] != 1 || place.Errors["502"] != 1 || place.OK != 2 || len(rep.Acked) != 2 || rep.Unresolved != 0 {
		t.Errorf("place-order %+v, acked %v, unresolved %d", place, rep.Acked, rep.Unresolved)
	}
}

func TestCommandNames(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
		body   string
		want   string
	}{
		{"from the status URL of a 202", http.Header{"Location": {"/api/commands/ordercommand/abc"}}, `{}`, "ordercommand/abc"},
		{"from the gateway's 200 answer", http.Header{},
			`{"commandId":"c1","category":"ordercommand","state":"succeeded","result":{"orderId":"o1"},"statusUrl":"/api/commands/ordercommand/c1"}`,
			"ordercommand/c1"},
		{"from the X-Command-Id header", http.Header{"X-Command-Id": {"c2"}}, `not json`, "ordercommand/c2"},
		{"from the key when the answer says nothing", http.Header{}, ``, "ordercommand/key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := commandName(tt.header, []byte(tt.body), "key"); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	if id := orderID([]byte(`{"commandId":"c1","result":{"orderId":"o1"}}`)); id != "o1" {
		t.Errorf("orderID of a command answer: %q", id)
	}
}
