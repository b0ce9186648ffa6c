package registry_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/registry"
)

// healthServer answers GET /healthz with the status it is set to (200 at first); a status
// of 0 makes it hang until the request gives up.
type healthServer struct {
	status atomic.Int64
	hits   atomic.Int64
	addr   string
}

func newHealthServer(t testing.TB) *healthServer {
	t.Helper()
	h := &healthServer{}
	h.status.Store(200)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.hits.Add(1)
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		s := int(h.status.Load())
		if s == 0 {
			<-r.Context().Done()
			return
		}
		w.WriteHeader(s)
	}))
	t.Cleanup(srv.Close)
	h.addr = strings.TrimPrefix(srv.URL, "http://")
	return h
}

// startProber runs a prober whose ticker only the test drives (tick sends one tick); round
// runs one round at once and waits for it.
func startProber(t testing.TB, r *registry.Registry, cfg registry.ProbeConfig) (round func(), tick chan<- time.Time) {
	t.Helper()
	ticks := make(chan time.Time)
	cfg.Tick = func(time.Duration) (<-chan time.Time, func()) { return ticks, func() {} }
	cfg.Logger = quiet
	p, err := registry.NewProber(r, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return func() {
		t.Helper()
		if err := p.Probe(t.Context()); err != nil {
			t.Fatalf("probe round: %v", err)
		}
	}, ticks
}

func health(t testing.TB, r *registry.Registry, id string) (registry.Health, string) {
	t.Helper()
	ins, err := r.List(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range ins {
		if in.ID == id {
			return in.Health, in.HealthReason
		}
	}
	t.Fatalf("%s is not registered", id)
	return "", ""
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestTheProberMarksAnInstanceUnhealthyAfterFailuresAndHealthyAfterASuccess(t *testing.T) {
	r := open(t, openStore(t), newClock())
	hs := newHealthServer(t)
	check := map[string]string{"healthCheck": "/healthz"}
	mustRegister := func(in registry.Instance) {
		t.Helper()
		if _, err := r.Register(t.Context(), in); err != nil {
			t.Fatal(err)
		}
	}
	mustRegister(registry.Instance{Service: "orders", ID: "o1", Address: hs.addr, Metadata: check})
	mustRegister(registry.Instance{Service: "orders", ID: "unchecked", Address: freeAddr(t)})
	mustRegister(registry.Instance{Service: "orders", ID: "down", Address: "http://" + freeAddr(t) + "/", Metadata: check})
	round, _ := startProber(t, r, registry.ProbeConfig{FailureThreshold: 2})

	round()
	if h, _ := health(t, r, "o1"); h != registry.Healthy || hs.hits.Load() != 1 {
		t.Fatalf("after a passing probe o1 is %s with %d probes, want healthy after 1", h, hs.hits.Load())
	}
	hs.status.Store(500)
	round()
	if h, _ := health(t, r, "o1"); h != registry.Healthy {
		t.Fatalf("after one failure o1 is %s, want healthy still (threshold 2)", h)
	}
	round()
	if h, reason := health(t, r, "o1"); h != registry.Unhealthy || !strings.Contains(reason, "500") || !strings.Contains(reason, "2 failures in a row") {
		t.Fatalf("after two failures o1 is %s (%q), want unhealthy, saying why", h, reason)
	}
	if h, reason := health(t, r, "down"); h != registry.Unhealthy || !strings.Contains(reason, "GET http://") {
		t.Fatalf("an unreachable instance is %s (%q), want unhealthy", h, reason)
	}
	if h, _ := health(t, r, "unchecked"); h != registry.Healthy {
		t.Fatalf("an instance with no health check is %s, want left healthy", h)
	}

	hs.status.Store(200)
	round()
	if h, reason := health(t, r, "o1"); h != registry.Healthy || reason != "" {
		t.Fatalf("after a success o1 is %s (%q), want healthy", h, reason)
	}
}

func TestTheProberLeavesAnInstanceThatDeclaredItselfUnhealthy(t *testing.T) {
	r := open(t, openStore(t), newClock())
	hs := newHealthServer(t)
	if _, err := r.Register(t.Context(), registry.Instance{Service: "orders", ID: "o1", Address: hs.addr, Metadata: map[string]string{"healthCheck": "/healthz"}}); err != nil {
		t.Fatal(err)
	}
	if err := r.SetHealth(t.Context(), "o1", registry.Unhealthy, "draining"); err != nil {
		t.Fatal(err)
	}
	round, _ := startProber(t, r, registry.ProbeConfig{})
	round()
	if h, reason := health(t, r, "o1"); h != registry.Unhealthy || reason != "draining" || hs.hits.Load() != 1 {
		t.Fatalf("o1 is %s (%q) after %d probes, want unhealthy (draining) after 1", h, reason, hs.hits.Load())
	}
}

func TestAProbeThatGetsNoAnswerInTimeFails(t *testing.T) {
	r := open(t, openStore(t), newClock())
	hs := newHealthServer(t)
	hs.status.Store(0) // hang
	if _, err := r.Register(t.Context(), registry.Instance{Service: "orders", ID: "o1", Address: hs.addr, Metadata: map[string]string{"healthCheck": "/healthz"}}); err != nil {
		t.Fatal(err)
	}
	round, _ := startProber(t, r, registry.ProbeConfig{FailureThreshold: 1, Timeout: 20 * time.Millisecond})
	round()
	if h, reason := health(t, r, "o1"); h != registry.Unhealthy || !strings.Contains(reason, "no answer within 20ms") {
		t.Fatalf("o1 is %s (%q), want unhealthy for want of an answer", h, reason)
	}
}

func TestProbeConfigValidateNamesTheBadField(t *testing.T) {
	for _, cfg := range []registry.ProbeConfig{{Interval: -1}, {Timeout: -1}, {FailureThreshold: -1}, {Concurrency: -1}} {
		_, err := registry.NewProber(nil, cfg)
		wantKind(t, err, verity.Invalid)
	}
}

func TestTheProberProbesAtEveryTick(t *testing.T) {
	r := open(t, openStore(t), newClock())
	hs := newHealthServer(t)
	hs.status.Store(503)
	if _, err := r.Register(t.Context(), registry.Instance{Service: "orders", ID: "o1", Address: hs.addr, Metadata: map[string]string{"healthCheck": "/healthz"}}); err != nil {
		t.Fatal(err)
	}
	_, tick := startProber(t, r, registry.ProbeConfig{FailureThreshold: 1})
	tick <- time.Now()
	eventually(t, "o1 unhealthy", func() bool { h, _ := health(t, r, "o1"); return h == registry.Unhealthy })
	hs.status.Store(204)
	tick <- time.Now()
	eventually(t, "o1 healthy again", func() bool { h, _ := health(t, r, "o1"); return h == registry.Healthy })
}
