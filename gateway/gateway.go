package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/internal/httpjson"
	"github.com/verity-dev/verity/registry"
)

// Options are what a Gateway is built with besides its Config.
type Options struct {
	// Source is where upstream services' instances are found: the embedded registry or a
	// network client of one. Required.
	Source registry.Source
	// Store is the log that command routes append to. Required when a route has command.
	Store verity.Store
	// Logger receives one access log line per request and the gateway's own logs; default
	// slog.Default().
	Logger *slog.Logger
	// Registerer registers the gateway's metrics (verity_gateway_*); nil keeps them
	// private (the admin API still reports them).
	Registerer prometheus.Registerer
	// Transport sends requests to upstream instances; default a clone of
	// http.DefaultTransport keeping up to DefaultMaxConcurrent idle connections per
	// instance.
	Transport http.RoundTripper
	// Now is the clock of request durations; default time.Now. (Breakers keep real time:
	// gobreaker reads its own clock.)
	Now func() time.Time
	// ConfigPath is the file POST /admin/reload reads again; empty means the admin API
	// cannot reload from a file (PUT /admin/config still works).
	ConfigPath string
}

// Gateway routes requests to upstream services. It is an http.Handler; its routing table
// can be replaced while it serves (Reload). All methods may be called concurrently.
type Gateway struct {
	opts      Options
	log       *slog.Logger
	transport http.RoundTripper
	ownsTrans bool
	now       func() time.Time
	metrics   *metrics
	table     atomic.Pointer[table]
	inFlight  atomic.Int64 // requests admitted, gateway-wide

	mu        sync.Mutex // serialises Reload and Close; guards the fields below
	closed    bool
	upstreams map[string]*upstream
	resolvers map[registry.Balancer]*registry.Resolver
	states    map[string]*routeState
}

// table is one configuration made into handlers. A request uses the table it started
// with to the end, so a Reload never changes a request halfway.
type table struct {
	cfg           Config
	mux           *http.ServeMux
	routes        []*route
	maxConcurrent int64
}

// route is a configured route made into a handler.
type route struct {
	cfg       Route
	state     *routeState
	upstreams []*upstream
	limit     int64         // 0: no limit of its own
	timeout   time.Duration // 0: none (command routes keep their own time)
	handler   http.Handler
}

// routeState is what a route keeps across reloads, by name: its counts and requests in
// progress (so that its limit holds across a reload).
type routeState struct {
	inFlight atomic.Int64
	requests atomic.Int64
	errors   atomic.Int64 // answers of 500 or more
	shed     atomic.Int64
}

// statusRouteName labels requests for command status in metrics and logs.
const statusRouteName = "$commands"

// New builds a gateway serving cfg. Errors: Invalid (a bad config, no Source, a command
// route without a Store).
func New(cfg Config, opts Options) (*Gateway, error) {
	const op = "gateway"
	if opts.Source == nil {
		return nil, verity.Errorf(verity.Invalid, op, "Options.Source is required")
	}
	g := &Gateway{
		opts:      opts,
		log:       opts.Logger,
		transport: opts.Transport,
		now:       opts.Now,
		upstreams: map[string]*upstream{},
		resolvers: map[registry.Balancer]*registry.Resolver{},
		states:    map[string]*routeState{},
	}
	if g.log == nil {
		g.log = slog.Default()
	}
	if g.now == nil {
		g.now = time.Now
	}
	if g.transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		// Go's default keeps 2 idle connections per host: with more requests in flight to an
		// instance the gateway would close and dial again all the time (7-9% of its CPU
		// under load in the bench profile). Keep as many as the gateway may have in flight.
		t.MaxIdleConnsPerHost = DefaultMaxConcurrent
		t.MaxIdleConns = 4 * DefaultMaxConcurrent
		g.transport = t
		g.ownsTrans = true
	}
	m, err := newMetrics(opts.Registerer, g)
	if err != nil {
		return nil, &verity.Error{Kind: verity.Invalid, Op: op, Message: "registering metrics", Err: err}
	}
	g.metrics = m
	if err := g.Reload(cfg); err != nil {
		g.Close()
		if opts.Registerer != nil {
			for _, c := range []prometheus.Collector{m.requests, m.duration, m.attempts, m.inFlight, m.shed, m.breakers} {
				opts.Registerer.Unregister(c)
			}
		}
		return nil, err
	}
	return g, nil
}

