package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/auth"
)

// Access is what the API needs from the server. Its methods are called concurrently from
// every request's goroutine.
type Access interface {
	// Authenticate checks the value of the Authorization header ("Basic ...", "Bearer ..."
	// or "" for an anonymous caller). Wrong credentials: a *verity.Error of kind
	// Unauthenticated.
	Authenticate(ctx context.Context, authorization string) (auth.Principal, error)
	// Store returns the store as p may use it: calls p may not make fail with kind
	// PermissionDenied (or Unauthenticated for an anonymous caller) and change nothing.
	Store(p auth.Principal) verity.Store
	// Groups returns the consumer groups as p may use them, as Store does the store; nil
	// when the server has none (the /subscriptions routes then answer 503).
	Groups(p auth.Principal) verity.Groups
}

// Options tune the API. The zero value of every field means its default.
type Options struct {
	// MaxBodyBytes is the largest request body in bytes; a larger one is answered 413 and
	// changes nothing. Default 8 MiB.
	MaxBodyBytes int64
	// MaxSubscriptionsPerClient bounds the live subscriptions (server-sent event streams)
	// one client holds at once, a client being one remote IP address with one principal.
	// One more is answered 429. Default 64.
	MaxSubscriptionsPerClient int
	// SSEHeartbeat is how often an idle event stream gets a comment line, so proxies and
	// clients see that it is alive. Default 15s.
	SSEHeartbeat time.Duration
	// SSEWriteTimeout is how long one write to an event stream may take before the client
	// is deemed stalled and the stream is ended. It replaces the server's write timeout for
	// event streams, which would otherwise cut every long-lived stream. Default 30s.
	SSEWriteTimeout time.Duration
	// DefaultReadLimit is how many events a read returns when the request has no limit.
	// Default 100.
	DefaultReadLimit int
	// MaxReadLimit is the largest limit a read may ask for; a larger one is answered 400.
	// Default 1000.
	MaxReadLimit int
	// Logger receives internal errors (the client is told only that one happened).
	// Default slog.Default().
	Logger *slog.Logger

	// The console-support endpoints (docs/http-api.md, "Console support"). Each is off
	// (answered 503) while its source is nil.

	// Log is the store as the server sees it, unguarded. Stream search (GET /streams)
	// scans it within SearchScanBudget and lists only the streams the caller's own store
	// lets them read. Nil: search reads through the caller's store, so a non-admin must
	// give a prefix or category they may read.
	Log verity.Store
	// SearchScanBudget is the most events one page of a stream search reads, so that a
	// page answers quickly on any log. Default 50,000.
	SearchScanBudget int
	// Stats takes the server's figures for GET /stats and GET /stats/stream.
	Stats StatsFunc
	// StatsInterval is how often GET /stats/stream sends the figures. Default 1s.
	StatsInterval time.Duration
	// Events is the event index behind GET /events/{id}, its chain, and
	// GET /correlations/{id}.
	Events EventIndex
}

// Defaults of Options.
const (
	DefaultMaxBodyBytes              = 8 << 20
	DefaultMaxSubscriptionsPerClient = 64
	DefaultSSEHeartbeat              = 15 * time.Second
	DefaultSSEWriteTimeout           = 30 * time.Second
	DefaultReadLimit                 = 100
	DefaultMaxReadLimit              = 1000
)

