package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/registry"
)

// Defaults of Config. A zero field of Config means the default named here.
const (
	DefaultTimeout          = 5 * time.Second
	DefaultRetries          = 2
	DefaultMaxConcurrent    = 512
	DefaultBreakerFailures  = 5
	DefaultBreakerOpenFor   = 10 * time.Second
	DefaultHalfOpenRequests = 1
	DefaultRetryBackoff     = 50 * time.Millisecond
	DefaultRetryBodyLimit   = 1 << 20
	DefaultStatusPath       = "/api/commands"
)

// Balance modes of Defaults.Balance and Route.Balance.
const (
	BalanceRoundRobin       = "round-robin"
	BalanceLeastOutstanding = "least-outstanding"
)

// Compose modes of Compose.Mode.
const (
	ModeParallel = "parallel"
	ModeSequence = "sequence"
)

// Config is the gateway's configuration, read from YAML (or JSON) by LoadFile or Parse.
// The zero value of every field means its default; Validate names the first bad field.
type Config struct {
	// Defaults apply to every route that does not set its own value.
	Defaults Defaults `yaml:"defaults,omitempty" json:"defaults,omitzero"`
	// Commands configures where command status URLs are served.
	Commands Commands `yaml:"commands,omitempty" json:"commands,omitzero"`
	// Routes are matched by net/http.ServeMux precedence (the most specific pattern wins),
	// not by their order.
	Routes []Route `yaml:"routes" json:"routes"`
}

// Defaults are the settings of routes that do not set their own.
type Defaults struct {
	// Timeout bounds a route's whole upstream exchange, retries included, up to the last
	// byte of the answer. Default 5 s.
	Timeout time.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// Retries is how many extra attempts an idempotent request (GET HEAD OPTIONS PUT
	// DELETE) gets after a connection error, a timeout of one attempt or a 502/503/504.
	// Nil means 2; 0 disables retries.
	Retries *int `yaml:"retries,omitempty" json:"retries,omitempty"`
	// TryTimeout bounds each attempt at an instance until its answer's headers arrive: an
	// instance that hangs is given up on, counted as a failure, and an idempotent request
	// is tried again on another instance within the route's Timeout. Default 0: no bound
	// per attempt (only Timeout), so a hung instance uses up the whole Timeout.
	TryTimeout time.Duration `yaml:"tryTimeout,omitempty" json:"tryTimeout,omitempty"`
	// RetryBackoff is the delay before the first retry; it doubles at each further one
	// (up to 20 times the base), with jitter. Default 50 ms.
	RetryBackoff time.Duration `yaml:"retryBackoff,omitempty" json:"retryBackoff,omitempty"`
	// RetryBodyLimit is the largest request body, in bytes, that is buffered so that its
	// request can be retried; a larger body is streamed and its request is not retried.
	// Default 1 MiB.
	RetryBodyLimit int64 `yaml:"retryBodyLimit,omitempty" json:"retryBodyLimit,omitempty"`
	// MaxConcurrent is the gateway-wide limit of requests in progress; past it requests are
	// answered 503 at once (shed). Default 512.
	MaxConcurrent int `yaml:"maxConcurrent,omitempty" json:"maxConcurrent,omitempty"`
	// Balance chooses among a service's instances: "round-robin" (default) or
	// "least-outstanding".
	Balance string `yaml:"balance,omitempty" json:"balance,omitempty"`
	// Breaker configures the circuit breaker of every upstream service.
	Breaker Breaker `yaml:"breaker,omitempty" json:"breaker,omitzero"`
}

// Breaker configures the circuit breaker kept for each upstream service.
type Breaker struct {
	// Failures is how many consecutive failures (connection errors, timeouts, 5xx) open the
	// breaker. Default 5.
	Failures int `yaml:"failures,omitempty" json:"failures,omitempty"`
	// OpenFor is how long an open breaker answers 503 at once before letting trial
	// requests through (half-open). Default 10 s.
	OpenFor time.Duration `yaml:"openFor,omitempty" json:"openFor,omitempty"`
	// HalfOpenRequests is how many trial requests a half-open breaker lets through; as
	// many successes close it, one failure opens it again. Default 1.
	HalfOpenRequests int `yaml:"halfOpenRequests,omitempty" json:"halfOpenRequests,omitempty"`
}

