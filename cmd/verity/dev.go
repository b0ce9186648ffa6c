package main

import (
	"context"
	"fmt"
	"io"
	"net"

	"github.com/verity-dev/verity/server"
)

// runDev is `verity dev`: the newcomer's command. It serves the embedded store in
// ./verity-data on 127.0.0.1:2113 with no TLS and no authentication, and prints how to use it.
func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dev", "verity dev [flags]", `
Runs Verity for development: the server on the embedded store in --data, on a loopback
address, in insecure mode (plaintext, no authentication: every caller is an admin). It prints
how to append and read with curl, and stops cleanly on Ctrl-C. For anything else use
'verity serve'.

Examples:
  verity dev
  verity dev --data /tmp/scratch --listen 127.0.0.1:2120`)
	data := dataFlag(fs)
	listen := fs.String("listen", server.DefaultListen, "loopback `ADDR` to serve on")
	if _, err := fs.parse(args, stdout); err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		return usagef("dev", "--listen %q: want host:port", *listen)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return usagef("dev", "--listen %q: dev mode has no authentication, so it serves on loopback only; use 'verity serve' with TLS for %s", *listen, host)
	}
	cfg := server.Config{Data: *data, Listen: *listen, Insecure: true}
	return serve(ctx, cfg, stderr, func(addr string) { printDevHelp(stdout, addr, *data) })
}

func printDevHelp(w io.Writer, addr, data string) {
	base := "http://" + addr
	fmt.Fprintf(w, `Verity is running on %[1]s (insecure dev mode, data in %[2]s). Ctrl-C stops it.

Append an event:
  curl -s -X POST %[1]s/streams/order-1 -H 'Content-Type: application/json' \
    -d '{"type":"OrderPlaced","data":{"total":42}}'

Read the stream back:
  curl -s %[1]s/streams/order-1

Follow the whole log live (server-sent events):
  curl -N '%[1]s/subscribe/$all'

Share a stream's events among consumers (a consumer group), then consume and ack them:
  go run ./cmd/verity groups create --server %[1]s order-1 billing
  go run ./cmd/verity groups consume --server %[1]s order-1 billing --count 1

Health: %[1]s/health/ready   Metrics: %[1]s/metrics
gRPC clients (KurrentDB protocol): kurrentdb://%[3]s?tls=false
API reference: docs/http-api.md   Build a service on it: docs/tutorial.md
`, base, data, addr)
}
