package shop

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/examples/shop/customers"
	"github.com/verity-dev/verity/examples/shop/inventory"
	"github.com/verity-dev/verity/examples/shop/orders"
	"github.com/verity-dev/verity/examples/shop/payments"
	"github.com/verity-dev/verity/registry"
)

// Names of the services, as they register.
const (
	Customers = customers.Name
	Orders    = orders.Name
	Inventory = inventory.Name
	Payments  = payments.Name
)

// Services lists the services in the order Start starts them.
var Services = []string{Customers, Inventory, Payments, Orders}

// Config configures a System. Store and Groups are required.
type Config struct {
	Store  verity.Store
	Groups verity.Groups
	// Registrar is where each service announces itself; nil: they do not register.
	Registrar registry.Registrar
	// Host is the host the services listen on, each on a port of its own; default
	// "127.0.0.1".
	Host string
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.Store == nil:
		return verity.Errorf(verity.Invalid, "shop", "Config.Store is nil")
	case c.Groups == nil:
		return verity.Errorf(verity.Invalid, "shop", "Config.Groups is nil")
	}
	return nil
}

// instance is what System needs of a running service.
type instance interface {
	Addr() string
	Close() error
	Kill()
}

// System is the four services of the shop, running in one process.
type System struct {
	cfg Config

	mu      sync.Mutex
	running map[string]instance // killed or closed services are absent
}

// Start starts the four services. ctx bounds the start; they run until Close.
func Start(ctx context.Context, cfg Config) (*System, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &System{cfg: cfg, running: map[string]instance{}}
	for _, name := range Services {
		if err := s.start(ctx, name); err != nil {
			return nil, errors.Join(err, s.Close())
		}
	}
	return s, nil
}

func (s *System) start(ctx context.Context, name string) error {
	listen := net.JoinHostPort(s.cfg.Host, "0")
	log := s.cfg.Logger
	var in interface {
		instance
		Start(context.Context) error
	}
	var err error
	switch name {
	case Customers:
		in, err = customers.New(customers.Config{Store: s.cfg.Store, Groups: s.cfg.Groups, Registrar: s.cfg.Registrar, Listen: listen, Logger: log})
	case Inventory:
		in, err = inventory.New(inventory.Config{Store: s.cfg.Store, Groups: s.cfg.Groups, Registrar: s.cfg.Registrar, Listen: listen, Logger: log})
	case Payments:
		in, err = payments.New(payments.Config{Store: s.cfg.Store, Groups: s.cfg.Groups, Registrar: s.cfg.Registrar, Listen: listen, Logger: log})
	case Orders:
		in, err = orders.New(orders.Config{Store: s.cfg.Store, Groups: s.cfg.Groups, Registrar: s.cfg.Registrar, Listen: listen, Logger: log})
	default:
		return verity.Errorf(verity.NotFound, "shop", "no service %q (want one of %v)", name, Services)
	}
	if err != nil {
		return err
	}
	if err := in.Start(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	s.running[name] = in
	s.mu.Unlock()
	return nil
}

// Addr is the HTTP address of a running service; "" when it is not running.
func (s *System) Addr(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in, ok := s.running[name]; ok {
		return in.Addr()
	}
	return ""
}

// Kill stops a service as a crash would (see customers.Service.Kill): not deregistered,
// its events in hand redelivered. Killing a service that is not running does nothing.
func (s *System) Kill(name string) {
	s.mu.Lock()
	in := s.running[name]
	delete(s.running, name)
	s.mu.Unlock()
	if in != nil {
		in.Kill()
	}
}

// Restart stops a service gracefully if it runs and starts a new instance of it, on a
// new port; its state comes back from the log.
func (s *System) Restart(ctx context.Context, name string) error {
	s.mu.Lock()
	in := s.running[name]
	delete(s.running, name)
	s.mu.Unlock()
	var err error
	if in != nil {
		err = in.Close()
	}
	return errors.Join(err, s.start(ctx, name))
}

// Close stops every running service gracefully, in the reverse order of Start.
func (s *System) Close() error {
	var errs []error
	for i := len(Services) - 1; i >= 0; i-- {
		s.mu.Lock()
		in := s.running[Services[i]]
		delete(s.running, Services[i])
		s.mu.Unlock()
		if in != nil {
			errs = append(errs, in.Close())
		}
	}
	return errors.Join(errs...)
}
