package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
)

// Outcomes of an upstream attempt (label "outcome" of verity_gateway_upstream_attempts_total).
const (
	outcomeSuccess     = "success"      // an answer below 500
	outcomeError       = "error"        // no answer: connection refused, reset, bad response
	outcomeTimeout     = "timeout"      // the route's timeout ended it
	outcomeStatus5xx   = "status_5xx"   // an answer of 500 or more
	outcomeBreakerOpen = "breaker_open" // refused by the open (or busy half-open) breaker
	outcomeNoInstance  = "no_instance"  // the registry knows no healthy instance
	outcomeCanceled    = "canceled"     // the client went away
)

// metrics are the gateway's Prometheus collectors.
type metrics struct {
	requests *prometheus.CounterVec   // route, code
	duration *prometheus.HistogramVec // route
	attempts *prometheus.CounterVec   // service, outcome
	inFlight prometheus.Gauge
	shed     *prometheus.CounterVec // route, limit
	breakers *breakerCollector
}

func newMetrics(reg prometheus.Registerer, g *Gateway) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verity_gateway_requests_total",
			Help: "Requests answered by the gateway, by route and HTTP status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "verity_gateway_request_duration_seconds",
			Help:    "Time from a request's arrival to the end of its answer, by route.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verity_gateway_upstream_attempts_total",
			Help: "Attempts to call an upstream service, by service and outcome (success, error, timeout, status_5xx, breaker_open, no_instance, canceled).",
		}, []string{"service", "outcome"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "verity_gateway_in_flight_requests",
			Help: "Requests in progress.",
		}),
		shed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verity_gateway_shed_total",
			Help: "Requests answered 503 at once because a concurrency limit was reached, by route and limit (global or route).",
		}, []string{"route", "limit"}),
		breakers: &breakerCollector{g: g, desc: prometheus.NewDesc(
			"verity_gateway_breaker_state",
			"State of each upstream service's circuit breaker: 0 closed, 1 half-open, 2 open.",
			[]string{"service"}, nil)},
	}
	if reg == nil {
		// Metrics are still counted (the admin API reads the same numbers); nobody scrapes them.
		reg = prometheus.NewRegistry()
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.attempts, m.inFlight, m.shed, m.breakers} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// breakerCollector reports the breakers' states when scraped: gobreaker moves from open to
// half-open only when asked, so a gauge set on state changes would stay "open" forever.
type breakerCollector struct {
	g    *Gateway
	desc *prometheus.Desc
}

func (c *breakerCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *breakerCollector) Collect(ch chan<- prometheus.Metric) {
	for _, up := range c.g.currentUpstreams() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, breakerGauge(up.cb.State()), up.service)
	}
}

func breakerGauge(s gobreaker.State) float64 {
	switch s {
	case gobreaker.StateHalfOpen:
		return 1
	case gobreaker.StateOpen:
		return 2
	}
	return 0
}
