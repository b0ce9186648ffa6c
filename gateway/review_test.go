package gateway_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// brokenWriter is a client that went away: every write of the answer fails.
type brokenWriter struct{ h http.Header }

func (w *brokenWriter) Header() http.Header {
	if w.h == nil {
		w.h = http.Header{}
	}
	return w.h
}
func (w *brokenWriter) WriteHeader(int)             {}
func (w *brokenWriter) Write(p []byte) (int, error) { return 0, errors.New("client went away") }

func TestAClientThatStopsReadingIsNotASuccess(t *testing.T) {
	e := newEnv(t)
	e.upstream("big", "b1", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		chunk := []byte(strings.Repeat("x", 64<<10))
		for range 64 {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	gw, url := e.gateway(parse(t, `
defaults: {breaker: {failures: 2, openFor: 1h}}
routes: [{name: big, match: "/", service: big, retries: 0}]
`))
	if a := e.do("GET", url+"/fail", ""); a.status != 500 {
		t.Fatalf("status %d, want the upstream's 500", a.status)
	}
	// A client that goes away halfway through an answer says nothing about the upstream:
	// it must not reset the breaker's count of consecutive failures.
	gw.ServeHTTP(&brokenWriter{}, httptest.NewRequest("GET", "/big", nil))
	if a := e.do("GET", url+"/fail", ""); a.status != 500 {
		t.Fatalf("status %d, want the upstream's 500", a.status)
	}
	if s := routeStatus(t, gw, "big").Upstreams[0].Breaker; s != "open" {
		t.Errorf("breaker %s after two failures around an abandoned answer, want open", s)
	}
}

func TestAParallelCompositionAnswersTheFailureThatCausedIt(t *testing.T) {
	e := newEnv(t)
	g := newGate()
	t.Cleanup(g.release)
	e.upstream("orders", "o1", g.hold) // slow: cancelled when customers fails
	e.upstream("customers", "c1", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":"no such customer"}`, http.StatusNotFound)
	})
	_, url := e.gateway(parse(t, `
defaults: {retries: 0}
routes:
  - name: details
    match: "GET /details/{id}"
    compose:
      calls:
        - {name: order, service: orders, path: "/orders/{id}"}
        - {name: customer, service: customers, path: "/customers/{id}"}
`))
	a := e.do("GET", url+"/details/7", "")
	if a.status != http.StatusNotFound || !strings.Contains(a.body, `call \"customer\" failed`) {
		t.Errorf("got %d %s; want the customers service's 404, naming call customer", a.status, a.body)
	}
}

func TestAnUpgradedConnectionPassesThrough(t *testing.T) {
	e := newEnv(t)
	e.upstream("echo", "e1", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "want Upgrade: echo", http.StatusBadRequest)
			return
		}
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		rw.Flush()
		line, err := rw.ReadString('\n')
		if err != nil {
			return
		}
		rw.WriteString(line)
		rw.Flush()
	})
	gw, url := e.gateway(parse(t, `
defaults: {breaker: {halfOpenRequests: 1}}
routes: [{name: echo, match: "/", service: echo}]
`))
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d %s, want 101", resp.StatusCode, b)
	}
	fmt.Fprintf(conn, "ping\n")
	if line, err := br.ReadString('\n'); err != nil || line != "ping\n" {
		t.Fatalf("echo: %q, %v", line, err)
	}
	conn.Close()
	if a := e.do("GET", url+"/x", ""); a.status != http.StatusBadRequest {
		t.Errorf("a plain request after the upgrade: status %d, want the upstream's 400", a.status)
	}
	if up := routeStatus(t, gw, "echo").Upstreams[0]; up.Requests != 2 || up.Errors != 0 {
		t.Errorf("upstream counts %+v, want 2 requests, no error", up)
	}
}
