package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/verity-dev/verity/registry"
)

// upstream is one upstream service: its circuit breaker and counts. It outlives a reload
// whose configuration keeps the service and the breaker's settings, so that a reload does
// not close a breaker that protects a failing service.
type upstream struct {
	service  string
	settings Breaker // with the defaults applied
	cb       *gobreaker.TwoStepCircuitBreaker[struct{}]
	attempts atomic.Int64 // attempts let through the breaker
	failures atomic.Int64 // of which failed (error, timeout, 5xx)
}

// effective is b with its defaults applied.
func (b Breaker) effective() Breaker {
	return Breaker{Failures: b.failures(), OpenFor: b.openFor(), HalfOpenRequests: b.halfOpenRequests()}
}

func newUpstream(service string, b Breaker, log *slog.Logger) *upstream {
	b = b.effective()
	up := &upstream{service: service, settings: b}
	up.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        service,
		MaxRequests: uint32(b.HalfOpenRequests),
		Timeout:     b.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= uint32(b.Failures) },
		// A client that went away says nothing about the upstream's health.
		IsExcluded: func(err error) bool { return errors.Is(err, errNotCounted) },
		OnStateChange: func(name string, from, to gobreaker.State) {
			log.Warn("gateway: circuit breaker changed state", "service", name, "from", from.String(), "to", to.String())
		},
	})
	return up
}

// errNotCounted marks an attempt's outcome that the breaker neither counts as a failure
// nor as a success: the client cancelled, or no instance was there to call.
var errNotCounted = errors.New("not counted")

// errRouteTimeout is the cause of a route's timeout, which tells it from a client that
// went away (both end the request's context).
var errRouteTimeout = errors.New("the route's timeout elapsed")

// errTryTimeout is the cause of an attempt given up on after the route's tryTimeout.
var errTryTimeout = errors.New("the attempt's timeout elapsed")

// callError is a failure of an upstream call, with the status the gateway answers it with.
type callError struct {
	status     int
	retryAfter time.Duration // > 0: a Retry-After header
	service    string
	msg        string
	err        error
}

func (e *callError) Error() string {
	s := fmt.Sprintf("service %q: %s", e.service, e.msg)
	if e.err != nil {
		s += ": " + e.err.Error()
	}
	return s
}

func (e *callError) Unwrap() error { return e.err }

// isIdempotent says whether a request may be sent again (RFC 9110 section 9.2.2).
func isIdempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// caller sends requests to one upstream service: it picks an instance through the
// resolver, goes through the service's breaker, and retries idempotent requests. It is an
// http.RoundTripper for the route's ReverseProxy; the request's URL path is the upstream
// path and its host is ignored.
type caller struct {
	g          *Gateway
	up         *upstream
	resolver   *registry.Resolver
	retries    int
	tryTimeout time.Duration // 0: none
	backoff    time.Duration
	bodyLimit  int64
}

func (c *caller) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	// A request that may be retried needs its body again: buffer it, up to a bound past
	// which the request is sent once, streaming. Every method may be retried when the
	// connection to an instance could not even be made (nothing was sent), so bodies of
	// non-idempotent requests are buffered too.
	replayable := true
	var body []byte
	var stream io.Reader
	if req.Body != nil && req.Body != http.NoBody {
		buf, err := io.ReadAll(io.LimitReader(req.Body, c.bodyLimit+1))
		if err != nil {
			return nil, c.ended(ctx, err, "reading the request body")
		}
		if int64(len(buf)) > c.bodyLimit {
			replayable, stream = false, io.MultiReader(bytes.NewReader(buf), req.Body)
		} else {
			body = buf
		}
	}
	tried := map[string]bool{}
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if err := c.sleep(ctx, attempt); err != nil {
				return nil, c.ended(ctx, err, "waiting to retry")
			}
		}
		resp, err, retry := c.attempt(req, tried, body, stream)
		may := retry == retryAlways || retry == retryIdempotent && isIdempotent(req.Method)
		if may && replayable && attempt < c.retries {
			if resp != nil {
				// Drain a little so that the connection can be reused.
				io.CopyN(io.Discard, resp.Body, 64<<10)
				resp.Body.Close()
			}
			continue
		}
		return resp, err
	}
}

// retryKind says whether a failed attempt may be made again.
type retryKind uint8

const (
	retryNever      retryKind = iota
	retryIdempotent           // the request may have reached the instance: only idempotent methods
	retryAlways               // the connection was never made: nothing was sent, any method
)

