package customers

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/google/uuid"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/examples/shop/events"
	"github.com/verity-dev/verity/examples/shop/internal/service"
	"github.com/verity-dev/verity/registry"
	"github.com/verity-dev/verity/sdk"
)

// Name is the service's virtual address in the registry.
const Name = "customers"

// Config configures the customers service. Store and Groups are required.
type Config struct {
	Store  verity.Store
	Groups verity.Groups // unused by customers (it runs no consumer group); kept for uniformity
	// Registrar is where the instance announces itself; nil: it does not register.
	Registrar registry.Registrar
	// Listen is the HTTP address; default "127.0.0.1:0".
	Listen string
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Validate names the first bad field.
func (c Config) Validate() error {
	if c.Store == nil {
		return verity.Errorf(verity.Invalid, "customers", "Config.Store is nil")
	}
	return nil
}

// Service is one instance of the customers service.
type Service struct {
	cfg       Config
	base      *service.Base
	reg       *sdk.Registry
	customers *sdk.CommandHandler[Customer, any, events.CustomerEvent]
	list      *listView
}

// New builds the service; Start runs it.
func New(cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	base, err := service.New(service.Config{Name: Name, Registrar: cfg.Registrar, Listen: cfg.Listen, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	reg := events.NewRegistry()
	h, err := sdk.NewCommandHandler(cfg.Store, reg, Decider, sdk.CommandHandlerConfig{})
	if err != nil {
		return nil, err
	}
	return &Service{cfg: cfg, base: base, reg: reg, customers: h, list: &listView{byID: map[string]Customer{}}}, nil
}

// Start replays the customer list, serves HTTP and registers the instance. ctx bounds the
// start; the service runs until Close or Kill.
func (s *Service) Start(ctx context.Context) error {
	return s.base.Start(ctx, s.Handler(), func(runCtx context.Context, own func(io.Closer)) error {
		f, err := service.Follow(runCtx, s.cfg.Store, s.reg, listFilter, s.list.apply)
		if err != nil {
			return err
		}
		own(f)
		s.list.follower = f
		return f.CatchUp(ctx)
	})
}

// Addr is the HTTP address ("host:port").
func (s *Service) Addr() string { return s.base.Addr() }

// Close deregisters, drains HTTP and stops.
func (s *Service) Close() error { return s.base.Close() }

// Kill stops at once without deregistering, as a crash would.
func (s *Service) Kill() { s.base.Kill() }

// Handler is the service's HTTP API:
//
//	POST /customers {name, email}       -> 201 {"customerId"}
//	GET  /customers/{id}                -> {customerId, name, email}
//	GET  /customers                     -> [{customerId, name, email}] by name
//	PUT  /customers/{id} {name, email}  -> {customerId, name, email}
//	GET  /healthz
//
// GET /customers/{id} folds the customer's stream, so it serves what was just written;
// GET /customers serves the in-memory list, which may lag the log by a moment.
func (s *Service) Handler() http.Handler {
	log := s.base.Logger()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /customers", func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Name, Email string }
		if err := service.ReadJSON(r, "register customer", &body); err != nil {
			service.WriteError(w, log, err)
			return
		}
		// With an Idempotency-Key, a retried POST finds the customer its first try made.
		id, cmdID := uuid.New(), uuid.New()
		if key := r.Header.Get("Idempotency-Key"); key != "" {
			id = uuid.NewSHA1(idempotencySpace, []byte(key))
			cmdID = id
		}
		res, err := s.customers.Handle(r.Context(), events.CustomerStream(id.String()),
			Register{CustomerID: id.String(), Name: body.Name, Email: body.Email}, sdk.WithCommandID(cmdID))
		if err != nil {
			service.WriteError(w, log, err)
			return
		}
		w.Header().Set("Location", "/customers/"+id.String())
		service.WriteJSON(w, http.StatusCreated, res.State)
	})
	mux.HandleFunc("GET /customers/{id}", func(w http.ResponseWriter, r *http.Request) {
		c, err := s.get(r.Context(), r.PathValue("id"))
		if err != nil {
			service.WriteError(w, log, err)
			return
		}
		service.WriteJSON(w, http.StatusOK, c)
	})
	mux.HandleFunc("PUT /customers/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if err := checkID(id); err != nil {
			service.WriteError(w, log, err)
			return
		}
		var body struct{ Name, Email string }
		if err := service.ReadJSON(r, "update customer", &body); err != nil {
			service.WriteError(w, log, err)
			return
		}
		res, err := s.customers.Handle(r.Context(), events.CustomerStream(id), Update{Name: body.Name, Email: body.Email})
		if err != nil {
			service.WriteError(w, log, err)
			return
		}
		service.WriteJSON(w, http.StatusOK, res.State)
	})
	mux.HandleFunc("GET /customers", func(w http.ResponseWriter, r *http.Request) {
		service.WriteJSON(w, http.StatusOK, s.list.all())
	})
	mux.HandleFunc("GET "+service.HealthPath, service.Healthz(s.healthy))
	return mux
}

func (s *Service) healthy() error {
	if s.list.follower == nil {
		return nil
	}
	return s.list.follower.Err()
}

func (s *Service) get(ctx context.Context, id string) (Customer, error) {
	if err := checkID(id); err != nil {
		return Customer{}, err
	}
	c, _, err := s.customers.State(ctx, events.CustomerStream(id))
	if err != nil {
		return Customer{}, err
	}
	if !c.Registered() {
		return Customer{}, verity.Errorf(verity.NotFound, "customer", "no customer %q", id)
	}
	return c, nil
}

// idempotencySpace is the UUID namespace of the customer ids derived from Idempotency-Keys.
var idempotencySpace = uuid.MustParse("5d3c1e5a-8a5b-4d0e-9a43-3c0f6c1b2a70")

// checkID refuses ids that cannot be a customer's, before they reach the store.
func checkID(id string) error {
	if _, err := uuid.Parse(id); err != nil {
		return verity.Errorf(verity.Invalid, "customer", "customer id %q is not a UUID", id)
	}
	return nil
}

var listFilter = verity.Filter{
	Categories: []string{events.CustomerCategory},
	EventTypes: []string{"CustomerRegistered", "CustomerUpdated"},
}

// listView is every customer, folded from the log in memory.
type listView struct {
	follower *service.Follower
	mu       sync.RWMutex
	byID     map[string]Customer
}

func (v *listView) apply(e sdk.Event) {
	ce, ok := e.Data.(events.CustomerEvent)
	if !ok {
		return
	}
	id := strings.TrimPrefix(e.Recorded.Stream, events.CustomerCategory+"-")
	v.mu.Lock()
	v.byID[id] = Decider.Evolve(v.byID[id], ce)
	v.mu.Unlock()
}

func (v *listView) all() []Customer {
	v.mu.RLock()
	out := make([]Customer, 0, len(v.byID))
	for _, c := range v.byID {
		out = append(out, c)
	}
	v.mu.RUnlock()
	slices.SortFunc(out, func(a, b Customer) int {
		return strings.Compare(a.Name+"\x00"+a.CustomerID, b.Name+"\x00"+b.CustomerID)
	})
	return out
}
