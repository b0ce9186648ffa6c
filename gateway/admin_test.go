package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/verity-dev/verity/gateway"
)

func TestAdminAPI(t *testing.T) {
	e := newEnv(t)
	e.upstream("svc", "a", echo("a"))
	e.upstream("flaky", "f", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) })
	file := filepath.Join(t.TempDir(), "gateway.yaml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`
defaults: {retries: 0, breaker: {failures: 2, openFor: 1h}}
routes:
  - {name: svc, match: "/svc/", service: svc}
  - {name: flaky, match: "/flaky/", service: flaky}
`)
	cfg, err := gateway.LoadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	g, url := e.gateway(cfg, func(o *gateway.Options) { o.ConfigPath = file })
	admin := httptest.NewServer(g.AdminHandler())
	t.Cleanup(admin.Close)
	e.do("GET", url+"/svc/x", "")
	for range 2 {
		e.do("GET", url+"/flaky/x", "")
	}

	t.Run("routes shows breakers and error rates", func(t *testing.T) {
		var got struct{ Routes []gateway.RouteStatus }
		e.do("GET", admin.URL+"/admin/routes", "").json(t, &got)
		if len(got.Routes) != 2 {
			t.Fatalf("routes %+v", got.Routes)
		}
		svc, flaky := got.Routes[0], got.Routes[1]
		if svc.Name != "svc" || svc.Requests != 1 || svc.ErrorRate != 0 || svc.Upstreams[0].Breaker != "closed" {
			t.Errorf("svc %+v", svc)
		}
		if flaky.Requests != 2 || flaky.Errors != 2 || flaky.ErrorRate != 1 ||
			flaky.Upstreams[0].Breaker != "open" || flaky.Upstreams[0].ErrorRate != 1 {
			t.Errorf("flaky %+v", flaky)
		}
	})
	t.Run("config shows the configuration as YAML", func(t *testing.T) {
		a := e.do("GET", admin.URL+"/admin/config", "")
		if a.status != 200 || !strings.Contains(a.body, "openFor: 1h0m0s") || !strings.Contains(a.body, "name: flaky") {
			t.Errorf("%d %s", a.status, a.body)
		}
	})
	t.Run("a bad PUT names the field and changes nothing", func(t *testing.T) {
		a := e.do("PUT", admin.URL+"/admin/config", `routes: [{name: x, match: "/", service: svc, timeout: -1s}]`)
		if a.status != 400 || !strings.Contains(a.body, "routes[0].timeout") {
			t.Errorf("%d %s, want 400 naming routes[0].timeout", a.status, a.body)
		}
		if a := e.do("GET", url+"/svc/x", ""); a.status != 200 {
			t.Errorf("after a refused PUT: %d", a.status)
		}
	})
	t.Run("a PUT replaces the routes", func(t *testing.T) {
		a := e.do("PUT", admin.URL+"/admin/config", `{"routes": [{"name": "new", "match": "/new/", "service": "svc", "stripPrefix": "/new"}]}`)
		if a.status != 200 {
			t.Fatalf("%d %s", a.status, a.body)
		}
		var got echoed
		if a := e.do("GET", url+"/new/thing", ""); a.status != 200 {
			t.Errorf("new route: %d", a.status)
		} else if a.json(t, &got); got.Path != "/thing" {
			t.Errorf("new route reached %s", got.Path)
		}
		if a := e.do("GET", url+"/svc/x", ""); a.status != 404 {
			t.Errorf("removed route: %d, want 404", a.status)
		}
	})
	t.Run("reload reads the file again", func(t *testing.T) {
		write(`routes: [{name: again, match: "/again/", service: svc}]`)
		if a := e.do("POST", admin.URL+"/admin/reload", ""); a.status != 200 {
			t.Fatalf("%d %s", a.status, a.body)
		}
		if a := e.do("GET", url+"/again/x", ""); a.status != 200 {
			t.Errorf("reloaded route: %d", a.status)
		}
		write(`routes: [{name: broken, match: "/"}]`)
		if a := e.do("POST", admin.URL+"/admin/reload", ""); a.status != 400 || !strings.Contains(a.body, "routes[0]") {
			t.Errorf("reload of a bad file: %d %s", a.status, a.body)
		}
		if a := e.do("GET", url+"/again/x", ""); a.status != 200 {
			t.Errorf("after a refused reload: %d", a.status)
		}
	})
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	e.upstream("svc", "a", echo("a"))
	reg := prometheus.NewRegistry()
	_, url := e.gateway(parse(t, `routes: [{name: r, match: "/", service: svc}]`), func(o *gateway.Options) { o.Registerer = reg })
	for range 3 {
		e.do("GET", url+"/x", "")
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += " " + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case m.Counter != nil:
				got[key] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				got[key] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				got[key] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	for key, want := range map[string]float64{
		"verity_gateway_requests_total code=200 route=r":                     3,
		"verity_gateway_request_duration_seconds route=r":                    3,
		"verity_gateway_upstream_attempts_total outcome=success service=svc": 3,
		"verity_gateway_breaker_state service=svc":                           0,
		"verity_gateway_in_flight_requests":                                  0,
	} {
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", key, v, ok, want)
		}
	}
}
