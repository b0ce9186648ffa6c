package server_test

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/auth"
	"github.com/verity-dev/verity/registry"
	"github.com/verity-dev/verity/server"
)

func registryClient(t testing.TB, url string, opts registry.ClientOptions) *registry.Client {
	t.Helper()
	opts.Logger = slogDiscard()
	c, err := registry.NewClient(url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func lookupIDs(t testing.TB, r *registry.Registry, service string) []string {
	t.Helper()
	ins, err := r.Lookup(context.Background(), service)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, in := range ins {
		out = append(out, in.ID)
	}
	return out
}

func TestTheServerServesItsRegistryAtSlashRegistry(t *testing.T) {
	srv := start(t, server.Config{Insecure: true})
	base := "http://" + srv.Addr().String()
	c := registryClient(t, base, registry.ClientOptions{})
	ctx := t.Context()
	if _, err := c.Register(ctx, registry.Instance{Service: "orders", ID: "o1", Address: "127.0.0.1:8081"}); err != nil {
		t.Fatalf("register: %v", err)
	}
	if _, err := c.Register(ctx, registry.Instance{Service: "orders", ID: "o2", Address: "127.0.0.1:8082", Health: registry.Unhealthy}); err != nil {
		t.Fatalf("register: %v", err)
	}
	if got := lookupIDs(t, srv.Registry(), "orders"); !slices.Equal(got, []string{"o1"}) {
		t.Fatalf("in-process lookup = %v, want [o1]", got)
	}
	if got := metric(t, http.DefaultClient, base, `verity_registry_instances{health="healthy",service="orders"}`); got != "1" {
		t.Errorf("healthy orders metric = %q, want 1", got)
	}
	if got := metric(t, http.DefaultClient, base, `verity_registry_instances{health="unhealthy",service="orders"}`); got != "1" {
		t.Errorf("unhealthy orders metric = %q, want 1", got)
	}
	// The registry's changes are events of $registry, readable through the stream API.
	status, body := httpGet(t, http.DefaultClient, base+"/streams/%24registry")
	if status != 200 || strings.Count(body, registry.EventInstanceRegistered) != 2 {
		t.Fatalf("GET /streams/$registry: %d %s", status, body)
	}
	// The rest of the HTTP API is untouched.
	if status, _ := httpGet(t, http.DefaultClient, base+"/registry/nothing"); status != 404 {
		t.Errorf("unknown registry path: %d, want 404", status)
	}
}

func TestTheRegistryAPIIsAccessChecked(t *testing.T) {
	certFile, keyFile, pool := testCert(t)
	srv := start(t, server.Config{TLSCert: certFile, TLSKey: keyFile, AdminPassword: "s3cret-admin"})
	admin := auth.Principal{Name: "admin", Roles: []string{auth.RoleAdmins}}
	for _, u := range []struct{ name, role string }{{"ops", auth.RoleOps}, {"plain", "orders-service"}} {
		if err := srv.Auth().CreateUser(t.Context(), admin, u.name, u.name+"-pw", []string{u.role}); err != nil {
			t.Fatal(err)
		}
	}
	base := "https://" + srv.Addr().String()
	tc := &tls.Config{RootCAs: pool}
	client := func(user string) *registry.Client {
		opts := registry.ClientOptions{TLS: tc}
		if user != "" {
			opts.Username, opts.Password = user, user+"-pw"
			if user == "admin" {
				opts.Password = "s3cret-admin"
			}
		}
		return registryClient(t, base, opts)
	}
	in := registry.Instance{Service: "orders", ID: "o1", Address: "127.0.0.1:8081"}
	ctx := t.Context()

	_, err := client("").Register(ctx, in)
	wantErrKind(t, "an anonymous registration", err, verity.Unauthenticated)
	_, err = client("plain").Register(ctx, in)
	wantErrKind(t, "a plain user's registration", err, verity.PermissionDenied)
	_, err = client("plain").Lookup(ctx, "orders")
	wantErrKind(t, "a plain user's lookup", err, verity.PermissionDenied)
	_, err = client("ops").Register(ctx, in)
	wantErrKind(t, "an operator's registration", err, verity.PermissionDenied)
	if _, err := client("admin").Register(ctx, in); err != nil {
		t.Fatalf("the admin's registration: %v", err)
	}
	ops := client("ops")
	if got, err := ops.Lookup(ctx, "orders"); err != nil || len(got) != 1 {
		t.Fatalf("an operator's lookup = %v, %v; want o1", got, err)
	}
	w, err := ops.Watch(ctx, "orders")
	if err != nil {
		t.Fatalf("an operator's watch: %v", err)
	}
	defer w.Close()
	if c, err := w.Next(ctx); err != nil || c.Kind != registry.ChangeSnapshot || len(c.Instances) != 1 {
		t.Fatalf("watch: %+v, %v", c, err)
	}
	_, err = client("plain").Watch(ctx, "orders")
	wantErrKind(t, "a plain user's watch", err, verity.PermissionDenied)
}

func wantErrKind(t testing.TB, what string, err error, kind verity.ErrorKind) {
	t.Helper()
	if verity.KindOf(err) != kind || err == nil {
		t.Errorf("%s: %v, want kind %s", what, err, kind)
	}
}

// TestKeepRegisteredOverTheNetworkRidesOutAServerRestart: a service keeps itself registered
// through the client while the server restarts on the same data: the registry folds
// $registry again, and the instance's heartbeats carry on with no new registration.
func TestKeepRegisteredOverTheNetworkRidesOutAServerRestart(t *testing.T) {
	data := t.TempDir()
	cfg := server.Config{Data: data, Insecure: true, Listen: "127.0.0.1:0"}
	srv1, err := server.New(cfg, slogDiscard())
	if err != nil {
		t.Fatal(err)
	}
	if err := srv1.Start(); err != nil {
		t.Fatal(err)
	}
	addr := srv1.Addr().String()
	c := registryClient(t, "http://"+addr, registry.ClientOptions{Timeout: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		registry.KeepRegistered(ctx, c, registry.Instance{Service: "orders", ID: "o1", Address: "127.0.0.1:8081"}, 5*time.Millisecond)
	}()
	defer wg.Wait()
	defer cancel()
	waitFor(t, "o1 registered", func() bool { return len(lookupIDs(t, srv1.Registry(), "orders")) == 1 })
	if err := srv1.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	cfg.Listen = addr
	var srv2 *server.Server
	waitFor(t, "the address to be free again", func() bool {
		srv2, err = server.New(cfg, slogDiscard())
		if err != nil {
			t.Fatal(err)
		}
		if err = srv2.Start(); err != nil {
			srv2.Close()
			return false
		}
		return true
	})
	t.Cleanup(func() { srv2.Shutdown(context.Background()) })
	if got := lookupIDs(t, srv2.Registry(), "orders"); !slices.Equal(got, []string{"o1"}) {
		t.Fatalf("after the restart, orders = %v, want [o1] from the log", got)
	}
	// The instance is still there well past its first lease only if heartbeats arrive:
	// poll the events, then deregister by stopping and check the log.
	cancel()
	wg.Wait()
	waitFor(t, "o1 deregistered", func() bool { return len(lookupIDs(t, srv2.Registry(), "orders")) == 0 })
	evs, err := srv2.Store().ReadStream(t.Context(), registry.DefaultStream, verity.ReadStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
	}
	if want := []string{registry.EventInstanceRegistered, registry.EventInstanceRemoved}; !slices.Equal(types, want) {
		t.Fatalf("$registry = %v, want %v (one registration across the restart)", types, want)
	}
}

func TestShutdownEndsRegistryWatches(t *testing.T) {
	cfg := server.Config{Data: t.TempDir(), Insecure: true, Listen: "127.0.0.1:0", ShutdownTimeout: time.Minute}
	srv, err := server.New(cfg, slogDiscard())
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	// No Accept header, as a plain curl sends: the watch must end at shutdown all the same.
	resp, err := http.Get("http://" + srv.Addr().String() + "/registry/watch/orders")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Shutdown waited on a registry watch")
	}
	io.Copy(io.Discard, resp.Body)
}
