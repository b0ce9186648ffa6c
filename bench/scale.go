package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// ChildEnv names the environment variable that starts a process as the child of the scale
// workload: its value is the child's job, as JSON. The program's entry point checks IsChild
// before anything else and then calls RunChild.
const ChildEnv = "VERITY_BENCH_CHILD"

// childJob is what the scale workload asks of its child.
type childJob struct {
	System    string        `json:"system"`
	Dir       string        `json:"dir"`
	Prefix    string        `json:"prefix"`
	Streams   int           `json:"streams"`
	PerStream int           `json:"per_stream"`
	Serve     time.Duration `json:"serve"`
}

// childReport is the child's answer, one JSON line on its stdout.
type childReport struct {
	ReopenS float64 `json:"reopen_s"`
	RSSMB   float64 `json:"rss_mb"`
	Reads   int64   `json:"reads"`
	P50ms   float64 `json:"p50_ms"`
	P99ms   float64 `json:"p99_ms"`
}

// IsChild reports whether this process was started as the scale workload's child.
func IsChild() bool { return os.Getenv(ChildEnv) != "" }

// RunChild is the child's side of the scale workload, run in a process of its own so that
// its peak RSS is the store's alone: reopen the store the parent built, serve random stream
// reads for a while, then print a JSON report with the reopen time and VmHWM to stdout.
func RunChild(ctx context.Context, stdout io.Writer) error {
	var job childJob
	if err := json.Unmarshal([]byte(os.Getenv(ChildEnv)), &job); err != nil {
		return fmt.Errorf("bench child: %s: %w", ChildEnv, err)
	}
	start := time.Now()
	s, err := openSystem(ctx, job.System, job.Dir, Options{}.withDefaults())
	if err != nil {
		return fmt.Errorf("bench child: reopen: %w", err)
	}
	reopen := time.Since(start)
	res, err := runReadStream(ctx, s, job.Prefix, job.Streams, job.PerStream, scaleReaders, job.Serve)
	if err != nil {
		s.Close()
		return fmt.Errorf("bench child: serve reads: %w", err)
	}
	rss, err := peakRSS()
	if cerr := s.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close: %w", cerr)
	}
	if err != nil {
		return fmt.Errorf("bench child: %w", err)
	}
	b, err := json.Marshal(childReport{
		ReopenS: reopen.Seconds(), RSSMB: float64(rss) / (1 << 20),
		Reads: res.Ops, P50ms: res.P50ms, P99ms: res.P99ms,
	})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", b)
	return err
}

// peakRSS returns this process's peak resident set size (VmHWM), in bytes.
func peakRSS() (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("peak RSS: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("peak RSS: VmHWM %q: %w", rest, err)
		}
		return kb << 10, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("peak RSS: %w", err)
	}
	return 0, errors.New("peak RSS: no VmHWM in /proc/self/status")
}

// runScale builds a store of ScaleStreams streams and ScaleEvents events, closes it, and has
// a child process reopen it and serve reads. events_per_sec is the build's rate; the
// latencies are those of the child's stream reads.
func (r *runner) runScale(ctx context.Context, sys string) (Result, error) {
	dir, err := os.MkdirTemp(r.dataDir, sys+"-scale-")
	if err != nil {
		return Result{}, fmt.Errorf("scratch directory: %w", err)
	}
	defer removeStore(dir)
	perStream := r.opts.ScaleEvents / r.opts.ScaleStreams
	spec := logSpec{prefix: "scale-", streams: r.opts.ScaleStreams, perStream: perStream, chunk: min(scaleChunk, perStream), writers: scaleWriters}

	s, err := openSystem(ctx, sys, dir, r.opts)
	if err != nil {
		return Result{}, err
	}
	start := time.Now()
	err = buildLog(ctx, s, spec, func(done int64) {
		r.prog.set("%s scale: building %d events in %d streams: %d%% (%.0f events/s)", sys, r.opts.ScaleEvents, r.opts.ScaleStreams,
			done*100/int64(r.opts.ScaleEvents), float64(done)/time.Since(start).Seconds())
	})
	build := time.Since(start)
	if cerr := s.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close: %w", cerr)
	}
	if err != nil {
		return Result{}, fmt.Errorf("build: %w", err)
	}

	r.prog.set("%s scale: reopening and serving reads in a child process", sys)
	rep, err := r.child(ctx, childJob{System: sys, Dir: dir, Prefix: spec.prefix, Streams: spec.streams, PerStream: perStream, Serve: r.opts.ScaleServe})
	if err != nil {
		return Result{}, err
	}
	return Result{
		EventsPerSec: float64(r.opts.ScaleEvents) / build.Seconds(),
		P50ms:        rep.P50ms,
		P99ms:        rep.P99ms,
		Events:       int64(r.opts.ScaleEvents),
		ElapsedS:     build.Seconds(),
		Ops:          rep.Reads,
		Streams:      r.opts.ScaleStreams,
		BuildS:       build.Seconds(),
		ReopenS:      rep.ReopenS,
		RSSMB:        rep.RSSMB,
	}, nil
}

func (r *runner) child(ctx context.Context, job childJob) (childReport, error) {
	argv := r.opts.ChildCommand
	if len(argv) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return childReport{}, fmt.Errorf("child process: %w", err)
		}
		argv = []string{exe, "bench"}
	}
	spec, err := json.Marshal(job)
	if err != nil {
		return childReport{}, err
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), ChildEnv+"="+string(spec))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return childReport{}, fmt.Errorf("child process %s: %w: %s", argv[0], err, strings.TrimSpace(stderr.String()))
	}
	// The report is the last line: anything before it is not ours.
	out := strings.TrimSpace(stdout.String())
	if i := strings.LastIndexByte(out, '\n'); i >= 0 {
		out = out[i+1:]
	}
	var rep childReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		return childReport{}, fmt.Errorf("child process report %q: %w", out, err)
	}
	return rep, nil
}
