package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/verity-dev/verity"
	verityv1 "github.com/verity-dev/verity/proto/verity/v1"
	"google.golang.org/grpc"
)

// Append implements verity.v1.Store.
func (s *Service) Append(ctx context.Context, req *verityv1.AppendRequest) (*verityv1.AppendResponse, error) {
	st, err := s.store(ctx)
	if err != nil {
		return nil, err
	}
	res, err := appendOne(ctx, st, req)
	if err != nil {
		return nil, s.fail("append", err)
	}
	return res, nil
}

// appendOne checks an append request and makes it. Its errors are the contract's, not
// statuses, for AppendSession to send as they are.
func appendOne(ctx context.Context, st verity.Store, req *verityv1.AppendRequest) (*verityv1.AppendResponse, error) {
	const op = "append"
	exp, err := verityv1.ExpectedFromProto(req.GetExpected())
	if err != nil {
		return nil, invalidErr(op, req.GetStream(), err)
	}
	evs, err := verityv1.EventsFromProto(req.GetEvents())
	if err != nil {
		return nil, invalidErr(op, req.GetStream(), err)
	}
	res, err := st.Append(ctx, req.GetStream(), exp, evs...)
	if err != nil {
		return nil, err
	}
	return &verityv1.AppendResponse{Revision: res.Revision, Position: res.Position}, nil
}

// AppendMulti implements verity.v1.Store.
func (s *Service) AppendMulti(ctx context.Context, req *verityv1.AppendMultiRequest) (*verityv1.AppendMultiResponse, error) {
	st, err := s.store(ctx)
	if err != nil {
		return nil, err
	}
	res, err := appendMulti(ctx, st, req)
	if err != nil {
		return nil, s.fail("append multi", err)
	}
	return res, nil
}

// appendMulti is appendOne for several streams.
func appendMulti(ctx context.Context, st verity.Store, req *verityv1.AppendMultiRequest) (*verityv1.AppendMultiResponse, error) {
	const op = "append multi"
	appends := make([]verity.StreamAppend, len(req.GetAppends()))
	for i, a := range req.GetAppends() {
		exp, err := verityv1.ExpectedFromProto(a.GetExpected())
		if err != nil {
			return nil, invalidErr(op, a.GetStream(), fmt.Errorf("append %d: %w", i, err))
		}
		evs, err := verityv1.EventsFromProto(a.GetEvents())
		if err != nil {
			return nil, invalidErr(op, a.GetStream(), fmt.Errorf("append %d: %w", i, err))
		}
		appends[i] = verity.StreamAppend{Stream: a.GetStream(), Expected: exp, Events: evs}
	}
	res, err := st.AppendMulti(ctx, appends...)
	if err != nil {
		return nil, err
	}
	out := &verityv1.AppendMultiResponse{Results: make([]*verityv1.AppendResponse, len(res))}
	for i, r := range res {
		out.Results[i] = &verityv1.AppendResponse{Revision: r.Revision, Position: r.Position}
	}
	return out, nil
}

// readLimit checks a request's limit: 0 is the default, negative is invalid.
func readLimit(limit int64) (int, error) {
	switch {
	case limit < 0:
		return 0, fmt.Errorf("limit must be ≥ 0 (0 means %d), got %d", verity.DefaultReadLimit, limit)
	case limit == 0:
		return verity.DefaultReadLimit, nil
	case limit > int64(^uint(0)>>1):
		return int(^uint(0) >> 1), nil
	}
	return int(limit), nil
}

// ReadStream implements verity.v1.Store: it reads the store a page at a time and sends
// the events in batches of about Options.ReadBatchBytes.
func (s *Service) ReadStream(req *verityv1.ReadStreamRequest, stream grpc.ServerStreamingServer[verityv1.ReadResponse]) error {
	const op = "read stream"
	ctx := stream.Context()
	st, err := s.store(ctx)
	if err != nil {
		return err
	}
	dir, err := verityv1.DirectionFromProto(req.GetDirection())
	if err != nil {
		return invalid(op, req.GetStream(), err)
	}
	limit, err := readLimit(req.GetLimit())
	if err != nil {
		return invalid(op, req.GetStream(), err)
	}
	opts := verity.ReadStreamOptions{Direction: dir, From: req.GetFrom(), FromEnd: req.GetFromEnd()}
	b := s.newBatcher(stream)
	for first := true; limit > 0; first = false {
		opts.Limit = min(limit, s.opts.ReadPageSize)
		evs, err := st.ReadStream(ctx, req.GetStream(), opts)
		if err != nil {
			// A later page that finds nothing visible (the rest hidden or deleted since
			// the first) ends the read where it is; the first page's answer is the store's.
			if !first && errors.Is(err, verity.ErrNotFound) {
				break
			}
			return s.fail(op, err)
		}
		if err := b.add(evs); err != nil {
			return err
		}
		limit -= len(evs)
		if len(evs) < opts.Limit {
			break
		}
		last := evs[len(evs)-1].Revision
		if dir == verity.Backwards {
			if last == 0 {
				break
			}
			opts.From, opts.FromEnd = last-1, false
		} else {
			opts.From, opts.FromEnd = last+1, false
		}
	}
	return b.flush()
}

