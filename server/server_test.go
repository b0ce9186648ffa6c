package server_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/auth"
	"github.com/verity-dev/verity/client"
	"github.com/verity-dev/verity/server"
	"github.com/verity-dev/verity/storetest"
)

// servedClient is the Go client of a whole server; closing it shuts the server down.
type servedClient struct {
	*client.Client
	srv *server.Server
	dir string
}

func (s *servedClient) Close() error {
	err := s.Client.Close()
	if serr := s.srv.Shutdown(context.Background()); err == nil {
		err = serr
	}
	return err
}

// TestConformanceOverServer runs the Store conformance suite through the Go client against
// the whole server (config, HTTP/2 routing, interceptors, auth in insecure mode, metrics),
// as `verity serve` runs it.
func TestConformanceOverServer(t *testing.T) {
	clock := storetest.NewFakeClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	open := func(t testing.TB, dir string) verity.Store {
		t.Helper()
		srv, err := server.New(server.Config{Data: dir, Listen: "127.0.0.1:0", Insecure: true, Now: clock.Now},
			slogDiscard())
		if err != nil {
			t.Fatalf("server.New: %v", err)
		}
		if err := srv.Start(); err != nil {
			t.Fatalf("Start: %v", err)
		}
		c, err := client.Dial(srv.Addr().String(), client.Options{})
		if err != nil {
			srv.Shutdown(context.Background())
			t.Fatalf("Dial: %v", err)
		}
		s := &servedClient{Client: c, srv: srv, dir: dir}
		t.Cleanup(func() { s.Close() })
		return s
	}
	storetest.Run(t, storetest.Harness{
		New: func(t testing.TB) verity.Store { return open(t, t.TempDir()) },
		Reopen: func(t testing.TB, s verity.Store) verity.Store {
			old := s.(*servedClient)
			old.Close()
			return open(t, old.dir)
		},
		Clock:    clock,
		Features: storetest.Features{Reopen: true, ControlClock: true},
	})
}