// Config returns the configuration being served.
func (g *Gateway) Config() Config {
	if t := g.table.Load(); t != nil {
		return t.cfg
	}
	return Config{}
}

// Reload builds everything cfg needs, then swaps it in at once: requests in progress
// finish on the routes they started on, new ones take the new routes. Breakers of upstream
// services that cfg keeps (with the same breaker settings) keep their state, and so do the
// counts and in-flight requests of routes kept by name. On an error nothing changes.
// Errors: Invalid (the config, or a command route without Options.Store), Unavailable
// (closed).
func (g *Gateway) Reload(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return verity.Errorf(verity.Unavailable, "gateway reload", "the gateway is closed")
	}
	t, ups, states, err := g.build(cfg)
	if err != nil {
		return err
	}
	g.table.Store(t)
	g.upstreams, g.states = ups, states
	return nil
}

// build makes cfg into a table. Called with g.mu held; it changes nothing of g's but the
// resolvers, which are shared by every table.
func (g *Gateway) build(cfg Config) (*table, map[string]*upstream, map[string]*routeState, error) {
	const op = "gateway config"
	d := cfg.Defaults
	ups := map[string]*upstream{}
	upstreamOf := func(service string) *upstream {
		if up, ok := ups[service]; ok {
			return up
		}
		up := g.upstreams[service]
		if up == nil || up.settings != d.Breaker.effective() {
			up = newUpstream(service, d.Breaker, g.log)
		}
		ups[service] = up
		return up
	}
	states := map[string]*routeState{}
	stateOf := func(name string) *routeState {
		st := g.states[name]
		if st == nil {
			st = &routeState{}
		}
		states[name] = st
		return st
	}
	t := &table{cfg: cfg, mux: http.NewServeMux(), maxConcurrent: int64(d.maxConcurrent())}
	hasCommand := false
	for i, rc := range cfg.Routes {
		rt := &route{cfg: rc, state: stateOf(rc.Name), limit: int64(rc.MaxConcurrent), timeout: rc.timeout(d)}
		for _, s := range rc.services() {
			rt.upstreams = append(rt.upstreams, upstreamOf(s))
		}
		tryTimeout := rc.tryTimeout(d)
		if rc.Stream {
			// The timeout bounds each attempt until the answer's headers; the answer
			// then lasts as long as it does.
			if tryTimeout == 0 {
				tryTimeout = rt.timeout
			}
			rt.timeout = 0
		}
		callerOf := func(service string) *caller {
			return &caller{g: g, up: upstreamOf(service), resolver: g.resolver(rc.balance(d)),
				retries: rc.retries(d), tryTimeout: tryTimeout, backoff: d.retryBackoff(), bodyLimit: d.retryBodyLimit()}
		}
		switch {
		case rc.Service != "":
			rt.handler = g.proxy(rc, callerOf(rc.Service))
		case rc.Compose != nil:
			rt.handler = newComposer(g, rc, callerOf)
		case rc.Command != nil:
			hasCommand = true
			rt.timeout = 0
			if g.opts.Store == nil {
				return nil, nil, nil, verity.Errorf(verity.Invalid, op, "routes[%d].command: a command route needs Options.Store", i)
			}
			h, err := newCommandHandler(g.opts.Store, rc.Name, *rc.Command, cfg.Commands.statusPath())
			if err != nil {
				return nil, nil, nil, &verity.Error{Kind: verity.Invalid, Op: op, Message: fmt.Sprintf("routes[%d].command", i), Err: err}
			}
			rt.handler = h
		}
		if err := register(t.mux, rc.Match, g.admit(t, rt)); err != nil {
			return nil, nil, nil, verity.Errorf(verity.Invalid, op, "routes[%d].match: %v", i, err)
		}
		t.routes = append(t.routes, rt)
	}
	if hasCommand {
		base := cfg.Commands.statusPath()
		rt := &route{cfg: Route{Name: statusRouteName, Match: base + "/"}, state: stateOf(statusRouteName),
			handler: newCommandStatusHandler(g.opts.Store, base)}
		if err := register(t.mux, base+"/", g.admit(t, rt)); err != nil {
			return nil, nil, nil, verity.Errorf(verity.Invalid, op, "commands.statusPath: %v", err)
		}
	}
	return t, ups, states, nil
}

