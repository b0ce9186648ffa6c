package server

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/auth"
	"github.com/verity-dev/verity/engine"
)

// metrics are the server's Prometheus metrics, on a registry of its own so that several
// servers can live in one process (tests).
type metrics struct {
	reg *prometheus.Registry

	appends      prometheus.Counter
	appendEvents prometheus.Counter
	appendBytes  prometheus.Counter
	fsync        prometheus.Histogram
	groupCommit  prometheus.Histogram
	errors       *prometheus.CounterVec
	denied       *prometheus.CounterVec
	grpcRequests *prometheus.CounterVec
	httpRequests *prometheus.CounterVec

	subsMu sync.Mutex
	subs   map[*observedSub]struct{}

	// commits and commitEvents add up the group commits for /stats, which wants totals
	// the histogram holds only inside the Prometheus registry.
	commits      atomic.Uint64
	commitEvents atomic.Uint64
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry(), subs: map[*observedSub]struct{}{}}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	m.appends = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "verity_appends_total", Help: "Append calls committed (a multi-stream append counts once).",
	})
	m.appendEvents = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "verity_appended_events_total", Help: "Events committed to the log.",
	})
	m.appendBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "verity_appended_bytes_total", Help: "Bytes written to log segments.",
	})
	m.fsync = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "verity_fsync_seconds", Help: "Time each group commit's fsync took.",
		Buckets: prometheus.ExponentialBuckets(50e-6, 2, 14), // 50µs .. ~0.4s
	})
	m.groupCommit = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "verity_group_commit_events", Help: "Events made durable by one fsync (group commit size).",
		Buckets: prometheus.ExponentialBuckets(1, 2, 15), // 1 .. 16384
	})
	m.errors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "verity_store_errors_total", Help: "Store calls that failed, by operation and error kind.",
	}, []string{"op", "kind"})
	m.denied = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "verity_access_denied_total", Help: "Requests refused by access control, by action.",
	}, []string{"action"})
	m.grpcRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "verity_grpc_requests_total", Help: "gRPC calls finished, by method and status code.",
	}, []string{"method", "code"})
	m.httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "verity_http_requests_total", Help: "HTTP requests finished (gRPC excluded), by method and status code.",
	}, []string{"method", "code"})
	for _, c := range []prometheus.Collector{m.appends, m.appendEvents, m.appendBytes, m.fsync, m.groupCommit,
		m.errors, m.denied, m.grpcRequests, m.httpRequests} {
		f(c)
	}
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "verity_subscriptions_active", Help: "Live subscriptions (catch-up and live, every protocol).",
	}, func() float64 {
		m.subsMu.Lock()
		defer m.subsMu.Unlock()
		return float64(len(m.subs))
	}))
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// onCommit is the engine's commit hook: it runs on the writer goroutine, so it only adds.
func (m *metrics) onCommit(c engine.CommitInfo) {
	m.appends.Add(float64(c.Appends))
	m.appendEvents.Add(float64(c.Events))
	m.appendBytes.Add(float64(c.Bytes))
	m.fsync.Observe(c.Fsync.Seconds())
	m.groupCommit.Observe(float64(c.Events))
	m.commits.Add(1)
	m.commitEvents.Add(uint64(c.Events))
}

// activeSubscriptions counts the live subscriptions of every protocol.
func (m *metrics) activeSubscriptions() int {
	m.subsMu.Lock()
	defer m.subsMu.Unlock()
	return len(m.subs)
}

func (m *metrics) onDenied(_ auth.Principal, a auth.Action, _ string) {
	m.denied.WithLabelValues(a.String()).Inc()
}

