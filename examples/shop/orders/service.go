package orders

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/examples/shop/events"
	"github.com/verity-dev/verity/examples/shop/internal/service"
	"github.com/verity-dev/verity/registry"
	"github.com/verity-dev/verity/sdk"
)

// Name is the service's virtual address in the registry.
const Name = "orders"

// Group is the consumer group of the orders' process manager: the outcomes of the
// reservations and payments, pinned by stream.
const Group = "orders-outcomes"

// InboxGroup is the consumer group of the PlaceOrder commands.
const InboxGroup = events.OrderCommandCategory + "-inbox"

// GroupSpec is the process manager's group, created at start when it does not exist.
var GroupSpec = verity.GroupSpec{
	Group: Group,
	Filter: verity.Filter{
		Categories: []string{events.ReservationCategory, events.PaymentCategory},
		EventTypes: []string{"ReservationFailed", "PaymentSucceeded", "PaymentFailed"},
	},
	Settings: verity.GroupSettings{Strategy: verity.Pinned},
}

// CatchUpWait bounds how long a PlaceOrder naming a customer or a sku the view does not
// know waits for the view to catch up with the log before it is rejected: the customer
// may have registered a moment ago.
const CatchUpWait = 2 * time.Second

// Config configures the orders service. Store and Groups are required.
type Config struct {
	Store  verity.Store
	Groups verity.Groups
	// Registrar is where the instance announces itself; nil: it does not register.
	Registrar registry.Registrar
	// Listen is the HTTP address; default "127.0.0.1:0".
	Listen string
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Consumers is how many commands, and how many outcome events, are handled at once;
	// default 2.
	Consumers int
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.Store == nil:
		return verity.Errorf(verity.Invalid, "orders", "Config.Store is nil")
	case c.Groups == nil:
		return verity.Errorf(verity.Invalid, "orders", "Config.Groups is nil")
	case c.Consumers < 0:
		return verity.Errorf(verity.Invalid, "orders", "Config.Consumers must be ≥ 0, got %d", c.Consumers)
	}
	return nil
}

// Service is one instance of the orders service.
type Service struct {
	cfg      Config
	base     *service.Base
	reg      *sdk.Registry
	orders   *sdk.CommandHandler[Order, any, events.OrderEvent]
	view     *view
	follower *service.Follower
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
	return &Service{cfg: cfg, base: base, reg: reg, orders: h, view: newView()}, nil
}

// Start rebuilds the view by replay and waits for it, then handles the PlaceOrder commands
// and the outcomes (creating the groups if missing), serves HTTP and registers the
// instance. ctx bounds the start; the service runs until Close or Kill.
func (s *Service) Start(ctx context.Context) error {
	return s.base.Start(ctx, s.Handler(), func(runCtx context.Context, own func(io.Closer)) error {
		f, err := service.Follow(runCtx, s.cfg.Store, s.reg, viewFilter, s.view.apply)
		if err != nil {
			return err
		}
		own(f)
		s.follower = f
		if err := f.CatchUp(ctx); err != nil {
			return err
		}
		if err := service.EnsureGroup(ctx, s.cfg.Groups, GroupSpec); err != nil {
			return err
		}
		r, err := sdk.StartGroupRunner(runCtx, s.cfg.Groups, s.reg, sdk.GroupRunnerConfig{
			Group: Group, Consumers: s.cfg.Consumers, Name: Name, Logger: s.base.Logger(),
		}, Outcomes(s.orders))
		if err != nil {
			return err
		}
		own(r)
		in, err := sdk.StartCommandInbox(runCtx, s.cfg.Groups, s.cfg.Store, sdk.CommandInboxConfig{
			Category: events.OrderCommandCategory, Group: InboxGroup, Consumers: s.cfg.Consumers, Logger: s.base.Logger(),
		}, s.PlaceOrder)
		if err != nil {
			return err
		}
		own(in)
		return nil
	})
}

// Addr is the HTTP address ("host:port").
func (s *Service) Addr() string { return s.base.Addr() }

// Close deregisters, drains HTTP and stops.
func (s *Service) Close() error { return s.base.Close() }

// Kill stops at once without deregistering, as a crash would.
func (s *Service) Kill() { s.base.Kill() }