// Validate reports the first field that holds a value no default can stand for.
func (o Options) Validate() error {
	bad := func(field string, v any) error {
		return verity.Errorf(verity.Invalid, "httpapi options", "%s is %v; want 0 (the default) or more", field, v)
	}
	switch {
	case o.MaxBodyBytes < 0:
		return bad("MaxBodyBytes", o.MaxBodyBytes)
	case o.MaxSubscriptionsPerClient < 0:
		return bad("MaxSubscriptionsPerClient", o.MaxSubscriptionsPerClient)
	case o.SSEHeartbeat < 0:
		return bad("SSEHeartbeat", o.SSEHeartbeat)
	case o.SSEWriteTimeout < 0:
		return bad("SSEWriteTimeout", o.SSEWriteTimeout)
	case o.DefaultReadLimit < 0:
		return bad("DefaultReadLimit", o.DefaultReadLimit)
	case o.MaxReadLimit < 0:
		return bad("MaxReadLimit", o.MaxReadLimit)
	case o.SearchScanBudget < 0:
		return bad("SearchScanBudget", o.SearchScanBudget)
	case o.StatsInterval < 0:
		return bad("StatsInterval", o.StatsInterval)
	}
	o = o.withDefaults()
	if o.DefaultReadLimit > o.MaxReadLimit {
		return verity.Errorf(verity.Invalid, "httpapi options", "DefaultReadLimit %d is over MaxReadLimit %d", o.DefaultReadLimit, o.MaxReadLimit)
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.MaxSubscriptionsPerClient == 0 {
		o.MaxSubscriptionsPerClient = DefaultMaxSubscriptionsPerClient
	}
	if o.SSEHeartbeat == 0 {
		o.SSEHeartbeat = DefaultSSEHeartbeat
	}
	if o.SSEWriteTimeout == 0 {
		o.SSEWriteTimeout = DefaultSSEWriteTimeout
	}
	if o.MaxReadLimit == 0 {
		o.MaxReadLimit = max(DefaultMaxReadLimit, o.DefaultReadLimit)
	}
	if o.DefaultReadLimit == 0 {
		o.DefaultReadLimit = min(DefaultReadLimit, o.MaxReadLimit)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.SearchScanBudget == 0 {
		o.SearchScanBudget = DefaultSearchScanBudget
	}
	if o.StatsInterval == 0 {
		o.StatsInterval = DefaultStatsInterval
	}
	return o
}

// New returns the HTTP/JSON API as one handler serving the routes of docs/http-api.md
// (/streams, /streams/{stream}, /streams/{stream}/metadata, /subscribe/{stream}, the
// consumer groups under /subscriptions, and the console's /stats, /events/{id} and
// /correlations/{id}) and a JSON
// 404 for any other path, so it can be mounted at "/" beneath more specific routes. It is
// safe for concurrent use; an event stream it serves ends when the request's context ends.
// New panics if opts.Validate fails: the server validates its configuration first.
func New(access Access, opts Options) http.Handler {
	if err := opts.Validate(); err != nil {
		panic(err)
	}
	h := &handler{access: access, opts: opts.withDefaults(), subs: map[string]int{}}
	h.log = h.opts.Logger
	mux := http.NewServeMux()
	h.route(mux, "POST /streams", h.appendMulti)
	h.route(mux, "POST /streams/{stream}", h.append)
	h.route(mux, "GET /streams/{stream}", h.read)
	h.route(mux, "DELETE /streams/{stream}", h.delete)
	h.route(mux, "GET /streams/{stream}/metadata", h.getMetadata)
	h.route(mux, "PUT /streams/{stream}/metadata", h.setMetadata)
	h.route(mux, "GET /subscribe/{stream}", h.subscribe)
	h.route(mux, "GET /subscriptions", h.listGroups)
	h.route(mux, "GET /subscriptions/{stream}", h.listGroups)
	h.route(mux, "PUT /subscriptions/{stream}/{group}", h.createGroup)
	h.route(mux, "POST /subscriptions/{stream}/{group}", h.updateGroup)
	h.route(mux, "GET /subscriptions/{stream}/{group}", h.getGroup)
	h.route(mux, "DELETE /subscriptions/{stream}/{group}", h.deleteGroup)
	h.route(mux, "POST /subscriptions/{stream}/{group}/replay-parked", h.replayParked)
	h.route(mux, "GET /streams", h.searchStreams)
	h.route(mux, "GET /stats", h.getStats)
	h.route(mux, "GET /stats/stream", h.streamStats)
	h.route(mux, "GET /events/{id}", h.getEvent)
	h.route(mux, "GET /events/{id}/chain", h.getChain)
	h.route(mux, "GET /correlations/{id}", h.getCorrelation)
	// ServeMux answers a wrong method with a plain-text 405; these answer in JSON.
	notAllowed := map[string]string{
		"/streams":                                      "GET, HEAD, POST",
		"/streams/{stream}":                             "GET, HEAD, POST, DELETE",
		"/streams/{stream}/metadata":                    "GET, HEAD, PUT",
		"/subscribe/{stream}":                           "GET, HEAD",
		"/subscriptions":                                "GET, HEAD",
		"/subscriptions/{stream}":                       "GET, HEAD",
		"/subscriptions/{stream}/{group}":               "GET, HEAD, PUT, POST, DELETE",
		"/subscriptions/{stream}/{group}/replay-parked": "POST",
		"/stats":             "GET, HEAD",
		"/stats/stream":      "GET, HEAD",
		"/events/{id}":       "GET, HEAD",
		"/events/{id}/chain": "GET, HEAD",
		"/correlations/{id}": "GET, HEAD",
	}
	for pattern, allow := range notAllowed {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeHTTPError(w, http.StatusMethodNotAllowed, "invalid", fmt.Sprintf("method %s is not allowed on %s; use %s", r.Method, r.URL.Path, allow))
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeHTTPError(w, http.StatusNotFound, verity.NotFound.String(), fmt.Sprintf("no endpoint at %s; see docs/http-api.md (a '/' inside a stream name is written %%2F)", r.URL.Path))
	})
	return mux
}

// handler holds the API's state: what is shared across requests is the count of live
// subscriptions per client.
type handler struct {
	access Access
	opts   Options
	log    *slog.Logger

	mu   sync.Mutex
	subs map[string]int // live subscriptions by client key
}

// apiFunc serves one route for an authenticated caller. It writes the response on success
// and returns the error otherwise, for route to write; once it has begun a response (an
// event stream) it reports errors itself and returns nil.
type apiFunc func(w http.ResponseWriter, r *http.Request, c caller) error

// caller is who a request comes from and the store as they may use it.
type caller struct {
	principal auth.Principal
	store     verity.Store
	groups    verity.Groups // nil when the server has none
}

func (h *handler) route(mux *http.ServeMux, pattern string, fn apiFunc) {
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		p, err := h.access.Authenticate(r.Context(), r.Header.Get("Authorization"))
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		if err := fn(w, r, caller{principal: p, store: h.access.Store(p), groups: h.access.Groups(p)}); err != nil {
			h.writeError(w, r, err)
		}
	})
}

// clientKey identifies a client for the subscription limit: its IP address (not its port,
// so that opening many connections does not escape the limit) and its principal.
func clientKey(r *http.Request, p auth.Principal) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return host + "\x00" + p.Name
}

// acquireSub counts one more live subscription of key, or fails with ResourceExhausted.
func (h *handler) acquireSub(key string) (release func(), err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs[key] >= h.opts.MaxSubscriptionsPerClient {
		return nil, verity.Errorf(verity.ResourceExhausted, "subscribe",
			"this client already holds %d live subscriptions, the most allowed; close one before opening another", h.opts.MaxSubscriptionsPerClient)
	}
	h.subs[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			if h.subs[key]--; h.subs[key] <= 0 {
				delete(h.subs, key)
			}
		})
	}, nil
}

// wantsEventStream reports whether the client asked for server-sent events.
func wantsEventStream(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/event-stream")
}
