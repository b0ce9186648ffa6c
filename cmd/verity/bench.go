package main

import (
	"context"
	"flag"
	"io"
	"strconv"
	"strings"

	"github.com/verity-dev/verity/bench"
)

const benchAbout = `
Measure the embedded engine, and the same workloads on two peers: ownlog, a minimal file
log with group-commit fsync (the ceiling of this disk), and nats, NATS JetStream embedded
in-process with every write fsynced. Every event is 200 bytes of JSON; every append is
durable and carries an exact expected revision.

With --target server, measure the embedded engine against Verity over the network
instead: system verity-server is a 'verity serve --insecure' process on a free loopback
port (this binary, or --server-bin), reached over gRPC by the Go client, with a fresh data
directory per measurement; its log goes to a file shown if it fails. The workloads default
to append, replay and e2e, and no peer is measured unless --peers is given.

Workloads:

  append       W writers append batches of B events, each to its own share of 10,000
               streams, for --duration; latency per append.
  replay       read the whole log of --events events (10,000 streams of 100 events for the
               default 1,000,000) from its start, in pages of 1,000; latency per page.
  read-stream  W readers read whole 100-event streams of that log at random, for
               --duration; latency per stream read.
  e2e          one writer appends one event at a time at 500 events/s for --duration; a
               live subscriber of the whole log receives them; latency from the append's
               acknowledgement to the subscriber receiving the event.
  scale        build a store of --scale-streams streams and --scale-events events, close
               it, reopen it in a child process and serve random stream reads; reports the
               build rate as events_per_sec, reopen_s, and rss_mb, the child's peak RSS.
               Slow: not run unless named.
  projection   build a log of --events events, then project it from its start into a SQL
               view (per stream an upsert of a running total, per category a count) with
               package projection (batches of 1,000 events per transaction), into each of
               --projection-targets (sqlite; postgres with --postgres URL); and, as the peer
               TARGET-naive, with one transaction per event over the first --naive-events
               events. Only the projecting is timed; latency per transaction. Not run
               unless named.
  groups       persistent subscriptions (consumer groups): write --group-events events
               in streams of 100 of category grp, then, on a fresh group over that
               category from its start, until every event is handled or --duration
               passes: round-trip (1 consumer, MaxInFlight 1; latency from one delivery
               to the next, ack included), round-robin and pinned (4 consumers, default
               MaxInFlight 10; each consumer acks every event, one at a time). writers is
               the consumers, batch their MaxInFlight. On verity, verity-server and nats
               (durable pull consumers, explicit acks; no pinned); ownlog has no groups.
               Not run unless named.
  gateway      the shop (examples/shop/stack) over the embedded engine, its gateway on
               127.0.0.1; closed-loop clients, --duration per measurement, each beside
               a peer that does the same work without the gateway, run alternately:
               get (GET /api/customers/{id}; peer: straight to the service), details
               (the composed GET /api/orders/{id}/details; peer: its 3 calls made by the
               client), place-order (the command route; peer: sdk.SubmitCommand and
               AwaitCommandOutcome in-process), with 1 and 8 clients; overload (32 and
               128 clients against a limit of 8: admitted latency, shed fraction; peer:
               no limit). events_per_sec is then requests/s. Not run unless named.

Each result is one JSON line (system, workload, writers, batch, events_per_sec, p50_ms,
p99_ms, and workload-specific fields; for replay, batch is the page size, for read-stream
the events per read, for scale the events per stream per append) with --json, or a table
with the ratio of Verity to each peer (verity/ownlog 0.82x: Verity does 82% of ownlog's
events/s; for e2e the ratio is of median latencies) or of the server to the engine
(verity-server/verity 0.62x), and a progress line on stderr. Stores are written under
--data, each in a fresh subdirectory deleted afterwards.

Examples:
  verity bench
  verity bench --workload append --writers 1,64 --batch 1,10 --duration 10s
  verity bench --workload replay --events 1000000 --peers none --json
  verity bench --workload scale --scale-streams 1000000 --scale-events 10000000
  verity bench --target server --workload append --writers 64 --batch 1 --runs 3
  verity bench --workload projection --runs 3
  verity bench --workload groups --runs 3
  verity bench --target server --workload groups --peers nats --runs 3
  verity bench --workload gateway --runs 3
  verity bench --workload projection --postgres 'postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable'
`

// Values of --target.
const (
	targetEmbedded = "embedded"
	targetServer   = "server"
)

// runBench implements `verity bench`.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if bench.IsChild() {
		// Started by the scale workload to measure a reopened store on its own.
		return bench.RunChild(ctx, stdout)
	}
	opts, err := parseBenchArgs(args, stdout)
	if err != nil {
		return err
	}
	return bench.Run(ctx, opts, stdout, stderr)
}