// Commands configures the command routes' status URLs.
type Commands struct {
	// StatusPath is the path under which command status is served:
	// GET StatusPath/{category}/{id}. Default "/api/commands".
	StatusPath string `yaml:"statusPath,omitempty" json:"statusPath,omitempty"`
}

// Route is one entry of the routing table. Exactly one of Service, Compose and Command
// says what serves it.
type Route struct {
	// Name identifies the route in metrics, logs and the admin API. Required, unique.
	Name string `yaml:"name" json:"name"`
	// Match is a net/http.ServeMux pattern: "[METHOD ][HOST]/PATH", where a path ending in
	// "/" matches every path under it and "{name}" segments are wildcards. Required.
	Match string `yaml:"match" json:"match"`
	// Service is the registry's virtual address the request is proxied to.
	Service string `yaml:"service,omitempty" json:"service,omitempty"`
	// StripPrefix is removed from the start of the path before proxying (only with Service).
	StripPrefix string `yaml:"stripPrefix,omitempty" json:"stripPrefix,omitempty"`
	// Stream marks a service route whose answers last (server-sent events, long polls,
	// upgraded connections such as WebSockets): its timeout bounds each attempt until the
	// answer's headers, as tryTimeout does (tryTimeout, if set, instead), and the answer
	// then streams for as long as the client and the instance keep it open. Without it the
	// timeout ends the exchange, answer and all. Only with Service.
	Stream bool `yaml:"stream,omitempty" json:"stream,omitempty"`
	// Timeout overrides Defaults.Timeout.
	Timeout time.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// TryTimeout overrides Defaults.TryTimeout.
	TryTimeout time.Duration `yaml:"tryTimeout,omitempty" json:"tryTimeout,omitempty"`
	// Retries overrides Defaults.Retries (0 disables them).
	Retries *int `yaml:"retries,omitempty" json:"retries,omitempty"`
	// MaxConcurrent limits this route's requests in progress; 0 means no limit of its own
	// (the gateway-wide limit still applies).
	MaxConcurrent int `yaml:"maxConcurrent,omitempty" json:"maxConcurrent,omitempty"`
	// Balance overrides Defaults.Balance.
	Balance string `yaml:"balance,omitempty" json:"balance,omitempty"`
	// Compose answers with the merged JSON answers of several upstream calls.
	Compose *Compose `yaml:"compose,omitempty" json:"compose,omitempty"`
	// Command turns the request into a command appended to the log.
	Command *CommandRoute `yaml:"command,omitempty" json:"command,omitempty"`
}

// Compose is a composition route: several GET calls whose JSON answers are merged into one
// object keyed by call name.
type Compose struct {
	// Mode is "parallel" (default: every call at once) or "sequence" (in order, and later
	// paths may use earlier answers).
	Mode string `yaml:"mode,omitempty" json:"mode,omitempty"`
	// Partial allows an answer without some calls: a failed call becomes null and the
	// answer says which failed ("partial", "errors"). The first call, and calls marked
	// required, must still succeed. False (default) is all-or-nothing: any failure of a
	// call not marked optional fails the request.
	Partial bool `yaml:"partial,omitempty" json:"partial,omitempty"`
	// Calls are the upstream calls, at least one.
	Calls []Call `yaml:"calls" json:"calls"`
}

// Call is one upstream call of a composition.
type Call struct {
	// Name is the call's key in the merged answer. Required, unique within the route, not
	// "partial" or "errors".
	Name string `yaml:"name" json:"name"`
	// Service is the registry's virtual address called. Required.
	Service string `yaml:"service" json:"service"`
	// Path is the upstream path (with an optional "?query"). "{id}" takes the route's path
	// wildcard id; in sequence mode "{call.field.sub}" takes a value from an earlier call's
	// JSON answer. Values are path-escaped.
	Path string `yaml:"path" json:"path"`
	// Optional: the call's failure never fails the request, even when all-or-nothing.
	Optional bool `yaml:"optional,omitempty" json:"optional,omitempty"`
	// Required: the call's failure fails the request even when partial results are allowed.
	Required bool `yaml:"required,omitempty" json:"required,omitempty"`
}

