package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/internal/httpjson"
	"github.com/verity-dev/verity/internal/sse"
)

// Authorizer decides whether the caller of r may use the registry API: write is set for
// the calls that change it (register, heartbeat, deregister, health), clear for lookups and
// watches. It returns nil or the refusal (a *verity.Error of kind Unauthenticated or
// PermissionDenied), which is the answer. It is called concurrently.
type Authorizer func(r *http.Request, write bool) error

// HandlerOptions configure NewHandler. The zero value of every field means its default.
type HandlerOptions struct {
	// Prefix is the path the API is served under. Default "/registry".
	Prefix string
	// Authorize checks every request before it is served. Default: everyone may do
	// everything (for tests and in-process use; the server always sets it).
	Authorize Authorizer
	// MaxBodyBytes is the largest request body; a larger one is answered 413. Default
	// 256 KiB (an instance with the most metadata allowed fits).
	MaxBodyBytes int64
	// SSEHeartbeat is how often an idle watch gets a comment line, so that proxies and
	// clients see it is alive. Default 15 s.
	SSEHeartbeat time.Duration
	// SSEWriteTimeout is how long one write to a watch may take before its client is deemed
	// stalled and the watch ended (the client reconnects and starts with a snapshot).
	// Default 30 s.
	SSEWriteTimeout time.Duration
	// Logger receives internal errors. Default slog.Default().
	Logger *slog.Logger
}

// Defaults of HandlerOptions.
const (
	DefaultPrefix          = "/registry"
	DefaultMaxBodyBytes    = 256 << 10
	DefaultSSEHeartbeat    = 15 * time.Second
	DefaultSSEWriteTimeout = 30 * time.Second
)

// Validate names the first field that is out of range.
func (o HandlerOptions) Validate() error {
	const op = "registry handler options"
	switch {
	case o.Prefix != "" && (!strings.HasPrefix(o.Prefix, "/") || strings.HasSuffix(o.Prefix, "/")):
		return verity.Errorf(verity.Invalid, op, "Prefix %q must start with '/' and not end with one", o.Prefix)
	case o.MaxBodyBytes < 0:
		return verity.Errorf(verity.Invalid, op, "MaxBodyBytes %d is negative", o.MaxBodyBytes)
	case o.SSEHeartbeat < 0:
		return verity.Errorf(verity.Invalid, op, "SSEHeartbeat %v is negative", o.SSEHeartbeat)
	case o.SSEWriteTimeout < 0:
		return verity.Errorf(verity.Invalid, op, "SSEWriteTimeout %v is negative", o.SSEWriteTimeout)
	}
	return nil
}

