package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/verity-dev/verity/examples/shop/loadgen"
)

const demoLoadAbout = `
Drives the shop reference system through its gateway's public API, as a load test: it
creates --customers customers and --products products (with ample stock), then sends a mix
of place-order (POST /api/orders, each with its own Idempotency-Key), get-order, order-details
and get-customer requests from --concurrency workers, for --duration or until --requests
requests are sent (whichever comes first; --duration defaults to 10s unless --requests is
given). It prints, per operation, the count, the 2xx answers, the 503s the gateway shed,
the errors by status, throughput, and latency p50/p90/p99/max; --json prints the whole
report, including every command the gateway acknowledged, as JSON.

Closed loop by default: a worker sends its next request when the last is answered, and
waits as a 503's Retry-After asks (at most 1s). With --rate the load is open loop: requests
are scheduled at that rate whatever the answers, and latency counts from each request's
scheduled time. An order shed, failed with 5xx or unanswered is sent again with the same
Idempotency-Key. It only targets the loopback interface (127.0.0.1, ::1, localhost).

Start the shop first with 'verity dev' (its gateway listens on 127.0.0.1:8080). Every
order the load places stays in the log of that server's --data DIR (./verity-data by
default), so load a scratch directory: 'verity dev --data /tmp/shop-load'.

Examples:
  verity demo load
  verity demo load --duration 30s --concurrency 32
  verity demo load --rate 200 --duration 1m --json > load.json
  verity demo load --requests 1000 --mix place-order=1 --gateway http://127.0.0.1:8090
`

// runDemo is `verity demo SUBCOMMAND`; load is the only subcommand.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("demo", "missing subcommand: want 'verity demo load'")
	}
	switch args[0] {
	case "load":
		return runDemoLoad(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		// load is all there is; its help is demo's.
		return runDemoLoad(ctx, []string{"--help"}, stdout, stderr)
	}
	return usagef("demo", "unknown subcommand %q: want 'verity demo load'", args[0])
}

// runDemoLoad is `verity demo load`.
func runDemoLoad(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, jsonOut, err := parseDemoLoadArgs(args, stdout)
	if err != nil {
		return err
	}
	bound := fmt.Sprintf("for %v", cfg.Duration)
	switch {
	case cfg.Duration == 0:
		bound = fmt.Sprintf("for %d requests", cfg.Requests)
	case cfg.Requests > 0:
		bound += fmt.Sprintf(" or %d requests", cfg.Requests)
	}
	fmt.Fprintf(stderr, "verity demo load: driving %s %s with %d workers (Ctrl-C stops early)\n", cfg.BaseURL, bound, cfg.Concurrency)
	rep, err := loadgen.Run(ctx, cfg)
	if err != nil {
		// An interrupted load still measured something worth printing.
		if !errors.Is(err, context.Canceled) || rep.Elapsed == 0 {
			return err
		}
		fmt.Fprintln(stderr, "verity demo load: interrupted; the report covers the load so far")
	}
	if jsonOut {
		return rep.WriteJSON(stdout)
	}
	return rep.WriteText(stdout)
}