// registerEngine exposes the engine's gauges and the subscription lag, read at scrape time.
func (m *metrics) registerEngine(e *engine.Engine) {
	gauge := func(name, help string, v func(engine.Stats) float64) {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help},
			func() float64 { return v(e.Stats()) }))
	}
	gauge("verity_log_last_position", "Position of the last durable event.", func(s engine.Stats) float64 { return float64(s.LastPosition) })
	gauge("verity_log_segments", "Segment files in the log.", func(s engine.Stats) float64 { return float64(s.Segments) })
	gauge("verity_log_disk_bytes", "Size of the log's segment files.", func(s engine.Stats) float64 { return float64(s.DiskBytes) })
	gauge("verity_index_runs", "On-disk index runs.", func(s engine.Stats) float64 { return float64(s.IndexRuns) })
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "verity_subscription_lag_events_max",
		Help: "Largest lag among live subscriptions: log positions committed past the last event a subscriber was handed, counting only subscribers not waiting for new events.",
	}, func() float64 { return float64(m.maxLag(e.Stats().LastPosition)) }))
}

func (m *metrics) maxLag(last uint64) uint64 {
	m.subsMu.Lock()
	defer m.subsMu.Unlock()
	var lag uint64
	for s := range m.subs {
		if s.waiting.Load() {
			continue // blocked in Recv: the store has nothing more for it
		}
		if p := s.pos.Load(); last > p && last-p > lag {
			lag = last - p
		}
	}
	return lag
}

// observedStore counts a store's failures by operation and kind, and tracks subscriptions.
type observedStore struct {
	verity.Store
	m *metrics
}

func (o observedStore) count(op string, err error) {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return
	}
	o.m.errors.WithLabelValues(op, verity.KindOf(err).String()).Inc()
}

func (o observedStore) Append(ctx context.Context, stream string, expected verity.ExpectedRevision, events ...verity.EventData) (verity.AppendResult, error) {
	r, err := o.Store.Append(ctx, stream, expected, events...)
	o.count("append", err)
	return r, err
}

func (o observedStore) AppendMulti(ctx context.Context, appends ...verity.StreamAppend) ([]verity.AppendResult, error) {
	r, err := o.Store.AppendMulti(ctx, appends...)
	o.count("append", err)
	return r, err
}

func (o observedStore) ReadStream(ctx context.Context, stream string, opts verity.ReadStreamOptions) ([]verity.RecordedEvent, error) {
	r, err := o.Store.ReadStream(ctx, stream, opts)
	if verity.KindOf(err) != verity.NotFound { // reading a missing stream is routine
		o.count("read", err)
	}
	return r, err
}

func (o observedStore) ReadAll(ctx context.Context, opts verity.ReadAllOptions) ([]verity.RecordedEvent, error) {
	r, err := o.Store.ReadAll(ctx, opts)
	o.count("read", err)
	return r, err
}

func (o observedStore) SetStreamMetadata(ctx context.Context, stream string, expected verity.ExpectedRevision, meta verity.StreamMetadata) (verity.AppendResult, error) {
	r, err := o.Store.SetStreamMetadata(ctx, stream, expected, meta)
	o.count("metadata", err)
	return r, err
}

func (o observedStore) DeleteStream(ctx context.Context, stream string, expected verity.ExpectedRevision) (verity.DeleteResult, error) {
	r, err := o.Store.DeleteStream(ctx, stream, expected)
	o.count("delete", err)
	return r, err
}

func (o observedStore) TombstoneStream(ctx context.Context, stream string, expected verity.ExpectedRevision) (verity.DeleteResult, error) {
	r, err := o.Store.TombstoneStream(ctx, stream, expected)
	o.count("delete", err)
	return r, err
}

func (o observedStore) Subscribe(ctx context.Context, opts verity.SubscribeOptions) (verity.Subscription, error) {
	sub, err := o.Store.Subscribe(ctx, opts)
	if err != nil {
		o.count("subscribe", err)
		return nil, err
	}
	s := &observedSub{Subscription: sub, m: o.m}
	if opts.From > 0 && opts.Stream == "" {
		s.pos.Store(opts.From - 1)
	}
	o.m.subsMu.Lock()
	o.m.subs[s] = struct{}{}
	o.m.subsMu.Unlock()
	return s, nil
}

// Close must not close the shared store: the server owns it.
func (o observedStore) Close() error { return nil }

