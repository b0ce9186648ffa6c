package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verity-dev/verity/examples/shop/loadgen"
)

// fakeGateway answers the shop's public API just enough for a load run: setup, orders
// acknowledged 202 with a status URL, and reads.
func fakeGateway(t *testing.T) (url string, orders *atomic.Int64) {
	t.Helper()
	orders = new(atomic.Int64)
	var mu sync.Mutex
	customers := 0
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/customers", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		customers++
		id := customers
		mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"customerId":"c%d"}`, id)
	})
	mux.HandleFunc("POST /api/products", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusCreated) })
	mux.HandleFunc("POST /api/orders", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		orders.Add(1)
		w.Header().Set("Location", "/api/commands/ordercommand/"+r.Header.Get("Idempotency-Key"))
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("GET /api/customers/{id}", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{}`) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL, orders
}

func TestDemoHelpExplainsEveryFlag(t *testing.T) {
	for _, args := range [][]string{{"load", "--help"}, {"--help"}} {
		var stdout bytes.Buffer
		err := runDemo(t.Context(), args, &stdout, &bytes.Buffer{})
		if !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("%v returned %v, want flag.ErrHelp", args, err)
		}
		for _, want := range []string{"Usage:", "verity demo load", "Examples:", "--gateway URL", "--concurrency N",
			"--duration TIME", "--requests N", "--rate R", "--json", "--customers N", "--products N", "--mix LIST",
			"--timeout TIME", "--seed N", "Idempotency-Key", "Retry-After", "127.0.0.1:8080", "loopback"} {
			if !strings.Contains(stdout.String(), want) {
				t.Errorf("%v: help does not mention %q:\n%s", args, want, stdout.String())
			}
		}
	}
}

func TestDemoLoadParsesFlagsIntoAConfig(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want func(loadgen.Config, bool) bool
	}{
		{"defaults drive the local gateway for 10s with 8 workers", nil, func(c loadgen.Config, js bool) bool {
			return c.BaseURL == "http://127.0.0.1:8080" && c.Duration == 10*time.Second && c.Requests == 0 &&
				c.Concurrency == 8 && c.Rate == 0 && c.Mix == (loadgen.Mix{}) && !js
		}},
		{"--requests alone lifts the time limit", []string{"--requests", "500"}, func(c loadgen.Config, _ bool) bool {
			return c.Requests == 500 && c.Duration == 0
		}},
		{"--requests with --duration keeps both", []string{"--requests", "500", "--duration", "3s"}, func(c loadgen.Config, _ bool) bool {
			return c.Requests == 500 && c.Duration == 3*time.Second
		}},
		{"every flag is read", []string{"--gateway", "http://localhost:9000", "--concurrency", "3", "--rate", "50.5",
			"--customers", "4", "--products", "5", "--mix", "place-order=2, get-customer=1", "--timeout", "2s",
			"--seed", "42", "--json"}, func(c loadgen.Config, js bool) bool {
			return c.BaseURL == "http://localhost:9000" && c.Concurrency == 3 && c.Rate == 50.5 && c.Customers == 4 &&
				c.Products == 5 && c.Mix == (loadgen.Mix{PlaceOrder: 2, GetCustomer: 1}) && c.Timeout == 2*time.Second &&
				c.Seed == 42 && js
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, js, err := parseDemoLoadArgs(tt.args, &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			if !tt.want(c, js) {
				t.Errorf("config %+v, json %v", c, js)
			}
		})
	}
}

func TestDemoRejectsBadCommandLines(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no subcommand", nil, "missing subcommand"},
		{"an unknown subcommand", []string{"fly"}, `unknown subcommand "fly"`},
		{"a gateway off loopback", []string{"load", "--gateway", "http://shop.example.com"}, `host "shop.example.com" is not a loopback address`},
		{"zero workers", []string{"load", "--concurrency", "0"}, "--concurrency 0"},
		{"zero requests", []string{"load", "--requests", "0"}, "--requests 0"},
		{"a negative rate", []string{"load", "--rate", "-1"}, "rate -1"},
		{"an unknown operation in the mix", []string{"load", "--mix", "buy=1"}, `"buy=1": want OP=WEIGHT`},
		{"a mix of zeros", []string{"load", "--mix", "get-order=0"}, "every weight is 0"},
		{"an argument", []string{"load", "extra"}, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout bytes.Buffer
			err := runDemo(t.Context(), tt.args, &stdout, &bytes.Buffer{})
			var usage *usageError
			if !errors.As(err, &usage) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want a usage error containing %q", err, tt.want)
			}
			if stdout.Len() > 0 {
				t.Errorf("a usage error wrote to stdout: %q", stdout.String())
			}
		})
	}
	var stderr bytes.Buffer
	if code := run(t.Context(), []string{"demo"}, &bytes.Buffer{}, &stderr); code != exitUsage ||
		!strings.Contains(stderr.String(), "verity demo --help") {
		t.Errorf("verity demo: exit %d, stderr %q", code, stderr.String())
	}
}

func TestDemoLoadPrintsATableOrJSON(t *testing.T) {
	url, orders := fakeGateway(t)
	args := []string{"load", "--gateway", url, "--requests", "40", "--concurrency", "2", "--mix", "place-order=1,get-customer=1"}

	var stdout, stderr bytes.Buffer
	if err := runDemo(t.Context(), args, &stdout, &stderr); err != nil {
		t.Fatalf("%v (stderr %q)", err, stderr.String())
	}
	for _, want := range []string{"place-order", "get-customer", "total", "p50", "p99", "req/s", "commands acknowledged: "} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, stdout.String())
		}
	}
	if !strings.Contains(stderr.String(), "driving "+url+" for 40 requests with 2 workers") {
		t.Errorf("stderr %q", stderr.String())
	}

	before := orders.Load()
	stdout.Reset()
	if err := runDemo(t.Context(), append(args, "--json"), &stdout, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	var rep loadgen.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("%v in %s", err, stdout.String())
	}
	placed := orders.Load() - before
	if rep.Total.Count != 40 || int64(len(rep.Acked)) != placed || placed == 0 ||
		!strings.HasPrefix(rep.Acked[0], "ordercommand/") {
		t.Errorf("report of %d requests acks %d commands (e.g. %q); the gateway took %d orders",
			rep.Total.Count, len(rep.Acked), rep.Acked, placed)
	}
}
