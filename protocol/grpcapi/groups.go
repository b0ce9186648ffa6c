package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/verity-dev/verity"
	verityv1 "github.com/verity-dev/verity/proto/verity/v1"
	"google.golang.org/grpc"
)

// groups authenticates the caller of ctx and returns the consumer groups they may use.
func (s *Service) groups(ctx context.Context, op string) (verity.Groups, error) {
	p, err := s.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	g := s.access.Groups(p)
	if g == nil {
		return nil, toStatus(verity.Errorf(verity.Unavailable, op, "this server has no consumer groups"))
	}
	return g, nil
}

// CreateGroup implements verity.v1.Groups.
func (s *Service) CreateGroup(ctx context.Context, req *verityv1.CreateGroupRequest) (*verityv1.CreateGroupResponse, error) {
	const op = "create group"
	if err := s.groupSpecCall(ctx, op, req.GetSpec(), verity.Groups.CreateGroup); err != nil {
		return nil, err
	}
	return &verityv1.CreateGroupResponse{}, nil
}

// UpdateGroup implements verity.v1.Groups.
func (s *Service) UpdateGroup(ctx context.Context, req *verityv1.UpdateGroupRequest) (*verityv1.UpdateGroupResponse, error) {
	const op = "update group"
	if err := s.groupSpecCall(ctx, op, req.GetSpec(), verity.Groups.UpdateGroup); err != nil {
		return nil, err
	}
	return &verityv1.UpdateGroupResponse{}, nil
}

func (s *Service) groupSpecCall(ctx context.Context, op string, p *verityv1.GroupSpec, call func(verity.Groups, context.Context, verity.GroupSpec) error) error {
	g, err := s.groups(ctx, op)
	if err != nil {
		return err
	}
	spec, err := verityv1.GroupSpecFromProto(p)
	if err != nil {
		return invalid(op, p.GetStream(), err)
	}
	if err := call(g, ctx, spec); err != nil {
		return s.fail(op, err)
	}
	return nil
}

// DeleteGroup implements verity.v1.Groups.
func (s *Service) DeleteGroup(ctx context.Context, req *verityv1.DeleteGroupRequest) (*verityv1.DeleteGroupResponse, error) {
	const op = "delete group"
	g, err := s.groups(ctx, op)
	if err != nil {
		return nil, err
	}
	if err := g.DeleteGroup(ctx, req.GetStream(), req.GetGroup()); err != nil {
		return nil, s.fail(op, err)
	}
	return &verityv1.DeleteGroupResponse{}, nil
}

// GetGroup implements verity.v1.Groups.
func (s *Service) GetGroup(ctx context.Context, req *verityv1.GetGroupRequest) (*verityv1.GroupInfo, error) {
	const op = "get group"
	g, err := s.groups(ctx, op)
	if err != nil {
		return nil, err
	}
	info, err := g.GetGroup(ctx, req.GetStream(), req.GetGroup())
	if err != nil {
		return nil, s.fail(op, err)
	}
	return verityv1.GroupInfoToProto(info), nil
}

// ListGroups implements verity.v1.Groups.
func (s *Service) ListGroups(ctx context.Context, req *verityv1.ListGroupsRequest) (*verityv1.ListGroupsResponse, error) {
	const op = "list groups"
	g, err := s.groups(ctx, op)
	if err != nil {
		return nil, err
	}
	infos, err := g.ListGroups(ctx, req.GetStream())
	if err != nil {
		return nil, s.fail(op, err)
	}
	out := &verityv1.ListGroupsResponse{Groups: make([]*verityv1.GroupInfo, len(infos))}
	for i, info := range infos {
		out.Groups[i] = verityv1.GroupInfoToProto(info)
	}
	return out, nil
}

