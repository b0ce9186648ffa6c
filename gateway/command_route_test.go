package gateway_test

import (
	"context"
	"strings"
	"testing"

	"github.com/verity-dev/verity"
)

func TestCommandRouteThroughTheGateway(t *testing.T) {
	e := newEnv(t)
	_, url := e.gateway(parse(t, `
commands: {statusPath: /api/commands}
routes:
  - {name: place-order, match: "POST /api/orders", command: {category: ordercommand, type: PlaceOrder}}
`))
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	a := e.do("POST", url+"/api/orders", `{"customerId":"c1","lines":[]}`,
		"Content-Type", "application/json", "Traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	if a.status != 202 {
		t.Fatalf("status %d %s, want 202", a.status, a.body)
	}
	id := a.header.Get("X-Command-Id")
	evs, err := e.store.ReadStream(context.Background(), "ordercommand-"+id, verity.ReadStreamOptions{})
	if err != nil || len(evs) != 1 {
		t.Fatalf("command stream: %d events, %v", len(evs), err)
	}
	// The command records the gateway's span, set before the route ran: the client's trace.
	if md := string(evs[0].Metadata); !strings.Contains(md, traceID) || strings.Contains(md, "00f067aa0ba902b7") {
		t.Errorf("command metadata %s: want the trace %s with the gateway's span", md, traceID)
	}
	if s := e.do("GET", url+"/api/commands/ordercommand/"+id, ""); s.status == 404 || s.status >= 500 {
		t.Errorf("status route: %d %s", s.status, s.body)
	}
}
