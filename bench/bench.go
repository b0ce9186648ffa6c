package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// Workload names, as given to --workload and reported in the "workload" field.
const (
	WorkloadAppend     = "append"
	WorkloadReplay     = "replay"
	WorkloadReadStream = "read-stream"
	WorkloadE2E        = "e2e"
	WorkloadScale      = "scale"
	WorkloadProjection = "projection"
	WorkloadGroups     = "groups"
)

// Workloads lists every workload; DefaultWorkloads those run when none is named (scale is
// left out: it takes a long time; projection too: it measures SQL databases, not stores;
// groups too: it measures consumer groups, which ownlog has not).
var (
	Workloads        = []string{WorkloadAppend, WorkloadReplay, WorkloadReadStream, WorkloadE2E, WorkloadScale, WorkloadProjection, WorkloadGroups, WorkloadGateway}
	DefaultWorkloads = []string{WorkloadAppend, WorkloadReplay, WorkloadReadStream, WorkloadE2E}
	// ServerWorkloads are those run when the embedded engine is compared with Verity
	// over the network (`verity bench --target server`).
	ServerWorkloads = []string{WorkloadAppend, WorkloadReplay, WorkloadE2E}
	// Peers are the systems Verity is compared with.
	Peers = []string{systemOwnlog, systemNATS}
)

// Options configure a benchmark run. The zero value of every field means its default.
type Options struct {
	// Systems to measure, in report order: "verity" (the embedded engine),
	// "verity-server" (a `verity serve` process reached over gRPC by the Go client),
	// "ownlog", "nats". Default verity, ownlog and nats.
	Systems []string
	// Workloads to run. Default DefaultWorkloads.
	Workloads []string
	// Writers are the concurrent writers of append (and readers of read-stream) to try.
	// Default 1, 8, 64.
	Writers []int
	// Batches are the events per append to try in the append workload. Default 1, 10.
	Batches []int
	// Duration of each append, read-stream and e2e measurement. Default 5s.
	Duration time.Duration
	// Events in the log that replay and read-stream read, in streams of 100 events; a
	// multiple of 100. Default 1,000,000.
	Events int
	// Runs repeats each measurement and reports the median of each number. Default 1.
	Runs int
	// DataDir is where the stores are written, each in a fresh subdirectory removed
	// afterwards. Default a temporary directory, removed afterwards.
	DataDir string
	// JSON prints JSON lines only (no table, no progress).
	JSON bool

	// ScaleStreams and ScaleEvents size the store of the scale workload. Default 1,000,000
	// streams and 10,000,000 events; ScaleEvents must be a multiple of ScaleStreams.
	ScaleStreams int
	ScaleEvents  int
	// ScaleServe is how long the scale workload serves random reads before it reads the
	// peak RSS. Default 5s.
	ScaleServe time.Duration
	// ChildCommand starts this program again in the mode in which it calls RunChild when
	// the environment variable ChildEnv is set (the scale workload measures the reopened
	// store's RSS in a process of its own). Default: this executable with the argument
	// "bench".
	ChildCommand []string
	// ServerCommand starts a Verity server: the bench appends --insecure, --listen
	// 127.0.0.1:PORT (a free port), --data DIR and --log-level warn, and stops it with
	// SIGTERM. Default: this executable with the argument "serve".
	ServerCommand []string

	// E2ERate is the events per second the e2e writer appends. Default 500.
	E2ERate int

	// ProjectionTargets are the SQL databases the projection workload projects into:
	// "sqlite", "postgres". Default sqlite, and postgres too when PostgresURL is set. The
	// Systems are not used by that workload.
	ProjectionTargets []string
	// PostgresURL is the PostgreSQL the projection workload uses (each measurement in a
	// schema of its own, dropped afterwards).
	PostgresURL string
	// NaiveEvents is how many events of the log the naive projection applies.
	// Default DefaultNaiveEvents.
	NaiveEvents int

	// GroupEvents is how many events the groups workload writes before it measures, in
	// streams of 100 events; a multiple of 100. Default DefaultGroupEvents, or Events
	// when that is fewer.
	GroupEvents int
}

