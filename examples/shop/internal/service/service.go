package service

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/registry"
)

// DefaultListen is the address a service listens on when its config leaves it empty.
const DefaultListen = "127.0.0.1:0"

// ShutdownTimeout bounds how long Close waits for HTTP requests in flight.
const ShutdownTimeout = 5 * time.Second

// HealthPath is the path of every service's health check, announced in its registration.
const HealthPath = "/healthz"

// Config is what a Base needs; each service fills it from its own Config.
type Config struct {
	// Name is the service's virtual address in the registry, e.g. "orders".
	Name string
	// Registrar is where the instance announces itself; nil: it does not.
	Registrar registry.Registrar
	// Listen is the HTTP listen address; default DefaultListen.
	Listen string
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Base runs one instance of a service. Start it once; stop it with Close or Kill.
type Base struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	started  bool
	stopped  bool
	runners  []io.Closer
	cancel   context.CancelFunc // ends the runners' context
	srv      *http.Server
	addr     string
	served   chan struct{}
	gate     *gate
	unreg    context.CancelFunc // ends KeepRegistered, which then deregisters (unless killed)
	regDone  chan error
	regID    string // the instance's id in the registry
	stopOnce sync.Once
}

// New returns a Base for cfg, with defaults filled in.
func New(cfg Config) (*Base, error) {
	if err := registry.ValidateService("service", cfg.Name); err != nil {
		return nil, err
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Base{cfg: cfg, log: cfg.Logger.With("service", cfg.Name)}, nil
}

// Logger is the service's logger.
func (b *Base) Logger() *slog.Logger { return b.log }

// StartFunc starts a service's runners under ctx, which lives until the service stops,
// and hands each to own so that the Base stops it (in reverse order) on Close or Kill,
// and also when StartFunc fails.
type StartFunc func(ctx context.Context, own func(io.Closer)) error

// Start starts the runners, then serves handler, then registers the instance: an
// instance is announced only once it can serve. ctx bounds the start only; the service
// runs until Close or Kill. A registration refused as Invalid or Conflict fails Start; a
// registry that cannot be reached does not (the instance keeps trying to register).
func (b *Base) Start(ctx context.Context, handler http.Handler, start StartFunc) error {
	const op = "start"
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started {
		return verity.Errorf(verity.Invalid, op, "service %q was started already; make a new one with New", b.cfg.Name)
	}
	b.started = true
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	b.cancel = cancel
	fail := func(err error) error {
		b.stopped = true
		cancel()
		b.closeRunners()
		return err
	}
	if err := start(runCtx, func(c io.Closer) { b.runners = append(b.runners, c) }); err != nil {
		return fail(err)
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	ln, err := net.Listen("tcp", b.cfg.Listen)
	if err != nil {
		return fail(verity.Errorf(verity.Unavailable, op, "service %q: listen on %q: %v", b.cfg.Name, b.cfg.Listen, err))
	}
	b.addr = advertised(ln.Addr())
	b.srv = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	b.served = make(chan struct{})
	go func() {
		defer close(b.served)
		if err := b.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			b.log.Error("http server stopped", "err", err)
		}
	}()
	if b.cfg.Registrar == nil {
		return nil
	}
	in := registry.Instance{
		Service:  b.cfg.Name,
		ID:       b.cfg.Name + "-" + uuid.NewString(),
		Address:  b.addr,
		Metadata: map[string]string{"healthCheck": HealthPath},
	}
	// A first registration now, so that the instance can be found once Start returns;
	// KeepRegistered then renews it (same ID: it records nothing new).
	if _, err := b.cfg.Registrar.Register(ctx, in); err != nil {
		if k := verity.KindOf(err); k == verity.Invalid || k == verity.Conflict {
			b.srv.Close()
			<-b.served
			return fail(err)
		}
		b.log.Warn("cannot register yet; will keep trying", "err", err)
	}
	b.gate = &gate{r: b.cfg.Registrar, dead: make(chan struct{})}
	regCtx, unreg := context.WithCancel(context.WithoutCancel(ctx))
	b.unreg, b.regDone, b.regID = unreg, make(chan error, 1), in.ID
	go func() { b.regDone <- registry.KeepRegistered(regCtx, b.gate, in, 0) }()
	return nil
}

// advertised is the address others reach the listener at: an unspecified host (":8080",
// "0.0.0.0:8080") is announced as the loopback address.
func advertised(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return a.String()
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(tcp.Port))
}