// notSent reports whether err is a failure to connect, before any byte of the request
// was written.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// attempt makes one attempt; retry says whether its failure may be retried.
func (c *caller) attempt(req *http.Request, tried map[string]bool, body []byte, stream io.Reader) (resp *http.Response, err error, retry retryKind) {
	ctx := req.Context()
	service := c.up.service
	report, err := c.up.cb.Allow()
	if err != nil {
		c.g.metrics.attempts.WithLabelValues(service, outcomeBreakerOpen).Inc()
		return nil, &callError{status: http.StatusServiceUnavailable, retryAfter: c.up.settings.OpenFor,
			service: service, msg: "circuit breaker is open", err: err}, retryNever
	}
	in, release, err := c.pick(ctx, tried)
	if err != nil {
		report(errNotCounted)
		if ctx.Err() != nil {
			return nil, c.ended(ctx, ctx.Err(), "resolving an instance"), retryNever
		}
		c.g.metrics.attempts.WithLabelValues(service, outcomeNoInstance).Inc()
		return nil, &callError{status: http.StatusServiceUnavailable, retryAfter: time.Second,
			service: service, msg: "no instance available", err: err}, retryNever
	}
	tried[in.ID] = true
	c.up.attempts.Add(1)
	if info := infoOf(ctx); info != nil {
		info.addUpstream(service + "/" + in.ID + "@" + in.Address)
	}
	out, err := outgoing(req, in.Address)
	if err != nil {
		release()
		report(err)
		c.up.failures.Add(1)
		c.g.metrics.attempts.WithLabelValues(service, outcomeError).Inc()
		return nil, &callError{status: http.StatusBadGateway, service: service, msg: fmt.Sprintf("instance %s", in.ID), err: err}, retryNever
	}
	switch {
	case body != nil:
		out.Body, out.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	case stream != nil:
		out.Body, out.GetBody = io.NopCloser(stream), nil
	}
	// The attempt's own bound, until the answer's headers: the body may then take the rest
	// of the route's timeout. endTry releases the attempt's context once its body is done.
	endTry := func() {}
	if c.tryTimeout > 0 {
		tctx, cancel := context.WithCancelCause(ctx)
		timer := time.AfterFunc(c.tryTimeout, func() { cancel(errTryTimeout) })
		out = out.WithContext(tctx)
		defer timer.Stop()
		endTry = func() { timer.Stop(); cancel(nil) }
		resp, err = c.g.transport.RoundTrip(out)
		if err == nil && !timer.Stop() && context.Cause(tctx) == errTryTimeout {
			err = context.Cause(tctx) // fired as the headers came: treat as timed out
			resp.Body.Close()
			resp = nil
		}
		if err != nil && ctx.Err() == nil && context.Cause(tctx) == errTryTimeout {
			endTry()
			release()
			report(errTryTimeout)
			c.up.failures.Add(1)
			c.g.metrics.attempts.WithLabelValues(service, outcomeTimeout).Inc()
			return nil, &callError{status: http.StatusGatewayTimeout, service: service,
				msg: fmt.Sprintf("instance %s at %s did not answer within %s", in.ID, in.Address, c.tryTimeout), err: errTryTimeout}, retryIdempotent
		}
	} else {
		resp, err = c.g.transport.RoundTrip(out)
	}
	if err != nil {
		endTry()
		release()
		if ctx.Err() != nil {
			cerr := c.ended(ctx, err, "calling instance "+in.ID)
			if context.Cause(ctx) == errRouteTimeout {
				report(err)
				c.up.failures.Add(1)
			} else {
				report(errNotCounted)
			}
			return nil, cerr, retryNever
		}
		report(err)
		c.up.failures.Add(1)
		c.g.metrics.attempts.WithLabelValues(service, outcomeError).Inc()
		kind := retryIdempotent
		if notSent(err) {
			kind = retryAlways
		}
		return nil, &callError{status: http.StatusBadGateway, service: service,
			msg: fmt.Sprintf("instance %s at %s", in.ID, in.Address), err: err}, kind
	}
	if resp.StatusCode >= 500 {
		c.g.metrics.attempts.WithLabelValues(service, outcomeStatus5xx).Inc()
		c.up.failures.Add(1)
		report(fmt.Errorf("status %d", resp.StatusCode))
		resp.Body = &doneBody{ReadCloser: resp.Body, done: func(error) { endTry(); release() }}
		retry := retryNever
		if resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusServiceUnavailable ||
			resp.StatusCode == http.StatusGatewayTimeout {
			retry = retryIdempotent
		}
		return resp, nil, retry
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// An upgrade (WebSocket): the instance accepted it, and the connection is now the
		// client's. ReverseProxy needs the body to stay writable to splice the two; the
		// instance counts as busy until the connection closes.
		c.g.metrics.attempts.WithLabelValues(service, outcomeSuccess).Inc()
		report(nil)
		if rwc, ok := resp.Body.(io.ReadWriteCloser); ok {
			resp.Body = &upgradedBody{ReadWriteCloser: rwc, release: func() { endTry(); release() }}
		} else {
			endTry()
			release()
		}
		return resp, nil, retryNever
	}
	// The outcome of an answer is known once its body is read: a timeout or a broken
	// connection halfway through is a failure.
	resp.Body = &doneBody{ReadCloser: resp.Body, done: func(err error) {
		endTry()
		release()
		switch {
		case err == nil:
			c.g.metrics.attempts.WithLabelValues(service, outcomeSuccess).Inc()
			report(nil)
		case ctx.Err() != nil && context.Cause(ctx) != errRouteTimeout,
			ctx.Err() == nil && errors.Is(err, errAbandoned):
			c.g.metrics.attempts.WithLabelValues(service, outcomeCanceled).Inc()
			report(errNotCounted)
		default:
			outcome := outcomeError
			if ctx.Err() != nil {
				outcome = outcomeTimeout
			}
			c.g.metrics.attempts.WithLabelValues(service, outcome).Inc()
			c.up.failures.Add(1)
			report(err)
		}
	}}
	return resp, nil, retryNever
}