// Defaults.
const (
	DefaultDuration     = 5 * time.Second
	DefaultEvents       = 1_000_000
	DefaultScaleStreams = 1_000_000
	DefaultScaleEvents  = 10_000_000
	DefaultScaleServe   = 5 * time.Second
	DefaultE2ERate      = 500
)

// Fixed shape of the workloads.
const (
	appendStreams   = 10_000 // streams the append writers share out
	logStreamEvents = 100    // events per stream of the replay log
	logChunk        = 10     // events per append while building the replay log
	logWriters      = 16     // writers building the replay log
	replayPage      = 1000   // events per ReadAll page; replay latency is per page
	scaleWriters    = 64     // writers building the scale store
	scaleChunk      = 100    // most events per append while building the scale store
	scaleReaders    = 4      // concurrent readers while the scale store serves
)

func (o Options) withDefaults() Options {
	if len(o.Systems) == 0 {
		o.Systems = append([]string{systemVerity}, Peers...)
	}
	if len(o.Workloads) == 0 {
		o.Workloads = DefaultWorkloads
	}
	if len(o.Writers) == 0 {
		o.Writers = []int{1, 8, 64}
	}
	if len(o.Batches) == 0 {
		o.Batches = []int{1, 10}
	}
	if o.Duration == 0 {
		o.Duration = DefaultDuration
	}
	if o.Events == 0 {
		o.Events = DefaultEvents
	}
	if o.Runs == 0 {
		o.Runs = 1
	}
	if o.ScaleStreams == 0 {
		o.ScaleStreams = DefaultScaleStreams
	}
	if o.ScaleEvents == 0 {
		o.ScaleEvents = DefaultScaleEvents
	}
	if o.ScaleServe == 0 {
		o.ScaleServe = DefaultScaleServe
	}
	if o.E2ERate == 0 {
		o.E2ERate = DefaultE2ERate
	}
	if len(o.ProjectionTargets) == 0 {
		o.ProjectionTargets = []string{TargetSQLite}
		if o.PostgresURL != "" {
			o.ProjectionTargets = append(o.ProjectionTargets, TargetPostgres)
		}
	}
	if o.NaiveEvents == 0 {
		o.NaiveEvents = DefaultNaiveEvents
	}
	if o.GroupEvents == 0 {
		o.GroupEvents = min(DefaultGroupEvents, o.Events)
	}
	if len(o.ServerCommand) == 0 {
		if exe, err := os.Executable(); err == nil {
			o.ServerCommand = []string{exe, "serve"}
		}
	}
	return o
}

// Validate names the first option that is out of range.
func (o Options) Validate() error {
	o = o.withDefaults()
	for _, s := range o.Systems {
		if s != systemVerity && s != systemServer && !slices.Contains(Peers, s) {
			return fmt.Errorf("unknown system %q (want verity, %s, %s)", s, systemServer, strings.Join(Peers, ", "))
		}
	}
	if slices.Contains(o.Systems, systemServer) && slices.Contains(o.Workloads, WorkloadScale) {
		// scale reopens the store in a child process to read its RSS: a server's RSS is
		// another measurement.
		return fmt.Errorf("workload %s measures an embedded store; it cannot run on %s", WorkloadScale, systemServer)
	}
	for _, t := range o.ProjectionTargets {
		if !slices.Contains(ProjectionTargets, t) {
			return fmt.Errorf("unknown projection target %q (want %s)", t, strings.Join(ProjectionTargets, ", "))
		}
		if t == TargetPostgres && o.PostgresURL == "" {
			return fmt.Errorf("projection target %s needs a PostgreSQL URL", TargetPostgres)
		}
	}
	if o.NaiveEvents < 1 {
		return fmt.Errorf("naive events %d below 1", o.NaiveEvents)
	}
	for _, w := range o.Workloads {
		if !slices.Contains(Workloads, w) {
			return fmt.Errorf("unknown workload %q (want one of %s)", w, strings.Join(Workloads, ", "))
		}
	}
	for _, w := range o.Writers {
		if w < 1 || w > appendStreams {
			return fmt.Errorf("writers %d out of range [1, %d]", w, appendStreams)
		}
	}
	for _, b := range o.Batches {
		if b < 1 || b > 10_000 {
			return fmt.Errorf("batch %d out of range [1, 10000]", b)
		}
	}
	switch {
	case o.Duration < 0:
		return fmt.Errorf("duration %v is negative", o.Duration)
	case o.Events < logStreamEvents || o.Events%logStreamEvents != 0:
		return fmt.Errorf("events %d is not a positive multiple of %d", o.Events, logStreamEvents)
	case o.Runs < 1:
		return fmt.Errorf("runs %d below 1", o.Runs)
	case o.ScaleStreams < 1:
		return fmt.Errorf("scale streams %d below 1", o.ScaleStreams)
	case o.ScaleEvents < o.ScaleStreams || o.ScaleEvents%o.ScaleStreams != 0:
		return fmt.Errorf("scale events %d is not a positive multiple of scale streams %d", o.ScaleEvents, o.ScaleStreams)
	case o.ScaleServe < 0:
		return fmt.Errorf("scale serve time %v is negative", o.ScaleServe)
	case o.E2ERate < 1 || o.E2ERate > 100_000:
		return fmt.Errorf("e2e rate %d out of range [1, 100000]", o.E2ERate)
	case o.GroupEvents < groupPerStream || o.GroupEvents%groupPerStream != 0:
		return fmt.Errorf("group events %d is not a positive multiple of %d", o.GroupEvents, groupPerStream)
	}
	return nil
}

