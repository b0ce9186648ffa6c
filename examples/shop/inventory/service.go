package inventory

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/examples/shop/events"
	"github.com/verity-dev/verity/examples/shop/internal/service"
	"github.com/verity-dev/verity/registry"
	"github.com/verity-dev/verity/sdk"
)

// Name is the service's virtual address in the registry.
const Name = "inventory"

// Group is the consumer group of the inventory's process manager: the log's OrderPlaced
// and OrderCancelled events, pinned by stream so that an order's cancellation is handled
// after its placement.
const Group = "inventory-orders"

// GroupSpec is the group the service creates at start when it does not exist.
var GroupSpec = verity.GroupSpec{
	Group:    Group,
	Filter:   verity.Filter{Categories: []string{events.OrderCategory}, EventTypes: []string{"OrderPlaced", "OrderCancelled"}},
	Settings: verity.GroupSettings{Strategy: verity.Pinned},
}

// Config configures the inventory service. Store and Groups are required.
type Config struct {
	Store  verity.Store
	Groups verity.Groups
	// Registrar is where the instance announces itself; nil: it does not register.
	Registrar registry.Registrar
	// Listen is the HTTP address; default "127.0.0.1:0".
	Listen string
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Consumers is how many of the group's events are handled at once; default 2.
	Consumers int
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.Store == nil:
		return verity.Errorf(verity.Invalid, "inventory", "Config.Store is nil")
	case c.Groups == nil:
		return verity.Errorf(verity.Invalid, "inventory", "Config.Groups is nil")
	case c.Consumers < 0:
		return verity.Errorf(verity.Invalid, "inventory", "Config.Consumers must be ≥ 0, got %d", c.Consumers)
	}
	return nil
}

// Service is one instance of the inventory service.
type Service struct {
	cfg      Config
	base     *service.Base
	reg      *sdk.Registry
	products *sdk.CommandHandler[Product, any, events.ProductEvent]
	process  *Process
	list     *listView
}

// New builds the service; Start runs it.
func New(cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Consumers == 0 {
		cfg.Consumers = 2
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
	p, err := NewProcess(cfg.Store, reg)
	if err != nil {
		return nil, err
	}
	return &Service{cfg: cfg, base: base, reg: reg, products: h, process: p, list: &listView{bySKU: map[string]Product{}}}, nil
}

// Start creates the process manager's group if missing, joins it, replays the product
// list, serves HTTP and registers the instance. ctx bounds the start; the service runs
// until Close or Kill.
func (s *Service) Start(ctx context.Context) error {
	return s.base.Start(ctx, s.Handler(), func(runCtx context.Context, own func(io.Closer)) error {
		if err := service.EnsureGroup(ctx, s.cfg.Groups, GroupSpec); err != nil {
			return err
		}
		r, err := sdk.StartGroupRunner(runCtx, s.cfg.Groups, s.reg, sdk.GroupRunnerConfig{
			Group: Group, Consumers: s.cfg.Consumers, Name: Name, Logger: s.base.Logger(),
		}, s.process.Handle)
		if err != nil {
			return err
		}
		own(r)
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
//	POST /products {sku, name, priceCents, stock}  -> 201 {sku, name, priceCents, available, reserved}
//	POST /products/{sku}/stock {qty}               -> the product
//	GET  /products/{sku}                           -> the product
//	GET  /products                                 -> every product, by sku
//	GET  /healthz
//
// GET /products/{sku} folds the product's stream; GET /products serves the in-memory
// list, which may lag the log by a moment.
func (s *Service) Handler() http.Handler {
	log := s.base.Logger()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /products", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			SKU        string `json:"sku"`
			Name       string `json:"name"`
			PriceCents int64  `json:"priceCents"`
			Stock      int64  `json:"stock"`
		}
		if err := service.ReadJSON(r, "add product", &body); err != nil {
			service.WriteError(w, log, err)
			return
		}
		if err := events.CheckSKU(body.SKU); err != nil {
			service.WriteError(w, log, err)
			return
		}
		res, err := s.products.Handle(r.Context(), events.ProductStream(body.SKU),
			AddProduct{SKU: body.SKU, Name: body.Name, PriceCents: body.PriceCents, Stock: body.Stock})
		if err != nil {
			service.WriteError(w, log, err)
			return
		}
		w.Header().Set("Location", "/products/"+body.SKU)
		service.WriteJSON(w, http.StatusCreated, res.State)
	})
	mux.HandleFunc("POST /products/{sku}/stock", func(w http.ResponseWriter, r *http.Request) {
		sku := r.PathValue("sku")
		var body struct {
			Qty int64 `json:"qty"`
		}
		if err := events.CheckSKU(sku); err != nil {
			service.WriteError(w, log, err)
			return
		}
		if err := service.ReadJSON(r, "add stock", &body); err != nil {
			service.WriteError(w, log, err)
			return
		}
		res, err := s.products.Handle(r.Context(), events.ProductStream(sku), AddStock{Qty: body.Qty})
		if err != nil {
			service.WriteError(w, log, err)
			return
		}
		service.WriteJSON(w, http.StatusOK, res.State)
	})
	mux.HandleFunc("GET /products/{sku}", func(w http.ResponseWriter, r *http.Request) {
		sku := r.PathValue("sku")
		if err := events.CheckSKU(sku); err != nil {
			service.WriteError(w, log, err)
			return
		}
		p, _, err := s.products.State(r.Context(), events.ProductStream(sku))
		if err != nil {
			service.WriteError(w, log, err)
			return
		}
		if !p.Exists() {
			service.WriteError(w, log, verity.Errorf(verity.NotFound, "product", "no product %q", sku))
			return
		}
		service.WriteJSON(w, http.StatusOK, p)
	})
	mux.HandleFunc("GET /products", func(w http.ResponseWriter, r *http.Request) {
		service.WriteJSON(w, http.StatusOK, s.list.all())
	})
	mux.HandleFunc("GET "+service.HealthPath, service.Healthz(func() error {
		if s.list.follower == nil {
			return nil
		}
		return s.list.follower.Err()
	}))
	return mux
}

var listFilter = verity.Filter{
	Categories: []string{events.ProductCategory},
	EventTypes: []string{"ProductAdded", "StockAdded", "StockReserved", "StockReleased"},
}

// listView is every product, folded from the log in memory.
type listView struct {
	follower *service.Follower
	mu       sync.RWMutex
	bySKU    map[string]Product
}

func (v *listView) apply(e sdk.Event) {
	pe, ok := e.Data.(events.ProductEvent)
	if !ok {
		return
	}
	sku := strings.TrimPrefix(e.Recorded.Stream, events.ProductCategory+"-")
	v.mu.Lock()
	v.bySKU[sku] = Decider.Evolve(v.bySKU[sku], pe)
	v.mu.Unlock()
}

func (v *listView) all() []Product {
	v.mu.RLock()
	out := make([]Product, 0, len(v.bySKU))
	for _, p := range v.bySKU {
		if p.Exists() {
			out = append(out, p)
		}
	}
	v.mu.RUnlock()
	slices.SortFunc(out, func(a, b Product) int { return strings.Compare(a.SKU, b.SKU) })
	return out
}
