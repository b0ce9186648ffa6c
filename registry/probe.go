package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/verity-dev/verity"
)

// ProbeTarget is what a Prober checks and reports to: the embedded Registry or a Client.
// Its methods are called from the prober's goroutine.
type ProbeTarget interface {
	// List returns the live instances of every service when service is empty.
	List(ctx context.Context, service string) ([]Instance, error)
	// SetHealth records an instance's health and why.
	SetHealth(ctx context.Context, id string, h Health, reason string) error
}

var (
	_ ProbeTarget = (*Registry)(nil)
	_ ProbeTarget = (*Client)(nil)
)

// ProbeConfig configures a Prober. The zero value of every field means its default.
type ProbeConfig struct {
	// Interval is how often every instance with a health check is probed. Default 10 s.
	Interval time.Duration
	// Timeout bounds one probe (connecting, sending, the status line). Default 2 s.
	Timeout time.Duration
	// FailureThreshold is how many probes in a row must fail before the instance is set
	// Unhealthy. One success sets it Healthy again. Default 3.
	FailureThreshold int
	// MetadataKey is the instance metadata key that names the path to probe, such as
	// "/healthz"; instances without it are not probed. Default "healthCheck".
	MetadataKey string
	// Concurrency bounds the probes in flight at once. Default 16.
	Concurrency int
	// Transport sends the probes. Default: a transport of its own with no proxy and no
	// keep-alive (a probe must see the instance as a new caller would).
	Transport http.RoundTripper
	// Tick returns the channel that paces the rounds and a func that stops it. Default a
	// time.Ticker of Interval; tests send on a channel of their own instead of sleeping.
	Tick func(d time.Duration) (<-chan time.Time, func())
	// Logger receives health changes the prober makes and failures to make them. Default
	// slog.Default().
	Logger *slog.Logger
}

// Defaults of ProbeConfig.
const (
	DefaultProbeInterval         = 10 * time.Second
	DefaultProbeTimeout          = 2 * time.Second
	DefaultProbeFailureThreshold = 3
	DefaultProbeMetadataKey      = "healthCheck"
	DefaultProbeConcurrency      = 16
)

// probeReasonPrefix starts every health reason the prober writes. The prober sets an
// instance Healthy again only if it is Unhealthy for such a reason: one that declared
// itself unhealthy (SetHealth by its owner) stays so whatever its health check says.
const probeReasonPrefix = "health check: "

// Validate names the first field that is out of range.
func (c ProbeConfig) Validate() error {
	const op = "registry probe config"
	switch {
	case c.Interval < 0:
		return verity.Errorf(verity.Invalid, op, "Interval %v is negative", c.Interval)
	case c.Timeout < 0:
		return verity.Errorf(verity.Invalid, op, "Timeout %v is negative", c.Timeout)
	case c.FailureThreshold < 0:
		return verity.Errorf(verity.Invalid, op, "FailureThreshold %d is negative", c.FailureThreshold)
	case c.Concurrency < 0:
		return verity.Errorf(verity.Invalid, op, "Concurrency %d is negative", c.Concurrency)
	}
	return nil
}

