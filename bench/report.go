package bench

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
)

// progress keeps one line on a terminal up to date. A nil *progress prints nothing. It is
// safe for concurrent use.
type progress struct {
	w    io.Writer
	mu   sync.Mutex
	last int // length of the line on screen
}

func (p *progress) set(format string, args ...any) {
	if p == nil {
		return
	}
	line := fmt.Sprintf(format, args...)
	p.mu.Lock()
	defer p.mu.Unlock()
	pad := ""
	if n := p.last - len(line); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	fmt.Fprintf(p.w, "\r%s%s", line, pad)
	p.last = len(line)
}

// clear erases the line, so that what is printed next starts on a clean one.
func (p *progress) clear() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last > 0 {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.last))
		p.last = 0
	}
}

// printTable prints the results grouped by measurement, the embedded engine's line with its
// ratio to each peer and the server's line with its ratio to the embedded engine:
// throughput (verity/peer, higher is better for the first) or, for e2e where the rate is
// fixed, median latency (verity/peer, lower is better for the first).
func printTable(w io.Writer, results []Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "workload\twriters\tbatch\tsystem\t%12s\t%9s\t%9s\tnotes\n", "events/s", "p50 ms", "p99 ms")
	type key struct {
		workload       string
		writers, batch int
		strategy       string
	}
	var order []key
	groups := map[key][]Result{}
	for _, r := range results {
		k := key{r.Workload, r.Writers, r.Batch, r.Strategy}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	for _, k := range order {
		g := groups[k]
		var ver *Result
		for i := range g {
			if g[i].System == systemVerity {
				ver = &g[i]
			}
		}
		for _, r := range g {
			var notes []string
			switch r.Workload {
			case WorkloadScale:
				notes = append(notes, fmt.Sprintf("build %.1fs, reopen %.2fs, peak RSS %.0f MB", r.BuildS, r.ReopenS, r.RSSMB))
			case WorkloadReplay:
				notes = append(notes, fmt.Sprintf("latency per page of %d", r.PageSize))
			case WorkloadE2E:
				notes = append(notes, fmt.Sprintf("ack to receive at %d/s", r.RateEPS))
			case WorkloadGroups:
				if r.Strategy == GroupRoundTrip {
					notes = append(notes, "round trip: 1 consumer, latency delivery to next delivery")
				} else {
					notes = append(notes, fmt.Sprintf("%s: %d consumers, latency between deliveries", r.Strategy, r.Writers))
				}
			case WorkloadGateway:
				notes = append(notes, gatewayNotes(r, g)...)
			case WorkloadProjection:
				notes = append(notes, fmt.Sprintf("%d events, latency per transaction", r.Events))
				// The batched projection against the naive one on the same target.
				for _, n := range results {
					if n.Workload == WorkloadProjection && n.System == r.System+naiveSuffix {
						notes = append(notes, ratio(r, n))
					}
				}
			}
			switch {
			case r.System == systemVerity:
				for _, p := range g {
					if p.System == systemVerity || p.System == systemServer {
						continue
					}
					notes = append(notes, ratio(*ver, p))
				}
			case r.System == systemServer && ver != nil:
				notes = append(notes, ratio(r, *ver))
			}
			fmt.Fprintf(tw, "%s\t%7d\t%5d\t%s\t%12s\t%9.3f\t%9.3f\t%s\n", r.Workload, r.Writers, r.Batch, r.System,
				thousands(r.EventsPerSec), r.P50ms, r.P99ms, strings.Join(notes, "; "))
		}
	}
	return tw.Flush()
}

// ratio compares a with b: "a/b 0.62x".
func ratio(a, b Result) string {
	if a.Workload == WorkloadE2E {
		if b.P50ms == 0 {
			return fmt.Sprintf("p50 %s/%s n/a", a.System, b.System)
		}
		return fmt.Sprintf("p50 %s/%s %.2fx (lower is better)", a.System, b.System, a.P50ms/b.P50ms)
	}
	if b.EventsPerSec == 0 {
		return fmt.Sprintf("%s/%s n/a", a.System, b.System)
	}
	return fmt.Sprintf("%s/%s %.2fx", a.System, b.System, a.EventsPerSec/b.EventsPerSec)
}

// thousands formats a rate as a whole number with thousands separators.
func thousands(f float64) string {
	s := fmt.Sprintf("%.0f", f)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
