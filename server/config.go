package server

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/verity-dev/verity/auth"
)

// Config is everything `verity serve` can be told. The zero value of every field means its
// default. The same struct is filled from a YAML file, then from VERITY_* environment
// variables, then from flags, each overriding the one before (see Settings).
type Config struct {
	// Data is the data directory. Default "./verity-data".
	Data string `yaml:"data"`
	// Listen is the address gRPC and HTTP are served on, one port for both. Default
	// "127.0.0.1:2113".
	Listen string `yaml:"listen"`
	// Advertise is the host:port clients are told to use (gossip). Default Listen.
	Advertise string `yaml:"advertise"`

	// Insecure serves plaintext with no authentication: every caller is an admin. Allowed
	// only when set explicitly; meant for development on loopback.
	Insecure bool `yaml:"insecure"`
	// TLSCert and TLSKey are PEM files of the server's certificate and key. Required unless
	// Insecure.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// TLSCA is a PEM file of the CAs that client certificates must chain to; when set, a
	// client that presents a certificate must present a valid one.
	TLSCA string `yaml:"tls_ca"`

	// AdminPassword creates the user "admin" (role $admins) with this password if no admin
	// exists yet. Never logged, never stored in clear. Best given through the environment
	// (VERITY_ADMIN_PASSWORD) or the file, not on a command line others can see.
	AdminPassword string `yaml:"admin_password"`
	// Access rules limiting what named users and roles may do (see docs/security.md).
	Access []auth.Rule `yaml:"access"`
	// DefaultAccess is what users named by no access rule may do to streams whose $acl
	// does not say otherwise. Default all five actions (read, write, delete, metadata-read,
	// metadata-write), as KurrentDB's default ACL; an empty list means nothing.
	DefaultAccess []auth.Action `yaml:"default_access"`

	// MaxEventSize is the largest event in bytes. Default 1 MiB.
	MaxEventSize int `yaml:"max_event_size"`
	// MaxAppendSize is the largest append in bytes, all events together. Default 4 MiB.
	MaxAppendSize int `yaml:"max_append_size"`
	// MaxAppendEvents is the most events in one append. Default 10,000.
	MaxAppendEvents int `yaml:"max_append_events"`
	// MaxRequestBytes is the largest request body (HTTP) or message (gRPC). Default 8 MiB.
	MaxRequestBytes int `yaml:"max_request_bytes"`
	// MaxSubscriptionsPerConnection bounds live subscriptions per client connection.
	// Default 64.
	MaxSubscriptionsPerConnection int `yaml:"max_subscriptions_per_connection"`
	// MaxConcurrentStreams bounds concurrent requests on one HTTP/2 connection. Default 1000.
	MaxConcurrentStreams int `yaml:"max_concurrent_streams"`
	// SegmentSize is the size at which a log segment file is sealed. Default 256 MiB.
	SegmentSize int64 `yaml:"segment_size"`
	// ScavengeInterval runs an online scavenge this often; zero (the default) never does.
	ScavengeInterval time.Duration `yaml:"scavenge_interval"`

	// ReadHeaderTimeout bounds how long a client may take to send a request's headers, so a
	// stalled client cannot hold a connection. Default 10s.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// IdleTimeout closes connections idle this long. Default 2m.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// ShutdownTimeout bounds the drain of in-flight requests on SIGTERM or SIGINT. Default
	// 10s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`

	// RegistryTTL is how long a service instance stays in the registry without a heartbeat.
	// Default 10s.
	RegistryTTL time.Duration `yaml:"registry_ttl"`
	// RegistryProbeInterval is how often the registry probes the health check of instances
	// that name one (metadata "healthCheck"). Default 10s.
	RegistryProbeInterval time.Duration `yaml:"registry_probe_interval"`

	// DisableEventIndex turns off the event index (the file event-index.sqlite in the data
	// directory) that the console's event lookup and causation chain read; they then
	// answer 503. Default false: the index is kept.
	DisableEventIndex bool `yaml:"disable_event_index"`

	// LiveEvery is how often the console's live pages (GET /ui/live) look for changes in
	// consumer groups, read models, the registry and gateway routes. Default 1s.
	LiveEvery time.Duration `yaml:"live_every"`

	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string `yaml:"log_level"`
	// LogFormat is text or json. Default text.
	LogFormat string `yaml:"log_format"`

	// Now is the clock for commit times, max age and token expiry; default time.Now. Not
	// settable from outside: it is there for tests.
	Now func() time.Time `yaml:"-"`
}

