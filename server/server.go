package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/auth"
	"github.com/verity-dev/verity/console"
	"github.com/verity-dev/verity/engine"
	"github.com/verity-dev/verity/eventindex"
	"github.com/verity-dev/verity/persistent"
	"github.com/verity-dev/verity/protocol/grpcapi"
	"github.com/verity-dev/verity/protocol/httpapi"
	"github.com/verity-dev/verity/protocol/kurrentdb"
)

// Version is the server's version, reported by ServerFeatures and /health.
var Version = "0.3.0-dev"

// Server is the engine behind the network: the KurrentDB gRPC protocol, Verity's own gRPC
// service and the HTTP/JSON API on one port, with authentication, access control, TLS,
// health and metrics. New opens the store; Start listens; Shutdown drains and closes (cmd/verity runs it until a
// signal).
type Server struct {
	cfg      Config
	log      *slog.Logger
	engine   *engine.Engine
	auth     *auth.Service
	groups   *persistent.Manager // the persistent subscriptions, over the engine itself
	registry registryParts       // the service registry, over the engine itself (registry.go)
	events   *eventindex.Index   // the event index the console reads (console.go); nil when disabled
	platform platform            // the platform parts' admin APIs, for the console (platform.go)
	metrics  *metrics
	started  time.Time

	tls       *tls.Config // nil: plaintext
	split     *splitListener
	grpc      *grpc.Server
	verityAPI *grpcapi.Service
	http      *http.Server
	ln        net.Listener

	ready atomic.Bool
	// streams ends long-lived reads (subscriptions, server-streamed reads) at shutdown: they
	// are resumable, so they are not waited for; appends in flight are.
	streams       context.Context
	cancelStreams context.CancelFunc

	serveErr     chan error
	grpcDone     chan struct{} // closed when grpc.Serve returned
	shutdownOnce sync.Once
	shutdownErr  error
	closeOnce    sync.Once
	closeErr     error
}

// New opens the data directory and builds the server; it does not listen yet. Close (or
// Shutdown after Start) releases it.
func New(cfg Config, logger *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	if logger == nil {
		logger = slog.Default()
	}
	s := &Server{cfg: cfg, log: logger, metrics: newMetrics(), serveErr: make(chan error, 1), started: time.Now()}
	s.streams, s.cancelStreams = context.WithCancel(context.Background())

	e, err := engine.Open(engine.Config{
		Dir:              cfg.Data,
		SegmentSize:      cfg.SegmentSize,
		MaxEventSize:     cfg.MaxEventSize,
		MaxAppendSize:    cfg.MaxAppendSize,
		MaxAppendEvents:  cfg.MaxAppendEvents,
		ScavengeInterval: cfg.ScavengeInterval,
		OnCommit:         s.metrics.onCommit,
		Now:              cfg.Now,
		Logger:           logger,
	})
	if err != nil {
		return nil, err
	}
	s.engine = e
	s.metrics.registerEngine(e)

	a, err := auth.Open(context.Background(), e, auth.Config{
		Insecure:      cfg.Insecure,
		AdminPassword: cfg.AdminPassword,
		Rules:         cfg.Access,
		DefaultAccess: cfg.DefaultAccess,
		Logger:        logger,
		OnDenied:      s.metrics.onDenied,
		Now:           cfg.Now,
	})
	if err != nil {
		e.Close()
		return nil, err
	}
	s.auth = a

	// Groups run over the engine itself: they read every source and write their checkpoints
	// and parked events to system streams; callers are checked by auth.GuardGroups.
	g, err := persistent.New(e, persistent.Config{Now: cfg.Now, Logger: logger})
	if err != nil {
		a.Close()
		e.Close()
		return nil, err
	}
	s.groups = g
	s.metrics.reg.MustRegister(newGroupCollector(g))
	if err := s.openRegistry(); err != nil {
		g.Close()
		a.Close()
		e.Close()
		return nil, err
	}
	if err := s.openEventIndex(); err != nil {
		s.closeRegistry()
		g.Close()
		a.Close()
		e.Close()
		return nil, err
	}

	s.grpc = grpc.NewServer(
		grpc.MaxRecvMsgSize(cfg.MaxRequestBytes),
		grpc.ConnectionTimeout(cfg.ReadHeaderTimeout),
		// KurrentDB clients ping every 10 s by default; grpc-go's default policy (one ping
		// per 5 minutes) would cut their connections.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		// Find clients that vanished without closing, so their subscriptions are released.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: time.Minute, Timeout: 20 * time.Second}),
		grpc.MaxConcurrentStreams(uint32(cfg.MaxConcurrentStreams)),
		grpc.ChainUnaryInterceptor(s.unaryInterceptor),
		grpc.ChainStreamInterceptor(s.streamInterceptor),
	)
	kurrentdb.New(access{s}, kurrentdb.Options{
		Version:                       kurrentdb.DefaultVersion,
		Advertise:                     cfg.Advertise,
		MaxSubscriptionsPerConnection: cfg.MaxSubscriptionsPerConnection,
		MaxAppendSize:                 cfg.MaxAppendSize,
		MaxAppendEvents:               cfg.MaxAppendEvents,
		Logger:                        logger,
		Now:                           cfg.Now,
	}).Register(s.grpc)
	s.verityAPI = grpcapi.New(access{s}, grpcapi.Options{
		MaxSubscriptionsPerConnection: cfg.MaxSubscriptionsPerConnection,
		Logger:                        logger,
	})
	s.verityAPI.Register(s.grpc)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /health/live", s.live)
	mux.HandleFunc("GET /health/ready", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{Registry: s.metrics.reg}))
	users := s.auth.Handler()
	mux.Handle("/users", users)
	mux.Handle("/users/", users)
	mux.Handle("/tokens", users)
	mux.Handle("/tokens/", users)
	reg := s.registryHandler()
	mux.Handle("/registry", reg)
	mux.Handle("/registry/", reg)
	// The console's files are public (they hold no data); every call they make goes
	// through the API below with the user's credentials.
	mux.Handle(console.Prefix, console.Handler())
	mux.HandleFunc(PlatformPrefix, s.servePlatform)
	mux.Handle("GET "+LivePath, s.serveLive(mux)) // ends its streams at shutdown itself
	mux.Handle(strings.TrimSuffix(console.Prefix, "/"), http.RedirectHandler(console.Prefix, http.StatusMovedPermanently))
	apiOpts := httpapi.Options{
		MaxBodyBytes:              int64(cfg.MaxRequestBytes),
		MaxSubscriptionsPerClient: cfg.MaxSubscriptionsPerConnection,
		Logger:                    logger,
		Log:                       e,
		Stats:                     s.stats,
	}
	if s.events != nil { // a nil *Index in the interface would not read as "no index"
		apiOpts.Events = s.events
	}
	mux.Handle("/", s.endStreamsAtShutdown(httpapi.New(access{s}, apiOpts)))

	// Only HTTP/1.x reaches net/http: HTTP/2 connections are gRPC's (see listen.go).
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	s.http = &http.Server{
		Handler:           s.route(crossOriginProtection().Handler(mux)),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		Protocols:         &protocols,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	if !cfg.Insecure {
		tc, err := loadTLS(cfg)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.tls = tc
	}
	return s, nil
}