// observedSub records where a subscriber is, for the lag gauge.
type observedSub struct {
	verity.Subscription
	m       *metrics
	pos     atomic.Uint64 // last log position handed out or checkpointed
	waiting atomic.Bool   // blocked in Recv after catching up
	caught  atomic.Bool
	once    sync.Once
}

func (s *observedSub) Recv(ctx context.Context) (verity.SubscriptionMessage, error) {
	s.waiting.Store(s.caught.Load())
	msg, err := s.Subscription.Recv(ctx)
	s.waiting.Store(false)
	if err == nil {
		switch msg.Kind {
		case verity.MessageEvent:
			s.pos.Store(msg.Event.Position)
		case verity.MessageCaughtUp:
			s.caught.Store(true)
			if msg.Position > 0 {
				s.pos.Store(msg.Position)
			}
		case verity.MessageCheckpoint:
			s.pos.Store(msg.Position)
		}
	}
	return msg, err
}

func (s *observedSub) Close() error {
	s.once.Do(func() {
		s.m.subsMu.Lock()
		delete(s.m.subs, s)
		s.m.subsMu.Unlock()
	})
	return s.Subscription.Close()
}

// groupCollector exposes every persistent subscription's state at scrape time, from
// ListGroups: gauges of what it holds and counters of what it did, labelled by source and
// group. The counters restart from zero with the server, as Prometheus counters may.
type groupCollector struct {
	groups  verity.Groups
	timeout time.Duration

	inFlight, waiting, parked, lag, consumers  *prometheus.Desc
	delivered, acked, nacked, timedOut, status *prometheus.Desc
}

func newGroupCollector(g verity.Groups) *groupCollector {
	labels := []string{"stream", "group"}
	desc := func(name, help string, extra ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, append(labels, extra...), nil)
	}
	return &groupCollector{
		groups:    g,
		timeout:   5 * time.Second,
		inFlight:  desc("verity_group_in_flight", "Events delivered to a persistent subscription's consumers and not yet acked or nacked."),
		waiting:   desc("verity_group_waiting", "Events read for a persistent subscription and waiting for a consumer with room (retries included)."),
		parked:    desc("verity_group_parked", "Parked events of a persistent subscription, not replayed."),
		lag:       desc("verity_group_lag", "Events of a persistent subscription's source past its checkpoint."),
		consumers: desc("verity_group_consumers", "Consumers connected to a persistent subscription."),
		status:    desc("verity_group_status", "1 for the persistent subscription's current status.", "status"),
		delivered: desc("verity_group_delivered_total", "Events a persistent subscription delivered (retries included)."),
		acked:     desc("verity_group_acked_total", "Events a persistent subscription's consumers acked."),
		nacked:    desc("verity_group_nacked_total", "Events a persistent subscription's consumers nacked."),
		timedOut:  desc("verity_group_timed_out_total", "Deliveries of a persistent subscription that timed out without an ack."),
	}
}

func (c *groupCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.inFlight, c.waiting, c.parked, c.lag, c.consumers,
		c.status, c.delivered, c.acked, c.nacked, c.timedOut} {
		ch <- d
	}
}

func (c *groupCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	infos, err := c.groups.ListGroups(ctx, "")
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.lag, err)
		return
	}
	for _, g := range infos {
		l := []string{g.Stream, g.Group}
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
		}
		counter := func(d *prometheus.Desc, v uint64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
		}
		gauge(c.inFlight, float64(g.InFlight))
		gauge(c.waiting, float64(g.Waiting))
		gauge(c.parked, float64(g.Parked))
		gauge(c.lag, float64(g.Lag))
		gauge(c.consumers, float64(len(g.Consumers)))
		ch <- prometheus.MustNewConstMetric(c.status, prometheus.GaugeValue, 1, g.Stream, g.Group, string(g.Status))
		counter(c.delivered, g.Delivered)
		counter(c.acked, g.Acked)
		counter(c.nacked, g.Nacked)
		counter(c.timedOut, g.TimedOut)
	}
}
