package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/verity-dev/verity"
)

// maxComposedBody bounds each call's answer that a composition holds in memory.
const maxComposedBody = 8 << 20

// errSiblingFailed cancels the calls of a parallel composition once a call that the answer
// needs has failed: their answers would be thrown away.
var errSiblingFailed = errors.New("another call of the composition failed")

// composer serves a composition route: GET calls to several services whose JSON answers
// are merged into one object keyed by call name. Calls go through the same callers as
// proxied requests (breaker, retries, timeout).
type composer struct {
	rc      Route
	calls   []Call
	callers []*caller
}

func newComposer(g *Gateway, rc Route, callerOf func(service string) *caller) *composer {
	c := &composer{rc: rc, calls: rc.Compose.Calls}
	for _, call := range c.calls {
		c.callers = append(c.callers, callerOf(call.Service))
	}
	return c
}

// callResult is one call's outcome: its JSON answer, or why there is none.
type callResult struct {
	body   json.RawMessage
	err    error
	status int // the status the whole answer gets if this failure fails it
}

// required says whether call i's failure fails the whole request.
func (c *composer) required(i int) bool {
	call := c.calls[i]
	if c.rc.Compose.Partial {
		return i == 0 || call.Required
	}
	return !call.Optional
}

func (c *composer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	results := make([]callResult, len(c.calls))
	if c.rc.Compose.Mode == ModeSequence {
		c.sequence(r, results)
	} else {
		c.parallel(r, results)
	}
	if err := r.Context().Err(); err != nil && context.Cause(r.Context()) != errRouteTimeout {
		// The client went away; nobody reads the answer.
		writeError(w, statusClientClosed, verity.Unavailable, "the client went away", 0)
		return
	}
	errs := map[string]string{}
	var failed *callResult
	var failedName string
	for i := range results {
		res := &results[i]
		if res.err == nil {
			continue
		}
		errs[c.calls[i].Name] = res.err.Error()
		if c.required(i) && (failed == nil || errors.Is(failed.err, errSiblingFailed) && !errors.Is(res.err, errSiblingFailed)) {
			failed, failedName = res, c.calls[i].Name
		}
	}
	if failed != nil {
		kind := verity.Unavailable
		if failed.status < 500 {
			kind = verity.NotFound
			if failed.status != http.StatusNotFound {
				kind = verity.Invalid
			}
		}
		var retryAfter time.Duration
		if ce := (*callError)(nil); errors.As(failed.err, &ce) {
			retryAfter = ce.retryAfter
		}
		writeJSON(w, failed.status, map[string]any{
			"error":  errorJSON{Kind: kind.String(), Message: fmt.Sprintf("route %q: call %q failed: %v", c.rc.Name, failedName, failed.err)},
			"errors": errs,
		}, retryAfter)
		return
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for i, res := range results {
		if i > 0 {
			b.WriteByte(',')
		}
		name, _ := json.Marshal(c.calls[i].Name)
		b.Write(name)
		b.WriteByte(':')
		if res.err != nil {
			b.WriteString("null")
		} else {
			b.Write(res.body)
		}
	}
	if len(errs) > 0 {
		e, _ := json.Marshal(errs)
		b.WriteString(`,"partial":true,"errors":`)
		b.Write(e)
		w.Header().Set("Verity-Partial", "true")
	}
	b.WriteString("}\n")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(http.StatusOK)
	w.Write(b.Bytes())
}

// parallel makes every call at once; a required failure cancels the others.
func (c *composer) parallel(r *http.Request, results []callResult) {
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	var wg sync.WaitGroup
	for i := range c.calls {
		wg.Go(func() {
			path, err := expand(c.calls[i].Path, r, nil)
			if err != nil {
				results[i] = callResult{err: err, status: http.StatusBadGateway}
			} else {
				results[i] = c.do(ctx, r, i, path)
			}
			if results[i].err != nil && c.required(i) {
				cancel(errSiblingFailed)
			}
		})
	}
	wg.Wait()
	// A call cancelled because a sibling failed is not what the answer reports: the
	// failure that caused it is (ServeHTTP skips errSiblingFailed when it picks one).
	for i := range results {
		if context.Cause(ctx) == errSiblingFailed && errors.Is(results[i].err, context.Canceled) {
			results[i].err = errSiblingFailed
		}
	}
}

// sequence makes the calls in order, each path taking values from the answers before it;
// it stops at the first required failure.
func (c *composer) sequence(r *http.Request, results []callResult) {
	answers := map[string]any{}
	failed := map[string]bool{}
	for i, call := range c.calls {
		path, err := expand(call.Path, r, func(name string) (any, bool, error) {
			if failed[name] {
				return nil, false, fmt.Errorf("call %q, which it depends on, failed", name)
			}
			v, ok := answers[name]
			return v, ok, nil
		})
		if err != nil {
			results[i] = callResult{err: err, status: http.StatusBadGateway}
		} else {
			results[i] = c.do(r.Context(), r, i, path)
		}
		if results[i].err != nil {
			failed[call.Name] = true
			if c.required(i) {
				for j := i + 1; j < len(c.calls); j++ {
					results[j] = callResult{err: errors.New("not called: an earlier call failed"), status: http.StatusBadGateway}
				}
				return
			}
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(results[i].body))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err == nil {
			answers[call.Name] = v
		}
	}
}

// do makes call i: a GET of path, with the client request's headers (less those of its
// body and of the connection), and returns its JSON answer.
func (c *composer) do(ctx context.Context, in *http.Request, i int, path string) callResult {
	call := c.calls[i]
	u, err := url.Parse(path)
	if err != nil {
		return callResult{err: fmt.Errorf("path %q: %w", path, err), status: http.StatusBadGateway}
	}
	u.Scheme, u.Host = "http", call.Service
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return callResult{err: err, status: http.StatusBadGateway}
	}
	req.Header = in.Header.Clone()
	for _, h := range []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization", "Te", "Trailer",
		"Transfer-Encoding", "Upgrade", "Content-Length", "Content-Type", "Content-Encoding", "Accept-Encoding",
		"If-None-Match", "If-Modified-Since", "Range", "Forwarded", "X-Forwarded-Host", "X-Forwarded-Proto"} {
		req.Header.Del(h)
	}
	if ip, _, err := net.SplitHostPort(in.RemoteAddr); err == nil {
		if prior := in.Header.Values("X-Forwarded-For"); len(prior) > 0 {
			ip = strings.Join(prior, ", ") + ", " + ip
		}
		req.Header.Set("X-Forwarded-For", ip)
	}
	req.Header.Set("X-Forwarded-Host", in.Host)
	proto := "http"
	if in.TLS != nil {
		proto = "https"
	}
	req.Header.Set("X-Forwarded-Proto", proto)
	req.Header.Set("Accept", "application/json")
	resp, err := c.callers[i].RoundTrip(req)
	if err != nil {
		status := http.StatusBadGateway
		var ce *callError
		if errors.As(err, &ce) && (ce.status == http.StatusServiceUnavailable || ce.status == http.StatusGatewayTimeout) {
			status = ce.status
		}
		return callResult{err: err, status: status}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxComposedBody+1))
	switch {
	case err != nil:
		status := http.StatusBadGateway
		if context.Cause(ctx) == errRouteTimeout {
			status = http.StatusGatewayTimeout
		}
		return callResult{err: fmt.Errorf("service %q: reading the answer: %w", call.Service, err), status: status}
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		status := http.StatusBadGateway
		if resp.StatusCode >= 400 && resp.StatusCode < 500 {
			// The client asked for something that is not there (an unknown order):
			// that is the answer, not a gateway failure.
			status = resp.StatusCode
		}
		return callResult{err: fmt.Errorf("service %q answered %s", call.Service, resp.Status), status: status}
	case len(body) > maxComposedBody:
		return callResult{err: fmt.Errorf("service %q: answer over %d bytes", call.Service, maxComposedBody), status: http.StatusBadGateway}
	case !json.Valid(body):
		return callResult{err: fmt.Errorf("service %q: answer is not JSON", call.Service), status: http.StatusBadGateway}
	}
	return callResult{body: bytes.TrimSpace(body)}
}