// Result is one measurement, printed as one JSON line.
type Result struct {
	System       string  `json:"system"`
	Workload     string  `json:"workload"`
	Writers      int     `json:"writers"`
	Batch        int     `json:"batch"`
	EventsPerSec float64 `json:"events_per_sec"`
	P50ms        float64 `json:"p50_ms"`
	P99ms        float64 `json:"p99_ms"`
	// Events is how many events were appended, read or delivered; ElapsedS in how long.
	Events   int64   `json:"events"`
	ElapsedS float64 `json:"elapsed_s"`
	// Ops is how many operations the latencies are of: appends, pages, stream reads, events.
	Ops int64 `json:"ops"`
	// Workload-specific.
	Streams  int     `json:"streams,omitempty"`  // append, read-stream, scale, groups
	RateEPS  int     `json:"rate,omitempty"`     // e2e: the writer's pace, events/s
	PageSize int     `json:"page,omitempty"`     // replay: events per page
	BuildS   float64 `json:"build_s,omitempty"`  // scale: time to write the store
	ReopenS  float64 `json:"reopen_s,omitempty"` // scale: time to reopen it
	RSSMB    float64 `json:"rss_mb,omitempty"`   // scale: peak RSS of the reopened store serving reads
	// groups: which measurement (GroupRoundTrip, GroupRoundRobin, GroupPinned); writers is
	// then the number of consumers and batch their MaxInFlight.
	Strategy string `json:"strategy,omitempty"`
	// gateway: the fraction of requests shed with 503, the slowest admitted request, and
	// the gateway's concurrency limit.
	Shed  float64 `json:"shed,omitempty"`
	MaxMs float64 `json:"max_ms,omitempty"`
	Limit int     `json:"limit,omitempty"`
	Runs  int     `json:"runs"`
}

// Run runs the benchmark: every workload on every system, printing JSON lines (opts.JSON)
// or, at the end, a table with progress on stderr as it goes. A system that fails a
// workload is reported on stderr and the run goes on; the error returned then names every
// failure.
func Run(ctx context.Context, opts Options, stdout, stderr io.Writer) error {
	if err := opts.Validate(); err != nil {
		return err
	}
	opts = opts.withDefaults()
	dataDir := opts.DataDir
	if dataDir == "" {
		d, err := os.MkdirTemp("", "verity-bench-")
		if err != nil {
			return fmt.Errorf("bench: scratch directory: %w", err)
		}
		defer os.RemoveAll(d)
		dataDir = d
	} else if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return fmt.Errorf("bench: data directory: %w", err)
	}
	r := &runner{opts: opts, dataDir: dataDir, stdout: stdout, stderr: stderr}
	if !opts.JSON {
		r.prog = &progress{w: stderr}
	}
	r.run(ctx)
	r.prog.clear()
	if !opts.JSON {
		if err := printTable(stdout, r.results); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errors.Join(r.failures...)
}

type runner struct {
	opts    Options
	dataDir string
	stdout  io.Writer
	stderr  io.Writer
	prog    *progress // nil with --json

	results  []Result
	failures []error
}

