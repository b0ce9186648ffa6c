package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/verity-dev/verity/examples/shop/stack"
	"github.com/verity-dev/verity/server"
)

// runDev is `verity dev`: the newcomer's command. It serves the embedded store in
// ./verity-data on 127.0.0.1:2113 with no TLS and no authentication and, beside it, the
// platform with the shop reference system: the four shop services registered in the
// server's registry, the gateway with the shop's public API, and the consolidator with
// the shop's read models. It prints how to use them.
func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dev", "verity dev [flags]", `
Runs Verity for development: the server on the embedded store in --data, on a loopback
address, in insecure mode (plaintext, no authentication: every caller is an admin), and
beside it the shop reference system on the platform: the customers, orders, inventory and
payments services (registered in the server's service registry), the API gateway serving
the shop's public API on --gateway, and the consolidator building its SQL read models
(SQLite, in --data/views.db). The gateway's admin API and the read models are on --admin.
It prints the URLs and how to use them with curl, and stops cleanly on Ctrl-C. With
--shop=false only the server runs. For anything else use 'verity serve'.

Examples:
  verity dev
  verity dev --data /tmp/scratch --listen 127.0.0.1:2120 --gateway 127.0.0.1:8090 --admin 127.0.0.1:8091
  verity dev --shop=false`)
	data := dataFlag(fs)
	listen := fs.String("listen", server.DefaultListen, "loopback `ADDR` of the server")
	gatewayAddr := fs.String("gateway", stack.DefaultGatewayListen, "loopback `ADDR` of the gateway (the shop's public API)")
	adminAddr := fs.String("admin", stack.DefaultAdminListen, "loopback `ADDR` of the gateway's admin API and the read models")
	withShop := fs.Bool("shop", true, "run the shop reference system, the gateway and the consolidator beside the server")
	if _, err := fs.parse(args, stdout); err != nil {
		return err
	}
	for _, a := range []struct{ flag, addr string }{{"--listen", *listen}, {"--gateway", *gatewayAddr}, {"--admin", *adminAddr}} {
		if err := loopbackOnly(a.flag, a.addr); err != nil {
			return err
		}
	}
	cfg := server.Config{Data: *data, Listen: *listen, Insecure: true}
	return serve(ctx, cfg, stderr, func(srv *server.Server, logger *slog.Logger) (func() error, error) {
		addr := srv.Addr().String()
		if !*withShop {
			printDevHelp(stdout, addr, *data, nil)
			return func() error { return nil }, nil
		}
		st, err := stack.Start(ctx, stack.Config{
			Store: srv.Store(), Groups: srv.Groups(), Registry: srv.Registry(),
			GatewayListen: *gatewayAddr, AdminListen: *adminAddr, DataDir: *data,
			Logger: logger,
		})
		if err != nil {
			return nil, err
		}
		srv.SetPlatform(st.AdminHandler()) // the console's Services and Views pages
		printDevHelp(stdout, addr, *data, st)
		return func() error {
			srv.SetPlatform(nil)
			return st.Close()
		}, nil
	})
}

// loopbackOnly refuses a non-loopback address: dev mode has no authentication.
func loopbackOnly(flag, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return usagef("dev", "%s %q: want host:port", flag, addr)
	}
	if !isLoopbackListen(addr) {
		return usagef("dev", "%s %q: dev mode has no authentication, so it serves on loopback only; use 'verity serve' with TLS for %s", flag, addr, host)
	}
	return nil
}

func printDevHelp(w io.Writer, addr, data string, st *stack.Stack) {
	base := "http://" + addr
	fmt.Fprintf(w, `Verity is running on %[1]s (insecure dev mode, data in %[2]s). Ctrl-C stops it.

Append an event:
  curl -s -X POST %[1]s/streams/note-1 -H 'Content-Type: application/json' \
    -d '{"type":"NoteAdded","data":{"text":"hello"}}'

Read the stream back:
  curl -s %[1]s/streams/note-1

Follow the whole log live (server-sent events):
  curl -N '%[1]s/subscribe/$all'

Share a stream's events among consumers (a consumer group), then consume and ack them:
  go run ./cmd/verity groups create --server %[1]s note-1 readers
  go run ./cmd/verity groups consume --server %[1]s note-1 readers --count 1

Services registered in the registry:  curl -s %[1]s/registry/services
Web console: %[1]s/ui/
Health: %[1]s/health/ready   Metrics: %[1]s/metrics
gRPC clients (KurrentDB protocol): kurrentdb://%[3]s?tls=false
API reference: docs/http-api.md   Build a service on it: docs/tutorial.md
`, base, data, addr)
	if st == nil {
		return
	}
	gw, admin := st.GatewayURL(), st.AdminURL()
	fmt.Fprintf(w, `
The shop reference system runs on the platform (docs/shop.md):
  Gateway (public API):  %[1]s/api/...
  Gateway admin:         %[2]s/admin/routes
  Read models:           %[2]s/views
  Metrics (gateway, views): %[2]s/metrics

Try it:
  curl -s -X POST %[1]s/api/customers -d '{"name":"Ada","email":"ada@example.com"}'
  curl -s -X POST %[1]s/api/products -d '{"sku":"tea","name":"Green tea","priceCents":450,"stock":100}'
  curl -s -X POST %[1]s/api/orders -d '{"customerId":"CUSTOMER_ID","lines":[{"sku":"tea","qty":2}]}'
  curl -s %[1]s/api/orders/ORDER_ID/details
  curl -s %[2]s/views/orders_overview/tables/orders_overview
Drive traffic through the gateway:  go run ./cmd/verity demo load --gateway %[1]s
`, gw, admin)
}
