package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/gateway"
	"github.com/verity-dev/verity/registry"
)

// gatewayShutdownTimeout bounds how long a stopping gateway waits for requests in flight.
const gatewayShutdownTimeout = 10 * time.Second

// runGateway is `verity gateway`: the API gateway over the registry's services, until
// SIGINT or SIGTERM; SIGHUP reloads its configuration file.
func runGateway(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	return gatewayMain(ctx, args, stdout, stderr, hup, nil)
}

// gatewayMain is runGateway with the reload signal given (tests send on it) and a
// started hook, called once both listeners listen, with their addresses.
func gatewayMain(ctx context.Context, args []string, stdout, stderr io.Writer, reload <-chan os.Signal,
	started func(listen, admin string)) error {
	fs := newFlagSet("gateway", "verity gateway --config FILE [flags]", `
Runs the API gateway described in docs/gateway.md: it routes HTTP requests by host and path
to services found in the service registry (--registry, or the registry of --server), with a
circuit breaker per service, retries of idempotent requests, concurrency limits that shed
load with 503, compositions of several calls into one JSON answer, and command routes that
append commands to the log (of --server, or of the local --data directory). The admin API
(--admin) serves /admin/routes, /admin/config, /admin/reload and /metrics; beyond loopback it
needs a token (VERITY_ADMIN_TOKEN), which every admin request then carries as
"Authorization: Bearer TOKEN". SIGHUP, or POST /admin/reload, reads --config again; a bad
file is refused and the old routes stay.
`+storeAbout+`

Examples:
  verity gateway --config examples/shop/gateway.yaml --server http://127.0.0.1:2113
  verity gateway --config gateway.yaml --listen 0.0.0.0:8080 --admin 127.0.0.1:8081 \
    --registry http://registry.internal:2113 --server https://verity.internal:2113`)
	configFile := fs.String("config", "", "the gateway's configuration `FILE` (YAML or JSON; see docs/gateway.md); required")
	listen := fs.String("listen", "127.0.0.1:8080", "serve the gateway on `ADDR`")
	admin := fs.String("admin", "127.0.0.1:8081", "serve the admin API and /metrics on `ADDR`; empty: not at all")
	tokenFlag := fs.String("admin-token", "", adminTokenUsage)
	registryURL := fs.String("registry", "", "find services in the registry at `URL` (http://HOST:PORT, https://HOST:PORT\nor HOST:PORT, optionally with the path it is mounted at before /registry);\ndefault: the --server's")
	sf := addStoreFlags(fs)
	if _, err := fs.parse(args, stdout); err != nil {
		return err
	}
	if *configFile == "" {
		return usagef("gateway", "--config FILE is required")
	}
	token := adminToken(*tokenFlag)
	if *admin != "" {
		if _, err := guardAdmin("gateway", "--admin", *admin, token, http.NotFoundHandler()); err != nil {
			return err
		}
	}
	cfg, err := gateway.LoadFile(*configFile)
	if err != nil {
		return err
	}
	r, err := sf.resolve()
	if err != nil {
		return err
	}
	regURL := *registryURL
	if regURL == "" {
		if r == nil {
			return usagef("gateway", "give --registry URL (or --server URL, whose registry is used)")
		}
		regURL = r.target
	}
	var regOpts registry.ClientOptions
	if r != nil {
		regOpts = registry.ClientOptions{TLS: r.opts.TLS, Username: r.opts.Username, Password: r.opts.Password, Token: r.opts.Token}
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	regOpts.Logger = logger
	src, err := registry.NewClient(regURL, regOpts)
	if err != nil {
		return &usageError{cmd: "gateway", err: err}
	}
	defer src.Close()

	// The log is opened only for command routes: a gateway without them needs no store
	// (and must not hold a data directory's lock).
	var store verity.Store
	for _, rt := range cfg.Routes {
		if rt.Command != nil {
			cs, err := sf.open(false, stderr)
			if err != nil {
				return err
			}
			defer cs.Close()
			store = cs.Store
			break
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	g, err := gateway.New(cfg, gateway.Options{Source: src, Store: store, Logger: logger, Registerer: reg, ConfigPath: *configFile})
	if err != nil {
		return err
	}
	defer g.Close()

	servers := []*http.Server{{Handler: g, ReadHeaderTimeout: 10 * time.Second}}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("gateway: --listen %s: %w", *listen, err)
	}
	listeners := []net.Listener{ln}
	adminAddr := ""
	if *admin != "" {
		aln, err := net.Listen("tcp", *admin)
		if err != nil {
			ln.Close()
			return fmt.Errorf("gateway: --admin %s: %w", *admin, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/admin/", g.AdminHandler())
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		h, err := guardAdmin("gateway", "--admin", *admin, token, mux)
		if err != nil { // checked above; the address is the same
			ln.Close()
			aln.Close()
			return err
		}
		servers = append(servers, &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second})
		listeners = append(listeners, aln)
		adminAddr = aln.Addr().String()
	}
	errc := make(chan error, len(servers))
	for i, srv := range servers {
		go func() { errc <- srv.Serve(listeners[i]) }()
	}
	logger.Info("gateway listening", "listen", ln.Addr().String(), "admin", adminAddr, "routes", len(cfg.Routes), "registry", regURL)
	if started != nil {
		started(ln.Addr().String(), adminAddr)
	}

	var serveErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-errc:
			serveErr = err
			break loop
		case <-reload:
			cfg, err := gateway.LoadFile(*configFile)
			if err == nil {
				err = g.Reload(cfg)
			}
			if err != nil {
				logger.Error("gateway: reload refused; the old routes stay", "config", *configFile, "err", err)
			} else {
				logger.Info("gateway: configuration reloaded", "config", *configFile, "routes", len(cfg.Routes))
			}
		}
	}
	logger.Info("gateway shutting down", "cause", fmt.Sprint(context.Cause(ctx)))
	sctx, cancel := context.WithTimeout(context.Background(), gatewayShutdownTimeout)
	defer cancel()
	for _, srv := range servers {
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close()
		}
	}
	for range len(servers) - boolToInt(serveErr != nil) {
		if err := <-errc; !errors.Is(err, http.ErrServerClosed) && serveErr == nil {
			serveErr = err
		}
	}
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	return serveErr
}

func boolToInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