// ended describes a request whose context ended: the route's timeout (504) or the client
// going away (not the upstream's fault; the status is never seen by anyone).
func (c *caller) ended(ctx context.Context, err error, doing string) error {
	if ctx.Err() != nil && context.Cause(ctx) == errRouteTimeout {
		c.g.metrics.attempts.WithLabelValues(c.up.service, outcomeTimeout).Inc()
		return &callError{status: http.StatusGatewayTimeout, service: c.up.service, msg: "timed out " + doing, err: errRouteTimeout}
	}
	if ctx.Err() != nil {
		c.g.metrics.attempts.WithLabelValues(c.up.service, outcomeCanceled).Inc()
		return &callError{status: statusClientClosed, service: c.up.service, msg: "the client went away while " + doing, err: ctx.Err()}
	}
	return &callError{status: http.StatusBadRequest, service: c.up.service, msg: doing, err: err}
}

// statusClientClosed is logged for a request whose client went away (nginx's 499); the
// client never sees it.
const statusClientClosed = 499

// pick picks an instance, preferring one not tried yet: round-robin gives another one
// within as many picks as there were instances tried.
func (c *caller) pick(ctx context.Context, tried map[string]bool) (registry.Instance, func(), error) {
	var first registry.Instance
	var firstDone func()
	for range len(tried) + 1 {
		in, done, err := c.resolver.Pick(ctx, c.up.service)
		if err != nil {
			if firstDone != nil {
				return first, firstDone, nil
			}
			return registry.Instance{}, nil, err
		}
		if !tried[in.ID] {
			if firstDone != nil {
				firstDone()
			}
			return in, done, nil
		}
		if firstDone == nil {
			first, firstDone = in, done
		} else {
			done()
		}
	}
	return first, firstDone, nil
}

// sleep waits before retry number attempt: exponential backoff from the base, capped at 20
// times the base, with jitter (a random half of it) so that retries of many requests do
// not arrive together.
func (c *caller) sleep(ctx context.Context, attempt int) error {
	d := c.backoff << min(attempt-1, 10)
	d = min(d, 20*c.backoff)
	d = d/2 + rand.N(d/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// outgoing is req sent to the instance at address ("host:port" or a URL whose path is
// prepended), with a span of its own in the trace.
func outgoing(req *http.Request, address string) (*http.Request, error) {
	base, err := instanceURL(address)
	if err != nil {
		return nil, err
	}
	out := req.Clone(req.Context())
	out.URL.Scheme, out.URL.Host, out.Host = base.Scheme, base.Host, ""
	if p := strings.TrimSuffix(base.Path, "/"); p != "" {
		if out.URL.RawPath != "" {
			out.URL.RawPath = strings.TrimSuffix(base.EscapedPath(), "/") + out.URL.RawPath
		}
		out.URL.Path = p + out.URL.Path
	}
	if tc, ok := parseTraceparent(req.Header.Get(headerTraceparent)); ok {
		out.Header.Set(headerTraceparent, tc.child().String())
	}
	return out, nil
}

func instanceURL(address string) (*url.URL, error) {
	if !strings.Contains(address, "://") {
		address = "http://" + address
	}
	u, err := url.Parse(address)
	if err != nil {
		return nil, fmt.Errorf("instance address %q: %w", address, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("instance address %q is not host:port or an http(s) URL", address)
	}
	return u, nil
}

// errAbandoned is the outcome of an answer closed before its end: whoever read it (the
// proxy, when the client stopped reading) gave up, which says nothing of the upstream.
var errAbandoned = errors.New("the answer was closed before its end")

// doneBody calls done once: with nil at EOF, with the error of a failed Read, and with
// errAbandoned at a Close before EOF (a client that went away must count neither as a
// success nor as a failure).
type doneBody struct {
	io.ReadCloser
	once sync.Once
	done func(error)
}

func (b *doneBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		if err == io.EOF {
			b.finish(nil)
		} else {
			b.finish(err)
		}
	}
	return n, err
}

func (b *doneBody) Close() error {
	err := b.ReadCloser.Close()
	b.finish(errAbandoned)
	return err
}

func (b *doneBody) finish(err error) { b.once.Do(func() { b.done(err) }) }

// upgradedBody is the connection of an upgraded exchange: writable, as ReverseProxy needs
// it, and releasing the instance once closed.
type upgradedBody struct {
	io.ReadWriteCloser
	once    sync.Once
	release func()
}

func (b *upgradedBody) Close() error {
	err := b.ReadWriteCloser.Close()
	b.once.Do(b.release)
	return err
}
