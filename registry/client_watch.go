package registry

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/verity-dev/verity"
)

// Watch follows a service's instances over server-sent events (every service's when
// service is empty): a ChangeSnapshot first, then each change. The first connection is
// made before Watch returns, so an unreachable registry or a refused caller fails here
// (Unavailable, Unauthenticated, PermissionDenied, Invalid). After that the watch
// reconnects on its own, with a growing delay, whenever the connection breaks, goes quiet
// for WatchIdleTimeout or the server's registry closes (a restart); every connection
// begins with a fresh snapshot, which replaces whatever the watcher knew. The watch ends
// when ctx ends, at Close (of the watcher or the client), or when the server refuses a
// reconnection for good (not Unavailable): Next then returns that error.
func (c *Client) Watch(ctx context.Context, service string) (Watcher, error) {
	const op = "registry watch"
	path := "/watch"
	if service != "" {
		if err := ValidateService(op, service); err != nil {
			return nil, err
		}
		path += "/" + service
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if c.ctx.Err() != nil {
		return nil, verity.Errorf(verity.Unavailable, op, "the client is closed")
	}
	w := &clientWatcher{c: c, path: path, changes: make(chan Change), done: make(chan struct{})}
	w.ctx, w.cancel = context.WithCancel(c.ctx)
	body, err := w.connect(ctx)
	if err != nil {
		w.cancel()
		return nil, err
	}
	w.stop = context.AfterFunc(ctx, func() { w.end(ctx.Err()) })
	c.wg.Add(1)
	go w.run(body)
	return w, nil
}

type clientWatcher struct {
	c       *Client
	path    string
	ctx     context.Context // ends when the watch does
	cancel  context.CancelFunc
	stop    func() bool
	changes chan Change   // unbuffered: the reader holds one change at a time
	done    chan struct{} // closed when run returned; err is set by then

	once sync.Once
	err  error
}

// end records why the watch ends (the first reason wins) and stops it.
func (w *clientWatcher) end(err error) {
	w.once.Do(func() {
		w.err = err
		w.cancel()
	})
}

func (w *clientWatcher) Next(ctx context.Context) (Change, error) {
	select {
	case c := <-w.changes:
		return c, nil
	case <-w.done:
		return Change{}, w.err
	case <-ctx.Done():
		return Change{}, ctx.Err()
	}
}

func (w *clientWatcher) Close() error {
	w.stop()
	w.end(verity.Errorf(verity.Unavailable, "registry watch", "watch is closed"))
	<-w.done
	return nil
}

// connect opens one event stream; within ctx as well as the watch's lifetime.
func (w *clientWatcher) connect(ctx context.Context) (io.ReadCloser, error) {
	const op = "registry watch"
	cctx, cancel := context.WithCancel(w.ctx)
	stop := context.AfterFunc(ctx, cancel) // the caller's ctx bounds only the connecting
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, w.c.base+w.path, nil)
	if err != nil {
		stop()
		cancel()
		return nil, verity.Errorf(verity.Invalid, op, "%v", err)
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := w.c.send(req)
	stopped := stop()
	if err != nil {
		cancel()
		if !stopped || ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if w.ctx.Err() != nil {
			return nil, verity.Errorf(verity.Unavailable, op, "the watch is closed")
		}
		return nil, w.c.transportErr(ctx, op, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer cancel()
		defer resp.Body.Close()
		return nil, responseError(op, resp)
	}
	return &cancelBody{ReadCloser: resp.Body, cancel: cancel}, nil
}

// cancelBody cancels its request's context when closed, which also unblocks a Read.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	b.cancel()
	return b.ReadCloser.Close()
}

// run reads event streams until the watch ends, reconnecting when one breaks.
func (w *clientWatcher) run(body io.ReadCloser) {
	defer w.c.wg.Done()
	defer close(w.done)
	defer w.end(verity.Errorf(verity.Unavailable, "registry watch", "the client is closed"))
	delay := minRetry
	for {
		got, err := w.read(body)
		body.Close()
		if w.ctx.Err() != nil {
			return
		}
		if err != nil && verity.KindOf(err) != verity.Unavailable && verity.KindOf(err) != verity.Internal {
			w.end(err)
			return
		}
		if got {
			delay = minRetry
		}
		w.c.opts.Logger.Info("registry watch: reconnecting", "url", w.c.base+w.path, "after", delay, "err", err)
		for {
			t := time.NewTimer(delay)
			select {
			case <-w.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			delay = min(2*delay, maxRetry)
			body, err = w.connect(w.ctx)
			if err == nil {
				break
			}
			if w.ctx.Err() != nil {
				return
			}
			if k := verity.KindOf(err); k != verity.Unavailable && k != verity.Internal {
				w.end(err)
				return
			}
		}
	}
}

// read delivers one stream's changes until it breaks; got says whether any arrived. A
// stream that is silent for WatchIdleTimeout is cut (the timer closes it).
func (w *clientWatcher) read(body io.ReadCloser) (got bool, err error) {
	idle := time.AfterFunc(w.c.opts.WatchIdleTimeout, func() { body.Close() })
	defer idle.Stop()
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 4096), maxEventBytes)
	var event string
	var data bytes.Buffer
	for sc.Scan() {
		idle.Reset(w.c.opts.WatchIdleTimeout)
		line := sc.Bytes()
		switch {
		case len(line) == 0:
			if event == "" && data.Len() == 0 {
				continue
			}
			c, err := decodeEvent(event, data.Bytes())
			event = ""
			data.Reset()
			if err != nil {
				return got, err
			}
			// The consumer sets the pace: while it has not taken the change, nothing is
			// read, and the server's watcher lags (and resyncs) rather than anyone
			// buffering without bound. Waiting on it is not idleness.
			idle.Stop()
			select {
			case w.changes <- c:
				got = true
			case <-w.ctx.Done():
				return got, nil
			}
			idle.Reset(w.c.opts.WatchIdleTimeout)
		case line[0] == ':':
			// A comment: the server's heartbeat.
		default:
			field, value, _ := bytes.Cut(line, []byte(":"))
			value = bytes.TrimPrefix(value, []byte(" "))
			switch string(field) {
			case "event":
				event = string(value)
			case "data":
				if data.Len() > 0 {
					data.WriteByte('\n')
				}
				data.Write(value)
			}
		}
	}
	err = sc.Err()
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return got, &verity.Error{Kind: verity.Unavailable, Op: "registry watch", Message: "the event stream broke", Err: err}
}

// decodeEvent reads one server-sent event: a Change, or the error that ended the stream.
func decodeEvent(event string, data []byte) (Change, error) {
	const op = "registry watch"
	if event == "error" {
		var body errorBody
		if err := json.Unmarshal(data, &body); err != nil {
			return Change{}, verity.Errorf(verity.Internal, op, "unreadable error event: %v", err)
		}
		return Change{}, body.Error.toError()
	}
	var c Change
	if err := json.Unmarshal(data, &c); err != nil {
		return Change{}, verity.Errorf(verity.Internal, op, "unreadable %q event: %v", event, err)
	}
	if c.Kind.String() != event {
		return Change{}, verity.Errorf(verity.Internal, op, "event %q carries a change of kind %q", event, c.Kind)
	}
	return c, nil
}
