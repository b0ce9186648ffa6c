package registry

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/verity-dev/verity"
)

// ClientOptions configure a Client. The zero value of every field means its default: plain
// HTTP (or the system's roots for an https:// URL), anonymous.
type ClientOptions struct {
	// TLS configures TLS for an https:// URL; nil uses the system's roots. It may not be
	// set for an http:// URL.
	TLS *tls.Config
	// Username and Password are sent with every call as HTTP basic credentials, as Verity's
	// other clients send them. Default: none.
	Username, Password string
	// Token is sent with every call as a bearer token, instead of Username and Password.
	// Default: none.
	Token string
	// Prefix is the path the registry API is served under. Default "/registry".
	Prefix string
	// Timeout bounds each call but Watch (which lasts), on top of the caller's context.
	// Default 10 s.
	Timeout time.Duration
	// WatchIdleTimeout is how long a watch may hear nothing, not even the server's
	// heartbeat (every 15 s by default), before it deems the connection dead and
	// reconnects. Default 45 s.
	WatchIdleTimeout time.Duration
	// Transport sends the requests. Default: a clone of http.DefaultTransport with TLS.
	Transport http.RoundTripper
	// Logger receives the watch's reconnections. Default slog.Default().
	Logger *slog.Logger
}

// Defaults of ClientOptions.
const (
	DefaultClientTimeout    = 10 * time.Second
	DefaultWatchIdleTimeout = 45 * time.Second
	// maxEventBytes bounds one server-sent event (a snapshot of a large service).
	maxEventBytes = 64 << 20
)

// Validate names the first field that is wrong.
func (o ClientOptions) Validate() error {
	const op = "registry client options"
	switch {
	case o.Token != "" && (o.Username != "" || o.Password != ""):
		return verity.Errorf(verity.Invalid, op, "give either Username and Password or Token, not both")
	case o.Password != "" && o.Username == "":
		return verity.Errorf(verity.Invalid, op, "Password needs a Username")
	case strings.Contains(o.Username, ":"):
		return verity.Errorf(verity.Invalid, op, "Username %q contains ':', which basic authentication cannot carry", o.Username)
	case o.Prefix != "" && (!strings.HasPrefix(o.Prefix, "/") || strings.HasSuffix(o.Prefix, "/")):
		return verity.Errorf(verity.Invalid, op, "Prefix %q must start with '/' and not end with one", o.Prefix)
	case o.Timeout < 0:
		return verity.Errorf(verity.Invalid, op, "Timeout %v is negative", o.Timeout)
	case o.WatchIdleTimeout < 0:
		return verity.Errorf(verity.Invalid, op, "WatchIdleTimeout %v is negative", o.WatchIdleTimeout)
	}
	return nil
}

