package server

import (
	"context"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/verity-dev/verity/auth"
	"github.com/verity-dev/verity/registry"
)

// registryParts are the service registry the server runs over its own store, and the
// prober that checks its instances' health.
type registryParts struct {
	reg    *registry.Registry
	prober *registry.Prober
}

// openRegistry starts the registry over the engine (its changes go to "$registry") and
// its prober, and counts its instances on /metrics.
func (s *Server) openRegistry() error {
	reg, err := registry.New(s.engine, registry.Config{TTL: s.cfg.RegistryTTL, Now: s.cfg.Now, Logger: s.log})
	if err != nil {
		return err
	}
	p, err := registry.NewProber(reg, registry.ProbeConfig{Interval: s.cfg.RegistryProbeInterval, Logger: s.log})
	if err != nil {
		reg.Close()
		return err
	}
	s.registry = registryParts{reg: reg, prober: p}
	s.metrics.reg.MustRegister(registryCollector{reg: reg})
	return nil
}

// closeRegistry stops the prober, then the registry (which ends its watches). It must run
// before the engine closes: both write to it.
func (s *Server) closeRegistry() {
	if s.registry.prober != nil {
		s.registry.prober.Close()
	}
	if s.registry.reg != nil {
		s.registry.reg.Close()
	}
}

// Registry is the service registry the server runs, for in-process users (verity dev runs
// the gateway and the example services beside the server). It is nil before New returns;
// Close closes it.
func (s *Server) Registry() *registry.Registry { return s.registry.reg }

// registryHandler serves the registry's HTTP API at /registry: changes need Write on the
// registry's stream, lookups and watches Read (system streams: admins, and $ops for
// reading). Watches end when shutdown begins, as subscriptions do.
func (s *Server) registryHandler() http.Handler {
	h := registry.NewHandler(s.registry.reg, registry.HandlerOptions{
		Authorize: s.authorizeRegistry,
		Logger:    s.log,
	})
	watch := registry.DefaultPrefix + "/watch"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, watch) {
			h.ServeHTTP(w, r)
			return
		}
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		stop := context.AfterFunc(s.streams, cancel)
		defer stop()
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

func (s *Server) authorizeRegistry(r *http.Request, write bool) error {
	p, err := s.auth.Authenticate(r.Context(), r.Header.Get("Authorization"))
	if err != nil {
		return err
	}
	action, op := auth.Read, "registry read"
	if write {
		action, op = auth.Write, "registry write"
	}
	return s.auth.Check(r.Context(), op, p, action, registry.DefaultStream)
}

// registryCollector reports the live instances of every service by health, read at each
// scrape (a gauge kept up to date would need a watch of its own).
type registryCollector struct{ reg *registry.Registry }

var registryInstancesDesc = prometheus.NewDesc("verity_registry_instances",
	"Live instances in the service registry, by service and health.", []string{"service", "health"}, nil)

func (c registryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- registryInstancesDesc }

func (c registryCollector) Collect(ch chan<- prometheus.Metric) {
	ins, err := c.reg.List(context.Background(), "")
	if err != nil {
		return // closed: nothing to report
	}
	type key struct{ service, health string }
	counts := map[key]int{}
	for _, in := range ins {
		// Both healths of every service, so that a service going all unhealthy shows as
		// healthy=0 rather than as a series that vanished.
		counts[key{in.Service, string(registry.Healthy)}] += 0
		counts[key{in.Service, string(registry.Unhealthy)}] += 0
		counts[key{in.Service, string(in.Health)}]++
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(registryInstancesDesc, prometheus.GaugeValue, float64(n), k.service, k.health)
	}
}
