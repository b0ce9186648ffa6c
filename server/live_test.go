package server_test

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/verity-dev/verity/auth"
	"github.com/verity-dev/verity/server"
)

// liveStream is an open GET /ui/live: next returns the data of its next "changed" event.
type liveStream struct {
	t    testing.TB
	resp *http.Response
	r    *bufio.Reader
}

func openLive(t testing.TB, c *http.Client, url, user, password string) (*liveStream, int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return &liveStream{t: t, resp: resp, r: bufio.NewReader(resp.Body)}, resp.StatusCode
}

func (l *liveStream) next() string {
	l.t.Helper()
	var event, data string
	for {
		line, err := l.r.ReadString('\n')
		if err != nil {
			l.t.Fatalf("live stream ended: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "" && data != "":
			if event != "changed" {
				l.t.Fatalf("live stream sent event %q, want changed", event)
			}
			return data
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		}
	}
}

func TestLiveTellsOfChangesToWhatTheCallerMayRead(t *testing.T) {
	certFile, keyFile, pool := testCert(t)
	srv := start(t, server.Config{TLSCert: certFile, TLSKey: keyFile, AdminPassword: "s3cret-admin", LiveEvery: 5 * time.Millisecond})
	base := "https://" + srv.Addr().String()
	hc := tlsClient(pool)
	hc.Timeout = time.Minute // a stream that should not have started fails the test instead of hanging it
	admin := auth.Principal{Name: "admin", Roles: []string{auth.RoleAdmins}}
	if err := srv.Auth().CreateUser(t.Context(), admin, "bob", "bob-pw", nil); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		what, query, user string
		status            int
		says              string
	}{
		{"no path", "", "admin", http.StatusBadRequest, "path"},
		{"a path it does not follow", "?path=/streams/order-1", "admin", http.StatusBadRequest, "cannot follow"},
		{"itself", "?path=" + server.LivePath, "admin", http.StatusBadRequest, "cannot follow"},
		{"anonymous, where the answer would be 401", "?path=/subscriptions&path=" + server.PlatformPrefix + "views", "", http.StatusUnauthorized, "administrator"},
	} {
		code, body := httpDo(t, hc, "GET", base+server.LivePath+c.query, "", c.user, map[string]string{"admin": "s3cret-admin"}[c.user])
		if code != c.status || !strings.Contains(body, c.says) {
			t.Errorf("%s: %d %s, want %d saying %q", c.what, code, body, c.status, c.says)
		}
	}

	live, code := openLive(t, hc, base+server.LivePath+"?path=/subscriptions&path=/registry/instances&path=/subscriptions", "admin", "s3cret-admin")
	if code != http.StatusOK || live.resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("admin: %d %q, want 200 text/event-stream", code, live.resp.Header.Get("Content-Type"))
	}
	// One event for each path at once (a path named twice counts once), then one each
	// time an answer changes, and only then.
	first := []string{live.next(), live.next()}
	if first[0] != `{"path":"/registry/instances"}` || first[1] != `{"path":"/subscriptions"}` {
		t.Fatalf("first events %v, want one for each path", first)
	}
	if code, body := httpDo(t, hc, "PUT", base+"/subscriptions/order-1/billing", `{}`, "admin", "s3cret-admin"); code/100 != 2 {
		t.Fatalf("create a group: %d %s", code, body)
	}
	// The other path may be told of too on a loaded machine (a look that timed out is an
	// answer that changed); the group must be told of.
	for got := live.next(); got != `{"path":"/subscriptions"}`; got = live.next() {
		if got != `{"path":"/registry/instances"}` {
			t.Fatalf("after a group was created: %s, want /subscriptions changed", got)
		}
	}

	// A part the caller may not read is followed like any other: the page shows the
	// refusal when it fetches.
	bob, code := openLive(t, hc, base+server.LivePath+"?path="+server.PlatformPrefix+"views", "bob", "bob-pw")
	if code != http.StatusOK {
		t.Fatalf("bob following the views: %d, want 200", code)
	}
	if got := bob.next(); got != `{"path":"/ui/platform/views"}` {
		t.Errorf("bob's first event %s", got)
	}
}
