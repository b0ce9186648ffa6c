package payments

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/examples/shop/events"
	"github.com/verity-dev/verity/examples/shop/internal/service"
	"github.com/verity-dev/verity/registry"
	"github.com/verity-dev/verity/sdk"
)

// Name is the service's virtual address in the registry.
const Name = "payments"

// Group is the consumer group of the payments process: the log's ReservationSucceeded
// events, pinned by stream.
const Group = "payments-reservations"

// GroupSpec is the group the service creates at start when it does not exist.
var GroupSpec = verity.GroupSpec{
	Group:    Group,
	Filter:   verity.Filter{Categories: []string{events.ReservationCategory}, EventTypes: []string{"ReservationSucceeded"}},
	Settings: verity.GroupSettings{Strategy: verity.Pinned},
}

// Config configures the payments service. Store and Groups are required.
type Config struct {
	Store  verity.Store
	Groups verity.Groups
	// Registrar is where the instance announces itself; nil: it does not register.
	Registrar registry.Registrar
	// Listen is the HTTP address; default "127.0.0.1:0".
	Listen string
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Provider charges the orders; default FakeProvider.
	Provider Provider
	// Consumers is how many of the group's events are handled at once; default 2.
	Consumers int
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.Store == nil:
		return verity.Errorf(verity.Invalid, "payments", "Config.Store is nil")
	case c.Groups == nil:
		return verity.Errorf(verity.Invalid, "payments", "Config.Groups is nil")
	case c.Consumers < 0:
		return verity.Errorf(verity.Invalid, "payments", "Config.Consumers must be ≥ 0, got %d", c.Consumers)
	}
	return nil
}

// Service is one instance of the payments service.
type Service struct {
	cfg      Config
	base     *service.Base
	reg      *sdk.Registry
	payments *sdk.CommandHandler[Payment, any, events.PaymentEvent]
}

// New builds the service; Start runs it.
func New(cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Consumers == 0 {
		cfg.Consumers = 2
	}
	if cfg.Provider == nil {
		cfg.Provider = FakeProvider{}
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
	return &Service{cfg: cfg, base: base, reg: reg, payments: h}, nil
}

// Start creates the group if missing, joins it, serves HTTP and registers the instance.
// ctx bounds the start; the service runs until Close or Kill.
func (s *Service) Start(ctx context.Context) error {
	return s.base.Start(ctx, s.Handler(), func(runCtx context.Context, own func(io.Closer)) error {
		if err := service.EnsureGroup(ctx, s.cfg.Groups, GroupSpec); err != nil {
			return err
		}
		r, err := sdk.StartGroupRunner(runCtx, s.cfg.Groups, s.reg, sdk.GroupRunnerConfig{
			Group: Group, Consumers: s.cfg.Consumers, Name: Name, Logger: s.base.Logger(),
		}, s.Charge)
		if err != nil {
			return err
		}
		own(r)
		return nil
	})
}

// Addr is the HTTP address ("host:port").
func (s *Service) Addr() string { return s.base.Addr() }

// Close deregisters, drains HTTP and stops.
func (s *Service) Close() error { return s.base.Close() }

// Kill stops at once without deregistering, as a crash would.
func (s *Service) Kill() { s.base.Kill() }

// Charge is the payments process: on ReservationSucceeded it charges the order's total
// and records the answer. A redelivered event finds the payment recorded and stops
// before charging; if the process stopped between charge and record, the provider sees
// the charge again under the same order id (its idempotency key) and the record carries
// the command id derived from the event, so it is written once.
func (s *Service) Charge(ctx context.Context, e sdk.Event) error {
	res, ok := e.Data.(events.ReservationSucceeded)
	if !ok {
		return nil
	}
	// Only inventory's reservations are charged: one whose order id is not a UUID, or not
	// that of its stream, was written by someone else.
	if err := events.CheckOrderID(res.OrderID); err != nil {
		return sdk.Park(fmt.Errorf("ReservationSucceeded in %s: %w", e.Recorded.Stream, err))
	}
	if e.Recorded.Stream != events.ReservationStream(res.OrderID) {
		return sdk.Park(fmt.Errorf("ReservationSucceeded in %s names order %s of another stream", e.Recorded.Stream, res.OrderID))
	}
	stream := events.PaymentStream(res.OrderID)
	p, _, err := s.payments.State(ctx, stream)
	if err != nil || p.Status != "" {
		return err
	}
	cmd := RecordPayment{OrderID: res.OrderID, AmountCents: res.TotalCents}
	if err := s.cfg.Provider.Charge(ctx, res.OrderID, res.TotalCents); err != nil {
		var d *Declined
		if !errors.As(err, &d) {
			return err // the provider is down: the group retries
		}
		cmd.Reason = d.Reason
	}
	_, err = s.payments.Handle(ctx, stream, cmd, sdk.ReactingTo(e, "record-payment"))
	return err
}

// Handler is the service's HTTP API:
//
//	GET /payments/{orderId} -> {orderId, status (succeeded|failed), amountCents, reason?}
//	GET /healthz
func (s *Service) Handler() http.Handler {
	log := s.base.Logger()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /payments/{orderId}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("orderId")
		if err := events.CheckOrderID(id); err != nil {
			service.WriteError(w, log, err)
			return
		}
		p, _, err := s.payments.State(r.Context(), events.PaymentStream(id))
		if err != nil {
			service.WriteError(w, log, err)
			return
		}
		if p.Status == "" {
			service.WriteError(w, log, verity.Errorf(verity.NotFound, "payment", "no payment for order %q", id))
			return
		}
		service.WriteJSON(w, http.StatusOK, p)
	})
	mux.HandleFunc("GET "+service.HealthPath, service.Healthz(nil))
	return mux
}