// ReplayParked implements verity.v1.Groups.
func (s *Service) ReplayParked(ctx context.Context, req *verityv1.ReplayParkedRequest) (*verityv1.ReplayParkedResponse, error) {
	const op = "replay parked"
	g, err := s.groups(ctx, op)
	if err != nil {
		return nil, err
	}
	if req.GetLimit() < 0 {
		return nil, invalid(op, req.GetStream(), fmt.Errorf("limit must be ≥ 0 (0 means every parked event), got %d", req.GetLimit()))
	}
	opts := verity.ReplayParkedOptions{Limit: int(min(req.GetLimit(), int64(^uint(0)>>1)))}
	if err := g.ReplayParked(ctx, req.GetStream(), req.GetGroup(), opts); err != nil {
		return nil, s.fail(op, err)
	}
	return &verityv1.ReplayParkedResponse{}, nil
}

// RestartGroups implements verity.v1.Groups.
func (s *Service) RestartGroups(ctx context.Context, _ *verityv1.RestartGroupsRequest) (*verityv1.RestartGroupsResponse, error) {
	const op = "restart groups"
	g, err := s.groups(ctx, op)
	if err != nil {
		return nil, err
	}
	if err := g.RestartGroups(ctx); err != nil {
		return nil, s.fail(op, err)
	}
	return &verityv1.RestartGroupsResponse{}, nil
}

type joinStream = grpc.BidiStreamingServer[verityv1.JoinGroupRequest, verityv1.JoinGroupResponse]

// JoinGroup implements verity.v1.Groups: one consumer of a group for as long as the call
// lasts (see groups.proto for the protocol). This goroutine hands the consumer's events
// to the client; another reads the client's acks and nacks and answers each once the
// group has taken it in. The call counts against the connection's subscriptions and ends
// at Shutdown with Unavailable.
func (s *Service) JoinGroup(ss joinStream) error {
	const op = "join group"
	ctx := ss.Context()
	groups, err := s.groups(ctx, op)
	if err != nil {
		return err
	}
	first, err := s.recvJoin(ss)
	if err != nil {
		return err
	}
	if err := knownErr(first); err != nil {
		return toStatus(err)
	}
	join := first.GetJoin()
	if join == nil {
		return invalid(op, "", fmt.Errorf("the first message must be a join, not %s", requestName(first)))
	}
	// max_in_flight goes to the Groups as it came, to be judged as an embedded caller's is.
	opts := verity.JoinOptions{MaxInFlight: int(max(min(join.GetMaxInFlight(), 1<<31-1), -1<<31)), Name: join.GetName()}
	subCtx, release, err := s.acquireSubscription(ctx, op)
	if err != nil {
		return err
	}
	defer release()
	cons, err := groups.JoinGroup(subCtx, join.GetStream(), join.GetGroup(), opts)
	if err != nil {
		return s.fail(op, err)
	}
	defer cons.Close()
	out := &joinSender{ss: ss}
	defer out.stop()
	confirm := &verityv1.JoinGroupResponse{Message: &verityv1.JoinGroupResponse_Confirmation_{Confirmation: &verityv1.JoinGroupResponse_Confirmation{}}}
	if err := out.send(confirm); err != nil {
		return err
	}
	// The goroutine ends when Recv fails, which it does at once when this call has ended;
	// it sends nothing once this handler has returned (out.stop).
	go s.serveAcks(subCtx, ss, cons, out)
	for {
		msg, err := cons.Recv(subCtx)
		if err != nil {
			if why := out.reason(); why != nil {
				err = why
			} else if ctx.Err() == nil && s.isShutdown() {
				err = verity.Errorf(verity.Unavailable, op, "the server is shutting down; join again elsewhere or later")
			}
			return s.fail(op, err)
		}
		resp := &verityv1.JoinGroupResponse{Message: &verityv1.JoinGroupResponse_Event_{Event: verityv1.GroupMessageToProto(&msg)}}
		if err := out.send(resp); err != nil {
			return err
		}
	}
}

