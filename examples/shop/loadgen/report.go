package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Report is what a run measured. Requests cut short by the caller's context are not in it.
type Report struct {
	// BaseURL, Concurrency, Rate (0: closed loop) and Seed are the run's, defaults applied.
	BaseURL     string  `json:"baseURL"`
	Concurrency int     `json:"concurrency"`
	Rate        float64 `json:"rate,omitempty"`
	Seed        uint64  `json:"seed"`
	// Customers and Products were created at setup, which took Setup.
	Customers int           `json:"customers"`
	Products  int           `json:"products"`
	Setup     time.Duration `json:"-"`
	// Elapsed is the load phase's length, from the first request to the last answer.
	Elapsed time.Duration `json:"-"`
	// Ops has one entry per operation, in the order of Ops; Total sums them.
	Ops   []OpStats `json:"ops"`
	Total OpStats   `json:"total"`
	// Acked lists every command the gateway acknowledged (200 or 202) as "category/id",
	// e.g. "ordercommand/0b6c...", once each, in the order acknowledged.
	Acked []string `json:"acked"`
	// Unresolved counts the orders whose last attempt got no definite answer (a timeout, a
	// connection error, a 503 or other 5xx) and that the run ended before retrying.
	Unresolved int `json:"unresolved"`
}

// OpStats are one operation's numbers.
type OpStats struct {
	Op string `json:"op"`
	// Count is the requests answered (or timed out); OK those answered 2xx.
	Count int64 `json:"count"`
	OK    int64 `json:"ok"`
	// Shed counts the 503s: the gateway refusing work it has no capacity for.
	Shed int64 `json:"shed"`
	// Errors counts the failures by HTTP status ("404", "503") or by cause ("timeout",
	// "connection").
	Errors map[string]int64 `json:"errors,omitempty"`
	// Throughput is Count per second of Report.Elapsed.
	Throughput float64 `json:"throughput"`
	// Latency is that of every counted request, failures included.
	Latency Latency `json:"latency"`
}

// ErrorCount is the number of failed requests of s.
func (s OpStats) ErrorCount() int64 {
	var n int64
	for _, c := range s.Errors {
		n += c
	}
	return n
}

// Latency summarizes a histogram of request latencies. Percentiles are within about 1.6%
// of the exact ones; Max is exact.
type Latency struct {
	P50, P90, P99, Max, Mean time.Duration
}

// latencyJSON is Latency in milliseconds, the unit a person reads.
type latencyJSON struct {
	P50  float64 `json:"p50Ms"`
	P90  float64 `json:"p90Ms"`
	P99  float64 `json:"p99Ms"`
	Max  float64 `json:"maxMs"`
	Mean float64 `json:"meanMs"`
}

func ms(d time.Duration) float64     { return float64(d) / float64(time.Millisecond) }
func fromMs(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
func (l Latency) MarshalJSON() ([]byte, error) {
	return json.Marshal(latencyJSON{ms(l.P50), ms(l.P90), ms(l.P99), ms(l.Max), ms(l.Mean)})
}

func (l *Latency) UnmarshalJSON(b []byte) error {
	var j latencyJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*l = Latency{fromMs(j.P50), fromMs(j.P90), fromMs(j.P99), fromMs(j.Max), fromMs(j.Mean)}
	return nil
}

// reportJSON adds the report's durations, in seconds, to its JSON.
type reportJSON struct {
	*reportAlias
	SetupSeconds   float64 `json:"setupSeconds"`
	ElapsedSeconds float64 `json:"elapsedSeconds"`
}

type reportAlias Report

func (r Report) MarshalJSON() ([]byte, error) {
	return json.Marshal(reportJSON{(*reportAlias)(&r), r.Setup.Seconds(), r.Elapsed.Seconds()})
}

func (r *Report) UnmarshalJSON(b []byte) error {
	j := reportJSON{reportAlias: (*reportAlias)(r)}
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	r.Setup = time.Duration(j.SetupSeconds * float64(time.Second))
	r.Elapsed = time.Duration(j.ElapsedSeconds * float64(time.Second))
	return nil
}

// WriteJSON writes r as one indented JSON document.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes r as a table a person reads, e.g.
//
//	operation          count        ok    shed  errors     req/s       p50       p90       p99       max
//	place-order         1909      1899      10       0     380.7    13.2ms    27.1ms    47.4ms    82.7ms
func (r Report) WriteText(w io.Writer) error {
	mode := "closed loop"
	if r.Rate > 0 {
		mode = fmt.Sprintf("open loop at %g req/s", r.Rate)
	}
	fmt.Fprintf(w, "load on %s: %d workers, %s, seed %d\n", r.BaseURL, r.Concurrency, mode, r.Seed)
	fmt.Fprintf(w, "setup: %d customers, %d products in %v\n", r.Customers, r.Products, round(r.Setup))
	fmt.Fprintf(w, "load: %d requests in %v, %.1f req/s\n\n", r.Total.Count, round(r.Elapsed), r.Total.Throughput)
	// Names left, numbers right; the widths fit a long run's counts.
	const row = "%-14s %9s %9s %7s %7s %9s %9s %9s %9s %9s\n"
	fmt.Fprintf(w, row, "operation", "count", "ok", "shed", "errors", "req/s", "p50", "p90", "p99", "max")
	for _, s := range append(slices.Clone(r.Ops), r.Total) {
		l := s.Latency
		fmt.Fprintf(w, row, s.Op, itoa(s.Count), itoa(s.OK), itoa(s.Shed), itoa(s.ErrorCount()),
			fmt.Sprintf("%.1f", s.Throughput), round(l.P50), round(l.P90), round(l.P99), round(l.Max))
	}
	var errs []string
	for _, s := range r.Ops {
		for _, k := range slices.Sorted(maps.Keys(s.Errors)) {
			errs = append(errs, fmt.Sprintf("%s %s×%d", s.Op, k, s.Errors[k]))
		}
	}
	if len(errs) > 0 {
		fmt.Fprintf(w, "\nerrors: %s\n", strings.Join(errs, ", "))
	}
	_, err := fmt.Fprintf(w, "\ncommands acknowledged: %d; orders left unresolved: %d\n", len(r.Acked), r.Unresolved)
	return err
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// round keeps three significant digits or so, enough for a table.
func round(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond)
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= 100*time.Millisecond:
		return d.Round(time.Millisecond)
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