var (
	routeNameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)
	placeholderRE = regexp.MustCompile(`\{([^{}]*)\}`)
	identRE       = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Parse reads a configuration from YAML (or JSON, which is YAML). Unknown fields are errors,
// so that a misspelt setting is not silently ignored. It does not validate.
func Parse(data []byte) (Config, error) {
	const op = "gateway config"
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, &verity.Error{Kind: verity.Invalid, Op: op, Err: err}
	}
	return cfg, nil
}

// LoadFile reads and validates a configuration file.
func LoadFile(path string) (Config, error) {
	const op = "gateway config"
	data, err := os.ReadFile(path)
	if err != nil {
		kind := verity.Internal
		if errors.Is(err, os.ErrNotExist) {
			kind = verity.NotFound
		}
		return Config{}, &verity.Error{Kind: kind, Op: op, Message: fmt.Sprintf("file %q", path), Err: err}
	}
	cfg, err := Parse(data)
	if err != nil {
		return Config{}, &verity.Error{Kind: verity.Invalid, Op: op, Message: fmt.Sprintf("file %q", path), Err: err}
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, &verity.Error{Kind: verity.Invalid, Op: op, Message: fmt.Sprintf("file %q", path), Err: err}
	}
	return cfg, nil
}

// Marshal returns cfg as YAML, in the form Parse reads.
func (c Config) Marshal() ([]byte, error) {
	return yaml.Marshal(c)
}

// Validate names the first field that is out of range, e.g. `routes[2].match: ...`.
func (c Config) Validate() error {
	const op = "gateway config"
	bad := func(field, format string, args ...any) error {
		return verity.Errorf(verity.Invalid, op, "%s: %s", field, fmt.Sprintf(format, args...))
	}
	d := c.Defaults
	switch {
	case d.Timeout < 0:
		return bad("defaults.timeout", "%s is negative", d.Timeout)
	case d.TryTimeout < 0:
		return bad("defaults.tryTimeout", "%s is negative", d.TryTimeout)
	case d.Retries != nil && (*d.Retries < 0 || *d.Retries > 10):
		return bad("defaults.retries", "%d is not between 0 and 10", *d.Retries)
	case d.RetryBackoff < 0:
		return bad("defaults.retryBackoff", "%s is negative", d.RetryBackoff)
	case d.RetryBodyLimit < 0:
		return bad("defaults.retryBodyLimit", "%d is negative", d.RetryBodyLimit)
	case d.MaxConcurrent < 0:
		return bad("defaults.maxConcurrent", "%d is negative", d.MaxConcurrent)
	case d.Breaker.Failures < 0:
		return bad("defaults.breaker.failures", "%d is negative", d.Breaker.Failures)
	case d.Breaker.OpenFor < 0:
		return bad("defaults.breaker.openFor", "%s is negative", d.Breaker.OpenFor)
	case d.Breaker.HalfOpenRequests < 0:
		return bad("defaults.breaker.halfOpenRequests", "%d is negative", d.Breaker.HalfOpenRequests)
	}
	if _, err := parseBalance(d.Balance); err != nil {
		return bad("defaults.balance", "%v", err)
	}
	if p := c.Commands.StatusPath; p != "" && (!strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.ContainsAny(p, "{} ")) {
		return bad("commands.statusPath", "%q is not a path like /api/commands", p)
	}
	mux := http.NewServeMux()
	names := map[string]int{}
	hasCommand := false
	for i, r := range c.Routes {
		f := fmt.Sprintf("routes[%d]", i)
		if err := r.validate(f, bad); err != nil {
			return err
		}
		if j, ok := names[r.Name]; ok {
			return bad(f+".name", "%q is already the name of routes[%d]", r.Name, j)
		}
		names[r.Name] = i
		if err := register(mux, r.Match, http.NotFoundHandler()); err != nil {
			return bad(f+".match", "%v", err)
		}
		hasCommand = hasCommand || r.Command != nil
	}
	if hasCommand {
		if err := register(mux, c.Commands.statusPath()+"/", http.NotFoundHandler()); err != nil {
			return bad("commands.statusPath", "%v", err)
		}
	}
	return nil
}