// PlaceOrder handles a PlaceOrder command: it checks the customer and prices the lines
// from the service's own view, and places the order under the command's id, which is also
// the order's id. Unknown customers and skus, and malformed commands, are rejected. A
// redelivered command finds its order placed and returns the same result.
func (s *Service) PlaceOrder(ctx context.Context, cmd sdk.Command) (any, error) {
	if cmd.Type != events.PlaceOrderType {
		return nil, sdk.Reject(verity.Errorf(verity.Invalid, "place order", "unknown command type %q (want %q)", cmd.Type, events.PlaceOrderType))
	}
	var po events.PlaceOrder
	dec := json.NewDecoder(bytes.NewReader(cmd.Data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&po); err != nil {
		return nil, sdk.Reject(verity.Errorf(verity.Invalid, "place order", "command data: %v", err))
	}
	lines, err := s.price(ctx, po)
	if err != nil {
		return nil, err
	}
	orderID := cmd.ID.String()
	_, err = s.orders.Handle(ctx, events.OrderStream(orderID),
		Place{OrderID: orderID, CustomerID: po.CustomerID, Lines: lines},
		sdk.WithCommandID(cmd.ID), sdk.WithMetadata(sdk.CausedBy(cmd.Recorded)))
	if err != nil {
		if k := verity.KindOf(err); k == verity.Invalid || errors.Is(err, ErrExists) {
			return nil, sdk.Reject(err)
		}
		return nil, err
	}
	return events.PlaceOrderResult{OrderID: orderID}, nil
}

// price checks the order against the view and prices its lines, merging the lines of one
// sku. When the view does not know the customer or a sku, it first waits (CatchUpWait at
// most) for the view to apply what the log holds: they may have been added a moment ago.
func (s *Service) price(ctx context.Context, po events.PlaceOrder) ([]events.OrderLine, error) {
	const op = "place order"
	if len(po.Lines) == 0 {
		return nil, sdk.Reject(verity.Errorf(verity.Invalid, op, "an order needs at least one line"))
	}
	for _, l := range po.Lines {
		if err := events.CheckSKU(l.SKU); err != nil {
			return nil, sdk.Reject(err)
		}
		if l.Qty <= 0 || l.Qty > MaxQty {
			return nil, sdk.Reject(verity.Errorf(verity.Invalid, op, "sku %q: qty must be 1 to %d, got %d", l.SKU, MaxQty, l.Qty))
		}
	}
	caughtUp := false
	for {
		missing := ""
		if _, ok := s.view.customer(po.CustomerID); !ok {
			missing = fmt.Sprintf("unknown customer %q", po.CustomerID)
		}
		var lines []events.OrderLine
		for _, l := range po.Lines {
			p, ok := s.view.product(l.SKU)
			if !ok {
				if missing == "" {
					missing = fmt.Sprintf("unknown sku %q", l.SKU)
				}
				break
			}
			merged := false
			for i := range lines {
				if lines[i].SKU == l.SKU {
					lines[i].Qty += l.Qty
					merged = true
				}
			}
			if !merged {
				lines = append(lines, events.OrderLine{SKU: l.SKU, Qty: l.Qty, PriceCents: p.PriceCents})
			}
		}
		if missing == "" {
			return lines, nil
		}
		if caughtUp {
			return nil, sdk.Reject(verity.Errorf(verity.NotFound, op, "%s", missing))
		}
		wctx, cancel := context.WithTimeout(ctx, CatchUpWait)
		err := s.follower.CatchUp(wctx)
		cancel()
		if err != nil && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return nil, err
		}
		caughtUp = true
	}
}

// OrderDetails is what GET /orders/{id} serves.
type OrderDetails struct {
	Order
	CustomerName string `json:"customerName"`
}

// Handler is the service's HTTP API (orders are placed with the PlaceOrder command):
//
//	GET /orders/{id}           -> {orderId, customerId, customerName, status, lines, totalCents, itemCount, reason?}
//	GET /orders?customerId=ID  -> [{orderId, customerId, status, totalCents, itemCount, reason?}], oldest first
//	GET /healthz
//
// GET /orders/{id} folds the order's stream, so it serves what was just written; the
// customer's name and the list come from the service's view.
func (s *Service) Handler() http.Handler {
	log := s.base.Logger()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if err := events.CheckOrderID(id); err != nil {
			service.WriteError(w, log, err)
			return
		}
		o, _, err := s.orders.State(r.Context(), events.OrderStream(id))
		if err != nil {
			service.WriteError(w, log, err)
			return
		}
		if o.Status == "" {
			service.WriteError(w, log, verity.Errorf(verity.NotFound, "order", "no order %q", id))
			return
		}
		name, _ := s.view.customer(o.CustomerID)
		service.WriteJSON(w, http.StatusOK, OrderDetails{Order: o, CustomerName: name})
	})
	mux.HandleFunc("GET /orders", func(w http.ResponseWriter, r *http.Request) {
		service.WriteJSON(w, http.StatusOK, s.view.ordersOf(r.URL.Query().Get("customerId")))
	})
	mux.HandleFunc("GET "+service.HealthPath, service.Healthz(func() error {
		if s.follower == nil {
			return nil
		}
		return s.follower.Err()
	}))
	return mux
}
