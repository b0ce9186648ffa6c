package gateway_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRoutingByHostAndPrefix(t *testing.T) {
	e := newEnv(t)
	e.upstream("customers", "c1", echo("c1"))
	e.upstream("inventory", "i1", echo("i1"))
	e.upstream("admin", "a1", echo("a1"))
	_, url := e.gateway(parse(t, `
routes:
  - {name: customers, match: "/api/customers/", service: customers, stripPrefix: /api}
  - {name: products, match: "/api/products/", service: inventory, stripPrefix: /api}
  - {name: admin-host, match: "admin.example.com/", service: admin}
`))
	for _, tc := range []struct {
		name, path, host string
		instance, upPath string
		query            string
	}{
		{"a prefix route strips its prefix", "/api/customers/42", "", "c1", "/customers/42", ""},
		{"the query string goes along", "/api/products/sku1?full=1", "", "i1", "/products/sku1", "full=1"},
		{"a host route wins for its host", "/api/customers/42", "admin.example.com", "a1", "/api/customers/42", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := e.do("GET", url+tc.path, "", "Host", tc.host)
			if a.status != 200 {
				t.Fatalf("status %d: %s", a.status, a.body)
			}
			var got echoed
			a.json(t, &got)
			if got.Instance != tc.instance || got.Path != tc.upPath || got.Query != tc.query {
				t.Errorf("reached %s %s?%s, want %s %s?%s", got.Instance, got.Path, got.Query, tc.instance, tc.upPath, tc.query)
			}
		})
	}
	t.Run("no route answers 404", func(t *testing.T) {
		if a := e.do("GET", url+"/nowhere", ""); a.status != 404 {
			t.Errorf("status %d, want 404", a.status)
		}
	})
	t.Run("forwarding headers are set", func(t *testing.T) {
		a := e.do("GET", url+"/api/customers/1", "", "X-Forwarded-For", "10.1.2.3")
		var got echoed
		a.json(t, &got)
		host := strings.TrimPrefix(url, "http://")
		if got.XFF != "10.1.2.3, 127.0.0.1" || got.XFHost != host || got.XFProto != "http" {
			t.Errorf("X-Forwarded-For %q, -Host %q, -Proto %q", got.XFF, got.XFHost, got.XFProto)
		}
	})
	t.Run("a service with no instance answers 503", func(t *testing.T) {
		_, url := e.gateway(parse(t, `routes: [{name: ghost, match: "/", service: ghost}]`))
		a := e.do("GET", url+"/x", "")
		if a.status != 503 || !strings.Contains(a.body, "no instance") {
			t.Errorf("status %d %s, want 503 no instance", a.status, a.body)
		}
	})
}

func TestRoundRobinAcrossInstances(t *testing.T) {
	e := newEnv(t)
	a := e.upstream("customers", "a", echo("a"))
	b := e.upstream("customers", "b", echo("b"))
	_, url := e.gateway(parse(t, `routes: [{name: c, match: "/", service: customers}]`))
	for range 10 {
		if ans := e.do("GET", url+"/customers", ""); ans.status != 200 {
			t.Fatalf("status %d: %s", ans.status, ans.body)
		}
	}
	if a.hits.Load() != 5 || b.hits.Load() != 5 {
		t.Errorf("hits a=%d b=%d, want 5 and 5", a.hits.Load(), b.hits.Load())
	}
}