func (r *runner) run(ctx context.Context) {
	has := func(w string) bool { return slices.Contains(r.opts.Workloads, w) }
	if has(WorkloadAppend) {
		for _, w := range r.opts.Writers {
			for _, b := range r.opts.Batches {
				for _, sys := range r.opts.Systems {
					r.measure(ctx, sys, WorkloadAppend, w, b, func(ctx context.Context) (Result, error) {
						return r.withStore(ctx, sys, WorkloadAppend, func(s system) (Result, error) {
							return runAppend(ctx, s, w, b, r.opts.Duration)
						})
					})
				}
			}
		}
	}
	if has(WorkloadReplay) || has(WorkloadReadStream) {
		for _, sys := range r.opts.Systems {
			if ctx.Err() != nil {
				return
			}
			if err := r.logWorkloads(ctx, sys, has(WorkloadReplay), has(WorkloadReadStream)); err != nil && ctx.Err() == nil {
				r.fail(sys, "replay and read-stream log", err)
			}
		}
	}
	if has(WorkloadE2E) {
		for _, sys := range r.opts.Systems {
			r.measure(ctx, sys, WorkloadE2E, 1, 1, func(ctx context.Context) (Result, error) {
				return r.withStore(ctx, sys, WorkloadE2E, func(s system) (Result, error) {
					return runE2E(ctx, s, r.opts.E2ERate, r.opts.Duration)
				})
			})
		}
	}
	if has(WorkloadGroups) {
		for _, sys := range r.opts.Systems {
			if ctx.Err() != nil {
				return
			}
			if err := r.groupWorkloads(ctx, sys); err != nil && ctx.Err() == nil {
				r.fail(sys, "groups log", err)
			}
		}
	}
	if has(WorkloadProjection) && ctx.Err() == nil {
		if err := r.runProjections(ctx); err != nil && ctx.Err() == nil {
			r.fail("projection", "log", err)
		}
	}
	// The gateway workload runs the shop over the embedded engine: once, with verity.
	if has(WorkloadGateway) && slices.Contains(r.opts.Systems, systemVerity) && ctx.Err() == nil {
		if err := r.runGateway(ctx); err != nil && ctx.Err() == nil {
			r.fail(WorkloadGateway, "shop stack", err)
		}
	}
	if has(WorkloadScale) {
		for _, sys := range r.opts.Systems {
			r.measure(ctx, sys, WorkloadScale, scaleWriters, min(scaleChunk, r.opts.ScaleEvents/r.opts.ScaleStreams), func(ctx context.Context) (Result, error) {
				return r.runScale(ctx, sys)
			})
		}
	}
}

// logWorkloads builds one replay log for a system and runs replay and read-stream on it.
func (r *runner) logWorkloads(ctx context.Context, sys string, replay, readStream bool) (err error) {
	dir, err := os.MkdirTemp(r.dataDir, sys+"-log-")
	if err != nil {
		return fmt.Errorf("scratch directory: %w", err)
	}
	defer removeStore(dir)
	s, err := openSystem(ctx, sys, dir, r.opts)
	if err != nil {
		return err
	}
	defer func() {
		// Joined even after a failure: a server's close error carries its log, which
		// tells why its calls failed.
		if cerr := s.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close: %w", cerr))
		}
	}()
	streams := r.opts.Events / logStreamEvents
	r.prog.set("%s: building a log of %d events in %d streams", sys, r.opts.Events, streams)
	start := time.Now()
	err = buildLog(ctx, s, logSpec{prefix: "log-", streams: streams, perStream: logStreamEvents, chunk: logChunk, writers: logWriters},
		func(done int64) {
			r.prog.set("%s: building a log of %d events in %d streams: %d%% (%.0f events/s)", sys, r.opts.Events, streams,
				done*100/int64(r.opts.Events), float64(done)/time.Since(start).Seconds())
		})
	if err != nil {
		return fmt.Errorf("build log: %w", err)
	}
	if replay {
		r.measure(ctx, sys, WorkloadReplay, 1, replayPage, func(ctx context.Context) (Result, error) {
			return runReplay(ctx, s, r.opts.Events)
		})
	}
	if readStream {
		for _, w := range r.opts.Writers {
			r.measure(ctx, sys, WorkloadReadStream, w, logStreamEvents, func(ctx context.Context) (Result, error) {
				return runReadStream(ctx, s, "log-", streams, logStreamEvents, w, r.opts.Duration)
			})
		}
	}
	return nil
}