func loadTLS(cfg Config) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("tls: load certificate %s and key %s: %w", cfg.TLSCert, cfg.TLSKey, err)
	}
	tc := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
	}
	if cfg.TLSCA != "" {
		pem, err := os.ReadFile(cfg.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls: %s holds no PEM certificate", cfg.TLSCA)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return tc, nil
}

// access is what the front ends authenticate and reach the store through: the auth service,
// with the store each caller gets observed for metrics.
type access struct{ s *Server }

func (a access) Authenticate(ctx context.Context, authorization string) (auth.Principal, error) {
	return a.s.auth.Authenticate(ctx, authorization)
}

func (a access) Store(p auth.Principal) verity.Store {
	return observedStore{Store: a.s.auth.Store(p), m: a.s.metrics}
}

// Groups returns the persistent subscriptions as p may use them.
func (a access) Groups(p auth.Principal) verity.Groups {
	return a.s.auth.GuardGroups(a.s.groups, p)
}

// route serves HTTP requests, counting them by status.
func (s *Server) route(mux http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		mux.ServeHTTP(rec, r)
		s.metrics.httpRequests.WithLabelValues(r.Method, fmt.Sprint(rec.status)).Inc()
	})
}

// statusRecorder remembers the status of a response, for the request counter. It passes
// Flush through, which server-sent events need.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// endStreamsAtShutdown ends server-sent event streams when shutdown begins.
func (s *Server) endStreamsAtShutdown(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.Header.Get("Accept"), "text/event-stream") && !strings.HasPrefix(r.URL.Path, "/subscribe") &&
			r.URL.Path != "/stats/stream" {
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

func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer s.recoverCall(info.FullMethod, &err)
	resp, err = handler(ctx, req)
	s.metrics.grpcRequests.WithLabelValues(info.FullMethod, status.Code(err).String()).Inc()
	return resp, err
}