func (o HandlerOptions) withDefaults() HandlerOptions {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Authorize == nil {
		o.Authorize = func(*http.Request, bool) error { return nil }
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.SSEHeartbeat == 0 {
		o.SSEHeartbeat = DefaultSSEHeartbeat
	}
	if o.SSEWriteTimeout == 0 {
		o.SSEWriteTimeout = DefaultSSEWriteTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// NewHandler serves r's HTTP/JSON API under opts.Prefix (docs/registry.md):
//
//	POST   {prefix}/instances                 register (body: Instance) -> 201 Lease
//	GET    {prefix}/instances                 every live instance, healthy or not
//	PUT    {prefix}/instances/{id}/heartbeat  renew the lease -> 204 (404: register again)
//	PUT    {prefix}/instances/{id}/health     {"health","reason"} -> 204
//	DELETE {prefix}/instances/{id}            deregister -> 204
//	GET    {prefix}/services                  every service with its instance counts
//	GET    {prefix}/services/{service}        its healthy instances (?all=true: every one)
//	GET    {prefix}/watch/{service}           server-sent events: a snapshot, then changes
//	GET    {prefix}/watch                     the same for every service
//
// Errors are JSON, {"error": {"kind", "message", ...}}, with the HTTP status of the kind.
// Mount it at both prefix and prefix+"/". NewHandler panics if opts.Validate fails.
func NewHandler(r *Registry, opts HandlerOptions) http.Handler {
	if err := opts.Validate(); err != nil {
		panic(err)
	}
	h := &handler{reg: r, opts: opts.withDefaults()}
	p := h.opts.Prefix
	mux := http.NewServeMux()
	routes := []struct {
		method, path string
		write        bool
		fn           func(http.ResponseWriter, *http.Request) error
	}{
		{"POST", "/instances", true, h.register},
		{"GET", "/instances", false, h.listAll},
		{"PUT", "/instances/{id}/heartbeat", true, h.heartbeat},
		{"PUT", "/instances/{id}/health", true, h.setHealth},
		{"DELETE", "/instances/{id}", true, h.deregister},
		{"GET", "/services", false, h.services},
		{"GET", "/services/{service}", false, h.lookup},
		{"GET", "/watch/{service}", false, h.watch},
		{"GET", "/watch", false, h.watch},
	}
	allow := map[string][]string{}
	for _, rt := range routes {
		mux.HandleFunc(rt.method+" "+p+rt.path, h.serve(rt.write, rt.fn))
		allow[rt.path] = append(allow[rt.path], rt.method)
	}
	// ServeMux answers a wrong method with a plain-text 405; these answer in JSON.
	for path, methods := range allow {
		list := strings.Join(methods, ", ")
		if strings.Contains(list, "GET") {
			list += ", HEAD"
		}
		mux.HandleFunc(p+path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", list)
			httpjson.Write(w, http.StatusMethodNotAllowed, errorBody{Error: errorJSON{Kind: verity.Invalid.String(),
				Message: fmt.Sprintf("method %s is not allowed on %s; use %s", r.Method, r.URL.Path, list)}})
		})
	}
	notFound := func(w http.ResponseWriter, r *http.Request) {
		httpjson.Write(w, http.StatusNotFound, errorBody{Error: errorJSON{Kind: verity.NotFound.String(),
			Message: fmt.Sprintf("no registry endpoint at %s; see docs/registry.md", r.URL.Path)}})
	}
	mux.HandleFunc(p+"/", notFound)
	mux.HandleFunc(p, notFound)
	return mux
}

type handler struct {
	reg  *Registry
	opts HandlerOptions
}

// serve authorizes a request, then runs fn and answers its error, if any. fn writes its
// own success (and, once an event stream has begun, its own failures, returning nil).
func (h *handler) serve(write bool, fn func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		err := h.opts.Authorize(r, write)
		if err == nil {
			err = fn(w, r)
		}
		if err != nil {
			h.writeError(w, r, err)
		}
	}
}

func (h *handler) register(w http.ResponseWriter, r *http.Request) error {
	var in Instance
	if err := h.decode(w, r, "registry register", &in); err != nil {
		return err
	}
	lease, err := h.reg.Register(r.Context(), in)
	if err != nil {
		return err
	}
	w.Header().Set("Location", h.opts.Prefix+"/instances/"+lease.InstanceID)
	httpjson.Write(w, http.StatusCreated, lease)
	return nil
}

func (h *handler) heartbeat(w http.ResponseWriter, r *http.Request) error {
	if err := h.reg.Heartbeat(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *handler) deregister(w http.ResponseWriter, r *http.Request) error {
	if err := h.reg.Deregister(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *handler) setHealth(w http.ResponseWriter, r *http.Request) error {
	var body healthJSON
	if err := h.decode(w, r, "registry set health", &body); err != nil {
		return err
	}
	if err := h.reg.SetHealth(r.Context(), r.PathValue("id"), body.Health, body.Reason); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *handler) listAll(w http.ResponseWriter, r *http.Request) error {
	ins, err := h.reg.List(r.Context(), "")
	if err != nil {
		return err
	}
	httpjson.Write(w, http.StatusOK, struct {
		Instances []Instance `json:"instances"`
	}{nonNil(ins)})
	return nil
}

func (h *handler) services(w http.ResponseWriter, r *http.Request) error {
	ins, err := h.reg.List(r.Context(), "")
	if err != nil {
		return err
	}
	httpjson.Write(w, http.StatusOK, struct {
		Services []ServiceSummary `json:"services"`
	}{summarize(ins)})
	return nil
}

func (h *handler) lookup(w http.ResponseWriter, r *http.Request) error {
	const op = "registry lookup"
	service := r.PathValue("service")
	if err := ValidateService(op, service); err != nil {
		return err
	}
	all, err := boolParam(op, r, "all")
	if err != nil {
		return err
	}
	var ins []Instance
	if all {
		ins, err = h.reg.List(r.Context(), service)
	} else {
		ins, err = h.reg.Lookup(r.Context(), service)
	}
	if err != nil {
		return err
	}
	httpjson.Write(w, http.StatusOK, struct {
		Service   string     `json:"service"`
		Instances []Instance `json:"instances"`
	}{service, nonNil(ins)})
	return nil
}

// watch serves a watch as server-sent events: each Change is an event named after its kind
// ("snapshot", "registered", "removed", "health-changed") whose data is the Change's JSON.
// A snapshot comes first, and again whenever the client fell so far behind that changes
// were dropped; it replaces what the client knew. When the watch ends on the server's side
// (the registry closed), an "error" event says why. The stream holds one change at a time:
// a slow client makes the registry's watcher lag (bounded), not this handler buffer.
func (h *handler) watch(w http.ResponseWriter, r *http.Request) error {
	service := r.PathValue("service")
	if r.Method == http.MethodHead {
		if service != "" {
			if err := ValidateService("registry watch", service); err != nil {
				return err
			}
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		return nil
	}
	ctx := r.Context()
	wt, err := h.reg.Watch(ctx, service)
	if err != nil {
		return err
	}
	defer wt.Close()

	sw := sse.Start(w, h.opts.SSEWriteTimeout)
	defer sw.End()
	if err := sw.Comment("watching"); err != nil {
		return nil
	}
	for {
		// Next waits at most one heartbeat interval, so that an idle stream still shows
		// signs of life without a second goroutine.
		nctx, cancel := context.WithTimeout(ctx, h.opts.SSEHeartbeat)
		c, err := wt.Next(nctx)
		cancel()
		switch {
		case err == nil:
			b, merr := httpjson.Marshal(c)
			if merr != nil {
				h.opts.Logger.Error("registry watch: encode change", "err", merr)
				return nil
			}
			err = sw.Message(c.Kind.String(), "", b)
		case ctx.Err() != nil:
			return nil // the client left
		case errors.Is(err, context.DeadlineExceeded) && nctx.Err() != nil:
			err = sw.Comment("heartbeat")
		default:
			b, _ := httpjson.Marshal(errorBody{Error: errorJSONOf(err)})
			_ = sw.Message("error", "", b)
			return nil
		}
		if err != nil {
			return nil // the client is gone or stalled; nobody to tell
		}
	}
}

// decode reads a JSON request body into v; unknown fields are refused, so that a typo does
// not silently register less than was meant.
func (h *handler) decode(w http.ResponseWriter, r *http.Request, op string, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return verity.Errorf(verity.Invalid, op, "Content-Type %q: the body must be JSON (application/json)", ct)
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, h.opts.MaxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return err
		}
		if errors.Is(err, io.EOF) {
			return verity.Errorf(verity.Invalid, op, "the request body is empty; want a JSON object")
		}
		return verity.Errorf(verity.Invalid, op, "malformed JSON body: %v", err)
	}
	if dec.More() {
		return verity.Errorf(verity.Invalid, op, "the body holds more than one JSON value")
	}
	return nil
}

func boolParam(op string, r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, verity.Errorf(verity.Invalid, op, "parameter %s=%q: want true or false", name, v)
	}
	return b, nil
}

func (h *handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		httpjson.Write(w, http.StatusRequestEntityTooLarge, errorBody{Error: errorJSON{Kind: verity.Invalid.String(),
			Message: "request body is over the limit of " + strconv.FormatInt(tooBig.Limit, 10) + " bytes"}})
		return
	}
	body := errorJSONOf(err)
	kind := verity.ParseErrorKind(body.Kind)
	if kind == verity.Internal {
		h.opts.Logger.ErrorContext(r.Context(), "registry api: internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	switch kind {
	case verity.Unauthenticated:
		w.Header().Set("WWW-Authenticate", `Basic realm="verity"`)
	case verity.ResourceExhausted, verity.Unavailable:
		w.Header().Set("Retry-After", "1")
	}
	httpjson.Write(w, kind.HTTPStatus(), errorBody{Error: body})
}

func nonNil(ins []Instance) []Instance {
	if ins == nil {
		return []Instance{}
	}
	return ins
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