// parseDemoLoadArgs turns the command line into a loadgen.Config.
func parseDemoLoadArgs(args []string, stdout io.Writer) (loadgen.Config, bool, error) {
	const cmd = "demo load"
	fs := newFlagSet(cmd, "verity demo load [flags]", demoLoadAbout)
	gatewayURL := fs.String("gateway", loadgen.DefaultBaseURL, "the gateway's `URL` (a loopback address)")
	concurrency := fs.Int("concurrency", loadgen.DefaultConcurrency, "`N` workers sending requests")
	duration := fs.Duration("duration", loadgen.DefaultDuration, "send load for `TIME` (setup excluded)")
	requests := fs.Int("requests", 0, "send `N` requests in all, retries included (with no --duration: no time limit)")
	rate := fs.Float64("rate", 0, "open loop: schedule `R` requests per second whatever the answers (0: closed loop)")
	customers := fs.Int("customers", loadgen.DefaultCustomers, "`N` customers to create at setup")
	products := fs.Int("products", loadgen.DefaultProducts, "`N` products to create at setup")
	mix := fs.String("mix", "", "the operations' weights, a comma-separated `LIST` of OP=WEIGHT over\n"+
		strings.Join(loadgen.Ops, ", ")+"; unnamed operations weigh 0\n(default "+mixString(loadgen.DefaultMix)+")")
	timeout := fs.Duration("timeout", loadgen.DefaultTimeout, "give up on a request after `TIME`")
	seed := fs.Uint64("seed", 0, "seed `N` of the random choices, to repeat a run's mix (0: random, printed in the report)")
	jsonOut := fs.Bool("json", false, "print the report as JSON, with the acknowledged commands")
	pos, err := fs.parse(args, stdout)
	if err != nil {
		return loadgen.Config{}, false, err
	}
	if len(pos) > 0 {
		return loadgen.Config{}, false, usagef(cmd, "unexpected arguments %q", pos)
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	cfg := loadgen.Config{
		BaseURL: *gatewayURL, Concurrency: *concurrency, Duration: *duration, Requests: *requests, Rate: *rate,
		Customers: *customers, Products: *products, Timeout: *timeout, Seed: *seed,
	}
	if given["requests"] && !given["duration"] {
		cfg.Duration = 0 // --requests alone bounds the run
	}
	// Zeros would quietly mean "the default" to loadgen; on the command line they are mistakes.
	switch {
	case *concurrency <= 0:
		return cfg, false, usagef(cmd, "--concurrency %d: want a positive number", *concurrency)
	case given["duration"] && *duration <= 0:
		return cfg, false, usagef(cmd, "--duration %v: want a positive time", *duration)
	case given["requests"] && *requests <= 0:
		return cfg, false, usagef(cmd, "--requests %d: want a positive number", *requests)
	case *customers <= 0 || *products <= 0:
		return cfg, false, usagef(cmd, "--customers and --products must be positive")
	case *timeout <= 0:
		return cfg, false, usagef(cmd, "--timeout %v: want a positive time", *timeout)
	}
	if *mix != "" {
		if cfg.Mix, err = parseMix(*mix); err != nil {
			return cfg, false, usagef(cmd, "--mix %q: %v", *mix, err)
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, false, usagef(cmd, "%v", err)
	}
	return cfg, *jsonOut, nil
}

// parseMix reads "place-order=4,get-order=3".
func parseMix(s string) (loadgen.Mix, error) {
	var m loadgen.Mix
	fields := map[string]*int{
		loadgen.OpPlaceOrder: &m.PlaceOrder, loadgen.OpGetOrder: &m.GetOrder,
		loadgen.OpOrderDetails: &m.OrderDetails, loadgen.OpGetCustomer: &m.GetCustomer,
	}
	for _, part := range strings.Split(s, ",") {
		op, weight, ok := strings.Cut(strings.TrimSpace(part), "=")
		p := fields[op]
		if !ok || p == nil {
			return m, fmt.Errorf("%q: want OP=WEIGHT with OP one of %s", part, strings.Join(loadgen.Ops, ", "))
		}
		w, err := strconv.Atoi(weight)
		if err != nil || w < 0 {
			return m, fmt.Errorf("%q: the weight is not a number of 0 or more", part)
		}
		*p = w
	}
	if m == (loadgen.Mix{}) {
		return m, errors.New("every weight is 0")
	}
	return m, nil
}

func mixString(m loadgen.Mix) string {
	return fmt.Sprintf("%s=%d,%s=%d,%s=%d,%s=%d", loadgen.OpPlaceOrder, m.PlaceOrder, loadgen.OpGetOrder, m.GetOrder,
		loadgen.OpOrderDetails, m.OrderDetails, loadgen.OpGetCustomer, m.GetCustomer)
}
