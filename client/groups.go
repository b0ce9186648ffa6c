package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/verity-dev/verity"
	verityv1 "github.com/verity-dev/verity/proto/verity/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var _ verity.Groups = (*Client)(nil)

// closeWait bounds how long a consumer's Close waits for the server to confirm that the
// consumer left; past it the call is cut, which the server also takes as leaving.
const closeWait = 10 * time.Second

// groupFail is fail for the calls of the Groups service: a server without it (an older
// Verity) is Unavailable rather than Internal.
func (c *Client) groupFail(ctx context.Context, op string, err error) error {
	if status.Code(err) == codes.Unimplemented && ctx.Err() == nil {
		return verity.Errorf(verity.Unavailable, op, "the server does not serve consumer groups (verity.v1.Groups): %s", status.Convert(err).Message())
	}
	return c.fail(ctx, op, err)
}

// CreateGroup implements verity.Groups.
func (c *Client) CreateGroup(ctx context.Context, spec verity.GroupSpec) error {
	const op = "create group"
	cctx, err := c.begin(ctx, op)
	if err != nil {
		return err
	}
	if _, err := c.groups.CreateGroup(cctx, &verityv1.CreateGroupRequest{Spec: verityv1.GroupSpecToProto(spec)}); err != nil {
		return c.groupFail(ctx, op, err)
	}
	return nil
}

// UpdateGroup implements verity.Groups.
func (c *Client) UpdateGroup(ctx context.Context, spec verity.GroupSpec) error {
	const op = "update group"
	cctx, err := c.begin(ctx, op)
	if err != nil {
		return err
	}
	if err := c.settleAcks(ctx); err != nil {
		return err
	}
	if _, err := c.groups.UpdateGroup(cctx, &verityv1.UpdateGroupRequest{Spec: verityv1.GroupSpecToProto(spec)}); err != nil {
		return c.groupFail(ctx, op, err)
	}
	return nil
}

// DeleteGroup implements verity.Groups.
func (c *Client) DeleteGroup(ctx context.Context, stream, group string) error {
	const op = "delete group"
	cctx, err := c.begin(ctx, op)
	if err != nil {
		return err
	}
	if err := c.settleAcks(ctx); err != nil {
		return err
	}
	if _, err := c.groups.DeleteGroup(cctx, &verityv1.DeleteGroupRequest{Stream: stream, Group: group}); err != nil {
		return c.groupFail(ctx, op, err)
	}
	return nil
}

// GetGroup implements verity.Groups.
func (c *Client) GetGroup(ctx context.Context, stream, group string) (verity.GroupInfo, error) {
	const op = "get group"
	cctx, err := c.begin(ctx, op)
	if err != nil {
		return verity.GroupInfo{}, err
	}
	if err := c.settleAcks(ctx); err != nil {
		return verity.GroupInfo{}, err
	}
	res, err := c.groups.GetGroup(cctx, &verityv1.GetGroupRequest{Stream: stream, Group: group})
	if err != nil {
		return verity.GroupInfo{}, c.groupFail(ctx, op, err)
	}
	info, err := verityv1.GroupInfoFromProto(res)
	if err != nil {
		return verity.GroupInfo{}, badResponse(op, err)
	}
	return info, nil
}

// ListGroups implements verity.Groups.
func (c *Client) ListGroups(ctx context.Context, stream string) ([]verity.GroupInfo, error) {
	const op = "list groups"
	cctx, err := c.begin(ctx, op)
	if err != nil {
		return nil, err
	}
	if err := c.settleAcks(ctx); err != nil {
		return nil, err
	}
	res, err := c.groups.ListGroups(cctx, &verityv1.ListGroupsRequest{Stream: stream})
	if err != nil {
		return nil, c.groupFail(ctx, op, err)
	}
	var out []verity.GroupInfo
	for _, p := range res.GetGroups() {
		info, err := verityv1.GroupInfoFromProto(p)
		if err != nil {
			return nil, badResponse(op, err)
		}
		out = append(out, info)
	}
	return out, nil
}

// ReplayParked implements verity.Groups.
func (c *Client) ReplayParked(ctx context.Context, stream, group string, opts verity.ReplayParkedOptions) error {
	const op = "replay parked"
	cctx, err := c.begin(ctx, op)
	if err != nil {
		return err
	}
	if err := c.settleAcks(ctx); err != nil {
		return err
	}
	if _, err := c.groups.ReplayParked(cctx, &verityv1.ReplayParkedRequest{Stream: stream, Group: group, Limit: int64(opts.Limit)}); err != nil {
		return c.groupFail(ctx, op, err)
	}
	return nil
}

