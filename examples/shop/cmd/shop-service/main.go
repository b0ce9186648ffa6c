// Command shop-service runs one service of the shop reference system (examples/shop) in a
// process of its own, against a Verity server over the network only: the log and the
// consumer groups through the Go client, the service registry through the registry's
// HTTP client. It is how the shop runs as a real deployment would (one process per
// service), where `verity dev` runs all four in one process beside the server.
//
//	go run ./examples/shop/cmd/shop-service --service orders --server http://127.0.0.1:2113
//
// It prints "<service> listening on <host:port>" on stdout once it serves and has
// registered (or, with the registry unreachable, keeps trying to), logs to stderr, and stops gracefully (deregister, drain, stop its runners)
// on SIGINT or SIGTERM. Start as many instances of a service as you like: they share its
// consumer groups and the gateway balances among them.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/client"
	"github.com/verity-dev/verity/examples/shop"
	"github.com/verity-dev/verity/examples/shop/customers"
	"github.com/verity-dev/verity/examples/shop/inventory"
	"github.com/verity-dev/verity/examples/shop/orders"
	"github.com/verity-dev/verity/examples/shop/payments"
	"github.com/verity-dev/verity/registry"
)

// Environment variables standing in for flags, as for the verity CLI (a flag wins).
const (
	envServer   = "VERITY_SERVER"
	envPassword = "VERITY_PASSWORD"
	envToken    = "VERITY_TOKEN"
)

// defaultServer is the server of `verity dev` and `verity serve` on this machine.
const defaultServer = "http://127.0.0.1:2113"

// startTimeout bounds the start: creating the groups, the replay of a view, registering.
const startTimeout = time.Minute

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case err != nil:
		fmt.Fprintln(os.Stderr, "shop-service:", err)
		var u usageError
		if errors.As(err, &u) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// usageError is a wrong flag or combination of flags (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// options are the parsed flags.
type options struct {
	service, server, listen string
	storeOpts               client.Options
	regOpts                 registry.ClientOptions
}

