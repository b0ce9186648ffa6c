package server_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/verity-dev/verity/auth"
	"github.com/verity-dev/verity/server"
)

// A live stream ends when shutdown begins, as the other server-sent event streams do,
// whatever Accept header its client sent: the endpoint streams either way, and a stream
// left open holds the shutdown for its whole drain bound.
func TestLiveStreamsEndAtShutdownWithoutAnAcceptHeader(t *testing.T) {
	certFile, keyFile, pool := testCert(t)
	srv := start(t, server.Config{TLSCert: certFile, TLSKey: keyFile, AdminPassword: "s3cret-admin",
		LiveEvery: 5 * time.Millisecond, ShutdownTimeout: time.Minute})
	hc := tlsClient(pool)
	req, err := http.NewRequestWithContext(t.Context(), "GET", "https://"+srv.Addr().String()+server.LivePath+"?path=/subscriptions", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("admin", "s3cret-admin") // and no Accept: text/event-stream, as curl sends
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("live: %d, want 200", resp.StatusCode)
	}
	live := &liveStream{t: t, resp: resp, r: bufio.NewReader(resp.Body)}
	if got := live.next(); got != `{"path":"/subscriptions"}` {
		t.Fatalf("first event %s", got)
	}

	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(context.Background()) }()
	ended := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, resp.Body)
		ended <- err
	}()
	select {
	case <-ended:
	case <-time.After(30 * time.Second): // far under the drain bound of a minute
		t.Fatal("the live stream did not end when shutdown began")
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// A caller whose credentials stop holding while it follows (its user deleted, its password
// changed) is told once, so that the page fetches and meets the sign-in, and the stream
// ends: it does not go on checking credentials that fail (a bcrypt comparison each, for
// each path, every LiveEvery) for as long as the tab stays open.
func TestLiveEndsWhenTheCallersCredentialsStopHolding(t *testing.T) {
	certFile, keyFile, pool := testCert(t)
	srv := start(t, server.Config{TLSCert: certFile, TLSKey: keyFile, AdminPassword: "s3cret-admin", LiveEvery: 5 * time.Millisecond})
	hc := tlsClient(pool)
	admin := auth.Principal{Name: "admin", Roles: []string{auth.RoleAdmins}}
	if err := srv.Auth().CreateUser(t.Context(), admin, "bob", "bob-pw", nil); err != nil {
		t.Fatal(err)
	}
	bob, code := openLive(t, hc, "https://"+srv.Addr().String()+server.LivePath+"?path=/subscriptions", "bob", "bob-pw")
	if code != http.StatusOK {
		t.Fatalf("bob following: %d, want 200", code)
	}
	if got := bob.next(); got != `{"path":"/subscriptions"}` {
		t.Fatalf("first event %s", got)
	}
	if err := srv.Auth().DeleteUser(t.Context(), admin, "bob"); err != nil {
		t.Fatal(err)
	}
	if got := bob.next(); got != `{"path":"/subscriptions"}` {
		t.Fatalf("after bob was deleted: %s, want /subscriptions changed", got)
	}
	ended := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, bob.r)
		ended <- err
	}()
	select {
	case err := <-ended:
		if err != nil {
			t.Fatalf("the stream broke instead of ending: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the live stream of a deleted user goes on")
	}
}