func (r Route) validate(f string, bad func(field, format string, args ...any) error) error {
	if !routeNameRE.MatchString(r.Name) {
		return bad(f+".name", "%q is not a name of 1 to 128 letters, digits, '_', '.' and '-'", r.Name)
	}
	if err := checkPattern(r.Match); err != nil {
		return bad(f+".match", "%v", err)
	}
	kinds := 0
	for _, set := range []bool{r.Service != "", r.Compose != nil, r.Command != nil} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		return bad(f, "route %q must have exactly one of service, compose and command", r.Name)
	}
	switch {
	case r.Timeout < 0:
		return bad(f+".timeout", "%s is negative", r.Timeout)
	case r.TryTimeout < 0:
		return bad(f+".tryTimeout", "%s is negative", r.TryTimeout)
	case r.Retries != nil && (*r.Retries < 0 || *r.Retries > 10):
		return bad(f+".retries", "%d is not between 0 and 10", *r.Retries)
	case r.MaxConcurrent < 0:
		return bad(f+".maxConcurrent", "%d is negative", r.MaxConcurrent)
	case r.StripPrefix != "" && r.Service == "":
		return bad(f+".stripPrefix", "only a service route strips a prefix")
	case r.Stream && r.Service == "":
		return bad(f+".stream", "only a service route streams (a composition or a command answers once)")
	case r.StripPrefix != "" && !strings.HasPrefix(r.StripPrefix, "/"):
		return bad(f+".stripPrefix", "%q does not start with /", r.StripPrefix)
	}
	if _, err := parseBalance(r.Balance); err != nil {
		return bad(f+".balance", "%v", err)
	}
	if r.Service != "" {
		if err := registry.ValidateService("", r.Service); err != nil {
			return bad(f+".service", "%v", err)
		}
	}
	if c := r.Command; c != nil {
		switch {
		case c.Category == "" || strings.ContainsAny(c.Category, "-$ /"):
			return bad(f+".command.category", "%q is not a stream category (no '-', '$', '/' or space)", c.Category)
		case c.Type == "":
			return bad(f+".command.type", "is required")
		case c.Await < 0:
			return bad(f+".command.await", "%s is negative", c.Await)
		}
	}
	if c := r.Compose; c != nil {
		return c.validate(f+".compose", wildcards(r.Match), bad)
	}
	return nil
}

func (c Compose) validate(f string, wild map[string]bool, bad func(field, format string, args ...any) error) error {
	if c.Mode != "" && c.Mode != ModeParallel && c.Mode != ModeSequence {
		return bad(f+".mode", "%q is not parallel or sequence", c.Mode)
	}
	if len(c.Calls) == 0 {
		return bad(f+".calls", "a composition needs at least one call")
	}
	seen := map[string]bool{}
	for i, call := range c.Calls {
		cf := fmt.Sprintf("%s.calls[%d]", f, i)
		switch {
		case !identRE.MatchString(call.Name):
			return bad(cf+".name", "%q is not a name of letters, digits and '_'", call.Name)
		case call.Name == "partial" || call.Name == "errors":
			return bad(cf+".name", "%q is a reserved key of the answer", call.Name)
		case seen[call.Name]:
			return bad(cf+".name", "%q is used twice", call.Name)
		case call.Optional && call.Required:
			return bad(cf, "a call cannot be both optional and required")
		case !strings.HasPrefix(call.Path, "/"):
			return bad(cf+".path", "%q does not start with /", call.Path)
		}
		if err := registry.ValidateService("", call.Service); err != nil {
			return bad(cf+".service", "%v", err)
		}
		for _, m := range placeholderRE.FindAllStringSubmatch(call.Path, -1) {
			name, rest, dotted := strings.Cut(m[1], ".")
			switch {
			case !dotted && !wild[name]:
				return bad(cf+".path", "{%s} is not a wildcard of the route's match", m[1])
			case dotted && c.Mode != ModeSequence:
				return bad(cf+".path", "{%s}: only a sequence may use an earlier call's answer", m[1])
			case dotted && !seen[name]:
				return bad(cf+".path", "{%s}: no earlier call is named %q", m[1], name)
			case dotted && rest == "":
				return bad(cf+".path", "{%s} names no field", m[1])
			}
		}
		if strings.ContainsAny(placeholderRE.ReplaceAllString(call.Path, ""), "{}") {
			return bad(cf+".path", "%q has an unbalanced brace", call.Path)
		}
		seen[call.Name] = true
	}
	return nil
}