func TestRetries(t *testing.T) {
	e := newEnv(t)
	bad := e.upstream("customers", "a-bad", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	})
	good := e.upstream("customers", "b-good", echo("b-good"))
	// An instance nobody listens on: a connection error.
	e.register("customers", "c-gone", closedAddr(t))
	_, url := e.gateway(parse(t, `
defaults: {retryBackoff: 1ms, breaker: {failures: 1000}}
routes: [{name: c, match: "/", service: customers, retries: 2}]
`))
	t.Run("a GET is retried on another instance", func(t *testing.T) {
		for range 6 {
			a := e.do("GET", url+"/customers", "")
			if a.status != 200 {
				t.Fatalf("status %d: %s", a.status, a.body)
			}
		}
		if bad.hits.Load() == 0 {
			t.Errorf("the failing instance was never tried")
		}
	})
	t.Run("a PUT is retried with its body", func(t *testing.T) {
		for range 3 {
			a := e.do("PUT", url+"/customers/1", `{"name":"Ada"}`)
			var got echoed
			a.json(t, &got)
			if a.status != 200 || got.Body != `{"name":"Ada"}` {
				t.Fatalf("status %d, body reached %q", a.status, got.Body)
			}
		}
	})
	t.Run("a POST is never retried", func(t *testing.T) {
		before := bad.hits.Load() + good.hits.Load()
		failed := 0
		for range 6 {
			a := e.do("POST", url+"/customers", `{"name":"Ada"}`)
			if a.status != 200 {
				failed++
			}
		}
		if sent := bad.hits.Load() + good.hits.Load() - before; sent > 6 {
			t.Errorf("6 POSTs reached the instances %d times", sent)
		}
		if failed == 0 {
			t.Errorf("no POST failed: they were retried")
		}
	})
}

func TestAPostIsRetriedOnlyWhenItWasNeverSent(t *testing.T) {
	e := newEnv(t)
	good := e.upstream("orders", "b-good", echo("b-good"))
	// A crashed instance the registry still lists: connecting to it fails, so nothing was
	// sent and even a POST may go to another instance.
	e.register("orders", "a-gone", closedAddr(t))
	_, url := e.gateway(parse(t, `
defaults: {retryBackoff: 1ms, breaker: {failures: 1000}}
routes: [{name: o, match: "/", service: orders, retries: 2}]
`))
	for range 4 {
		a := e.do("POST", url+"/orders", `{"n":1}`)
		var got echoed
		a.json(t, &got)
		if a.status != 200 || got.Body != `{"n":1}` {
			t.Fatalf("status %d, body reached %q: want the POST sent to the live instance", a.status, got.Body)
		}
	}
	if n := good.hits.Load(); n != 4 {
		t.Errorf("the live instance got %d POSTs, want each of the 4 once", n)
	}
}

func TestAHungInstanceIsGivenUpOnAfterTryTimeout(t *testing.T) {
	e := newEnv(t)
	g := newGate()
	hung := e.upstream("customers", "a-hung", g.hold)
	// Released before the instance's server closes (cleanups run last first): a held POST
	// whose body was not read does not see its client go away.
	t.Cleanup(g.release)
	good := e.upstream("customers", "b-good", echo("b-good"))
	gw, url := e.gateway(parse(t, `
defaults: {retryBackoff: 1ms, breaker: {failures: 1000}}
routes: [{name: c, match: "/", service: customers, timeout: 10s, tryTimeout: 100ms, retries: 2}]
`))
	t.Run("a GET goes on to another instance", func(t *testing.T) {
		for range 4 {
			start := time.Now()
			a := e.do("GET", url+"/customers/1", "")
			if a.status != 200 {
				t.Fatalf("status %d %s, want 200 from the live instance", a.status, a.body)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("answered after %v: the hung instance used up the route timeout", d)
			}
		}
		if hung.hits.Load() == 0 || good.hits.Load() != 4 {
			t.Errorf("hits hung=%d good=%d, want the hung one tried and the good one answering all 4", hung.hits.Load(), good.hits.Load())
		}
		if up := routeStatus(t, gw, "c").Upstreams[0]; up.Errors == 0 {
			t.Errorf("the hung attempts were not counted as failures: %+v", up)
		}
	})
	t.Run("a POST that may have reached it is not sent again", func(t *testing.T) {
		before := good.hits.Load()
		for range 4 {
			a := e.do("POST", url+"/customers", `{}`)
			if a.status != 200 && a.status != http.StatusGatewayTimeout {
				t.Fatalf("POST: status %d %s, want 200 or 504", a.status, a.body)
			}
		}
		if sent := good.hits.Load() - before; sent == 4 {
			t.Errorf("every POST reached the live instance: those that hit the hung one were retried")
		}
	})
}