// recvJoin reads a JoinGroup call's first message. It gives up at Shutdown, as a client
// that never sends one must not hold the server's graceful stop; the goroutine reading
// then ends with the call.
func (s *Service) recvJoin(ss joinStream) (*verityv1.JoinGroupRequest, error) {
	const op = "join group"
	type result struct {
		req *verityv1.JoinGroupRequest
		err error
	}
	got := make(chan result, 1)
	go func() {
		req, err := ss.Recv()
		got <- result{req, err}
	}()
	select {
	case r := <-got:
		if errors.Is(r.err, io.EOF) {
			return nil, invalid(op, "", errors.New("the call was closed before its join message"))
		}
		return r.req, r.err
	case <-s.closing:
		return nil, toStatus(verity.Errorf(verity.Unavailable, op, "the server is shutting down; join again elsewhere or later"))
	}
}

// joinSender serializes a JoinGroup call's sends, which come from two goroutines, and
// drops those made after the handler returned.
type joinSender struct {
	ss      joinStream
	mu      sync.Mutex
	stopped bool
	why     error // set by serveAcks when the client broke the protocol
}

func (o *joinSender) send(m *verityv1.JoinGroupResponse) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.stopped {
		return io.EOF
	}
	return o.ss.Send(m)
}

func (o *joinSender) stop() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.stopped = true
}

func (o *joinSender) setReason(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.why = err
}

func (o *joinSender) reason() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.why
}

// serveAcks answers a consumer's acks and nacks until the client closes its side (the
// consumer then leaves the group) or the call ends. A message that is neither ends the
// call with Invalid.
func (s *Service) serveAcks(ctx context.Context, ss joinStream, cons verity.GroupConsumer, out *joinSender) {
	const op = "join group"
	defer cons.Close() // ends the handler's Recv, if the call has not ended it already
	for {
		req, err := ss.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				out.setReason(&verity.Error{Kind: verity.Invalid, Op: "decode request", Err: err})
			}
			return
		}
		var id uint64
		switch r := req.GetRequest().(type) {
		case *verityv1.JoinGroupRequest_Ack_:
			id = r.Ack.GetId()
		case *verityv1.JoinGroupRequest_Nack_:
			id = r.Nack.GetId()
		default:
			out.setReason(verity.Errorf(verity.Invalid, op, "after the join, a consumer sends acks and nacks, not %s", requestName(req)))
			return
		}
		err = s.ackOrNack(ctx, cons, req)
		if err != nil && ctx.Err() != nil {
			return
		}
		done := &verityv1.JoinGroupResponse_Done{Id: id}
		if err != nil {
			s.logInternal(op, err)
			done.Error = verityv1.ErrorDetail(err)
		}
		if out.send(&verityv1.JoinGroupResponse{Message: &verityv1.JoinGroupResponse_Done_{Done: done}}) != nil {
			return
		}
	}
}

// ackOrNack checks an ack or a nack and hands it to the consumer.
func (s *Service) ackOrNack(ctx context.Context, cons verity.GroupConsumer, req *verityv1.JoinGroupRequest) error {
	if err := knownErr(req); err != nil {
		return err
	}
	switch r := req.GetRequest().(type) {
	case *verityv1.JoinGroupRequest_Ack_:
		ids, err := verityv1.EventIDsFromProto(r.Ack.GetEventIds())
		if err != nil {
			return invalidErr("ack", "", err)
		}
		return cons.Ack(ctx, ids...)
	case *verityv1.JoinGroupRequest_Nack_:
		ids, err := verityv1.EventIDsFromProto(r.Nack.GetEventIds())
		if err != nil {
			return invalidErr("nack", "", err)
		}
		action, err := verityv1.NackActionFromProto(r.Nack.GetAction())
		if err != nil {
			return invalidErr("nack", "", err)
		}
		return cons.Nack(ctx, action, r.Nack.GetReason(), ids...)
	}
	return nil
}

// requestName names what a JoinGroup request holds, for messages.
func requestName(req *verityv1.JoinGroupRequest) string {
	switch req.GetRequest().(type) {
	case *verityv1.JoinGroupRequest_Join_:
		return "a join"
	case *verityv1.JoinGroupRequest_Ack_:
		return "an ack"
	case *verityv1.JoinGroupRequest_Nack_:
		return "a nack"
	}
	return "an empty request"
}