// Client is a network client of a registry served by NewHandler (as `verity serve` and
// `verity dev` do, at /registry). It implements Registrar and Source, so KeepRegistered and
// a Resolver work over it as over an embedded Registry. All methods may be called
// concurrently; Close ends its watches.
type Client struct {
	base          string // scheme://host[:port][/path] + prefix
	authorization string
	opts          ClientOptions
	hc            *http.Client
	ownTransport  *http.Transport // nil when the caller gave one

	ctx    context.Context // ends at Close: the watches' lifetime
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var (
	_ Registrar = (*Client)(nil)
	_ Source    = (*Client)(nil)
)

// NewClient returns a client of the registry at baseURL: http://HOST:PORT, https://HOST:PORT
// or HOST:PORT (plaintext), optionally with a path that the API's Prefix follows (a proxy's
// mount point). It does not connect: an unreachable server shows at the first call.
// Errors: Invalid (bad URL or options).
func NewClient(baseURL string, opts ClientOptions) (*Client, error) {
	const op = "registry client"
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	raw := baseURL
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, verity.Errorf(verity.Invalid, op, "URL %q: %v", baseURL, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, verity.Errorf(verity.Invalid, op, "URL %q: scheme %q; want http://HOST:PORT, https://HOST:PORT or HOST:PORT", baseURL, u.Scheme)
	case u.Host == "":
		return nil, verity.Errorf(verity.Invalid, op, "URL %q has no host; want e.g. http://127.0.0.1:2113", baseURL)
	case u.User != nil:
		return nil, verity.Errorf(verity.Invalid, op, "URL %q: give credentials in ClientOptions, not in the URL", u.Redacted())
	case u.RawQuery != "" || u.Fragment != "":
		return nil, verity.Errorf(verity.Invalid, op, "URL %q: want no query or fragment", baseURL)
	case u.Scheme == "http" && opts.TLS != nil:
		return nil, verity.Errorf(verity.Invalid, op, "URL %q is plaintext (http://) but a TLS configuration is given; use https://", baseURL)
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultClientTimeout
	}
	if opts.WatchIdleTimeout == 0 {
		opts.WatchIdleTimeout = DefaultWatchIdleTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	c := &Client{base: u.Scheme + "://" + u.Host + strings.TrimSuffix(u.Path, "/") + opts.Prefix, opts: opts}
	switch {
	case opts.Token != "":
		c.authorization = "Bearer " + opts.Token
	case opts.Username != "":
		c.authorization = "Basic " + base64.StdEncoding.EncodeToString([]byte(opts.Username+":"+opts.Password))
	}
	rt := opts.Transport
	if rt == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = opts.TLS
		// HTTP/1.1 only: a Verity server hands HTTP/2 connections to gRPC.
		var protocols http.Protocols
		protocols.SetHTTP1(true)
		t.Protocols = &protocols
		c.ownTransport, rt = t, t
	}
	// No client-wide timeout: a watch lasts; every other call gets Timeout by context.
	c.hc = &http.Client{Transport: rt}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// Close ends every watch (their Next returns Unavailable) and waits for them, then closes
// idle connections. Later calls fail with Unavailable. It is idempotent.
func (c *Client) Close() error {
	c.cancel()
	c.wg.Wait()
	if c.ownTransport != nil {
		c.ownTransport.CloseIdleConnections()
	}
	return nil
}

// Register registers in (see Registry.Register) and returns its lease.
// Errors: Invalid, Conflict, Unauthenticated, PermissionDenied, Unavailable (the server
// cannot be reached or its registry is closed), or ctx's error.
func (c *Client) Register(ctx context.Context, in Instance) (Lease, error) {
	var lease Lease
	err := c.call(ctx, "registry register", http.MethodPost, "/instances", in, &lease, http.StatusCreated)
	return lease, err
}

// Heartbeat renews an instance's lease. NotFound means the lease is gone: register again.
// Errors as for Register, and NotFound.
func (c *Client) Heartbeat(ctx context.Context, id string) error {
	return c.call(ctx, "registry heartbeat", http.MethodPut, "/instances/"+url.PathEscape(id)+"/heartbeat", nil, nil, http.StatusNoContent)
}

// Deregister removes an instance. Errors as for Heartbeat.
func (c *Client) Deregister(ctx context.Context, id string) error {
	return c.call(ctx, "registry deregister", http.MethodDelete, "/instances/"+url.PathEscape(id), nil, nil, http.StatusNoContent)
}

// SetHealth sets an instance's health and why. Errors as for Heartbeat.
func (c *Client) SetHealth(ctx context.Context, id string, h Health, reason string) error {
	return c.call(ctx, "registry set health", http.MethodPut, "/instances/"+url.PathEscape(id)+"/health",
		healthJSON{Health: h, Reason: reason}, nil, http.StatusNoContent)
}

// Lookup returns the live, healthy instances of a service, ordered by ID.
func (c *Client) Lookup(ctx context.Context, service string) ([]Instance, error) {
	const op = "registry lookup"
	if err := ValidateService(op, service); err != nil {
		return nil, err
	}
	var out struct{ Instances []Instance }
	err := c.call(ctx, op, http.MethodGet, "/services/"+service, nil, &out, http.StatusOK)
	return out.Instances, err
}

// List returns the live instances of a service, healthy or not, ordered by ID; an empty
// service lists every service's.
func (c *Client) List(ctx context.Context, service string) ([]Instance, error) {
	const op = "registry list"
	path := "/instances"
	if service != "" {
		if err := ValidateService(op, service); err != nil {
			return nil, err
		}
		path = "/services/" + service + "?all=true"
	}
	var out struct{ Instances []Instance }
	err := c.call(ctx, op, http.MethodGet, path, nil, &out, http.StatusOK)
	return out.Instances, err
}

// Services returns every service that has a live instance, with its counts, by name.
func (c *Client) Services(ctx context.Context) ([]ServiceSummary, error) {
	var out struct{ Services []ServiceSummary }
	err := c.call(ctx, "registry services", http.MethodGet, "/services", nil, &out, http.StatusOK)
	return out.Services, err
}

// call sends one request and decodes its answer into out (when not nil).
func (c *Client) call(ctx context.Context, op, method, path string, body, out any, want int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if c.ctx.Err() != nil {
		return verity.Errorf(verity.Unavailable, op, "the client is closed")
	}
	outer := ctx
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return verity.Errorf(verity.Invalid, op, "encode request: %v", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return verity.Errorf(verity.Invalid, op, "%v", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.send(req)
	if err != nil {
		return c.transportErr(outer, op, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		return responseError(op, resp)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxEventBytes)).Decode(out); err != nil {
		if ctx.Err() != nil {
			return c.transportErr(outer, op, err)
		}
		return verity.Errorf(verity.Internal, op, "unreadable answer from %s: %v", c.base, err)
	}
	return nil
}

func (c *Client) send(req *http.Request) (*http.Response, error) {
	if c.authorization != "" {
		req.Header.Set("Authorization", c.authorization)
	}
	return c.hc.Do(req)
}

// transportErr returns the error of a request that failed in transit: the caller's context
// error when that ended it, Unavailable otherwise (the server is down or unreachable, or
// the call's Timeout passed): worth retrying.
func (c *Client) transportErr(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	return &verity.Error{Kind: verity.Unavailable, Op: op, Message: "cannot reach the registry at " + c.base, Err: err}
}

// responseError turns an error answer into a *verity.Error: the server's own, or one
// inferred from the status when something else answered (a proxy, another service).
func responseError(op string, resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var body errorBody
	if json.Unmarshal(b, &body) == nil && body.Error.Kind != "" {
		return body.Error.toError()
	}
	kind := verity.Internal
	switch {
	case resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusGatewayTimeout:
		kind = verity.Unavailable
	default:
		for k := verity.Internal; k <= verity.ResourceExhausted; k++ {
			if k.HTTPStatus() == resp.StatusCode {
				kind = k
			}
		}
	}
	text := strings.TrimSpace(string(b))
	if len(text) > 200 {
		text = text[:200] + "..."
	}
	return verity.Errorf(kind, op, "HTTP %s from %s: %q (is that a Verity server?)", resp.Status, resp.Request.URL.Redacted(), text)
}
