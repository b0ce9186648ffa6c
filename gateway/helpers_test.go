package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/engine"
	"github.com/verity-dev/verity/gateway"
	"github.com/verity-dev/verity/registry"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// env is an embedded registry over an engine in a temporary directory, upstream servers
// registered in it, and a client with its own connections.
type env struct {
	t      testing.TB
	store  verity.Store
	reg    *registry.Registry
	client *http.Client
}

func newEnv(t testing.TB) *env {
	t.Helper()
	store, err := engine.Open(engine.Config{Dir: t.TempDir(), Logger: quiet})
	if err != nil {
		t.Fatalf("open engine: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	// Leases of an hour: no instance expires during a test.
	reg, err := registry.New(store, registry.Config{TTL: time.Hour, SweepEvery: time.Hour, Logger: quiet})
	if err != nil {
		t.Fatalf("registry.New: %v", err)
	}
	t.Cleanup(func() { reg.Close() })
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	return &env{t: t, store: store, reg: reg, client: &http.Client{Transport: tr}}
}

// backend is an upstream instance that counts its requests.
type backend struct {
	id   string
	srv  *httptest.Server
	hits atomic.Int64
}

// upstream starts an instance of service serving h and registers it as id.
func (e *env) upstream(service, id string, h http.HandlerFunc) *backend {
	e.t.Helper()
	b := &backend{id: id}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		h(w, r)
	}))
	e.t.Cleanup(b.srv.Close)
	e.register(service, id, b.srv.Listener.Addr().String())
	return b
}

func (e *env) register(service, id, addr string) {
	e.t.Helper()
	if _, err := e.reg.Register(context.Background(), registry.Instance{Service: service, ID: id, Address: addr}); err != nil {
		e.t.Fatalf("register %s/%s: %v", service, id, err)
	}
}

// echo answers with what it received, as JSON, naming the instance.
func echo(id string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(echoed{
			Instance: id, Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Body: string(body),
			Host: r.Host, XFF: r.Header.Get("X-Forwarded-For"), XFHost: r.Header.Get("X-Forwarded-Host"),
			XFProto: r.Header.Get("X-Forwarded-Proto"), Traceparent: r.Header.Get("Traceparent"),
			Tracestate: r.Header.Get("Tracestate"),
		})
	}
}

type echoed struct {
	Instance, Method, Path, Query, Body, Host, XFF, XFHost, XFProto, Traceparent, Tracestate string
}

// gateway starts a gateway over the env's registry, served by an httptest server.
func (e *env) gateway(cfg gateway.Config, tweak ...func(*gateway.Options)) (*gateway.Gateway, string) {
	e.t.Helper()
	opts := gateway.Options{Source: e.reg, Store: e.store, Logger: quiet}
	for _, f := range tweak {
		f(&opts)
	}
	g, err := gateway.New(cfg, opts)
	if err != nil {
		e.t.Fatalf("gateway.New: %v", err)
	}
	srv := httptest.NewServer(g)
	e.t.Cleanup(func() {
		srv.Close()
		g.Close()
	})
	return g, srv.URL
}

// answer is a response read whole.
type answer struct {
	status int
	header http.Header
	body   string
}

func (a answer) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(a.body), v); err != nil {
		t.Fatalf("answer %d %q is not JSON: %v", a.status, a.body, err)
	}
}

func (e *env) do(method, url, body string, header ...string) answer {
	e.t.Helper()
	a, err := e.try(context.Background(), method, url, body, header...)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, url, err)
	}
	return a
}

// try is do that returns its error instead; header is name, value pairs (a name
// "Host" sets the request's host).
func (e *env) try(ctx context.Context, method, url, body string, header ...string) (answer, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return answer{}, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "Host" {
			req.Host = header[i+1]
		} else {
			req.Header.Set(header[i], header[i+1])
		}
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: string(b)}, nil
}

// parse reads a YAML configuration or fails the test.
func parse(t testing.TB, yaml string) gateway.Config {
	t.Helper()
	cfg, err := gateway.Parse([]byte(yaml))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return cfg
}

// eventually waits, up to a deadline, for cond to hold.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func routeStatus(t testing.TB, g *gateway.Gateway, name string) gateway.RouteStatus {
	t.Helper()
	for _, r := range g.Routes() {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no route %q in %+v", name, g.Routes())
	return gateway.RouteStatus{}
}

// gate holds requests until opened, and counts those waiting.
type gate struct {
	waiting atomic.Int64
	open    chan struct{}
	once    sync.Once
}

func newGate() *gate { return &gate{open: make(chan struct{})} }

func (g *gate) hold(w http.ResponseWriter, r *http.Request) {
	g.waiting.Add(1)
	defer g.waiting.Add(-1)
	select {
	case <-g.open:
		w.Write([]byte(`{"ok":true}`))
	case <-r.Context().Done():
	}
}

func (g *gate) release() { g.once.Do(func() { close(g.open) }) }

func httptestServer() *httptest.Server { return httptest.NewServer(http.NotFoundHandler()) }