func (c ProbeConfig) withDefaults() ProbeConfig {
	if c.Interval == 0 {
		c.Interval = DefaultProbeInterval
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultProbeTimeout
	}
	if c.FailureThreshold == 0 {
		c.FailureThreshold = DefaultProbeFailureThreshold
	}
	if c.MetadataKey == "" {
		c.MetadataKey = DefaultProbeMetadataKey
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultProbeConcurrency
	}
	if c.Transport == nil {
		c.Transport = &http.Transport{DisableKeepAlives: true}
	}
	if c.Tick == nil {
		c.Tick = func(d time.Duration) (<-chan time.Time, func()) {
			t := time.NewTicker(d)
			return t.C, t.Stop
		}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Prober checks the health of instances actively: every Interval it GETs
// http://ADDRESS+PATH (ADDRESS+PATH for an address that is a URL) of each instance whose
// Metadata[MetadataKey] names a PATH, and counts a 2xx or 3xx answer within Timeout as a
// success. After FailureThreshold failures in a row it sets the instance Unhealthy (with
// the last failure as the reason); the next success sets it Healthy again. It runs beside
// a Registry (or over a Client), so several registries can share one prober or none.
type Prober struct {
	target ProbeTarget
	cfg    ProbeConfig
	hc     *http.Client
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex // serialises rounds
	failures map[string]int
}

// NewProber starts probing target's instances every cfg.Interval; Close stops it.
// Errors: Invalid (bad config).
func NewProber(target ProbeTarget, cfg ProbeConfig) (*Prober, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	p := &Prober{
		target: target, cfg: cfg, failures: map[string]int{},
		// A redirect is an answer: the instance is up. Following it could probe elsewhere.
		hc: &http.Client{Transport: cfg.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	ticks, stop := cfg.Tick(cfg.Interval)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticks:
				if err := p.Probe(ctx); err != nil && ctx.Err() == nil {
					cfg.Logger.Warn("registry probe round failed", "err", err)
				}
			}
		}
	}()
	return p, nil
}

// Close stops probing and waits for a round in progress to end. It is idempotent.
func (p *Prober) Close() error {
	p.cancel()
	p.wg.Wait()
	return nil
}

// Probe runs one round now: it probes every instance with a health check and records the
// health changes due. The ticker calls it; it is exported for tests and operators. It
// returns the first error of listing or of recording a change (every change is attempted).
func (p *Prober) Probe(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	ins, err := p.target.List(ctx, "")
	if err != nil {
		return err
	}
	type result struct {
		in  Instance
		err error // nil: the probe succeeded
	}
	var todo []Instance
	seen := map[string]bool{}
	for _, in := range ins {
		if path := in.Metadata[p.cfg.MetadataKey]; path != "" {
			todo = append(todo, in)
			seen[in.ID] = true
		}
	}
	for id := range p.failures {
		if !seen[id] {
			delete(p.failures, id) // gone, or no longer checked
		}
	}
	results := make([]result, len(todo))
	sem := make(chan struct{}, p.cfg.Concurrency)
	var wg sync.WaitGroup
	for i, in := range todo {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			results[i] = result{in, p.probe(ctx, in)}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err // probes cut short say nothing about the instances
	}
	var first error
	for _, r := range results {
		var err error
		in := r.in
		if r.err == nil {
			delete(p.failures, in.ID)
			if in.Health == Unhealthy && strings.HasPrefix(in.HealthReason, probeReasonPrefix) {
				err = p.target.SetHealth(ctx, in.ID, Healthy, "")
				p.cfg.Logger.Info("registry probe: instance is healthy again", "service", in.Service, "id", in.ID)
			}
		} else {
			p.failures[in.ID]++
			if n := p.failures[in.ID]; n >= p.cfg.FailureThreshold && in.Health == Healthy {
				reason := fmt.Sprintf("%s%v (%d failures in a row)", probeReasonPrefix, r.err, n)
				err = p.target.SetHealth(ctx, in.ID, Unhealthy, reason)
				p.cfg.Logger.Warn("registry probe: instance is unhealthy", "service", in.Service, "id", in.ID, "reason", reason)
			}
		}
		if err != nil && verity.KindOf(err) != verity.NotFound && first == nil {
			first = err // NotFound: it left meanwhile
		}
	}
	return first
}

// probe GETs one instance's health check; nil means healthy.
func (p *Prober) probe(ctx context.Context, in Instance) error {
	path := in.Metadata[p.cfg.MetadataKey]
	if !strings.HasPrefix(path, "/") {
		return fmt.Errorf("path %q (metadata %q) must start with '/'", path, p.cfg.MetadataKey)
	}
	base := in.Address
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u := strings.TrimSuffix(base, "/") + path
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %v", u, err)
	}
	req.Header.Set("User-Agent", "verity-registry-prober")
	resp, err := p.hc.Do(req)
	if err != nil {
		var ne net.Error
		if ctx.Err() == context.DeadlineExceeded || errors.As(err, &ne) && ne.Timeout() {
			return fmt.Errorf("GET %s: no answer within %v", u, p.cfg.Timeout)
		}
		return fmt.Errorf("GET %s: %v", u, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		return fmt.Errorf("GET %s: status %s", u, resp.Status)
	}
	return nil
}