// recoverCall turns a panic in a handler into an Internal error for that call alone: grpc-go
// does not recover, and one bad request must not take the server and every client down.
func (s *Server) recoverCall(method string, err *error) {
	if p := recover(); p != nil {
		s.log.Error("panic in gRPC handler", "method", method, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		s.metrics.grpcRequests.WithLabelValues(method, codes.Internal.String()).Inc()
		*err = status.Error(codes.Internal, "internal error (logged by the server)")
	}
}

// persistentRead is the KurrentDB persistent subscription's Read: bidirectional, but a
// subscription, so ended at shutdown like the server-streamed reads.
const persistentRead = "/event_store.client.persistent_subscriptions.PersistentSubscriptions/Read"

// streamInterceptor counts calls and ends server-streamed calls (reads, subscriptions) and
// persistent subscriptions when shutdown begins: their consumers resume elsewhere or later,
// their unacknowledged events redelivered. Client-streamed ones (appends) are drained instead.
func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	defer s.recoverCall(info.FullMethod, &err)
	if (info.IsServerStream && !info.IsClientStream) || info.FullMethod == persistentRead {
		ctx, cancel := context.WithCancel(ss.Context())
		defer cancel()
		stop := context.AfterFunc(s.streams, cancel)
		defer stop()
		ss = &ctxStream{ServerStream: ss, ctx: ctx}
	}
	err = handler(srv, ss)
	s.metrics.grpcRequests.WithLabelValues(info.FullMethod, status.Code(err).String()).Inc()
	return err
}

type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (c *ctxStream) Context() context.Context { return c.ctx }

func (s *Server) live(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"status":"live"}`+"\n")
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if !s.ready.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"status":"not ready"}`+"\n")
		return
	}
	fmt.Fprintf(w, `{"status":"ready","version":%q,"lastPosition":%d}`+"\n", Version, s.engine.Stats().LastPosition)
}

// Start listens on the configured address and serves in the background.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.cfg.Listen, err)
	}
	s.ln = ln
	s.split = newSplitListener(ln, s.tls, s.cfg.ReadHeaderTimeout)
	go s.split.serve()
	s.grpcDone = make(chan struct{})
	go func() {
		defer close(s.grpcDone)
		s.grpc.Serve(s.split.grpc) // returns when stopped
	}()
	go func() {
		err := s.http.Serve(s.split.http)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.serveErr <- err
	}()
	s.ready.Store(true)
	s.log.Info("verity serving", "addr", ln.Addr().String(), "tls", s.tls != nil,
		"insecure", s.cfg.Insecure, "data", s.cfg.Data, "version", Version)
	return nil
}

// Addr is the address the server listens on (after Start).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Store is the server's store as an admin sees it (for wiring and tests).
func (s *Server) Store() verity.Store { return s.engine }

// Groups is the server's persistent subscriptions as an admin sees them (for wiring and tests).
func (s *Server) Groups() verity.Groups { return s.groups }

// Auth is the server's authentication and access service.
func (s *Server) Auth() *auth.Service { return s.auth }

// Shutdown stops accepting, ends subscriptions (clients resume them elsewhere or later),
// waits up to Config.ShutdownTimeout (or ctx) for requests in flight, then closes the store,
// which flushes and fsyncs. It returns the first error of serving or closing.
// Shutdown is idempotent: later calls wait for the first and return its result.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() { s.shutdownErr = s.shutdown(ctx) })
	return s.shutdownErr
}

func (s *Server) shutdown(ctx context.Context) error {
	s.ready.Store(false)
	s.cancelStreams()
	s.verityAPI.Shutdown()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ShutdownTimeout)
	defer cancel()
	start := time.Now()
	var err error
	if s.ln != nil {
		s.ln.Close() // stop accepting; connections being classified are still handed over
		grpcStopped := make(chan struct{})
		go func() {
			s.grpc.GracefulStop()
			close(grpcStopped)
		}()
		if herr := s.http.Shutdown(ctx); herr != nil {
			s.http.Close()
		}
		select {
		case <-grpcStopped:
		case <-ctx.Done():
			s.grpc.Stop()
			<-grpcStopped
		}
		if ctx.Err() != nil {
			s.log.Warn("drain bound reached; closed the remaining connections", "after", time.Since(start).Round(time.Millisecond))
		}
		<-s.grpcDone
		err = <-s.serveErr
	}
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	s.log.Info("verity stopped", "drain", time.Since(start).Round(time.Millisecond))
	return err
}

// Close releases the store without draining (Shutdown drains first).
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.ready.Store(false)
		s.cancelStreams()
		if s.ln != nil {
			s.ln.Close()
			s.http.Close()
		}
		if s.grpc != nil {
			s.grpc.Stop()
		}
		s.closeRegistry() // before the engine: the registry and its prober write to it
		if s.events != nil {
			s.events.Close() // before the engine: it follows the log
		}
		if s.groups != nil {
			s.groups.Close() // before the engine: groups flush their checkpoints to it
		}
		if s.auth != nil {
			s.auth.Close()
		}
		if s.engine != nil {
			s.closeErr = s.engine.Close()
		}
	})
	return s.closeErr
}