// ReadAll implements verity.v1.Store, paging and batching as ReadStream does.
func (s *Service) ReadAll(req *verityv1.ReadAllRequest, stream grpc.ServerStreamingServer[verityv1.ReadResponse]) error {
	const op = "read all"
	ctx := stream.Context()
	st, err := s.store(ctx)
	if err != nil {
		return err
	}
	dir, err := verityv1.DirectionFromProto(req.GetDirection())
	if err != nil {
		return invalid(op, "", err)
	}
	limit, err := readLimit(req.GetLimit())
	if err != nil {
		return invalid(op, "", err)
	}
	from, err := verityv1.TimeFromProto("from_time", req.GetFromTime())
	if err != nil {
		return invalid(op, "", err)
	}
	opts := verity.ReadAllOptions{
		Direction: dir, From: req.GetFrom(), FromEnd: req.GetFromEnd(), FromTime: from,
		Filter: verityv1.FilterFromProto(req.GetFilter()),
	}
	b := s.newBatcher(stream)
	for limit > 0 {
		opts.Limit = min(limit, s.opts.ReadPageSize)
		evs, err := st.ReadAll(ctx, opts)
		if err != nil {
			return s.fail(op, err)
		}
		if err := b.add(evs); err != nil {
			return err
		}
		limit -= len(evs)
		if len(evs) < opts.Limit {
			break
		}
		last := evs[len(evs)-1].Position
		opts.FromEnd, opts.FromTime = false, time.Time{}
		if dir == verity.Backwards {
			if last <= 1 {
				break
			}
			opts.From = last - 1
		} else {
			opts.From = last + 1
		}
	}
	return b.flush()
}

// batcher gathers events into messages of bounded size.
type batcher struct {
	stream   grpc.ServerStreamingServer[verityv1.ReadResponse]
	maxBytes int
	msg      *verityv1.ReadResponse
	bytes    int
}

func (s *Service) newBatcher(stream grpc.ServerStreamingServer[verityv1.ReadResponse]) *batcher {
	return &batcher{stream: stream, maxBytes: s.opts.ReadBatchBytes, msg: &verityv1.ReadResponse{}}
}

func (b *batcher) add(evs []verity.RecordedEvent) error {
	for i := range evs {
		e := &evs[i]
		size := len(e.Data) + len(e.Metadata) + len(e.Type) + len(e.ContentType) + len(e.Stream) + 64
		if b.bytes > 0 && b.bytes+size > b.maxBytes {
			if err := b.flush(); err != nil {
				return err
			}
		}
		b.msg.Events = append(b.msg.Events, verityv1.RecordedEventToProto(e))
		b.bytes += size
	}
	return nil
}

func (b *batcher) flush() error {
	if len(b.msg.Events) == 0 {
		return nil
	}
	err := b.stream.Send(b.msg)
	b.msg, b.bytes = &verityv1.ReadResponse{}, 0
	return err
}