// resolver returns the gateway's resolver of a balancing mode, shared by all routes and
// tables so that its watches survive reloads. Called with g.mu held.
func (g *Gateway) resolver(b registry.Balancer) *registry.Resolver {
	r, ok := g.resolvers[b]
	if !ok {
		r = registry.NewResolver(g.opts.Source, b)
		g.resolvers[b] = r
	}
	return r
}

func (g *Gateway) currentUpstreams() []*upstream {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]*upstream, 0, len(g.upstreams))
	for _, up := range g.upstreams {
		out = append(out, up)
	}
	return out
}

// Close stops the resolvers' watches; requests still in progress fail or finish, later
// ones are answered 503. It is idempotent.
func (g *Gateway) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	g.table.Store(nil)
	resolvers := g.resolvers
	g.resolvers = map[registry.Balancer]*registry.Resolver{}
	g.mu.Unlock()
	for _, r := range resolvers {
		r.Close()
	}
	if t, ok := g.transport.(*http.Transport); ok && g.ownsTrans {
		t.CloseIdleConnections()
	}
	return nil
}

// ServeHTTP routes a request. Before any route sees it, the request carries the gateway's
// traceparent; after it, one access log line and the request metrics are recorded.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := g.now()
	tc := startTrace(w, r)
	rec := &recorder{ResponseWriter: w}
	info := &reqInfo{route: "unmatched"}
	r = r.WithContext(context.WithValue(r.Context(), infoKey{}, info))
	g.metrics.inFlight.Inc()
	defer func() {
		g.metrics.inFlight.Dec()
		status := rec.status
		if p := recover(); p != nil {
			// http.ErrAbortHandler is how a ReverseProxy ends an answer it could not
			// finish; the access log still records it.
			if status == 0 {
				status = http.StatusBadGateway
			}
			g.record(r, info, tc, status, rec.bytes, start)
			panic(p)
		}
		if status == 0 {
			status = http.StatusOK
		}
		g.record(r, info, tc, status, rec.bytes, start)
	}()
	t := g.table.Load()
	if t == nil {
		writeError(rec, http.StatusServiceUnavailable, verity.Unavailable, "the gateway is closed", 0)
		return
	}
	t.mux.ServeHTTP(rec, r)
}

func (g *Gateway) record(r *http.Request, info *reqInfo, tc traceContext, status int, bytes int64, start time.Time) {
	elapsed := g.now().Sub(start)
	route := info.getRoute()
	g.metrics.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	g.metrics.duration.WithLabelValues(route).Observe(elapsed.Seconds())
	g.log.LogAttrs(r.Context(), slog.LevelInfo, "gateway request",
		slog.String("method", r.Method),
		slog.String("host", r.Host),
		slog.String("path", r.URL.Path),
		slog.String("route", route),
		slog.Int("status", status),
		slog.Int64("bytes", bytes),
		slog.Duration("duration", elapsed),
		slog.String("upstream", strings.Join(info.getUpstreams(), ",")),
		slog.String("trace_id", tc.traceIDString()),
	)
}

// admit wraps a route's handler with the concurrency limits (gateway-wide, then the
// route's), which answer 503 at once rather than queue, and the route's timeout.
func (g *Gateway) admit(t *table, rt *route) http.Handler {
	name := rt.cfg.Name
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		infoOf(r.Context()).setRoute(name)
		if !acquire(&g.inFlight, t.maxConcurrent) {
			g.shed(w, rt, "global")
			return
		}
		defer g.inFlight.Add(-1)
		if rt.limit > 0 {
			if !acquire(&rt.state.inFlight, rt.limit) {
				g.shed(w, rt, "route")
				return
			}
			defer rt.state.inFlight.Add(-1)
		}
		if rt.timeout > 0 {
			ctx, cancel := context.WithTimeoutCause(r.Context(), rt.timeout, errRouteTimeout)
			defer cancel()
			r = r.WithContext(ctx)
		}
		rt.state.requests.Add(1)
		defer func() {
			if rec, ok := w.(*recorder); ok && rec.status >= 500 {
				rt.state.errors.Add(1)
			}
		}()
		rt.handler.ServeHTTP(w, r)
	})
}