// Addr is the address the service listens on ("host:port"); "" before Start.
func (b *Base) Addr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.addr
}

// Close stops the service gracefully: it deregisters the instance (so no new traffic is
// routed to it), drains the HTTP requests in flight (at most ShutdownTimeout), then stops
// the runners, each finishing the event in hand. It is idempotent.
func (b *Base) Close() error {
	var err error
	b.stopOnce.Do(func() { err = b.stop(false) })
	return err
}

// Kill stops the service at once, as a crash would: the listener and every connection are
// closed and the runners stopped, and the instance is NOT deregistered: the registry
// removes it when its lease expires. Events in hand are not acknowledged and go back to
// their groups. Close after Kill does nothing.
func (b *Base) Kill() {
	b.stopOnce.Do(func() { _ = b.stop(true) })
}

func (b *Base) stop(kill bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.started || b.stopped {
		b.stopped = true
		return nil
	}
	b.stopped = true
	var errs []error
	if b.unreg != nil {
		if kill {
			b.gate.kill()
		}
		b.unreg()
		if err := <-b.regDone; err != nil && !kill {
			errs = append(errs, err)
		}
		if !kill {
			// KeepRegistered deregisters what it registered; Start's own first
			// registration it may not have renewed yet if stopped at once. Deregistering
			// again is harmless (NotFound).
			ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
			if err := b.cfg.Registrar.Deregister(ctx, b.regID); err != nil && verity.KindOf(err) != verity.NotFound {
				errs = append(errs, err)
			}
			cancel()
		}
	}
	if kill {
		b.cancel() // handlers see their context end before the server goes
		b.srv.Close()
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
		if err := b.srv.Shutdown(ctx); err != nil {
			b.srv.Close()
		}
		cancel()
		b.cancel()
	}
	<-b.served
	if err := b.closeRunners(); err != nil && !kill {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (b *Base) closeRunners() error {
	var errs []error
	for i := len(b.runners) - 1; i >= 0; i-- {
		if err := b.runners[i].Close(); err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, err)
		}
	}
	b.runners = nil
	return errors.Join(errs...)
}

// gate passes calls to the registrar until killed; then it refuses them, so that
// KeepRegistered, stopped by a Kill, cannot deregister the instance.
type gate struct {
	r    registry.Registrar
	once sync.Once
	dead chan struct{}
}

func (g *gate) kill() { g.once.Do(func() { close(g.dead) }) }

func (g *gate) refused(op string) error {
	select {
	case <-g.dead:
		return verity.Errorf(verity.Unavailable, op, "the instance was killed")
	default:
		return nil
	}
}

func (g *gate) Register(ctx context.Context, in registry.Instance) (registry.Lease, error) {
	if err := g.refused("register"); err != nil {
		return registry.Lease{}, err
	}
	return g.r.Register(ctx, in)
}

func (g *gate) Heartbeat(ctx context.Context, id string) error {
	if err := g.refused("heartbeat"); err != nil {
		return err
	}
	return g.r.Heartbeat(ctx, id)
}

func (g *gate) Deregister(ctx context.Context, id string) error {
	if err := g.refused("deregister"); err != nil {
		return err
	}
	return g.r.Deregister(ctx, id)
}

// EnsureGroup creates a consumer group unless it exists already (created by an earlier
// start of the service, or by another instance).
func EnsureGroup(ctx context.Context, groups verity.Groups, spec verity.GroupSpec) error {
	if groups == nil {
		return verity.Errorf(verity.Invalid, "create group", "group %q: Config.Groups is nil", spec.Group)
	}
	if err := groups.CreateGroup(ctx, spec); err != nil && !errors.Is(err, verity.ErrConflict) {
		return err
	}
	return nil
}
