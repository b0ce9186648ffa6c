package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/verity-dev/verity/server"
)

// runServe is `verity serve`: the store behind gRPC (KurrentDB protocol and Verity's own)
// and HTTP/JSON on one port, until SIGINT or SIGTERM, then a graceful shutdown.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", "verity serve [flags]", `
Serves the store in --data over the network: the KurrentDB (EventStoreDB) gRPC protocol, so
the official clients work unchanged, Verity's own gRPC service (the Go client), and an
HTTP/JSON API with server-sent events, all on one port (--listen). TLS is required
(--tls-cert, --tls-key) unless --insecure is given: plaintext and no authentication, for
development only. The first start with --admin-password (or VERITY_ADMIN_PASSWORD) creates
the user "admin". Settings come from --config FILE (YAML), then VERITY_* environment
variables, then flags, each overriding the one before. SIGINT or SIGTERM stops accepting,
ends subscriptions, drains requests in flight (--shutdown-timeout), flushes and exits 0.
Health: /health/live, /health/ready. Metrics: /metrics. See docs/server.md.

Examples:
  verity serve --insecure --data ./verity-data
  VERITY_ADMIN_PASSWORD='a long secret' verity serve --data /var/lib/verity \
    --listen 0.0.0.0:2113 --tls-cert node.crt --tls-key node.key
  verity serve --config /etc/verity/verity.yaml`)
	configFile := fs.String("config", "", "YAML config `FILE` (keys as in docs/server.md)")
	var flags server.Flags
	flags.Register(fs.FlagSet)
	if _, err := fs.parse(args, stdout); err != nil {
		return err
	}
	var cfg server.Config
	if *configFile != "" {
		if err := cfg.LoadFile(*configFile); err != nil {
			return err
		}
	}
	if err := cfg.ApplyEnv(os.LookupEnv); err != nil {
		return &usageError{cmd: "serve", err: err}
	}
	if err := flags.Apply(&cfg); err != nil {
		return &usageError{cmd: "serve", err: err}
	}
	if err := cfg.Validate(); err != nil {
		return &usageError{cmd: "serve", err: err}
	}
	return serve(ctx, cfg, stderr, nil)
}

// serve runs a server with cfg until ctx ends. started, when set, is called once the server
// listens; it may start more parts beside the server and return their stop, which runs
// before the server shuts down. An error from started stops the server.
func serve(ctx context.Context, cfg server.Config, stderr io.Writer, started func(srv *server.Server, logger *slog.Logger) (stop func() error, err error)) error {
	logger := server.NewLogger(cfg, stderr)
	srv, err := server.New(cfg, logger)
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		srv.Close()
		return err
	}
	stop := func() error { return nil }
	if started != nil {
		if stop, err = started(srv, logger); err != nil {
			return errors.Join(err, srv.Shutdown(context.Background()))
		}
	}
	<-ctx.Done()
	logger.Info("shutting down", "cause", fmt.Sprint(context.Cause(ctx)))
	return errors.Join(stop(), srv.Shutdown(context.Background()))
}
