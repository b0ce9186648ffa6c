package shop_test

import (
	"os"
	"testing"

	"github.com/verity-dev/verity/examples/shop"
	"github.com/verity-dev/verity/gateway"
)

// gateway.yaml parses as a gateway config and routes only to the shop's services.
func TestGatewayConfig(t *testing.T) {
	data, err := os.ReadFile("gateway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := gateway.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, s := range shop.Services {
		known[s] = true
	}
	commands := 0
	for _, r := range cfg.Routes {
		if r.Service != "" && !known[r.Service] {
			t.Errorf("route %s goes to unknown service %q", r.Name, r.Service)
		}
		if r.Compose != nil {
			for _, c := range r.Compose.Calls {
				if !known[c.Service] {
					t.Errorf("route %s calls unknown service %q", r.Name, c.Service)
				}
			}
		}
		if r.Command != nil {
			commands++
			if r.Command.Category != "ordercommand" || r.Command.Type != "PlaceOrder" {
				t.Errorf("route %s: command %+v, want ordercommand/PlaceOrder", r.Name, r.Command)
			}
		}
	}
	if commands != 1 {
		t.Errorf("%d command routes, want the one of PlaceOrder", commands)
	}
}
