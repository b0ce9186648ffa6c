package gateway_test

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
)

func TestReloadUnderTrafficDropsNoRequest(t *testing.T) {
	e := newEnv(t)
	e.upstream("svc", "a", echo("a"))
	e.upstream("svc", "b", echo("b"))
	e.upstream("other", "o", echo("o"))
	configs := []string{
		`routes: [{name: r, match: "/api/", service: svc, stripPrefix: /api}]`,
		`{defaults: {timeout: 3s, balance: least-outstanding}, routes: [{name: r, match: "/api/", service: svc, stripPrefix: /api}, {name: o, match: "/other/", service: other}]}`,
		`routes: [{name: r2, match: "/api/", service: svc, maxConcurrent: 1000}]`,
	}
	g, url := e.gateway(parse(t, configs[0]))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sent, failed atomic.Int64
	var firstErr sync.Once
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				a, err := e.try(t.Context(), "GET", url+"/api/customers", "")
				sent.Add(1)
				if err != nil || a.status != 200 {
					failed.Add(1)
					firstErr.Do(func() { t.Errorf("a request failed across a reload: %v %d %s", err, a.status, a.body) })
				}
			}
		})
	}
	for i := range 30 {
		before := sent.Load()
		if err := g.Reload(parse(t, configs[i%len(configs)])); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		eventually(t, "requests after the reload", func() bool { return sent.Load() > before+5 })
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Errorf("%d of %d requests failed", failed.Load(), sent.Load())
	}
}

func TestReloadKeepsBreakersOfUnchangedUpstreams(t *testing.T) {
	e := newEnv(t)
	e.upstream("flaky", "f", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) })
	const cfg = `
defaults: {retries: 0, breaker: {failures: 1, openFor: %s}}
routes:
  - {name: flaky, match: "/", service: flaky}
%s`
	g, url := e.gateway(parse(t, fmt.Sprintf(cfg, "1h", "")))
	e.do("GET", url+"/x", "")
	if s := routeStatus(t, g, "flaky").Upstreams[0].Breaker; s != "open" {
		t.Fatalf("breaker %s, want open", s)
	}
	if err := g.Reload(parse(t, fmt.Sprintf(cfg, "1h", `  - {name: extra, match: "/extra/", service: flaky}`))); err != nil {
		t.Fatal(err)
	}
	if s := routeStatus(t, g, "extra").Upstreams[0].Breaker; s != "open" {
		t.Errorf("after a reload that kept the upstream: breaker %s, want still open", s)
	}
	if a := e.do("GET", url+"/x", ""); a.status != 503 {
		t.Errorf("status %d, want 503 from the breaker kept open", a.status)
	}
	if err := g.Reload(parse(t, fmt.Sprintf(cfg, "2h", ""))); err != nil {
		t.Fatal(err)
	}
	if s := routeStatus(t, g, "flaky").Upstreams[0].Breaker; s != "closed" {
		t.Errorf("after a reload that changed the breaker's settings: %s, want a new closed breaker", s)
	}
}

func TestReloadRefusesABadConfigAndKeepsServing(t *testing.T) {
	e := newEnv(t)
	e.upstream("svc", "a", echo("a"))
	g, url := e.gateway(parse(t, `routes: [{name: r, match: "/", service: svc}]`))
	err := g.Reload(parse(t, `routes: [{name: r, match: "/", service: svc}, {name: r2, match: "/", service: svc}]`))
	if err == nil {
		t.Fatal("a config with conflicting patterns was accepted")
	}
	if a := e.do("GET", url+"/x", ""); a.status != 200 {
		t.Errorf("after a refused reload: status %d", a.status)
	}
}