// parseBenchArgs turns the command line into bench.Options.
func parseBenchArgs(args []string, stdout io.Writer) (bench.Options, error) {
	fs := newFlagSet("bench", "verity bench [flags]", benchAbout)
	workloads := fs.String("workload", strings.Join(bench.DefaultWorkloads, ","),
		"comma-separated `LIST` of workloads: "+strings.Join(bench.Workloads, ", "))
	writers := fs.String("writers", "1,8,64", "comma-separated `LIST` of concurrent writers (append) and readers (read-stream)")
	batches := fs.String("batch", "1,10", "comma-separated `LIST` of events per append (append)")
	duration := fs.Duration("duration", bench.DefaultDuration, "`TIME` each append, read-stream and e2e measurement runs")
	peers := fs.String("peers", strings.Join(bench.Peers, ","), "comma-separated `LIST` of peers to compare with ("+strings.Join(bench.Peers, ", ")+"), or none")
	jsonOut := fs.Bool("json", false, "print JSON lines only, on stdout")
	data := fs.String("data", "", "scratch `DIR` for the stores (default a temporary directory)")
	events := fs.Int("events", bench.DefaultEvents, "`N` events in the log of replay and read-stream, a multiple of 100")
	runs := fs.Int("runs", 1, "repeat each measurement `N` times and report the median")
	scaleStreams := fs.Int("scale-streams", bench.DefaultScaleStreams, "`N` streams in the scale store")
	scaleEvents := fs.Int("scale-events", bench.DefaultScaleEvents, "`N` events in the scale store, a multiple of --scale-streams")
	scaleServe := fs.Duration("scale-serve", bench.DefaultScaleServe, "`TIME` the reopened scale store serves reads before its peak RSS is read")
	e2eRate := fs.Int("e2e-rate", bench.DefaultE2ERate, "`N` events per second the e2e writer appends")
	target := fs.String("target", targetEmbedded, "`WHAT` to measure: "+targetEmbedded+" (the engine, against the peers) or "+
		targetServer+" (the engine against verity-server, Verity over gRPC)")
	projTargets := fs.String("projection-targets", "", "comma-separated `LIST` of databases the projection workload projects into: "+
		strings.Join(bench.ProjectionTargets, ", ")+" (default sqlite, and postgres with --postgres)")
	pgURL := fs.String("postgres", "", "PostgreSQL `URL` of the projection workload's postgres target")
	naiveEvents := fs.Int("naive-events", bench.DefaultNaiveEvents, "`N` events the naive projection (one transaction per event) applies")
	groupEvents := fs.Int("group-events", bench.DefaultGroupEvents, "`N` events the groups workload writes before it measures, a multiple of 100")
	serverBin := fs.String("server-bin", "", "verity `BINARY` that --target server starts as 'BINARY serve' (default this one)")
	pos, err := fs.parse(args, stdout)
	if err != nil {
		return bench.Options{}, err
	}
	if len(pos) > 0 {
		return bench.Options{}, usagef("bench", "unexpected arguments %q", pos)
	}
	opts := bench.Options{
		Workloads:    splitList(*workloads),
		Duration:     *duration,
		JSON:         *jsonOut,
		DataDir:      *data,
		Events:       *events,
		Runs:         *runs,
		ScaleStreams: *scaleStreams,
		ScaleEvents:  *scaleEvents,
		ScaleServe:   *scaleServe,
		E2ERate:      *e2eRate,
		Systems:      []string{"verity"},

		ProjectionTargets: splitList(*projTargets),
		PostgresURL:       *pgURL,
		NaiveEvents:       *naiveEvents,
		GroupEvents:       *groupEvents,
	}
	if opts.Writers, err = splitInts("writers", *writers); err != nil {
		return bench.Options{}, err
	}
	if opts.Batches, err = splitInts("batch", *batches); err != nil {
		return bench.Options{}, err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	switch *target {
	case targetEmbedded:
	case targetServer:
		opts.Systems = append(opts.Systems, "verity-server")
		if !given["workload"] {
			opts.Workloads = bench.ServerWorkloads
		}
	default:
		return bench.Options{}, usagef("bench", "--target %q: want %s or %s", *target, targetEmbedded, targetServer)
	}
	if *serverBin != "" {
		if *target != targetServer {
			return bench.Options{}, usagef("bench", "--server-bin is only used with --target %s", targetServer)
		}
		opts.ServerCommand = []string{*serverBin, "serve"}
	}
	// The server target compares Verity with itself; peers join only when asked for.
	if p := splitList(*peers); !(len(p) == 1 && p[0] == "none") && (*target == targetEmbedded || given["peers"]) {
		opts.Systems = append(opts.Systems, p...)
	}
	// Flags the bench package would read as "default" must not pass unnoticed.
	switch {
	case len(opts.Workloads) == 0:
		return bench.Options{}, usagef("bench", "--workload: empty list")
	case *duration <= 0:
		return bench.Options{}, usagef("bench", "--duration %v: want a positive time", *duration)
	case *events <= 0:
		return bench.Options{}, usagef("bench", "--events %d: want a positive number", *events)
	case *runs <= 0:
		return bench.Options{}, usagef("bench", "--runs %d: want a positive number", *runs)
	case *scaleStreams <= 0 || *scaleEvents <= 0:
		return bench.Options{}, usagef("bench", "--scale-streams and --scale-events must be positive")
	case *scaleServe <= 0:
		return bench.Options{}, usagef("bench", "--scale-serve %v: want a positive time", *scaleServe)
	case *e2eRate <= 0:
		return bench.Options{}, usagef("bench", "--e2e-rate %d: want a positive number", *e2eRate)
	case *naiveEvents <= 0:
		return bench.Options{}, usagef("bench", "--naive-events %d: want a positive number", *naiveEvents)
	case *groupEvents <= 0:
		return bench.Options{}, usagef("bench", "--group-events %d: want a positive number", *groupEvents)
	}
	if err := opts.Validate(); err != nil {
		return bench.Options{}, usagef("bench", "%v", err)
	}
	return opts, nil
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func splitInts(flagName, s string) ([]int, error) {
	list := splitList(s)
	if len(list) == 0 {
		return nil, usagef("bench", "--%s: empty list", flagName)
	}
	out := make([]int, len(list))
	for i, v := range list {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, usagef("bench", "--%s: %q is not a positive number", flagName, v)
		}
		out[i] = n
	}
	return out, nil
}