// Defaults.
const (
	DefaultData                          = "./verity-data"
	DefaultListen                        = "127.0.0.1:2113"
	DefaultMaxRequestBytes               = 8 << 20
	DefaultMaxSubscriptionsPerConnection = 64
	DefaultMaxConcurrentStreams          = 1000
	DefaultReadHeaderTimeout             = 10 * time.Second
	DefaultLiveEvery                     = time.Second
	DefaultIdleTimeout                   = 2 * time.Minute
	DefaultShutdownTimeout               = 10 * time.Second
)

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Data == "" {
		c.Data = DefaultData
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Advertise == "" {
		c.Advertise = c.Listen
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if c.MaxSubscriptionsPerConnection == 0 {
		c.MaxSubscriptionsPerConnection = DefaultMaxSubscriptionsPerConnection
	}
	if c.MaxConcurrentStreams == 0 {
		c.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	if c.ReadHeaderTimeout == 0 {
		c.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.LiveEvery == 0 {
		c.LiveEvery = DefaultLiveEvery
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.LogFormat == "" {
		c.LogFormat = "text"
	}
	return c
}

// Validate names the first field that is wrong. Engine limits are checked when the engine
// opens.
func (c Config) Validate() error {
	c = c.WithDefaults()
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("config: listen %q: want host:port (%v)", c.Listen, err)
	}
	if _, _, err := net.SplitHostPort(c.Advertise); err != nil {
		return fmt.Errorf("config: advertise %q: want host:port (%v)", c.Advertise, err)
	}
	switch {
	case c.Insecure && (c.TLSCert != "" || c.TLSKey != ""):
		return errors.New("config: insecure is set together with tls_cert/tls_key: choose one")
	case !c.Insecure && (c.TLSCert == "" || c.TLSKey == ""):
		return errors.New("config: tls_cert and tls_key are required (or set insecure, for development only: plaintext and no authentication)")
	case c.Insecure && c.TLSCA != "":
		return errors.New("config: tls_ca needs TLS; it cannot be used with insecure")
	case c.MaxRequestBytes < 1024:
		return fmt.Errorf("config: max_request_bytes %d below 1024", c.MaxRequestBytes)
	case c.MaxSubscriptionsPerConnection < 1:
		return fmt.Errorf("config: max_subscriptions_per_connection %d below 1", c.MaxSubscriptionsPerConnection)
	case c.MaxConcurrentStreams < 1:
		return fmt.Errorf("config: max_concurrent_streams %d below 1", c.MaxConcurrentStreams)
	case c.ReadHeaderTimeout < 0, c.IdleTimeout < 0, c.ShutdownTimeout < 0:
		return errors.New("config: timeouts must not be negative")
	case c.RegistryTTL < 0 || c.RegistryTTL > 0 && c.RegistryTTL < time.Millisecond:
		return fmt.Errorf("config: registry_ttl %v: want 1ms or more", c.RegistryTTL)
	case c.LiveEvery < 0 || c.LiveEvery > 0 && c.LiveEvery < time.Millisecond:
		return fmt.Errorf("config: live_every %v: want 1ms or more", c.LiveEvery)
	case c.RegistryProbeInterval < 0:
		return fmt.Errorf("config: registry_probe_interval %v is negative", c.RegistryProbeInterval)
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return err
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("config: log_format %q: want text or json", c.LogFormat)
	}
	return nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("config: log_level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// LoadFile reads a YAML config file onto c. Unknown keys are an error, so a typo does not
// silently leave a setting at its default.
func (c *Config) LoadFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// Setting is one scalar field of Config as a flag and an environment variable.
type Setting struct {
	Flag  string // e.g. "tls-cert"
	Env   string // e.g. "VERITY_TLS_CERT"
	Usage string
	set   func(c *Config, v string) error
	// isBool: the flag may be given without a value (--insecure).
	isBool bool
}

// Settings lists every scalar setting, in the order `verity serve --help` shows them. The
// access rules are set in the config file only.
var Settings = []Setting{
	str("data", "the data directory `DIR`", func(c *Config) *string { return &c.Data }),
	str("listen", "`ADDR` to serve gRPC and HTTP on (default 127.0.0.1:2113)", func(c *Config) *string { return &c.Listen }),
	str("advertise", "`HOST:PORT` clients are told to use (default the listen address)", func(c *Config) *string { return &c.Advertise }),
	boolean("insecure", "plaintext and no authentication; for development only", func(c *Config) *bool { return &c.Insecure }),
	str("tls-cert", "PEM `FILE` of the server certificate", func(c *Config) *string { return &c.TLSCert }),
	str("tls-key", "PEM `FILE` of the server key", func(c *Config) *string { return &c.TLSKey }),
	str("tls-ca", "PEM `FILE` of CAs that client certificates must chain to", func(c *Config) *string { return &c.TLSCA }),
	str("admin-password", "`PASSWORD` of the bootstrap user \"admin\", set if no admin exists yet (prefer VERITY_ADMIN_PASSWORD)", func(c *Config) *string { return &c.AdminPassword }),
	integer("max-event-size", "largest event in `BYTES` (default 1 MiB)", func(c *Config) *int { return &c.MaxEventSize }),
	integer("max-append-size", "largest append in `BYTES` (default 4 MiB)", func(c *Config) *int { return &c.MaxAppendSize }),
	integer("max-append-events", "most events (`N`) in one append (default 10000)", func(c *Config) *int { return &c.MaxAppendEvents }),
	integer("max-request-bytes", "largest request body or gRPC message in `BYTES` (default 8 MiB)", func(c *Config) *int { return &c.MaxRequestBytes }),
	integer("max-subscriptions-per-connection", "live subscriptions (`N`) one connection may hold (default 64)", func(c *Config) *int { return &c.MaxSubscriptionsPerConnection }),
	integer("max-concurrent-streams", "concurrent requests (`N`) on one HTTP/2 connection (default 1000)", func(c *Config) *int { return &c.MaxConcurrentStreams }),
	{Flag: "segment-size", Env: "VERITY_SEGMENT_SIZE", Usage: "log segment size in `BYTES` (default 256 MiB)", set: func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		c.SegmentSize = n
		return err
	}},
	duration("scavenge-interval", "run an online scavenge every `DURATION` (default never)", func(c *Config) *time.Duration { return &c.ScavengeInterval }),
	duration("read-header-timeout", "`DURATION` a client may take to send request headers (default 10s)", func(c *Config) *time.Duration { return &c.ReadHeaderTimeout }),
	duration("idle-timeout", "close connections idle for `DURATION` (default 2m)", func(c *Config) *time.Duration { return &c.IdleTimeout }),
	duration("shutdown-timeout", "bound (`DURATION`) on draining in-flight requests at shutdown (default 10s)", func(c *Config) *time.Duration { return &c.ShutdownTimeout }),
	duration("live-every", "how often (`DURATION`) the console's live pages look for changes (default 1s)", func(c *Config) *time.Duration { return &c.LiveEvery }),
	duration("registry-ttl", "service instances leave the registry after `DURATION` without a heartbeat (default 10s)", func(c *Config) *time.Duration { return &c.RegistryTTL }),
	duration("registry-probe-interval", "probe the health check of registered instances every `DURATION` (default 10s)", func(c *Config) *time.Duration { return &c.RegistryProbeInterval }),
	boolean("disable-event-index", "keep no event index (the console's event lookup and causation chain answer 503)", func(c *Config) *bool { return &c.DisableEventIndex }),
	str("log-level", "`LEVEL`: debug, info, warn or error (default info)", func(c *Config) *string { return &c.LogLevel }),
	str("log-format", "`FORMAT`: text or json (default text)", func(c *Config) *string { return &c.LogFormat }),
}

func envName(flag string) string {
	return "VERITY_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

func str(name, usage string, field func(*Config) *string) Setting {
	return Setting{Flag: name, Env: envName(name), Usage: usage, set: func(c *Config, v string) error {
		*field(c) = v
		return nil
	}}
}

func boolean(name, usage string, field func(*Config) *bool) Setting {
	return Setting{Flag: name, Env: envName(name), Usage: usage, isBool: true, set: func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		*field(c) = b
		return err
	}}
}

func integer(name, usage string, field func(*Config) *int) Setting {
	return Setting{Flag: name, Env: envName(name), Usage: usage, set: func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		*field(c) = n
		return err
	}}
}

func duration(name, usage string, field func(*Config) *time.Duration) Setting {
	return Setting{Flag: name, Env: envName(name), Usage: usage, set: func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		*field(c) = d
		return err
	}}
}

// ApplyEnv sets every field whose VERITY_* variable lookup finds.
func (c *Config) ApplyEnv(lookup func(string) (string, bool)) error {
	for _, s := range Settings {
		if v, ok := lookup(s.Env); ok {
			if err := s.set(c, v); err != nil {
				return fmt.Errorf("environment %s=%q: %v", s.Env, v, err)
			}
		}
	}
	return nil
}

// Flags registers every setting on fs. The values are only recorded: ApplyFlags copies
// those given on the command line onto a Config, after the file and the environment.
type Flags struct {
	given map[string]string
	order []string
}

// Register adds the settings to fs.
func (f *Flags) Register(fs *flag.FlagSet) {
	f.given = map[string]string{}
	for _, s := range Settings {
		name := s.Flag
		if s.isBool {
			fs.BoolFunc(name, s.Usage+" (env "+s.Env+")", func(v string) error {
				f.record(name, v)
				return nil
			})
			continue
		}
		fs.Func(name, s.Usage+" (env "+s.Env+")", func(v string) error {
			f.record(name, v)
			return nil
		})
	}
}

func (f *Flags) record(name, v string) {
	if _, ok := f.given[name]; !ok {
		f.order = append(f.order, name)
	}
	f.given[name] = v
}

// Apply copies the flags given on the command line onto c.
func (f *Flags) Apply(c *Config) error {
	for _, name := range f.order {
		for _, s := range Settings {
			if s.Flag == name {
				if err := s.set(c, f.given[name]); err != nil {
					return fmt.Errorf("flag --%s=%q: %v", name, f.given[name], err)
				}
			}
		}
	}
	return nil
}

// NewLogger builds the structured logger Config asks for, writing to w.
func NewLogger(c Config, w io.Writer) *slog.Logger {
	c = c.WithDefaults()
	level, err := parseLevel(c.LogLevel)
	if err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
