package gateway_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/gateway"
)

func TestParseReadsTheDocumentedShape(t *testing.T) {
	cfg := parse(t, `
defaults: {timeout: 5s, retries: 2, maxConcurrent: 512, balance: round-robin,
           breaker: {failures: 5, openFor: 10s, halfOpenRequests: 1}}
commands: {statusPath: /api/commands}
routes:
  - {name: customers, match: "/api/customers/", service: customers, stripPrefix: /api, timeout: 2s, retries: 2, maxConcurrent: 100}
  - name: order-details
    match: "GET /api/orders/{id}/details"
    compose:
      mode: sequence
      partial: true
      calls:
        - {name: order, service: orders, path: "/orders/{id}"}
        - {name: customer, service: customers, path: "/customers/{order.customerId}"}
        - {name: payment, service: payments, path: "/payments/{id}", optional: true}
  - name: place-order
    match: "POST /api/orders"
    command: {category: ordercommand, type: PlaceOrder, await: 2s}
`)
	if err := cfg.Validate(); err != nil {
		t.Fatalf("validate: %v", err)
	}
	if cfg.Defaults.Breaker.OpenFor != 10*time.Second || cfg.Routes[0].Timeout != 2*time.Second ||
		*cfg.Routes[0].Retries != 2 || cfg.Routes[2].Command.Await != 2*time.Second ||
		len(cfg.Routes[1].Compose.Calls) != 3 || !cfg.Routes[1].Compose.Calls[2].Optional {
		t.Errorf("parsed %+v", cfg)
	}
	// What Marshal writes, Parse reads back the same.
	data, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back := parse(t, string(data))
	if back.Routes[1].Compose.Calls[1].Path != "/customers/{order.customerId}" || back.Defaults.Timeout != 5*time.Second {
		t.Errorf("round trip through %s lost values", data)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct{ name, yaml, field string }{
		{"an unknown field", `routes: [{name: a, match: "/", service: s, retry: 2}]`, "retry"},
		{"a duration without unit", `defaults: {timeout: 5}`, "line 1: cannot unmarshal !!int `5` into time.Duration"},
		{"a negative timeout", `defaults: {timeout: -1s}`, "defaults.timeout"},
		{"an unknown balance", `defaults: {balance: random}`, "defaults.balance"},
		{"a route without a name", `routes: [{match: "/", service: s}]`, "routes[0].name"},
		{"two routes of one name", `routes: [{name: a, match: "/a", service: s}, {name: a, match: "/b", service: s}]`, "routes[1].name"},
		{"a bad pattern", `routes: [{name: a, match: "GET", service: s}]`, "routes[0].match"},
		{"conflicting patterns", `routes: [{name: a, match: "/x/", service: s}, {name: b, match: "/x/", service: t}]`, "routes[1].match"},
		{"two kinds of route", `routes: [{name: a, match: "/", service: s, command: {category: c, type: T}}]`, "routes[0]: route \"a\" must have exactly one"},
		{"no kind of route", `routes: [{name: a, match: "/"}]`, "routes[0]"},
		{"a bad service name", `routes: [{name: a, match: "/", service: Bad_Name}]`, "routes[0].service"},
		{"retries out of range", `routes: [{name: a, match: "/", service: s, retries: 99}]`, "routes[0].retries"},
		{"a bad command category", `routes: [{name: a, match: "/", command: {category: "a-b", type: T}}]`, "routes[0].command.category"},
		{"a composition without calls", `routes: [{name: a, match: "/", compose: {calls: []}}]`, "routes[0].compose.calls"},
		{"an unknown wildcard", `routes: [{name: a, match: "/o/{id}", compose: {calls: [{name: x, service: s, path: "/x/{nope}"}]}}]`, "routes[0].compose.calls[0].path"},
		{"an answer used in parallel", `routes: [{name: a, match: "/o/{id}", compose: {calls: [{name: x, service: s, path: "/x/{id}"}, {name: y, service: s, path: "/y/{x.id}"}]}}]`, "routes[0].compose.calls[1].path"},
		{"a later answer used in a sequence", `routes: [{name: a, match: "/o/{id}", compose: {mode: sequence, calls: [{name: x, service: s, path: "/x/{y.id}"}, {name: y, service: s, path: "/y"}]}}]`, "routes[0].compose.calls[0].path"},
		{"a reserved call name", `routes: [{name: a, match: "/", compose: {calls: [{name: errors, service: s, path: "/"}]}}]`, "routes[0].compose.calls[0].name"},
		{"a bad status path", `commands: {statusPath: "api/"}`, "commands.statusPath"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := gateway.Parse([]byte(tc.yaml))
			if err == nil {
				err = cfg.Validate()
			}
			if err == nil || !errors.Is(err, verity.ErrInvalid) || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %v, want Invalid naming %q", err, tc.field)
			}
		})
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte(`routes: [{name: a, match: "/", service: s, timeout: 250ms}]`), 0o644)
	cfg, err := gateway.LoadFile(good)
	if err != nil || cfg.Routes[0].Timeout != 250*time.Millisecond {
		t.Errorf("LoadFile: %+v, %v", cfg, err)
	}
	json := filepath.Join(dir, "c.json")
	os.WriteFile(json, []byte(`{"routes": [{"name": "a", "match": "/", "service": "s", "timeout": "1s"}]}`), 0o644)
	if cfg, err := gateway.LoadFile(json); err != nil || cfg.Routes[0].Timeout != time.Second {
		t.Errorf("LoadFile of JSON: %+v, %v", cfg, err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(`routes: [{name: a, match: "/"}]`), 0o644)
	if _, err := gateway.LoadFile(bad); !errors.Is(err, verity.ErrInvalid) || !strings.Contains(err.Error(), "bad.yaml") {
		t.Errorf("LoadFile of a bad config: %v, want Invalid naming the file", err)
	}
	if _, err := gateway.LoadFile(filepath.Join(dir, "none.yaml")); !errors.Is(err, verity.ErrNotFound) {
		t.Errorf("LoadFile of a missing file: %v, want NotFound", err)
	}
}

func TestNewRefuses(t *testing.T) {
	e := newEnv(t)
	cmd := parse(t, `routes: [{name: p, match: "POST /orders", command: {category: ordercommand, type: PlaceOrder}}]`)
	if _, err := gateway.New(cmd, gateway.Options{Source: e.reg, Logger: quiet}); !errors.Is(err, verity.ErrInvalid) ||
		!strings.Contains(err.Error(), "routes[0].command") {
		t.Errorf("a command route without a store: %v, want Invalid naming routes[0].command", err)
	}
	if _, err := gateway.New(gateway.Config{}, gateway.Options{}); !errors.Is(err, verity.ErrInvalid) {
		t.Errorf("no source: %v, want Invalid", err)
	}
}