// checkPattern does the checks ServeMux leaves to a panic, or does not do, on one pattern.
func checkPattern(p string) error {
	if p == "" {
		return errors.New("is required")
	}
	i := strings.IndexByte(p, '/')
	if i < 0 {
		return fmt.Errorf("%q has no path (it must be [METHOD ][HOST]/PATH)", p)
	}
	return register(http.NewServeMux(), p, http.NotFoundHandler())
}

// register adds a pattern to mux, turning ServeMux's panic on a bad or conflicting pattern
// into an error.
func register(mux *http.ServeMux, pattern string, h http.Handler) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%v", v)
		}
	}()
	mux.Handle(pattern, h)
	return nil
}

// wildcards returns the names of a pattern's path wildcards.
func wildcards(pattern string) map[string]bool {
	out := map[string]bool{}
	if i := strings.IndexByte(pattern, '/'); i >= 0 {
		for _, m := range placeholderRE.FindAllStringSubmatch(pattern[i:], -1) {
			name := strings.TrimSuffix(m[1], "...")
			if name != "$" {
				out[name] = true
			}
		}
	}
	return out
}

func parseBalance(s string) (registry.Balancer, error) {
	switch s {
	case "", BalanceRoundRobin:
		return registry.RoundRobin, nil
	case BalanceLeastOutstanding:
		return registry.LeastOutstanding, nil
	}
	return 0, fmt.Errorf("%q is not round-robin or least-outstanding", s)
}

// Effective values, defaults applied.

func (c Commands) statusPath() string {
	if c.StatusPath == "" {
		return DefaultStatusPath
	}
	return c.StatusPath
}

func (d Defaults) timeout() time.Duration      { return orDefault(d.Timeout, DefaultTimeout) }
func (d Defaults) retryBackoff() time.Duration { return orDefault(d.RetryBackoff, DefaultRetryBackoff) }
func (d Defaults) retryBodyLimit() int64       { return orDefault(d.RetryBodyLimit, DefaultRetryBodyLimit) }
func (d Defaults) maxConcurrent() int          { return orDefault(d.MaxConcurrent, DefaultMaxConcurrent) }
func (b Breaker) failures() int                { return orDefault(b.Failures, DefaultBreakerFailures) }
func (b Breaker) openFor() time.Duration       { return orDefault(b.OpenFor, DefaultBreakerOpenFor) }
func (b Breaker) halfOpenRequests() int {
	return orDefault(b.HalfOpenRequests, DefaultHalfOpenRequests)
}
func (d Defaults) retries() int {
	if d.Retries == nil {
		return DefaultRetries
	}
	return *d.Retries
}

func (r Route) timeout(d Defaults) time.Duration { return orDefault(r.Timeout, d.timeout()) }
func (r Route) tryTimeout(d Defaults) time.Duration {
	return orDefault(r.TryTimeout, d.TryTimeout)
}
func (r Route) retries(d Defaults) int {
	if r.Retries == nil {
		return d.retries()
	}
	return *r.Retries
}
func (r Route) balance(d Defaults) registry.Balancer {
	b, _ := parseBalance(orDefault(r.Balance, d.Balance))
	return b
}

// services returns the upstream services a route calls, in first-use order.
func (r Route) services() []string {
	if r.Service != "" {
		return []string{r.Service}
	}
	var out []string
	if r.Compose != nil {
		for _, c := range r.Compose.Calls {
			if !slices.Contains(out, c.Service) {
				out = append(out, c.Service)
			}
		}
	}
	return out
}

func (r Route) kind() string {
	switch {
	case r.Compose != nil:
		return "compose"
	case r.Command != nil:
		return "command"
	}
	return "service"
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
