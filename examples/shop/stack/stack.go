// Package stack runs the shop reference system with the platform around it on one store:
// the four shop services (registered in the registry), the gateway serving the shop's
// public API (examples/shop/gateway.yaml) and the consolidator building its read models
// (examples/shop/views.yaml). `verity dev` runs it beside the server; the resilience tests
// run it over an embedded engine. It is wiring only: every part is a package of its own.
package stack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/consolidator"
	"github.com/verity-dev/verity/examples/shop"
	"github.com/verity-dev/verity/gateway"
	"github.com/verity-dev/verity/registry"
)

// Default listen addresses of the stack's own HTTP servers.
const (
	DefaultGatewayListen = "127.0.0.1:8080"
	DefaultAdminListen   = "127.0.0.1:8081"
)

// Config shapes a Stack. Store, Groups and Registry are required; every other zero field
// means its default.
type Config struct {
	Store  verity.Store
	Groups verity.Groups
	// Registry is where the services register and the gateway resolves them.
	Registry *registry.Registry
	// GatewayListen is the public API's address; default DefaultGatewayListen.
	GatewayListen string
	// AdminListen serves the gateway's admin API (/admin/...), the consolidator's
	// (/views...) and the stack's metrics (/metrics); default DefaultAdminListen.
	AdminListen string
	// ViewsDSN is the read models' database; default sqlite:<DataDir>/views.db.
	ViewsDSN string
	// DataDir is where the default SQLite database lives; default ".".
	DataDir string
	// Gateway overrides the embedded gateway.yaml (tests shorten timeouts with it).
	Gateway *gateway.Config
	// Logger; default slog.Default().
	Logger *slog.Logger
}

func (c Config) validate() error {
	switch {
	case c.Store == nil:
		return verity.Errorf(verity.Invalid, "stack", "Config.Store is nil")
	case c.Groups == nil:
		return verity.Errorf(verity.Invalid, "stack", "Config.Groups is nil")
	case c.Registry == nil:
		return verity.Errorf(verity.Invalid, "stack", "Config.Registry is nil")
	}
	return nil
}

// Stack is the running shop with its gateway and consolidator.
type Stack struct {
	Shop         *shop.System
	Gateway      *gateway.Gateway
	Consolidator *consolidator.Consolidator

	gatewayLn, adminLn net.Listener
	admin              http.Handler
	servers            []*http.Server
	wg                 sync.WaitGroup
	closeOnce          sync.Once
	closeErr           error
}

// Start starts the services, the consolidator and the gateway, in that order, and
// returns once all listen. ctx bounds the start only; the stack runs until Close.
func Start(ctx context.Context, cfg Config) (_ *Stack, err error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.GatewayListen == "" {
		cfg.GatewayListen = DefaultGatewayListen
	}
	if cfg.AdminListen == "" {
		cfg.AdminListen = DefaultAdminListen
	}
	if cfg.DataDir == "" {
		cfg.DataDir = "."
	}
	if cfg.ViewsDSN == "" {
		cfg.ViewsDSN = "sqlite:" + filepath.Join(cfg.DataDir, "views.db")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Stack{}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Close())
		}
	}()
	// Listen first, so that a taken port fails before anything has started.
	if s.gatewayLn, err = net.Listen("tcp", cfg.GatewayListen); err != nil {
		return nil, verity.Errorf(verity.Unavailable, "stack", "gateway listen %s: %v", cfg.GatewayListen, err)
	}
	if s.adminLn, err = net.Listen("tcp", cfg.AdminListen); err != nil {
		return nil, verity.Errorf(verity.Unavailable, "stack", "admin listen %s: %v", cfg.AdminListen, err)
	}

	if s.Shop, err = shop.Start(ctx, shop.Config{
		Store: cfg.Store, Groups: cfg.Groups, Registrar: cfg.Registry,
		Logger: cfg.Logger.With("part", "shop"),
	}); err != nil {
		return nil, fmt.Errorf("stack: shop: %w", err)
	}

	reg := prometheus.NewRegistry()
	viewsCfg, err := consolidator.ParseConfig(shop.ViewsConfig)
	if err != nil {
		return nil, fmt.Errorf("stack: views.yaml: %w", err)
	}
	if s.Consolidator, err = consolidator.New(cfg.Store, consolidator.Config{
		DSN: cfg.ViewsDSN, Logger: cfg.Logger.With("part", "consolidator"), Registerer: reg,
	}); err != nil {
		return nil, fmt.Errorf("stack: consolidator: %w", err)
	}
	if err := s.Consolidator.AddConfig(viewsCfg); err != nil {
		return nil, fmt.Errorf("stack: views.yaml: %w", err)
	}
	if err := s.Consolidator.Start(context.WithoutCancel(ctx)); err != nil {
		return nil, fmt.Errorf("stack: consolidator: %w", err)
	}

	var gcfg gateway.Config
	if cfg.Gateway != nil {
		gcfg = *cfg.Gateway
	} else if gcfg, err = gateway.Parse(shop.GatewayConfig); err != nil {
		return nil, fmt.Errorf("stack: gateway.yaml: %w", err)
	}
	if s.Gateway, err = gateway.New(gcfg, gateway.Options{
		Source: cfg.Registry, Store: cfg.Store, Registerer: reg,
		Logger: cfg.Logger.With("part", "gateway"),
	}); err != nil {
		return nil, fmt.Errorf("stack: gateway: %w", err)
	}

	admin := http.NewServeMux()
	admin.Handle("/admin/", s.Gateway.AdminHandler())
	views := s.Consolidator.Handler()
	admin.Handle("/views", views)
	admin.Handle("/views/", views)
	admin.Handle("GET /metrics", promhttpHandler(reg))
	s.admin = admin
	s.serve(s.gatewayLn, s.Gateway)
	s.serve(s.adminLn, admin)
	return s, nil
}

func (s *Stack) serve(ln net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	s.servers = append(s.servers, srv)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		srv.Serve(ln) // returns at Shutdown/Close
	}()
}

// GatewayURL is the public API's base URL.
func (s *Stack) GatewayURL() string { return "http://" + s.gatewayLn.Addr().String() }

// AdminURL is the admin listener's base URL.
func (s *Stack) AdminURL() string { return "http://" + s.adminLn.Addr().String() }

// AdminHandler is what the admin listener serves: the gateway's admin API (/admin/...),
// the consolidator's (/views...) and the metrics (/metrics). `verity dev` also hands it to
// the server for the web console.
func (s *Stack) AdminHandler() http.Handler { return s.admin }

// Close stops the gateway (draining requests for up to 5s), the consolidator and the
// services, and waits for them.
func (s *Stack) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, srv := range s.servers {
			if err := srv.Shutdown(ctx); err != nil {
				srv.Close()
			}
		}
		for _, ln := range []net.Listener{s.gatewayLn, s.adminLn} {
			if ln != nil {
				ln.Close()
			}
		}
		s.wg.Wait()
		if s.Gateway != nil {
			errs = append(errs, s.Gateway.Close())
		}
		if s.Consolidator != nil {
			errs = append(errs, s.Consolidator.Close())
		}
		if s.Shop != nil {
			errs = append(errs, s.Shop.Close())
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
