package loadgen

import (
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/verity-dev/verity"
)

// Defaults of Config's zero fields.
const (
	DefaultBaseURL     = "http://127.0.0.1:8080"
	DefaultConcurrency = 8
	DefaultDuration    = 10 * time.Second
	DefaultCustomers   = 20
	DefaultProducts    = 10
	DefaultStock       = 1_000_000
	DefaultTimeout     = 5 * time.Second
	DefaultMaxBackoff  = time.Second
)

// Operation names, as the report and Mix use them.
const (
	OpPlaceOrder   = "place-order"
	OpGetOrder     = "get-order"
	OpOrderDetails = "order-details"
	OpGetCustomer  = "get-customer"
)

// Ops are the operations in the order reports list them.
var Ops = []string{OpPlaceOrder, OpGetOrder, OpOrderDetails, OpGetCustomer}

// Mix weighs the operations: each request is one of them with probability weight/sum.
// The zero Mix is DefaultMix.
type Mix struct {
	PlaceOrder   int `json:"placeOrder"`
	GetOrder     int `json:"getOrder"`
	OrderDetails int `json:"orderDetails"`
	GetCustomer  int `json:"getCustomer"`
}

// DefaultMix is mostly orders and reads of them, as a shop sees.
var DefaultMix = Mix{PlaceOrder: 40, GetOrder: 30, OrderDetails: 20, GetCustomer: 10}

func (m Mix) weights() [4]int {
	return [4]int{m.PlaceOrder, m.GetOrder, m.OrderDetails, m.GetCustomer}
}

// Config shapes a run. Its zero value is a valid run of DefaultDuration against
// DefaultBaseURL.
type Config struct {
	// BaseURL is the gateway's, e.g. http://127.0.0.1:8080 (default DefaultBaseURL). Its
	// host must be a loopback address or localhost.
	BaseURL string
	// Concurrency is the number of workers sending requests; default 8.
	Concurrency int
	// Duration bounds the load phase (setup excluded). Requests bounds the number of
	// requests sent, retries included. With both zero the run lasts DefaultDuration; with
	// both set it ends at whichever bound comes first.
	Duration time.Duration
	Requests int
	// Rate, in requests per second, makes the run open loop: requests are scheduled at this
	// rate whatever the answers. 0 (the default) is closed loop.
	Rate float64
	// Customers and Products are created at setup; default 20 and 10. Each product gets
	// Stock units (default 1,000,000) so that orders are not cancelled for lack of stock.
	Customers int
	Products  int
	Stock     int
	// Mix weighs the operations; default DefaultMix.
	Mix Mix
	// Timeout bounds each HTTP request, body included; default 5s (the gateway awaits a
	// placed order for up to 2s).
	Timeout time.Duration
	// MaxBackoff caps the wait a Retry-After asks for after a 503 (closed loop only);
	// default 1s.
	MaxBackoff time.Duration
	// Seed seeds the choice of operations, customers, products and quantities; 0 picks one
	// at random, reported in Report.Seed. Idempotency keys and the names created at setup
	// are random whatever the seed, so that runs never collide.
	Seed uint64
	// Now is the clock latencies and the duration are measured with; default time.Now.
	// With an injected clock the duration is checked between requests only.
	Now func() time.Time
}

// Validate reports the first bad field, as an Invalid error naming it.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return verity.Errorf(verity.Invalid, "loadgen", format, args...)
	}
	switch {
	case c.Concurrency < 0:
		return bad("concurrency %d: want a positive number (0 for the default %d)", c.Concurrency, DefaultConcurrency)
	case c.Duration < 0:
		return bad("duration %v: want a positive duration", c.Duration)
	case c.Requests < 0:
		return bad("requests %d: want a positive number", c.Requests)
	case c.Rate < 0 || c.Rate != c.Rate:
		return bad("rate %v: want a positive number of requests per second (0 for closed loop)", c.Rate)
	case c.Customers < 0:
		return bad("customers %d: want a positive number", c.Customers)
	case c.Products < 0:
		return bad("products %d: want a positive number", c.Products)
	case c.Stock < 0:
		return bad("stock %d: want a positive number", c.Stock)
	case c.Timeout < 0:
		return bad("timeout %v: want a positive duration", c.Timeout)
	case c.MaxBackoff < 0:
		return bad("max backoff %v: want a positive duration", c.MaxBackoff)
	}
	for i, w := range c.Mix.weights() {
		if w < 0 {
			return bad("mix: %s weight %d: want 0 or more", Ops[i], w)
		}
	}
	_, err := checkBaseURL(c.withDefaults().BaseURL)
	return err
}

// withDefaults returns c with its zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Duration == 0 && c.Requests == 0 {
		c.Duration = DefaultDuration
	}
	if c.Customers == 0 {
		c.Customers = DefaultCustomers
	}
	if c.Products == 0 {
		c.Products = DefaultProducts
	}
	if c.Stock == 0 {
		c.Stock = DefaultStock
	}
	if c.Mix == (Mix{}) {
		c.Mix = DefaultMix
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// checkBaseURL parses the gateway's URL and refuses any host but the loopback interface:
// a load generator pointed at someone else's server by a typo is an attack.
func checkBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, verity.Errorf(verity.Invalid, "loadgen", "base URL %q: %v", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, verity.Errorf(verity.Invalid, "loadgen", "base URL %q: want an http:// or https:// URL", raw)
	}
	host := u.Hostname()
	if !isLoopback(host) {
		return nil, verity.Errorf(verity.Invalid, "loadgen",
			"base URL %q: host %q is not a loopback address; this load tool only targets 127.0.0.1 (or ::1, localhost)", raw, host)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	return u, nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