// RestartGroups implements verity.Groups.
func (c *Client) RestartGroups(ctx context.Context) error {
	const op = "restart groups"
	cctx, err := c.begin(ctx, op)
	if err != nil {
		return err
	}
	if err := c.settleAcks(ctx); err != nil {
		return err
	}
	if _, err := c.groups.RestartGroups(cctx, &verityv1.RestartGroupsRequest{}); err != nil {
		return c.groupFail(ctx, op, err)
	}
	return nil
}

// settleAcks waits until the server has answered every ack this client's consumers have
// sent. Ack returns without waiting for that answer; the group calls below (all but
// CreateGroup) settle first, so that they see the acks made before them, as they would on
// the embedded Groups, where one group's acks and calls are handled in order.
func (c *Client) settleAcks(ctx context.Context) error {
	c.mu.Lock()
	consumers := make([]*consumer, 0, len(c.consumers))
	for gc := range c.consumers {
		consumers = append(consumers, gc)
	}
	c.mu.Unlock()
	for _, gc := range consumers {
		gc.mu.Lock()
		waiting := make([]*pending, 0, len(gc.waiting))
		for _, p := range gc.waiting {
			waiting = append(waiting, p)
		}
		gc.mu.Unlock()
		for _, p := range waiting {
			select {
			case <-p.done:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

type joinClient = grpc.BidiStreamingClient[verityv1.JoinGroupRequest, verityv1.JoinGroupResponse]

// JoinGroup implements verity.Groups over one bidirectional call. It returns once the
// server has connected the consumer, so a missing group or a full one fails here. ctx
// bounds the join only: the consumer lasts until its Close, the client's Close, or the
// server disconnects it.
//
// The consumer holds one goroutine that reads from the call. It queues the events it
// receives for Recv without bound on the client's side, which is safe because the server
// never has more than the consumer's MaxInFlight events unacknowledged, and it never waits
// for Recv, so the answers to acks always get through.
func (c *Client) JoinGroup(ctx context.Context, stream, group string, opts verity.JoinOptions) (verity.GroupConsumer, error) {
	const op = "join group"
	if _, err := c.begin(ctx, op); err != nil {
		return nil, err
	}
	// The call's context is the client's (credentials; ended by Close), not ctx.
	cctx, cancel := context.WithCancel(c.sessCtx)
	js, err := c.groups.JoinGroup(cctx)
	if err != nil {
		cancel()
		return nil, c.groupFail(ctx, op, err)
	}
	join := &verityv1.JoinGroupRequest{Request: &verityv1.JoinGroupRequest_Join_{Join: &verityv1.JoinGroupRequest_Join{
		Stream: stream, Group: group, MaxInFlight: int64(opts.MaxInFlight), Name: opts.Name,
	}}}
	// A failed Send means the call ended; Recv below says why.
	_ = js.Send(join)
	type first struct {
		resp *verityv1.JoinGroupResponse
		err  error
	}
	got := make(chan first, 1)
	go func() {
		resp, err := js.Recv()
		got <- first{resp, err}
	}()
	var f first
	select {
	case f = <-got:
	case <-ctx.Done():
		cancel()
		<-got
		return nil, ctx.Err()
	}
	if f.err != nil {
		cancel()
		return nil, c.groupFail(ctx, op, f.err)
	}
	if f.resp.GetConfirmation() == nil {
		cancel()
		return nil, badResponse(op, fmt.Errorf("the server sent %T before confirming the join", f.resp.GetMessage()))
	}
	gc := &consumer{
		c: c, js: js, cancel: cancel,
		ready: make(chan struct{}, 1), done: make(chan struct{}), waiting: map[uint64]*pending{},
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		cancel()
		return nil, verity.Errorf(verity.Unavailable, op, "the client was closed")
	}
	c.consumers[gc] = struct{}{}
	c.mu.Unlock()
	go gc.pump()
	return gc, nil
}

// consumer is a verity.GroupConsumer over a JoinGroup call.
type consumer struct {
	c      *Client
	js     joinClient
	cancel context.CancelFunc // ends the call

	sendMu sync.Mutex // serializes Send and CloseSend, which gRPC requires

	mu       sync.Mutex
	queue    []verity.GroupMessage // received, not yet returned by Recv
	ended    bool                  // the call has ended: endErr says why
	endErr   error
	localErr error // set by Close (Conflict) or the client's Close (Unavailable) unless ended
	stopping bool  // Close or the client's Close has begun
	nextID   uint64
	waiting  map[uint64]*pending // acks and nacks sent and not yet answered
	batch    *pending            // acks gathered while another is being sent
	sending  bool                // an Ack is sending batches

	ready chan struct{} // signalled (never blocking) when queue grows or the call ends
	done  chan struct{} // closed when pump has returned
}

// pending is an ack or a nack waiting for the server's answer.
type pending struct {
	ids  []uuid.UUID
	sent chan struct{} // acks: closed once the request was handed to the call (or p finished unsent)
	done chan struct{}
	err  error
}

func newPending() *pending { return &pending{sent: make(chan struct{}), done: make(chan struct{})} }

// finish answers p; it is called once, under the consumer's mu.
func (p *pending) finish(err error) {
	p.err = err
	close(p.done)
}

// pump reads the call until it ends: events go to the queue, answers to their waiters.
func (gc *consumer) pump() {
	defer close(gc.done)
	for {
		resp, err := gc.js.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				// The server ended the call without an error, which Verity's never does.
				err = verity.Errorf(verity.Unavailable, "join group", "the server ended the consumer without saying why; join again")
			} else {
				err = gc.c.groupFail(context.Background(), "join group", err)
			}
			gc.end(err)
			return
		}
		switch m := resp.GetMessage().(type) {
		case *verityv1.JoinGroupResponse_Event_:
			msg, err := verityv1.GroupMessageFromProto(m.Event)
			if err != nil {
				gc.end(badResponse("join group", err))
				gc.cancel()
				return
			}
			gc.mu.Lock()
			gc.queue = append(gc.queue, msg)
			gc.mu.Unlock()
			gc.signal()
		case *verityv1.JoinGroupResponse_Done_:
			var err error
			if m.Done.GetError() != nil {
				err = verityv1.ErrorFromProto(m.Done.GetError())
			}
			gc.mu.Lock()
			if p, ok := gc.waiting[m.Done.GetId()]; ok {
				delete(gc.waiting, m.Done.GetId())
				p.finish(err)
			}
			gc.mu.Unlock()
		default:
			gc.end(badResponse("join group", fmt.Errorf("the server sent a consumer message of unknown type %T", resp.GetMessage())))
			gc.cancel()
			return
		}
	}
}

func (gc *consumer) signal() {
	select {
	case gc.ready <- struct{}{}:
	default:
	}
}

// end records why the call ended and fails the acks and nacks still waiting with it: the
// server cannot answer them any more, and whether it took them in before is unknown.
func (gc *consumer) end(err error) {
	gc.mu.Lock()
	if !gc.ended {
		gc.ended, gc.endErr = true, err
		gc.queue = nil
		for id, p := range gc.waiting {
			delete(gc.waiting, id)
			p.finish(gc.reasonLocked())
		}
		if gc.batch != nil { // gathered, never to be sent
			gc.batch.finish(gc.reasonLocked())
			close(gc.batch.sent)
			gc.batch = nil
		}
	}
	gc.mu.Unlock()
	gc.signal()
}

// reasonLocked is why the consumer is disconnected: Close (or the client's), if it came
// before the server said anything, else what the server said; nil while connected.
func (gc *consumer) reasonLocked() error {
	if gc.localErr != nil {
		return gc.localErr
	}
	return gc.endErr
}

// Recv implements verity.GroupConsumer. Once the consumer is disconnected it returns at
// once, and the events it had received but not returned are dropped: the group gives
// them to other consumers.
func (gc *consumer) Recv(ctx context.Context) (verity.GroupMessage, error) {
	for {
		gc.mu.Lock()
		if err := gc.reasonLocked(); err != nil || gc.ended {
			gc.mu.Unlock()
			return verity.GroupMessage{}, err
		}
		if len(gc.queue) > 0 {
			msg := gc.queue[0]
			gc.queue[0] = verity.GroupMessage{}
			gc.queue = gc.queue[1:]
			gc.mu.Unlock()
			return msg, nil
		}
		gc.mu.Unlock()
		select {
		case <-gc.ready:
		case <-ctx.Done():
			return verity.GroupMessage{}, ctx.Err()
		}
	}
}

// Ack implements verity.GroupConsumer. It returns once the ids are sent, without waiting
// for the server's answer (a round trip), as the embedded consumer's Ack returns once the
// group has queued them: a consumer that acks each event before it receives the next is
// not held to one event per round trip. What the consumer does next reaches the server
// after the ack: a later Ack, Nack or Close (whose leaving the server handles after every
// ack sent before it); and this client's group calls (GetGroup, RestartGroups, ...) wait
// for the server's answers to the acks sent before them, so they see them. The server fails an ack only when the consumer is disconnected,
// which ends the call: Recv then says why, and so does an Ack called after it. Acks made
// while another is being sent travel together, in one message.
//
// The events are then not delivered to the group again unless the connection breaks
// before the server reads the ack, in which case they go to another consumer, as they do
// when the server restarts before its next checkpoint: delivery is at least once.
func (gc *consumer) Ack(ctx context.Context, ids ...uuid.UUID) error {
	if len(ids) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	gc.mu.Lock()
	if err := gc.reasonLocked(); err != nil {
		gc.mu.Unlock()
		return err
	}
	if gc.batch == nil {
		gc.batch = newPending()
	}
	p := gc.batch
	p.ids = append(p.ids, ids...)
	lead := !gc.sending
	gc.sending = true
	gc.mu.Unlock()
	if lead {
		gc.sendBatches()
	}
	select {
	case <-p.sent:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-p.done: // answered already, or not sent: the consumer was disconnected
		return p.err
	default:
		return nil
	}
}

// sendBatches sends the gathered acks, one message per batch, until none is left.
func (gc *consumer) sendBatches() {
	for {
		gc.mu.Lock()
		p := gc.batch
		gc.batch = nil
		if p == nil {
			gc.sending = false
			gc.mu.Unlock()
			return
		}
		id := gc.register(p)
		gc.mu.Unlock()
		gc.send(&verityv1.JoinGroupRequest{Request: &verityv1.JoinGroupRequest_Ack_{Ack: &verityv1.JoinGroupRequest_Ack{
			Id: id, EventIds: verityv1.EventIDsToProto(p.ids),
		}}})
		close(p.sent)
	}
}

// register numbers p and waits it for its answer; under mu. Once the call has ended it
// answers p at once.
func (gc *consumer) register(p *pending) uint64 {
	gc.nextID++
	if err := gc.reasonLocked(); err != nil || gc.ended {
		p.finish(err)
		return gc.nextID
	}
	gc.waiting[gc.nextID] = p
	return gc.nextID
}

// send sends one request. A failed Send means the call has ended, which pump sees and
// answers every waiter for.
func (gc *consumer) send(req *verityv1.JoinGroupRequest) {
	gc.sendMu.Lock()
	defer gc.sendMu.Unlock()
	_ = gc.js.Send(req)
}

func (gc *consumer) wait(ctx context.Context, p *pending) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Nack implements verity.GroupConsumer. It returns once the server has taken the nack in.
func (gc *consumer) Nack(ctx context.Context, action verity.NackAction, reason string, ids ...uuid.UUID) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if action < verity.NackPark || action > verity.NackStop {
		return verity.Errorf(verity.Invalid, "nack", "unknown nack action %d (want park, retry, skip or stop)", action)
	}
	if len(ids) == 0 && action != verity.NackStop {
		return nil
	}
	p := newPending()
	gc.mu.Lock()
	id := gc.register(p)
	gc.mu.Unlock()
	gc.send(&verityv1.JoinGroupRequest{Request: &verityv1.JoinGroupRequest_Nack_{Nack: &verityv1.JoinGroupRequest_Nack{
		Id: id, EventIds: verityv1.EventIDsToProto(ids), Action: verityv1.NackActionToProto(action), Reason: reason,
	}}})
	err := gc.wait(ctx, p)
	if action == verity.NackStop && err != nil && ctx.Err() == nil && verity.KindOf(err) == verity.Conflict {
		// The server ended the call for the stop this nack asked for, before its answer
		// to the nack got out: the nack did what it was for. Recv reports the stop.
		return nil
	}
	return err
}

// Close implements verity.GroupConsumer: it tells the server the consumer leaves and
// waits (at most closeWait) for the server to have closed it, so that its unacknowledged
// events are already going to other consumers when Close returns. It is idempotent.
func (gc *consumer) Close() error {
	gc.stop(verity.Errorf(verity.Conflict, "group consumer", "the consumer was closed"), true)
	return nil
}

// stop disconnects the consumer with err as what later calls return; leave says to ask
// the server first (Close) rather than cut the call (the client's Close).
func (gc *consumer) stop(err error, leave bool) {
	gc.mu.Lock()
	first := !gc.stopping
	gc.stopping = true
	if !gc.ended && gc.localErr == nil {
		gc.localErr = err // the first reason wins, as with the embedded consumer
	}
	gc.mu.Unlock()
	if first {
		if leave {
			gc.sendMu.Lock()
			_ = gc.js.CloseSend()
			gc.sendMu.Unlock()
			t := time.NewTimer(closeWait)
			select {
			case <-gc.done:
			case <-t.C:
			}
			t.Stop()
		}
		gc.cancel()
		gc.end(err)
	}
	<-gc.done
	gc.c.mu.Lock()
	delete(gc.c.consumers, gc)
	gc.c.mu.Unlock()
}