// withStore runs fn on a fresh store in a fresh directory, then closes and deletes both.
func (r *runner) withStore(ctx context.Context, sys, workload string, fn func(system) (Result, error)) (_ Result, err error) {
	dir, err := os.MkdirTemp(r.dataDir, sys+"-"+workload+"-")
	if err != nil {
		return Result{}, fmt.Errorf("scratch directory: %w", err)
	}
	defer removeStore(dir)
	s, err := openSystem(ctx, sys, dir, r.opts)
	if err != nil {
		return Result{}, err
	}
	defer func() {
		// Joined even after a failure: a server's close error carries its log, which
		// tells why its calls failed.
		if cerr := s.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close: %w", cerr))
		}
	}()
	return fn(s)
}

// measure runs one measurement opts.Runs times and records the median.
func (r *runner) measure(ctx context.Context, sys, workload string, writers, batch int, fn func(context.Context) (Result, error)) {
	if ctx.Err() != nil {
		return
	}
	var runs []Result
	for i := range r.opts.Runs {
		if r.opts.Runs > 1 {
			r.prog.set("%s %s writers=%d batch=%d (run %d of %d)", sys, workload, writers, batch, i+1, r.opts.Runs)
		} else {
			r.prog.set("%s %s writers=%d batch=%d", sys, workload, writers, batch)
		}
		res, err := fn(ctx)
		if err != nil && ctx.Err() != nil {
			return // interrupted: not a failure of the system
		}
		if err != nil {
			r.fail(sys, fmt.Sprintf("%s writers=%d batch=%d", workload, writers, batch), err)
			return
		}
		res.System, res.Workload, res.Writers, res.Batch = sys, workload, writers, batch
		runs = append(runs, res)
	}
	r.report(median(runs))
}

// report keeps res for the table, and with --json prints it as a line at once.
func (r *runner) report(res Result) {
	r.results = append(r.results, res)
	if r.opts.JSON {
		b, err := json.Marshal(res)
		if err == nil {
			_, err = fmt.Fprintf(r.stdout, "%s\n", b)
		}
		if err != nil {
			r.failures = append(r.failures, fmt.Errorf("bench: write result: %w", err))
		}
	}
}

func (r *runner) fail(sys, what string, err error) {
	err = fmt.Errorf("%s %s: %w", sys, what, err)
	r.failures = append(r.failures, err)
	r.prog.clear()
	fmt.Fprintf(r.stderr, "bench: %v\n", err)
}

// median returns a result whose every number is the median of that number over runs.
func median(runs []Result) Result {
	res := runs[len(runs)/2]
	res.Runs = len(runs)
	if len(runs) == 1 {
		return res
	}
	mf := func(get func(*Result) float64) float64 {
		v := make([]float64, len(runs))
		for i := range runs {
			v[i] = get(&runs[i])
		}
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	mi := func(get func(*Result) int64) int64 {
		return int64(mf(func(r *Result) float64 { return float64(get(r)) }))
	}
	res.EventsPerSec = mf(func(r *Result) float64 { return r.EventsPerSec })
	res.P50ms = mf(func(r *Result) float64 { return r.P50ms })
	res.P99ms = mf(func(r *Result) float64 { return r.P99ms })
	res.Events = mi(func(r *Result) int64 { return r.Events })
	res.Ops = mi(func(r *Result) int64 { return r.Ops })
	res.ElapsedS = mf(func(r *Result) float64 { return r.ElapsedS })
	res.BuildS = mf(func(r *Result) float64 { return r.BuildS })
	res.ReopenS = mf(func(r *Result) float64 { return r.ReopenS })
	res.RSSMB = mf(func(r *Result) float64 { return r.RSSMB })
	res.Shed = mf(func(r *Result) float64 { return r.Shed })
	res.MaxMs = mf(func(r *Result) float64 { return r.MaxMs })
	return res
}

// ms converts a duration to milliseconds, rounded to the microsecond.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
