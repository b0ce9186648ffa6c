package registry_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/registry"
)

// serve runs r's API on a loopback port until the end of the test and returns its URL.
func serve(t testing.TB, r *registry.Registry, opts registry.HandlerOptions) string {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	srv := httptest.NewServer(registry.NewHandler(r, opts))
	t.Cleanup(srv.Close)
	return srv.URL
}

func newClient(t testing.TB, url string, opts registry.ClientOptions) *registry.Client {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	c, err := registry.NewClient(url, opts)
	if err != nil {
		t.Fatalf("NewClient(%q): %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// do sends a request and returns the status and body.
func do(t testing.TB, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// errorKind returns the kind of an error body, failing the test if it is not one.
func errorKind(t testing.TB, body string) string {
	t.Helper()
	var e struct {
		Error struct{ Kind, Message string }
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Kind == "" || e.Error.Message == "" {
		t.Fatalf("body %q is not a JSON error with a kind and a message", body)
	}
	return e.Error.Kind
}

func TestTheAPIRegistersLooksUpAndDeregisters(t *testing.T) {
	r := open(t, openStore(t), newClock())
	base := serve(t, r, registry.HandlerOptions{}) + "/registry"

	status, body := do(t, "POST", base+"/instances", `{"service":"orders","id":"o1","address":"127.0.0.1:8081","version":"1.0"}`)
	if status != http.StatusCreated || body != `{"instanceId":"o1","ttl":"10s"}`+"\n" {
		t.Fatalf("register: %d %q", status, body)
	}
	do(t, "POST", base+"/instances", `{"service":"orders","id":"o2","address":"127.0.0.1:8082"}`)
	status, body = do(t, "POST", base+"/instances", `{"service":"payments","address":"127.0.0.1:9000"}`)
	var lease registry.Lease
	if err := json.Unmarshal([]byte(body), &lease); status != http.StatusCreated || err != nil || lease.InstanceID == "" || lease.TTL != ttl {
		t.Fatalf("register with no id: %d %q (%v)", status, body, err)
	}

	if status, body = do(t, "PUT", base+"/instances/o2/health", `{"health":"unhealthy","reason":"disk full"}`); status != http.StatusNoContent {
		t.Fatalf("set health: %d %q", status, body)
	}
	status, body = do(t, "GET", base+"/services", "")
	if want := `{"services":[{"name":"orders","instances":2,"healthy":1},{"name":"payments","instances":1,"healthy":1}]}` + "\n"; status != 200 || body != want {
		t.Fatalf("services: %d %q, want %q", status, body, want)
	}

	instances := func(url string) []string {
		t.Helper()
		status, body := do(t, "GET", url, "")
		var got struct{ Instances []registry.Instance }
		if err := json.Unmarshal([]byte(body), &got); status != 200 || err != nil {
			t.Fatalf("GET %s: %d %q", url, status, body)
		}
		return ids(got.Instances)
	}
	if got := instances(base + "/services/orders"); !slices.Equal(got, []string{"o1"}) {
		t.Errorf("healthy orders = %v, want [o1]", got)
	}
	if got := instances(base + "/services/orders?all=true"); !slices.Equal(got, []string{"o1", "o2"}) {
		t.Errorf("all orders = %v, want [o1 o2]", got)
	}
	if got := instances(base + "/instances"); len(got) != 3 {
		t.Errorf("all instances = %v, want 3", got)
	}
	if got := instances(base + "/services/nobody"); len(got) != 0 {
		t.Errorf("a service with no instance lists %v, want none", got)
	}

	if status, _ = do(t, "PUT", base+"/instances/o1/heartbeat", ""); status != http.StatusNoContent {
		t.Errorf("heartbeat: %d, want 204", status)
	}
	if status, _ = do(t, "DELETE", base+"/instances/o1", ""); status != http.StatusNoContent {
		t.Errorf("deregister: %d, want 204", status)
	}
	status, body = do(t, "PUT", base+"/instances/o1/heartbeat", "")
	if status != http.StatusNotFound || errorKind(t, body) != "not_found" {
		t.Errorf("heartbeat after deregister: %d %q, want 404 not_found (register again)", status, body)
	}
}

func TestTheAPIAnswersBadRequestsWithJSONErrors(t *testing.T) {
	r := open(t, openStore(t), newClock())
	base := serve(t, r, registry.HandlerOptions{MaxBodyBytes: 1024}) + "/registry"
	register(t, r, "orders", "o1", "127.0.0.1:8081")
	tests := []struct {
		name, method, path, body string
		status                   int
		kind                     string
	}{
		{"a bad service name is invalid", "POST", "/instances", `{"service":"Orders","address":"x:1"}`, 400, "invalid"},
		{"an unknown field is invalid", "POST", "/instances", `{"service":"orders","address":"x:1","adress":"y:2"}`, 400, "invalid"},
		{"malformed JSON is invalid", "POST", "/instances", `{"service":`, 400, "invalid"},
		{"an empty body is invalid", "POST", "/instances", ``, 400, "invalid"},
		{"an oversized body is refused", "POST", "/instances", `{"service":"orders","address":"x:1","version":"` + strings.Repeat("v", 2000) + `"}`, 413, "invalid"},
		{"an id of another service conflicts", "POST", "/instances", `{"service":"payments","id":"o1","address":"x:1"}`, 409, "conflict"},
		{"an unknown health is invalid", "PUT", "/instances/o1/health", `{"health":"meh"}`, 400, "invalid"},
		{"the health of nobody is not found", "PUT", "/instances/zz/health", `{"health":"healthy"}`, 404, "not_found"},
		{"deregistering nobody is not found", "DELETE", "/instances/zz", ``, 404, "not_found"},
		{"a malformed id is invalid", "PUT", "/instances/a%20b/heartbeat", ``, 400, "invalid"},
		{"looking up a bad name is invalid", "GET", "/services/Orders", ``, 400, "invalid"},
		{"a bad all parameter is invalid", "GET", "/services/orders?all=maybe", ``, 400, "invalid"},
		{"watching a bad name is invalid", "GET", "/watch/Orders", ``, 400, "invalid"},
		{"a wrong method is not allowed", "DELETE", "/services", ``, 405, "invalid"},
		{"an unknown path is not found", "GET", "/nothing", ``, 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := do(t, tt.method, base+tt.path, tt.body)
			if status != tt.status || errorKind(t, body) != tt.kind {
				t.Fatalf("%s %s: %d %q, want %d %s", tt.method, tt.path, status, body, tt.status, tt.kind)
			}
		})
	}
	if got := lookup(t, r, "orders"); !slices.Equal(got, []string{"o1"}) {
		t.Fatalf("after bad requests, orders = %v, want [o1] alone", got)
	}
}

func TestTheAPIAsksTheAuthorizerWhetherACallWrites(t *testing.T) {
	store := openStore(t)
	r := open(t, store, newClock())
	var writes, reads atomic.Int64
	base := serve(t, r, registry.HandlerOptions{Authorize: func(req *http.Request, write bool) error {
		if write {
			writes.Add(1)
			return verity.Errorf(verity.PermissionDenied, "registry", "read-only caller")
		}
		reads.Add(1)
		return nil
	}})
	c := newClient(t, base, registry.ClientOptions{})
	_, err := c.Register(t.Context(), registry.Instance{Service: "orders", Address: "x:1"})
	wantKind(t, err, verity.PermissionDenied)
	if _, err := c.Lookup(t.Context(), "orders"); err != nil {
		t.Fatalf("lookup: %v", err)
	}
	if writes.Load() != 1 || reads.Load() != 1 {
		t.Fatalf("authorizer saw %d writes and %d reads, want 1 and 1", writes.Load(), reads.Load())
	}
	if got := history(t, store); len(got) != 0 {
		t.Fatalf("a refused registration recorded %+v", got)
	}
}

func TestTheClientRoundTripsEveryCallAndErrorKind(t *testing.T) {
	r := open(t, openStore(t), newClock())
	c := newClient(t, serve(t, r, registry.HandlerOptions{}), registry.ClientOptions{})
	ctx := t.Context()
	in := registry.Instance{Service: "orders", ID: "o1", Address: "http://127.0.0.1:8081/api", Version: "1.2", Metadata: map[string]string{"zone": "a"}}
	lease, err := c.Register(ctx, in)
	if err != nil || lease.InstanceID != "o1" || lease.TTL != ttl {
		t.Fatalf("register = %+v, %v", lease, err)
	}
	got, err := c.Lookup(ctx, "orders")
	if err != nil || len(got) != 1 || got[0].Address != in.Address || got[0].Metadata["zone"] != "a" || got[0].Health != registry.Healthy || got[0].Registered.IsZero() {
		t.Fatalf("lookup = %+v, %v", got, err)
	}
	if err := c.SetHealth(ctx, "o1", registry.Unhealthy, "draining"); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Lookup(ctx, "orders"); len(got) != 0 {
		t.Fatalf("lookup of an unhealthy instance = %+v, want none", got)
	}
	if got, _ := c.List(ctx, "orders"); len(got) != 1 || got[0].HealthReason != "draining" {
		t.Fatalf("list = %+v, want o1 with its reason", got)
	}
	if got, _ := c.Services(ctx); len(got) != 1 || got[0] != (registry.ServiceSummary{Name: "orders", Instances: 1}) {
		t.Fatalf("services = %+v", got)
	}
	if err := c.Heartbeat(ctx, "o1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Deregister(ctx, "o1"); err != nil {
		t.Fatal(err)
	}

	err = c.Heartbeat(ctx, "o1")
	wantKind(t, err, verity.NotFound)
	var ve *verity.Error
	if !errors.As(err, &ve) || ve.Op != "registry heartbeat" || ve.Message != `instance "o1" is not registered` {
		t.Fatalf("error = %#v, want the server's op and message", err)
	}
	_, err = c.Register(ctx, registry.Instance{Service: "orders", Address: "no-port"})
	wantKind(t, err, verity.Invalid)
	_, err = c.Lookup(ctx, "Orders")
	wantKind(t, err, verity.Invalid)
	register(t, r, "payments", "p1", "x:1")
	_, err = c.Register(ctx, registry.Instance{Service: "orders", ID: "p1", Address: "x:1"})
	wantKind(t, err, verity.Conflict)
}

func TestTheClientReportsAnUnreachableRegistryAsUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := newClient(t, addr, registry.ClientOptions{})
	err = c.Heartbeat(t.Context(), "o1")
	wantKind(t, err, verity.Unavailable)
	_, err = c.Watch(t.Context(), "orders")
	wantKind(t, err, verity.Unavailable)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := c.Heartbeat(ctx, "o1"); !errors.Is(err, context.Canceled) {
		t.Fatalf("heartbeat with a cancelled context = %v, want context.Canceled", err)
	}
}

func TestNewClientChecksItsURLAndOptions(t *testing.T) {
	tests := []struct {
		name string
		url  string
		opts registry.ClientOptions
	}{
		{"an unknown scheme", "ftp://h:1", registry.ClientOptions{}},
		{"no host", "http://", registry.ClientOptions{}},
		{"credentials in the URL", "http://u:p@h:1", registry.ClientOptions{}},
		{"a token and a password", "h:1", registry.ClientOptions{Username: "u", Password: "p", Token: "t"}},
		{"a password with no user", "h:1", registry.ClientOptions{Password: "p"}},
		{"a negative timeout", "h:1", registry.ClientOptions{Timeout: -1}},
		{"a bad prefix", "h:1", registry.ClientOptions{Prefix: "registry"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := registry.NewClient(tt.url, tt.opts)
			wantKind(t, err, verity.Invalid)
		})
	}
}

func TestTheClientSendsItsCredentials(t *testing.T) {
	r := open(t, openStore(t), newClock())
	var got atomic.Value
	base := serve(t, r, registry.HandlerOptions{Authorize: func(req *http.Request, _ bool) error {
		got.Store(req.Header.Get("Authorization"))
		return nil
	}})
	newClient(t, base, registry.ClientOptions{Username: "ops", Password: "s3cret"}).Lookup(t.Context(), "orders")
	if v := got.Load(); v != "Basic b3BzOnMzY3JldA==" {
		t.Errorf("basic credentials sent as %q", v)
	}
	newClient(t, base, registry.ClientOptions{Token: "tok"}).Lookup(t.Context(), "orders")
	if v := got.Load(); v != "Bearer tok" {
		t.Errorf("token sent as %q", v)
	}
}

func TestTheWatchEndpointSendsServerSentEvents(t *testing.T) {
	r := open(t, openStore(t), newClock())
	register(t, r, "orders", "o1", "127.0.0.1:8081")
	base := serve(t, r, registry.HandlerOptions{})
	resp, err := http.Get(base + "/registry/watch/orders")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("watch: %d %q", resp.StatusCode, ct)
	}
	lines := bufio.NewScanner(resp.Body)
	// readEvent returns the next event's name and data, skipping comments.
	readEvent := func() (string, string) {
		t.Helper()
		var event, data string
		for lines.Scan() {
			line := lines.Text()
			switch {
			case line == "" && event != "":
				return event, data
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				data = strings.TrimPrefix(line, "data: ")
			}
		}
		t.Fatalf("the stream ended: %v", lines.Err())
		return "", ""
	}
	event, data := readEvent()
	if event != "snapshot" || !strings.Contains(data, `"kind":"snapshot"`) || !strings.Contains(data, `"id":"o1"`) {
		t.Fatalf("first event %s %s, want a snapshot holding o1", event, data)
	}
	register(t, r, "payments", "p1", "x:1") // another service: not sent
	register(t, r, "orders", "o2", "127.0.0.1:8082")
	if event, data = readEvent(); event != "registered" || !strings.Contains(data, `"id":"o2"`) {
		t.Fatalf("second event %s %s, want o2 registered", event, data)
	}
	if err := r.Deregister(t.Context(), "o1"); err != nil {
		t.Fatal(err)
	}
	if event, data = readEvent(); event != "removed" || !strings.Contains(data, `"reason":"deregistered"`) {
		t.Fatalf("third event %s %s, want o1 removed", event, data)
	}
	r.Close()
	if event, data = readEvent(); event != "error" || !strings.Contains(data, `"kind":"unavailable"`) {
		t.Fatalf("after Close: %s %s, want an unavailable error", event, data)
	}
}

func TestAnIdleWatchGetsHeartbeats(t *testing.T) {
	r := open(t, openStore(t), newClock())
	base := serve(t, r, registry.HandlerOptions{SSEHeartbeat: time.Millisecond})
	resp, err := http.Get(base + "/registry/watch")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	heartbeats := 0
	for heartbeats < 3 && lines.Scan() {
		if lines.Text() == ": heartbeat" {
			heartbeats++
		}
	}
	if heartbeats < 3 {
		t.Fatalf("saw %d heartbeats before the stream ended (%v)", heartbeats, lines.Err())
	}
}