func parse(args []string, stderr io.Writer, lookupEnv func(string) (string, bool)) (*options, error) {
	fs := flag.NewFlagSet("shop-service", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: shop-service --service NAME [flags]

Runs one shop service (%s) in this process,
against the Verity server at --server: its events and consumer groups over the server's
gRPC API, its registration in the server's registry (/registry). Prints
"NAME listening on HOST:PORT" once it serves; stops gracefully on SIGINT or SIGTERM.
See docs/shop.md.

Flags:
`, strings.Join(shop.Services, ", "))
		fs.PrintDefaults()
	}
	service := fs.String("service", "", "the `NAME` of the service to run: "+strings.Join(shop.Services, ", ")+"; required")
	server := fs.String("server", "", "the Verity server's `URL`: http://HOST:PORT (plaintext), https://HOST:PORT (TLS)\nor HOST:PORT; default $"+envServer+", else "+defaultServer)
	listen := fs.String("listen", "127.0.0.1:0", "serve the service's HTTP API on `ADDR` (port 0: any free port; the\nregistry is told the actual one)")
	user := fs.String("user", "", "authenticate as user `NAME`, with the password from $"+envPassword+" or --password")
	password := fs.String("password", "", "the `PASSWORD` of --user; prefer $"+envPassword+" (a flag shows in the process list)")
	token := fs.String("token", "", "authenticate with a bearer `TOKEN`; prefer $"+envToken)
	ca := fs.String("ca", "", "trust the CA certificate in `FILE` (PEM) for an https:// server")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError{err.Error()}
	}
	env := func(name string) string { v, _ := lookupEnv(name); return v }
	o := &options{service: *service, server: *server, listen: *listen}
	switch {
	case fs.NArg() > 0:
		return nil, usagef("unexpected argument %q: every setting is a flag", fs.Arg(0))
	case o.service == "":
		return nil, usagef("--service is required: one of %s", strings.Join(shop.Services, ", "))
	case !isService(o.service):
		return nil, usagef("--service %q: no such service; want one of %s", o.service, strings.Join(shop.Services, ", "))
	case o.listen == "":
		return nil, usagef("--listen is empty; want HOST:PORT, e.g. 127.0.0.1:0")
	}
	if o.server == "" {
		o.server = env(envServer)
	}
	if o.server == "" {
		o.server = defaultServer
	}
	if !strings.Contains(o.server, "://") {
		o.server = "http://" + o.server
	}
	secure := strings.HasPrefix(o.server, "https://")
	if !secure && !strings.HasPrefix(o.server, "http://") {
		return nil, usagef("--server %q: want http://HOST:PORT, https://HOST:PORT or HOST:PORT", o.server)
	}
	o.server = strings.TrimSuffix(o.server, "/")

	pw, tok := *password, *token
	switch {
	case *user != "" && tok != "":
		return nil, usagef("give either --user (with a password) or --token, not both")
	case pw != "" && *user == "":
		return nil, usagef("--password needs --user NAME")
	case *user != "":
		if pw == "" {
			pw = env(envPassword)
		}
		if pw == "" {
			return nil, usagef("--user %s needs a password: set %s or give --password", *user, envPassword)
		}
	case tok == "":
		tok = env(envToken)
	}
	var tlsConf *tls.Config
	if *ca != "" {
		if !secure {
			return nil, usagef("--ca %s is for a TLS server, but --server %s is plaintext", *ca, o.server)
		}
		pem, err := os.ReadFile(*ca)
		if err != nil {
			return nil, usagef("--ca: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, usagef("--ca %s holds no PEM certificate", *ca)
		}
		tlsConf = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	o.storeOpts = client.Options{TLS: tlsConf, Username: *user, Password: pw, Token: tok}
	o.regOpts = registry.ClientOptions{TLS: tlsConf, Username: *user, Password: pw, Token: tok}
	return o, nil
}

func isService(name string) bool {
	for _, s := range shop.Services {
		if s == name {
			return true
		}
	}
	return false
}

// service is what run needs of a shop service.
type service interface {
	Start(ctx context.Context) error
	Addr() string
	Close() error
}

// newService builds the named service over the server's store, groups and registry.
func newService(name string, store *client.Client, reg registry.Registrar, listen string, log *slog.Logger) (service, error) {
	switch name {
	case shop.Customers:
		return customers.New(customers.Config{Store: store, Groups: store, Registrar: reg, Listen: listen, Logger: log})
	case shop.Inventory:
		return inventory.New(inventory.Config{Store: store, Groups: store, Registrar: reg, Listen: listen, Logger: log})
	case shop.Payments:
		return payments.New(payments.Config{Store: store, Groups: store, Registrar: reg, Listen: listen, Logger: log})
	case shop.Orders:
		return orders.New(orders.Config{Store: store, Groups: store, Registrar: reg, Listen: listen, Logger: log})
	}
	return nil, verity.Errorf(verity.NotFound, "shop-service", "no service %q (want one of %v)", name, shop.Services)
}

// run runs the service the flags name until ctx ends, then stops it gracefully.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, lookupEnv func(string) (string, bool)) (err error) {
	o, err := parse(args, stderr, lookupEnv)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil)).With("service", o.service)
	store, err := client.Dial(o.server, o.storeOpts)
	if err != nil {
		return usagef("--server %s: %v", o.server, err)
	}
	defer func() { err = errors.Join(err, store.Close()) }()
	o.regOpts.Logger = log
	reg, err := registry.NewClient(o.server, o.regOpts)
	if err != nil {
		return usagef("--server %s: %v", o.server, err)
	}
	defer func() { err = errors.Join(err, reg.Close()) }()

	svc, err := newService(o.service, store, reg, o.listen, log)
	if err != nil {
		return err
	}
	startCtx, cancel := context.WithTimeout(ctx, startTimeout)
	err = svc.Start(startCtx)
	cancel()
	if err != nil {
		if verity.KindOf(err) == verity.Unavailable && ctx.Err() == nil {
			return fmt.Errorf("start %s: cannot reach the server at %s (is it running? for development: verity dev --shop=false): %w", o.service, o.server, err)
		}
		return fmt.Errorf("start %s against %s: %w", o.service, o.server, err)
	}
	fmt.Fprintf(stdout, "%s listening on %s\n", o.service, svc.Addr())
	log.Info("running", "addr", svc.Addr(), "server", o.server)
	<-ctx.Done()
	log.Info("stopping")
	return svc.Close()
}
