package engine

import (
	"context"
	"errors"
	"sync"

	"github.com/verity-dev/verity"
)

// subscription pulls from the log: when behind it reads from disk in batches, when caught
// up it waits for the next commit. It holds at most one batch, so a slow subscriber costs
// neither the writer nor memory.
type subscription struct {
	e        *Engine
	ctx      context.Context
	stream   string
	m        *verity.Matcher
	filtered bool
	every    int
	next     uint64
	caughtUp bool
	buf      []verity.SubscriptionMessage

	closeOnce sync.Once
	closed    chan struct{}
}

const subBatch = 512

// Subscribe implements verity.Store.
func (e *Engine) Subscribe(ctx context.Context, opts verity.SubscribeOptions) (verity.Subscription, error) {
	const op = "subscribe"
	if err := e.check(op); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m, err := opts.Filter.Compile()
	if err != nil {
		return nil, err
	}
	s := &subscription{e: e, ctx: ctx, m: m, filtered: !m.MatchesAll(), every: opts.CheckpointEvery, closed: make(chan struct{})}
	if s.every <= 0 {
		s.every = 1000
	}
	committed := e.committed.Load()
	if opts.Stream != "" && opts.Stream != verity.AllStream {
		if err := e.validName(op, opts.Stream); err != nil {
			return nil, err
		}
		if !opts.Filter.IsZero() {
			return nil, &verity.Error{Kind: verity.Invalid, Op: op, Stream: opts.Stream, Message: "a filter applies to $all only"}
		}
		if !opts.FromTime.IsZero() {
			return nil, &verity.Error{Kind: verity.Invalid, Op: op, Stream: opts.Stream, Message: "FromTime applies to $all only"}
		}
		s.stream = opts.Stream
		s.next = opts.From
		if opts.FromEnd {
			rev, _, ok, err := e.lastRevision(s.stream, committed)
			if err != nil {
				return nil, err
			}
			s.next = 0
			if ok {
				s.next = rev + 1
			}
		}
		return s, nil
	}
	switch {
	case opts.FromEnd:
		s.next = committed + 1
	case !opts.FromTime.IsZero():
		if s.next, err = e.positionAtTime(opts.FromTime, committed, false); err != nil {
			return nil, err
		}
	default:
		s.next = max(opts.From, 1)
	}
	return s, nil
}

func (s *subscription) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	return nil
}

func (s *subscription) Recv(ctx context.Context) (verity.SubscriptionMessage, error) {
	for {
		if len(s.buf) > 0 {
			msg := s.buf[0]
			s.buf = s.buf[1:]
			return msg, nil
		}
		select {
		case <-s.closed:
			return verity.SubscriptionMessage{}, verity.Errorf(verity.Unavailable, "subscribe", "subscription closed")
		default:
		}
		if err := s.ctx.Err(); err != nil {
			return verity.SubscriptionMessage{}, err
		}
		if err := ctx.Err(); err != nil {
			return verity.SubscriptionMessage{}, err
		}
		if err := s.e.check("subscribe"); err != nil {
			return verity.SubscriptionMessage{}, err
		}
		wait := s.e.waitChan()
		committed := s.e.committed.Load()
		if err := s.fill(ctx, committed); err != nil {
			return verity.SubscriptionMessage{}, err
		}
		if len(s.buf) > 0 {
			continue
		}
		if !s.caughtUp && s.atEnd(committed) {
			s.caughtUp = true
			return verity.SubscriptionMessage{Kind: verity.MessageCaughtUp, Position: committed}, nil
		}
		if !s.atEnd(committed) {
			continue
		}
		select {
		case <-wait:
		case <-s.closed:
		case <-s.e.closing:
		case <-s.ctx.Done():
		case <-ctx.Done():
		}
	}
}

func (s *subscription) atEnd(committed uint64) bool {
	if s.stream != "" {
		return true // fill read everything up to committed
	}
	return s.next > committed
}

// fill reads the next batch into s.buf.
func (s *subscription) fill(ctx context.Context, committed uint64) error {
	if s.stream != "" {
		evs, err := s.e.ReadStream(ctx, s.stream, verity.ReadStreamOptions{From: s.next, Limit: subBatch})
		if err != nil {
			if errors.Is(err, verity.ErrNotFound) {
				return nil
			}
			return err
		}
		for _, ev := range evs {
			if ev.Position > committed {
				break
			}
			s.buf = append(s.buf, verity.SubscriptionMessage{Kind: verity.MessageEvent, Event: ev})
			s.next = ev.Revision + 1
		}
		return nil
	}
	if s.next > committed {
		return nil
	}
	maxScan := 0
	if s.filtered {
		maxScan = s.every
	}
	evs, last, err := s.e.readAll(ctx, s.next, false, s.m, subBatch, committed, maxScan)
	if err != nil {
		return err
	}
	for _, ev := range evs {
		s.buf = append(s.buf, verity.SubscriptionMessage{Kind: verity.MessageEvent, Event: ev})
	}
	if last >= s.next {
		s.next = last + 1
	} else if len(evs) == 0 {
		s.next = committed + 1
	}
	// A filtered subscription reports how far it looked, so a consumer can resume past
	// what it skipped; with maxScan bounding each read, at most `every` events go unreported.
	if s.filtered && last > 0 && (len(evs) == 0 || last > evs[len(evs)-1].Position) {
		s.buf = append(s.buf, verity.SubscriptionMessage{Kind: verity.MessageCheckpoint, Position: last})
	}
	return nil
}
