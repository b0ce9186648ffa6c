package client

import (
	"context"
	"fmt"
	"sync"

	"github.com/verity-dev/verity"
	verityv1 "github.com/verity-dev/verity/proto/verity/v1"
	"google.golang.org/grpc"
)

// Subscribe implements verity.Store. It returns once the server has accepted the
// subscription, so a bad filter or a missing permission fails here, not at the first Recv.
// The subscription holds one goroutine that reads from the connection; it reads one
// message ahead of Recv and no more, so a slow consumer holds the server back through
// gRPC's flow control, never the client's memory.
func (c *Client) Subscribe(ctx context.Context, opts verity.SubscribeOptions) (verity.Subscription, error) {
	const op = "subscribe"
	cctx, err := c.begin(ctx, op)
	if err != nil {
		return nil, err
	}
	// The engine takes a CheckpointEvery ≤ 0 as the default; the wire says so with 0.
	every := max(opts.CheckpointEvery, 0)
	cctx, cancel := context.WithCancel(cctx)
	rs, err := c.api.Subscribe(cctx, &verityv1.SubscribeRequest{
		Stream: opts.Stream, From: opts.From, FromEnd: opts.FromEnd, FromTime: verityv1.TimeToProto(opts.FromTime),
		Filter: verityv1.FilterToProto(opts.Filter), CheckpointEvery: int64(every),
	})
	if err != nil {
		cancel()
		return nil, c.fail(ctx, op, err)
	}
	first, err := rs.Recv()
	if err != nil {
		cancel()
		return nil, c.fail(ctx, op, err)
	}
	if first.GetConfirmation() == nil {
		cancel()
		return nil, badResponse(op, fmt.Errorf("the server sent %T before confirming the subscription", first.GetMessage()))
	}
	s := &subscription{
		c: c, ctx: ctx, cancel: cancel,
		msgs: make(chan verity.SubscriptionMessage), closing: make(chan struct{}), done: make(chan struct{}),
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		cancel()
		return nil, verity.Errorf(verity.Unavailable, op, "the client was closed")
	}
	c.subs[s] = struct{}{}
	c.mu.Unlock()
	go s.pump(rs)
	return s, nil
}

// subscription is a verity.Subscription over a server stream.
type subscription struct {
	c      *Client
	ctx    context.Context // the subscription's own, given to Subscribe
	cancel context.CancelFunc

	msgs chan verity.SubscriptionMessage // closed by pump once err is set
	err  error                           // why the subscription ended; read after msgs is closed

	endOnce sync.Once
	endErr  error         // set before closing is closed
	closing chan struct{} // closed by end: stop delivering
	done    chan struct{} // closed when pump has returned
}

// pump receives messages from the server and hands them to Recv one at a time.
func (s *subscription) pump(rs grpc.ServerStreamingClient[verityv1.SubscribeResponse]) {
	defer close(s.done)
	defer close(s.msgs)
	for {
		resp, err := rs.Recv()
		if err != nil {
			s.err = s.reason(s.c.fail(s.ctx, "subscribe", err))
			return
		}
		msg, err := messageFromProto(resp)
		if err != nil {
			s.err = s.reason(badResponse("subscribe", err))
			s.cancel()
			return
		}
		select {
		case s.msgs <- msg:
		case <-s.closing:
			s.err = s.endErr
			return
		case <-s.ctx.Done():
			s.err = s.ctx.Err()
			return
		}
	}
}

// reason is why the subscription ended: Close (or the client's) first, then the
// subscription's context, then what the stream said.
func (s *subscription) reason(err error) error {
	select {
	case <-s.closing:
		return s.endErr
	default:
	}
	if cerr := s.ctx.Err(); cerr != nil {
		return cerr
	}
	return err
}

func messageFromProto(p *verityv1.SubscribeResponse) (verity.SubscriptionMessage, error) {
	switch m := p.GetMessage().(type) {
	case *verityv1.SubscribeResponse_Event:
		e, err := verityv1.RecordedEventFromProto(m.Event)
		if err != nil {
			return verity.SubscriptionMessage{}, err
		}
		return verity.SubscriptionMessage{Kind: verity.MessageEvent, Event: e}, nil
	case *verityv1.SubscribeResponse_CaughtUp:
		return verity.SubscriptionMessage{Kind: verity.MessageCaughtUp, Position: m.CaughtUp.GetPosition()}, nil
	case *verityv1.SubscribeResponse_Checkpoint:
		return verity.SubscriptionMessage{Kind: verity.MessageCheckpoint, Position: m.Checkpoint.GetPosition()}, nil
	}
	return verity.SubscriptionMessage{}, fmt.Errorf("the server sent a subscription message of unknown type %T", p.GetMessage())
}

// Recv implements verity.Subscription. After the subscription ended it returns at once:
// Unavailable after Close or the client's Close, the context's error after the
// subscription's context ended, or the error the server ended it with.
func (s *subscription) Recv(ctx context.Context) (verity.SubscriptionMessage, error) {
	if err := ctx.Err(); err != nil {
		return verity.SubscriptionMessage{}, err
	}
	select {
	case msg, ok := <-s.msgs:
		if !ok {
			return verity.SubscriptionMessage{}, s.err
		}
		return msg, nil
	case <-ctx.Done():
		return verity.SubscriptionMessage{}, ctx.Err()
	}
}

// Close implements verity.Subscription: it ends the call to the server and waits for the
// subscription's goroutine. It is idempotent.
func (s *subscription) Close() error {
	s.end(verity.Errorf(verity.Unavailable, "subscribe", "subscription closed"))
	return nil
}

// end stops the subscription with err as the reason later Recvs give.
func (s *subscription) end(err error) {
	s.endOnce.Do(func() {
		s.endErr = err
		close(s.closing)
		s.cancel()
	})
	<-s.done
	s.c.mu.Lock()
	delete(s.c.subs, s)
	s.c.mu.Unlock()
}