func acquire(n *atomic.Int64, limit int64) bool {
	if n.Add(1) > limit {
		n.Add(-1)
		return false
	}
	return true
}

func (g *Gateway) shed(w http.ResponseWriter, rt *route, limit string) {
	rt.state.shed.Add(1)
	g.metrics.shed.WithLabelValues(rt.cfg.Name, limit).Inc()
	writeError(w, http.StatusServiceUnavailable, verity.Unavailable,
		fmt.Sprintf("route %q: too many requests in progress (%s limit); retry later", rt.cfg.Name, limit), time.Second)
}

// proxy serves a service route: the request, its prefix stripped, goes to an instance of
// the service through the route's caller, and the answer streams back.
func (g *Gateway) proxy(rc Route, c *caller) http.Handler {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host, pr.Out.Host = "http", rc.Service, ""
			if p := rc.StripPrefix; p != "" {
				pr.Out.URL.Path = stripPrefix(pr.Out.URL.Path, p)
				if pr.Out.URL.RawPath != "" {
					pr.Out.URL.RawPath = stripPrefix(pr.Out.URL.RawPath, p)
				}
			}
			pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
			pr.SetXForwarded()
		},
		Transport: c,
		ErrorLog:  slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			writeCallError(w, err)
		},
	}
}

// stripPrefix removes prefix from p at a segment boundary; "/api" strips "/api/x" and
// "/api" but not "/apix".
func stripPrefix(p, prefix string) string {
	prefix = strings.TrimSuffix(prefix, "/")
	rest, ok := strings.CutPrefix(p, prefix)
	if !ok || (rest != "" && rest[0] != '/') {
		return p
	}
	if rest == "" {
		return "/"
	}
	return rest
}

// writeCallError answers a failed upstream call.
func writeCallError(w http.ResponseWriter, err error) {
	var ce *callError
	if errors.As(err, &ce) {
		kind := verity.Unavailable
		if ce.status == http.StatusBadRequest {
			kind = verity.Invalid
		}
		writeError(w, ce.status, kind, ce.Error(), ce.retryAfter)
		return
	}
	writeError(w, http.StatusBadGateway, verity.Unavailable, err.Error(), 0)
}

// errorJSON is the error body of every answer the gateway makes itself, in the shape of
// Verity's HTTP API: {"error": {"kind": ..., "message": ...}}.
type errorJSON struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, status int, kind verity.ErrorKind, msg string, retryAfter time.Duration) {
	writeJSON(w, status, map[string]any{"error": errorJSON{Kind: kind.String(), Message: msg}}, retryAfter)
}

func writeJSON(w http.ResponseWriter, status int, body any, retryAfter time.Duration) {
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((retryAfter+time.Second-1)/time.Second)))
	}
	httpjson.Write(w, status, body)
}

// recorder notes the status and size of an answer for the access log.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := io.Copy(r.ResponseWriter, src)
	r.bytes += n
	return n, err
}

// Flush and Unwrap let http.ResponseController (which ReverseProxy uses to stream) reach
// the server's writer.
func (r *recorder) Flush() {
	http.NewResponseController(r.ResponseWriter).Flush()
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// reqInfo is what a request's handlers tell the access log.
type reqInfo struct {
	mu        sync.Mutex
	route     string
	upstreams []string
}

type infoKey struct{}

func infoOf(ctx context.Context) *reqInfo {
	info, _ := ctx.Value(infoKey{}).(*reqInfo)
	if info == nil {
		return &reqInfo{}
	}
	return info
}

func (i *reqInfo) setRoute(name string) {
	i.mu.Lock()
	i.route = name
	i.mu.Unlock()
}

func (i *reqInfo) getRoute() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.route
}

func (i *reqInfo) addUpstream(s string) {
	i.mu.Lock()
	i.upstreams = append(i.upstreams, s)
	i.mu.Unlock()
}

func (i *reqInfo) getUpstreams() []string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return append([]string(nil), i.upstreams...)
}
