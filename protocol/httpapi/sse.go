package httpapi

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/internal/httpjson"
	"github.com/verity-dev/verity/internal/sse"
)

// subscribe serves GET /subscribe/{stream} (and GET /streams/{stream} with Accept:
// text/event-stream): the stream's events, or the filtered log's, as server-sent events,
// first the history, then "caught-up", then live. It holds one message at a time: the store's
// subscription is pull-based and is pulled only as fast as the client reads, so a slow client
// costs neither memory nor writers. The stream ends when the client goes away, when a write
// to it stalls for SSEWriteTimeout, or when the store closes.
func (h *handler) subscribe(w http.ResponseWriter, r *http.Request, c caller) error {
	const op = "subscribe"
	stream := r.PathValue("stream")
	all := stream == verity.AllStream
	q := r.URL.Query()
	var opts verity.SubscribeOptions
	if all {
		allowed := append([]string{pFrom, pFromTime, pCheckpointEvery}, filterParams...)
		if err := checkParams(op, "", q, allowed...); err != nil {
			return err
		}
		var err error
		if opts.Filter, err = parseFilter(op, q); err != nil {
			return err
		}
		if opts.FromTime, err = parseFromTime(op, q); err != nil {
			return err
		}
		if opts.CheckpointEvery, err = parseCheckpointEvery(op, q); err != nil {
			return err
		}
	} else {
		if err := checkParams(op, stream, q, pFrom); err != nil {
			return err
		}
		opts.Stream = stream
	}
	from, err := parseFrom(op, opts.Stream, q)
	if err != nil {
		return err
	}
	if from.set && !opts.FromTime.IsZero() {
		return verity.Errorf(verity.Invalid, op, "give from or fromTime, not both")
	}
	opts.From, opts.FromEnd = from.n, from.atEnd
	// An EventSource reconnects to the same URL with the last id it saw, so the header
	// wins over from and fromTime: the client resumes where it was, not where it began.
	if ids := r.Header.Values("Last-Event-ID"); len(ids) > 0 {
		id, err := strconv.ParseUint(ids[0], 10, 64)
		if err != nil || id == math.MaxUint64 || len(ids) > 1 {
			return &verity.Error{Kind: verity.Invalid, Op: op, Stream: opts.Stream,
				Message: "Last-Event-ID " + strconv.Quote(ids[0]) + ": want one header holding the id of the last event received, a whole number"}
		}
		opts.From, opts.FromEnd, opts.FromTime = id+1, false, time.Time{}
	}

	if r.Method == http.MethodHead {
		// The request was checked as a GET would be; a stream with no body to carry it
		// would only hold a subscription open for nothing.
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		return nil
	}
	release, err := h.acquireSub(clientKey(r, c.principal))
	if err != nil {
		return err
	}
	defer release()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	sub, err := c.store.Subscribe(ctx, opts)
	if err != nil {
		return err
	}

	type received struct {
		msg verity.SubscriptionMessage
		err error
	}
	// Recv blocks, and heartbeats must go out while it does, so it runs on its own
	// goroutine; the unbuffered channel keeps at most one message in hand.
	msgs := make(chan received)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			m, err := sub.Recv(ctx)
			select {
			case msgs <- received{m, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		cancel()
		release() // before Close: once the store sees the subscription gone, so does the limit
		_ = sub.Close()
		wg.Wait()
	}()

	sw := sse.Start(w, h.opts.SSEWriteTimeout)
	defer sw.End()
	if err := sw.Comment("subscribed"); err != nil {
		h.log.DebugContext(ctx, "http api: event stream not flushable; ending it", "err", err)
		return nil
	}

	heartbeat := time.NewTicker(h.opts.SSEHeartbeat)
	defer heartbeat.Stop()
	for {
		var err error
		select {
		case <-ctx.Done():
			return nil
		case <-heartbeat.C:
			err = sw.Comment("heartbeat")
		case m := <-msgs:
			if m.err != nil {
				if ctx.Err() == nil {
					b, _ := httpjson.Marshal(errorBody{Error: errorJSONOf(m.err)})
					_ = sw.Message("error", "", b)
				}
				return nil
			}
			err = send(sw, m.msg, all)
		}
		if err != nil {
			return nil // the client is gone or stalled: nobody to tell
		}
	}
}

// send writes one subscription message. An event's id is its position on $all and its
// revision on a stream, so Last-Event-ID resumes right after it; checkpoints and caught-up
// on $all carry the position too, as everything up to it was considered.
func send(s *sse.Writer, m verity.SubscriptionMessage, all bool) error {
	switch m.Kind {
	case verity.MessageEvent:
		b, err := httpjson.Marshal(encodeEvent(m.Event))
		if err != nil {
			return err
		}
		id := m.Event.Revision
		if all {
			id = m.Event.Position
		}
		return s.Message("event", strconv.FormatUint(id, 10), b)
	case verity.MessageCaughtUp, verity.MessageCheckpoint:
		b, _ := httpjson.Marshal(struct {
			Position uint64 `json:"position"`
		}{m.Position})
		id := ""
		if all {
			id = strconv.FormatUint(m.Position, 10)
		}
		return s.Message(m.Kind.String(), id, b)
	}
	return nil // a kind newer than this code: nothing a client could make of it
}
