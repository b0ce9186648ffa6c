package gateway_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// sse is an upstream that sends one event at once and another when next is closed,
// holding the answer open in between.
func sse(next <-chan struct{}) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Write([]byte("data: first\n\n"))
		w.(http.Flusher).Flush()
		select {
		case <-next:
		case <-r.Context().Done():
			return
		}
		w.Write([]byte("data: second\n\n"))
	}
}

func TestAStreamRouteOutlastsItsTimeout(t *testing.T) {
	const timeout = 50 * time.Millisecond
	for _, tc := range []struct {
		name   string
		stream bool
	}{{"a stream route", true}, {"a plain route", false}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			next := make(chan struct{})
			e.upstream("svc", "a", sse(next))
			cfg := parse(t, fmt.Sprintf(`routes: [{name: r, match: "/", service: svc, timeout: 50ms, stream: %v}]`, tc.stream))
			_, url := e.gateway(cfg)
			resp, err := e.client.Get(url + "/events")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			rd := bufio.NewReader(resp.Body)
			if line, err := rd.ReadString('\n'); err != nil || line != "data: first\n" {
				t.Fatalf("first line %q, %v", line, err)
			}
			// Past the route's timeout, the instance sends the second event.
			<-time.After(4 * timeout)
			close(next)
			rest := new(strings.Builder)
			_, err = rd.WriteTo(rest)
			got := strings.Contains(rest.String(), "data: second")
			if tc.stream && (!got || err != nil) {
				t.Errorf("a stream route cut the answer at its timeout: read %q, %v", rest, err)
			}
			if !tc.stream && got {
				t.Errorf("a plain route let the answer run past its timeout: read %q", rest)
			}
		})
	}
}

func TestAStreamRouteStillTimesOutWaitingForHeaders(t *testing.T) {
	e := newEnv(t)
	g := newGate()
	t.Cleanup(g.release)
	e.upstream("svc", "a", g.hold)
	cfg := parse(t, `routes: [{name: r, match: "/", service: svc, timeout: 50ms, retries: 0}]`)
	cfg.Routes[0].Stream = true
	_, url := e.gateway(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := e.try(ctx, "GET", url+"/events", "")
	if err != nil || a.status != http.StatusGatewayTimeout {
		t.Fatalf("an instance that never answers: %d %s, %v; want 504", a.status, a.body, err)
	}
}

func TestOnlyServiceRoutesStream(t *testing.T) {
	cfg := parse(t, `routes: [{name: d, match: "/d", compose: {calls: [{name: a, service: svc, path: /a}]}}]`)
	cfg.Routes[0].Stream = true
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "stream") {
		t.Fatalf("a composition route with stream: %v, want it refused naming stream", err)
	}
}