func TestRouteTimeout(t *testing.T) {
	e := newEnv(t)
	g := newGate()
	t.Cleanup(g.release)
	e.upstream("slow", "s1", g.hold)
	gw, url := e.gateway(parse(t, `routes: [{name: slow, match: "/", service: slow, timeout: 50ms}]`))
	start := time.Now()
	a := e.do("GET", url+"/x", "")
	if a.status != http.StatusGatewayTimeout {
		t.Errorf("status %d %s, want 504", a.status, a.body)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("answered after %s", d)
	}
	if up := routeStatus(t, gw, "slow").Upstreams[0]; up.Errors != 1 {
		t.Errorf("upstream errors %d, want the timeout counted as 1", up.Errors)
	}
}

func TestShedding(t *testing.T) {
	for _, tc := range []struct{ name, cfg string }{
		{"at the route's limit", `routes: [{name: r, match: "/", service: slow, maxConcurrent: 2}]`},
		{"at the gateway's limit", `{defaults: {maxConcurrent: 2}, routes: [{name: r, match: "/", service: slow}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			g := newGate()
			t.Cleanup(g.release)
			e.upstream("slow", "s1", g.hold)
			gw, url := e.gateway(parse(t, tc.cfg))
			var wg sync.WaitGroup
			results := make([]answer, 2)
			for i := range 2 {
				wg.Go(func() { results[i] = e.do("GET", url+"/x", "") })
			}
			eventually(t, "two requests at the upstream", func() bool { return g.waiting.Load() == 2 })
			a := e.do("GET", url+"/x", "")
			if a.status != 503 || a.header.Get("Retry-After") == "" || !strings.Contains(a.body, "too many requests") {
				t.Errorf("third request: %d Retry-After %q %s, want 503 with Retry-After", a.status, a.header.Get("Retry-After"), a.body)
			}
			g.release()
			wg.Wait()
			for i, r := range results {
				if r.status != 200 {
					t.Errorf("admitted request %d: status %d", i, r.status)
				}
			}
			if shed := routeStatus(t, gw, "r").Shed; shed != 1 {
				t.Errorf("shed %d, want 1", shed)
			}
			if a := e.do("GET", url+"/x", ""); a.status != 200 {
				t.Errorf("after the load: status %d", a.status)
			}
		})
	}
}

func TestClientCancellationIsNotAFailure(t *testing.T) {
	e := newEnv(t)
	g := newGate()
	t.Cleanup(g.release)
	e.upstream("slow", "s1", g.hold)
	gw, url := e.gateway(parse(t, `
defaults: {breaker: {failures: 2}}
routes: [{name: slow, match: "/", service: slow}]
`))
	for range 5 {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := e.try(ctx, "GET", url+"/x", "")
			done <- err
		}()
		eventually(t, "the request at the upstream", func() bool { return g.waiting.Load() == 1 })
		cancel()
		if err := <-done; err == nil {
			t.Fatalf("the cancelled request succeeded")
		}
		eventually(t, "the upstream to see the cancellation", func() bool { return g.waiting.Load() == 0 })
	}
	up := routeStatus(t, gw, "slow").Upstreams[0]
	if up.Breaker != "closed" || up.Errors != 0 {
		t.Errorf("after 5 cancellations: breaker %s, errors %d; want closed, 0", up.Breaker, up.Errors)
	}
	g.release()
	if a := e.do("GET", url+"/x", ""); a.status != 200 {
		t.Errorf("status %d, want 200", a.status)
	}
}

func TestBreaker(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	failing := true
	up := e.upstream("flaky", "f1", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if failing {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		w.Write([]byte(`{}`))
	})
	gw, url := e.gateway(parse(t, `
defaults: {breaker: {failures: 3, openFor: 300ms}}
routes: [{name: flaky, match: "/", service: flaky, retries: 0}]
`))
	for i := range 3 {
		if a := e.do("GET", url+"/x", ""); a.status != 500 {
			t.Fatalf("request %d: status %d, want the upstream's 500", i, a.status)
		}
	}
	if s := routeStatus(t, gw, "flaky").Upstreams[0].Breaker; s != "open" {
		t.Fatalf("breaker %s after 3 failures, want open", s)
	}
	a := e.do("GET", url+"/x", "")
	if a.status != 503 || a.header.Get("Retry-After") != "1" || !strings.Contains(a.body, `"kind":"unavailable"`) ||
		!strings.Contains(a.body, "circuit breaker is open") {
		t.Errorf("open breaker: %d Retry-After %q %s", a.status, a.header.Get("Retry-After"), a.body)
	}
	if n := up.hits.Load(); n != 3 {
		t.Errorf("the upstream got %d requests, want 3 (none while open)", n)
	}
	mu.Lock()
	failing = false
	mu.Unlock()
	eventually(t, "the breaker to let a trial through and close", func() bool {
		return e.do("GET", url+"/x", "").status == 200
	})
	if s := routeStatus(t, gw, "flaky").Upstreams[0].Breaker; s != "closed" {
		t.Errorf("breaker %s after a successful trial, want closed", s)
	}
}

// closedAddr returns an address nobody listens on.
func closedAddr(t testing.TB) string {
	t.Helper()
	srv := httptestServer()
	addr := srv.Listener.Addr().String()
	srv.Close()
	return addr
}

func TestLeastOutstandingAvoidsABusyInstance(t *testing.T) {
	e := newEnv(t)
	g := newGate()
	t.Cleanup(g.release)
	busy := e.upstream("svc", "a", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			g.hold(w, r)
			return
		}
		w.Write([]byte(`{}`))
	})
	idle := e.upstream("svc", "b", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			g.hold(w, r)
			return
		}
		w.Write([]byte(`{}`))
	})
	_, url := e.gateway(parse(t, `{defaults: {balance: least-outstanding}, routes: [{name: r, match: "/", service: svc}]}`))
	held := make(chan answer, 1)
	go func() { held <- e.do("GET", url+"/hold", "") }()
	eventually(t, "one request held", func() bool { return g.waiting.Load() == 1 })
	holder, other := busy, idle
	if idle.hits.Load() == 1 {
		holder, other = idle, busy
	}
	for range 4 {
		e.do("GET", url+"/quick", "")
	}
	if holder.hits.Load() != 1 || other.hits.Load() != 4 {
		t.Errorf("the busy instance got %d, the idle one %d; want 1 and 4", holder.hits.Load(), other.hits.Load())
	}
	g.release()
	if a := <-held; a.status != 200 {
		t.Errorf("held request: %d", a.status)
	}
}

func TestAnswersStream(t *testing.T) {
	e := newEnv(t)
	g := newGate()
	t.Cleanup(g.release)
	e.upstream("svc", "a", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Write([]byte("data: first\n\n"))
		w.(http.Flusher).Flush()
		g.hold(w, r)
	})
	_, url := e.gateway(parse(t, `routes: [{name: r, match: "/", service: svc}]`))
	resp, err := e.client.Get(url + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, len("data: first\n\n"))
	// The first event arrives while the upstream still holds the answer open.
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "data: first\n\n" {
		t.Fatalf("read %q, %v", buf, err)
	}
	g.release()
	rest, _ := io.ReadAll(resp.Body)
	if string(rest) != `{"ok":true}` {
		t.Errorf("rest %q", rest)
	}
}