func TestHealthAndMetrics(t *testing.T) {
	srv := start(t, server.Config{Insecure: true})
	base := "http://" + srv.Addr().String()
	hc := &http.Client{}

	if code, _ := httpGet(t, hc, base+"/health/live"); code != http.StatusOK {
		t.Fatalf("/health/live = %d, want 200", code)
	}
	if code, body := httpGet(t, hc, base+"/health/ready"); code != http.StatusOK || !strings.Contains(body, `"ready"`) {
		t.Fatalf("/health/ready = %d %s, want 200 ready", code, body)
	}

	code, body := httpDo(t, hc, "POST", base+"/streams/order-1", `[{"type":"OrderPlaced","data":{"n":1}},{"type":"OrderPaid","data":{"n":2}}]`, "", "")
	if code != http.StatusCreated {
		t.Fatalf("append over HTTP = %d %s", code, body)
	}
	if got := metric(t, hc, base, "verity_appends_total"); got != "1" {
		t.Fatalf("verity_appends_total = %q after one append, want 1", got)
	}
	if got := metric(t, hc, base, "verity_appended_events_total"); got != "2" {
		t.Fatalf("verity_appended_events_total = %q, want 2", got)
	}
	if got := metric(t, hc, base, "verity_group_commit_events_count"); got != "1" {
		t.Fatalf("verity_group_commit_events_count = %q, want 1", got)
	}
	if got := metric(t, hc, base, "verity_fsync_seconds_count"); got != "1" {
		t.Fatalf("verity_fsync_seconds_count = %q, want 1", got)
	}
	if got := metric(t, hc, base, "verity_log_last_position"); got != "2" {
		t.Fatalf("verity_log_last_position = %q, want 2", got)
	}

	// A refused append is counted by kind.
	code, _ = httpDo(t, hc, "POST", base+"/streams/order-1", `{"type":"OrderPlaced","data":{},"expectedRevision":"no-stream"}`, "", "")
	if code != http.StatusConflict {
		t.Fatalf("append with a wrong expected revision = %d, want 409", code)
	}
	if got := metric(t, hc, base, `verity_store_errors_total{kind="conflict",op="append"}`); got != "1" {
		t.Fatalf("conflict errors = %q, want 1", got)
	}

	// A live subscription is counted while it lasts.
	c, err := client.Dial(srv.Addr().String(), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sub, err := c.Subscribe(t.Context(), verity.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for {
		m, err := sub.Recv(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if m.Kind == verity.MessageCaughtUp {
			break
		}
	}
	if got := metric(t, hc, base, "verity_subscriptions_active"); got != "1" {
		t.Fatalf("verity_subscriptions_active = %q with one subscriber, want 1", got)
	}
	sub.Close()
	waitFor(t, "the subscription to be released", func() bool {
		return metric(t, hc, base, "verity_subscriptions_active") == "0"
	})
	waitFor(t, "the finished Subscribe call to be counted", func() bool {
		_, body := httpGet(t, hc, base+"/metrics")
		return strings.Contains(body, `method="/verity.v1.Store/Subscribe"`)
	})
}

// TestOneLogThreeProtocols: what is appended through one protocol is read, identically,
// through the others.
func TestOneLogThreeProtocols(t *testing.T) {
	srv := start(t, server.Config{Insecure: true})
	addr := srv.Addr().String()
	hc := &http.Client{}
	code, body := httpDo(t, hc, "POST", "http://"+addr+"/streams/order-7",
		`{"id":"0b3f2c1e-8d2a-4c6e-9f51-3a7d2e4b5c60","type":"OrderPlaced","data":{"total":42}}`, "", "")
	if code != http.StatusCreated {
		t.Fatalf("HTTP append = %d %s", code, body)
	}

	c, err := client.Dial(addr, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	evs, err := c.ReadStream(t.Context(), "order-7", verity.ReadStreamOptions{})
	if err != nil || len(evs) != 1 || evs[0].ID.String() != "0b3f2c1e-8d2a-4c6e-9f51-3a7d2e4b5c60" || string(evs[0].Data) != `{"total":42}` {
		t.Fatalf("Go client read = %+v, %v", evs, err)
	}
	if _, err := c.Append(t.Context(), "order-7", verity.Exact(0), verity.EventData{Type: "OrderPaid", Data: []byte(`{}`)}); err != nil {
		t.Fatalf("Go client append: %v", err)
	}

	cfg, err := kurrentdb.ParseConnectionString("kurrentdb://" + addr + "?tls=false")
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kurrentdb.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	rs, err := kc.ReadStream(t.Context(), "order-7", kurrentdb.ReadStreamOptions{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var types []string
	for {
		ev, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("KurrentDB client read: %v", err)
		}
		types = append(types, ev.OriginalEvent().EventType)
	}
	if strings.Join(types, ",") != "OrderPlaced,OrderPaid" {
		t.Fatalf("KurrentDB client read types %v, want OrderPlaced,OrderPaid", types)
	}
}

// TestTLSAndAccessControl runs a secured server: TLS, the bootstrap admin, a user limited by
// rules, wrong credentials, and denied requests counted in metrics.
func TestTLSAndAccessControl(t *testing.T) {
	certFile, keyFile, pool := testCert(t)
	srv := start(t, server.Config{
		TLSCert: certFile, TLSKey: keyFile, AdminPassword: "s3cret-admin",
		Access: []auth.Rule{{Roles: []string{"orders-service"}, Categories: []string{"order"}, Actions: []auth.Action{auth.Read, auth.Write}}},
	})
	addr := srv.Addr().String()
	base := "https://" + addr
	hc := tlsClient(pool)

	// Plaintext to the TLS port gets nowhere.
	if resp, err := http.Get("http://" + addr + "/health/live"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatalf("plaintext HTTP to a TLS server answered 200")
		}
	}
	if code, _ := httpGet(t, hc, base+"/health/ready"); code != http.StatusOK {
		t.Fatalf("/health/ready over TLS = %d", code)
	}

	// No credentials, wrong credentials: 401, nothing written.
	if code, _ := httpDo(t, hc, "POST", base+"/streams/order-1", `{"type":"X","data":{}}`, "", ""); code != http.StatusUnauthorized {
		t.Fatalf("anonymous append = %d, want 401", code)
	}
	if code, _ := httpDo(t, hc, "POST", base+"/streams/order-1", `{"type":"X","data":{}}`, "admin", "wrong"); code != http.StatusUnauthorized {
		t.Fatalf("append with a wrong password = %d, want 401", code)
	}

	// The admin creates a service user limited to the order category.
	admin := auth.Principal{Name: "admin", Roles: []string{auth.RoleAdmins}}
	if err := srv.Auth().CreateUser(t.Context(), admin, "orders", "orders-pw", []string{"orders-service"}); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if code, body := httpDo(t, hc, "POST", base+"/streams/order-1", `{"type":"OrderPlaced","data":{}}`, "orders", "orders-pw"); code != http.StatusCreated {
		t.Fatalf("orders appending to order-1 = %d %s, want 201", code, body)
	}
	// The anonymous append above was refused by access control too: count from here.
	deniedBefore := metric(t, hc, base, `verity_access_denied_total{action="write"}`)
	code, body := httpDo(t, hc, "POST", base+"/streams/customer-1", `{"type":"CustomerRenamed","data":{}}`, "orders", "orders-pw")
	if code != http.StatusForbidden || !strings.Contains(body, "permission_denied") {
		t.Fatalf("orders appending to customer-1 = %d %s, want 403 permission_denied", code, body)
	}
	if got := metric(t, hc, base, `verity_access_denied_total{action="write"}`); deniedBefore != "1" || got != "2" {
		t.Fatalf(`verity_access_denied_total{action="write"} went from %q to %q, want 1 to 2`, deniedBefore, got)
	}

	// The Go client over TLS with credentials sees the same rules.
	c, err := client.Dial(addr, client.Options{TLS: &tls.Config{RootCAs: pool}, Username: "orders", Password: "orders-pw"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if evs, err := c.ReadStream(t.Context(), "order-1", verity.ReadStreamOptions{}); err != nil || len(evs) != 1 {
		t.Fatalf("orders reading order-1 over gRPC: %d events, %v", len(evs), err)
	}
	if _, err := c.Append(t.Context(), "customer-1", verity.Any(), verity.EventData{Type: "X", Data: []byte(`{}`)}); !errors.Is(err, verity.ErrPermissionDenied) {
		t.Fatalf("orders appending to customer-1 over gRPC: %v, want PermissionDenied", err)
	}
	bad, err := client.Dial(addr, client.Options{TLS: &tls.Config{RootCAs: pool}, Username: "orders", Password: "nope"})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if _, err := bad.ReadStream(t.Context(), "order-1", verity.ReadStreamOptions{}); !errors.Is(err, verity.ErrUnauthenticated) {
		t.Fatalf("read with a wrong password over gRPC: %v, want Unauthenticated", err)
	}
	// Nothing but the one permitted append reached the log.
	evs, err := srv.Store().ReadAll(t.Context(), verity.ReadAllOptions{Filter: verity.Filter{ExcludeSystemEvents: true}})
	if err != nil {
		t.Fatal(err)
	}
	var user []string
	for _, e := range evs {
		if !verity.IsSystemStream(e.Stream) {
			user = append(user, e.Stream+"/"+e.Type)
		}
	}
	if strings.Join(user, ",") != "order-1/OrderPlaced" {
		t.Fatalf("user events in the log: %v, want only order-1/OrderPlaced", user)
	}
}

// TestShutdownEndsSubscriptionsAndKeepsData: a graceful shutdown ends live subscriptions
// instead of waiting for them, refuses new work, and loses nothing acknowledged.
func TestShutdownEndsSubscriptionsAndKeepsData(t *testing.T) {
	dir := t.TempDir()
	srv, err := server.New(server.Config{Data: dir, Listen: "127.0.0.1:0", Insecure: true, ShutdownTimeout: time.Minute}, slogDiscard())
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	addr := srv.Addr().String()
	c, err := client.Dial(addr, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 10 {
		if _, err := c.Append(t.Context(), "order-1", verity.Any(), verity.EventData{Type: "E", Data: fmt.Appendf(nil, `{"i":%d}`, i)}); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := c.Subscribe(t.Context(), verity.SubscribeOptions{Stream: "order-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	// An SSE subscriber too.
	req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://"+addr+"/subscribe/order-1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()

	var wg sync.WaitGroup
	wg.Add(2)
	subErr := make(chan error, 1)
	go func() {
		defer wg.Done()
		for {
			if _, err := sub.Recv(context.Background()); err != nil {
				subErr <- err
				return
			}
		}
	}()
	sseDone := make(chan error, 1)
	go func() {
		defer wg.Done()
		_, err := io.Copy(io.Discard, resp.Body)
		sseDone <- err
	}()

	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	wg.Wait()
	if err := <-subErr; err == nil {
		t.Fatalf("the gRPC subscription did not end")
	}
	<-sseDone
	if _, err := c.Append(t.Context(), "order-1", verity.Any(), verity.EventData{Type: "E", Data: []byte(`{}`)}); err == nil {
		t.Fatalf("an append after shutdown succeeded")
	}

	srv2 := start(t, server.Config{Data: dir, Insecure: true})
	evs, err := srv2.Store().ReadStream(t.Context(), "order-1", verity.ReadStreamOptions{})
	if err != nil || len(evs) != 10 {
		t.Fatalf("after restart order-1 holds %d events (%v), want 10", len(evs), err)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	_, err := server.New(server.Config{Data: t.TempDir()}, slogDiscard())
	if err == nil || !strings.Contains(err.Error(), "tls_cert") {
		t.Fatalf("New without TLS or insecure: %v, want an error naming tls_cert", err)
	}
	_, err = server.New(server.Config{Data: t.TempDir(), TLSCert: "/nonexistent.pem", TLSKey: "/nonexistent.key"}, slogDiscard())
	if err == nil || !strings.Contains(err.Error(), "nonexistent") {
		t.Fatalf("New with a missing certificate: %v, want an error naming the file", err)
	}
}

func TestMetricsAreValidPrometheusText(t *testing.T) {
	srv := start(t, server.Config{Insecure: true})
	resp, err := http.Get("http://" + srv.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("/metrics Content-Type %q", ct)
	}
	b, _ := io.ReadAll(resp.Body)
	for _, name := range []string{"verity_appends_total", "verity_fsync_seconds", "verity_group_commit_events",
		"verity_subscriptions_active", "verity_subscription_lag_events_max", "go_goroutines"} {
		if !strings.Contains(string(b), "# TYPE "+name+" ") {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	var ready struct{ Status string }
	_, body := httpGet(t, &http.Client{}, "http://"+srv.Addr().String()+"/health/ready")
	if err := json.Unmarshal([]byte(body), &ready); err != nil || ready.Status != "ready" {
		t.Fatalf("/health/ready body %q is not the JSON it should be: %v", body, err)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