// expand replaces the placeholders of a call's path: "{id}" with the route's path
// wildcard, "{call.field.sub}" with a value of an earlier answer (lookup finds the call's
// decoded answer). Values are path-escaped.
func expand(path string, r *http.Request, lookup func(name string) (any, bool, error)) (string, error) {
	var firstErr error
	out := placeholderRE.ReplaceAllStringFunc(path, func(m string) string {
		ref := m[1 : len(m)-1]
		name, rest, dotted := strings.Cut(ref, ".")
		if !dotted {
			return url.PathEscape(r.PathValue(name))
		}
		if lookup == nil {
			return ""
		}
		v, ok, err := lookup(name)
		if err == nil && !ok {
			err = fmt.Errorf("{%s}: call %q has no answer", ref, name)
		}
		if err == nil {
			var s string
			s, err = field(v, rest)
			if err == nil {
				return url.PathEscape(s)
			}
			err = fmt.Errorf("{%s}: %w", ref, err)
		}
		if firstErr == nil {
			firstErr = err
		}
		return ""
	})
	if firstErr != nil {
		return "", firstErr
	}
	return out, nil
}

// field finds a dotted path ("customer.id", "lines.0.sku") in a decoded JSON value and
// returns it as text; only strings, numbers and booleans can go into a path.
func field(v any, path string) (string, error) {
	for seg := range strings.SplitSeq(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[seg]; !ok {
				return "", fmt.Errorf("the answer has no field %q", seg)
			}
		case []any:
			n, err := strconv.Atoi(seg)
			if err != nil || n < 0 || n >= len(x) {
				return "", fmt.Errorf("the answer has no element %q", seg)
			}
			v = x[n]
		default:
			return "", fmt.Errorf("the answer has no field %q", seg)
		}
	}
	switch x := v.(type) {
	case string:
		if x == "" {
			return "", errors.New("the value is empty")
		}
		return x, nil
	case json.Number:
		return x.String(), nil
	case bool:
		return strconv.FormatBool(x), nil
	}
	return "", fmt.Errorf("the value is %s, not a string, number or boolean", jsonKind(v))
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("%T", v)
}