// Subscribe implements verity.v1.Store: a confirmation once the store accepted the
// subscription, then its messages, until the caller leaves, the store ends it, or Shutdown.
func (s *Service) Subscribe(req *verityv1.SubscribeRequest, stream grpc.ServerStreamingServer[verityv1.SubscribeResponse]) error {
	const op = "subscribe"
	ctx := stream.Context()
	st, err := s.store(ctx)
	if err != nil {
		return err
	}
	from, err := verityv1.TimeFromProto("from_time", req.GetFromTime())
	if err != nil {
		return invalid(op, req.GetStream(), err)
	}
	if req.GetCheckpointEvery() < 0 {
		return invalid(op, req.GetStream(), fmt.Errorf("checkpoint_every must be ≥ 0 (0 means 1000), got %d", req.GetCheckpointEvery()))
	}
	opts := verity.SubscribeOptions{
		Stream: req.GetStream(), From: req.GetFrom(), FromEnd: req.GetFromEnd(), FromTime: from,
		Filter: verityv1.FilterFromProto(req.GetFilter()), CheckpointEvery: int(min(req.GetCheckpointEvery(), 1<<31-1)),
	}
	subCtx, release, err := s.acquireSubscription(ctx, op)
	if err != nil {
		return err
	}
	defer release()
	sub, err := st.Subscribe(subCtx, opts)
	if err != nil {
		return s.fail(op, err)
	}
	defer sub.Close()
	confirm := &verityv1.SubscribeResponse{Message: &verityv1.SubscribeResponse_Confirmation_{Confirmation: &verityv1.SubscribeResponse_Confirmation{}}}
	if err := stream.Send(confirm); err != nil {
		return err
	}
	for {
		msg, err := sub.Recv(subCtx)
		if err != nil {
			if ctx.Err() == nil && s.isShutdown() {
				err = verity.Errorf(verity.Unavailable, op, "the server is shutting down")
			}
			return s.fail(op, err)
		}
		var out verityv1.SubscribeResponse
		switch msg.Kind {
		case verity.MessageEvent:
			out.Message = &verityv1.SubscribeResponse_Event{Event: verityv1.RecordedEventToProto(&msg.Event)}
		case verity.MessageCaughtUp:
			out.Message = &verityv1.SubscribeResponse_CaughtUp{CaughtUp: &verityv1.SubscribeResponse_Position{Position: msg.Position}}
		case verity.MessageCheckpoint:
			out.Message = &verityv1.SubscribeResponse_Checkpoint{Checkpoint: &verityv1.SubscribeResponse_Position{Position: msg.Position}}
		default:
			return s.fail(op, verity.Errorf(verity.Internal, op, "the store delivered a message of unknown kind %d", msg.Kind))
		}
		if err := stream.Send(&out); err != nil {
			return err
		}
	}
}

// GetStreamMetadata implements verity.v1.Store.
func (s *Service) GetStreamMetadata(ctx context.Context, req *verityv1.GetStreamMetadataRequest) (*verityv1.GetStreamMetadataResponse, error) {
	st, err := s.store(ctx)
	if err != nil {
		return nil, err
	}
	res, err := st.GetStreamMetadata(ctx, req.GetStream())
	if err != nil {
		return nil, s.fail("get metadata", err)
	}
	return &verityv1.GetStreamMetadataResponse{Stream: res.Stream, Metadata: verityv1.MetadataToProto(res.Metadata), Revision: res.Revision}, nil
}

// SetStreamMetadata implements verity.v1.Store.
func (s *Service) SetStreamMetadata(ctx context.Context, req *verityv1.SetStreamMetadataRequest) (*verityv1.AppendResponse, error) {
	const op = "set metadata"
	st, err := s.store(ctx)
	if err != nil {
		return nil, err
	}
	exp, err := verityv1.ExpectedFromProto(req.GetExpected())
	if err != nil {
		return nil, invalid(op, req.GetStream(), err)
	}
	meta, err := verityv1.MetadataFromProto(req.GetMetadata())
	if err != nil {
		return nil, invalid(op, req.GetStream(), err)
	}
	res, err := st.SetStreamMetadata(ctx, req.GetStream(), exp, meta)
	if err != nil {
		return nil, s.fail(op, err)
	}
	return &verityv1.AppendResponse{Revision: res.Revision, Position: res.Position}, nil
}

// DeleteStream implements verity.v1.Store.
func (s *Service) DeleteStream(ctx context.Context, req *verityv1.DeleteStreamRequest) (*verityv1.DeleteResponse, error) {
	return s.delete(ctx, "delete", req, verity.Store.DeleteStream)
}

// TombstoneStream implements verity.v1.Store.
func (s *Service) TombstoneStream(ctx context.Context, req *verityv1.DeleteStreamRequest) (*verityv1.DeleteResponse, error) {
	return s.delete(ctx, "tombstone", req, verity.Store.TombstoneStream)
}

func (s *Service) delete(ctx context.Context, op string, req *verityv1.DeleteStreamRequest,
	del func(verity.Store, context.Context, string, verity.ExpectedRevision) (verity.DeleteResult, error)) (*verityv1.DeleteResponse, error) {
	st, err := s.store(ctx)
	if err != nil {
		return nil, err
	}
	exp, err := verityv1.ExpectedFromProto(req.GetExpected())
	if err != nil {
		return nil, invalid(op, req.GetStream(), err)
	}
	res, err := del(st, ctx, req.GetStream(), exp)
	if err != nil {
		return nil, s.fail(op, err)
	}
	return &verityv1.DeleteResponse{Position: res.Position}, nil
}
