package kurrentdb

import (
	"context"
	"errors"
	"io"
	"sync"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/persistent"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/shared"

	"github.com/verity-dev/verity"
)

// headerConnectionName is the metadata key where clients name their connection.
const headerConnectionName = "connection-name"

// readPersistentPlan is the first message of a Read call, checked.
type readPersistentPlan struct {
	stream, group string
	maxInFlight   int
	stringIDs     bool
}

func parsePersistentRead(op string, req *persistent.ReadReq) (readPersistentPlan, error) {
	o := req.GetOptions()
	if o == nil {
		return readPersistentPlan{}, invalid(op, "the first message of the call carries no options")
	}
	stream, err := streamOrAll(op, o.GetStreamIdentifier(), o.GetAll())
	if err != nil {
		return readPersistentPlan{}, err
	}
	if o.GetBufferSize() < 0 {
		return readPersistentPlan{}, invalid(op, "buffer size %d is negative", o.GetBufferSize())
	}
	return readPersistentPlan{
		stream:      stream,
		group:       o.GetGroupName(),
		maxInFlight: int(o.GetBufferSize()),
		stringIDs:   o.GetUuidOption().GetString_() != nil,
	}, nil
}

// Read connects a consumer to a group: the options, then the confirmation, then events
// (with their retry count) one way and acks and nacks by event id the other, until the
// client goes away, the group is deleted, updated or restarted, or the server shuts down.
// The acks and nacks are read by a goroutine of the call, which ends with it.
func (x *persistentServer) Read(stream persistent.PersistentSubscriptions_ReadServer) error {
	const op = "read persistent subscription"
	ctx := stream.Context()
	first, err := stream.Recv()
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return err
	}
	p, err := parsePersistentRead(op, first)
	if err != nil {
		return x.s.rpcError(ctx, op, err)
	}
	groups, err := x.s.groupsFor(ctx)
	if err != nil {
		return x.s.rpcError(ctx, op, err)
	}
	release, err := x.s.acquireSubscription(ctx)
	if err != nil {
		return x.s.rpcError(ctx, op, err)
	}
	defer release()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	consumer, err := groups.JoinGroup(ctx, p.stream, p.group, verity.JoinOptions{MaxInFlight: p.maxInFlight, Name: connectionName(ctx)})
	if err != nil {
		return x.s.groupError(ctx, op, p.stream, p.group, err)
	}
	defer consumer.Close()
	source := p.stream
	if isLogGroup(source) {
		source = verity.AllStream
	}
	if err := stream.Send(&persistent.ReadResp{Content: &persistent.ReadResp_SubscriptionConfirmation_{
		SubscriptionConfirmation: &persistent.ReadResp_SubscriptionConfirmation{SubscriptionId: source + "::" + p.group},
	}}); err != nil {
		return err
	}

	// The request stream: acks and nacks until the client closes its side (which ends the
	// call, as KurrentDB does) or the call ends.
	var (
		pumpMu  sync.Mutex
		pumpErr error
	)
	go func() {
		err := pumpAcks(ctx, stream, consumer)
		pumpMu.Lock()
		pumpErr = err
		pumpMu.Unlock()
		cancel()
	}()

	for {
		m, err := consumer.Recv(ctx)
		if err != nil {
			if ctx.Err() != nil {
				pumpMu.Lock()
				perr := pumpErr
				pumpMu.Unlock()
				switch {
				case perr == nil || errors.Is(perr, io.EOF):
					if serr := stream.Context().Err(); serr != nil {
						return x.s.rpcError(ctx, op, serr)
					}
					return nil // the client closed its side: the subscription ends
				default:
					return x.s.rpcError(ctx, op, perr)
				}
			}
			return x.s.dropError(ctx, op, source, p.group, err)
		}
		if err := stream.Send(persistentEvent(m, p.stringIDs)); err != nil {
			return err
		}
	}
}

// pumpAcks hands the client's acks and nacks to the consumer until the request stream ends.
func pumpAcks(ctx context.Context, stream persistent.PersistentSubscriptions_ReadServer, consumer verity.GroupConsumer) error {
	const op = "read persistent subscription"
	for {
		req, err := stream.Recv()
		if err != nil {
			return err
		}
		switch c := req.GetContent().(type) {
		case *persistent.ReadReq_Ack_:
			ids, err := eventIDs(op, c.Ack.GetIds())
			if err != nil {
				return err
			}
			if err := consumer.Ack(ctx, ids...); err != nil {
				return err
			}
		case *persistent.ReadReq_Nack_:
			ids, err := eventIDs(op, c.Nack.GetIds())
			if err != nil {
				return err
			}
			action, err := nackAction(op, c.Nack.GetAction())
			if err != nil {
				return err
			}
			if err := consumer.Nack(ctx, action, c.Nack.GetReason(), ids...); err != nil {
				return err
			}
		default:
			return invalid(op, "after the options, a message must be an ack or a nack")
		}
	}
}

func eventIDs(op string, in []*shared.UUID) ([]uuid.UUID, error) {
	ids := make([]uuid.UUID, 0, len(in))
	for _, id := range in {
		u, err := uuidFromProto(op, id)
		if err != nil {
			return nil, err
		}
		ids = append(ids, u)
	}
	return ids, nil
}

// nackAction maps KurrentDB's nack actions onto Verity's. Unknown lets the server decide:
// KurrentDB retries, as Verity does.
func nackAction(op string, a persistent.ReadReq_Nack_Action) (verity.NackAction, error) {
	switch a {
	case persistent.ReadReq_Nack_Unknown, persistent.ReadReq_Nack_Retry:
		return verity.NackRetry, nil
	case persistent.ReadReq_Nack_Park:
		return verity.NackPark, nil
	case persistent.ReadReq_Nack_Skip:
		return verity.NackSkip, nil
	case persistent.ReadReq_Nack_Stop:
		return verity.NackStop, nil
	}
	return 0, invalid(op, "nack action %d is not one of unknown (0), park, retry, skip or stop (4)", a)
}

// dropError is how a consumer's end reaches the client: a deleted group as KurrentDB's
// "does not exist", a consumer stopped by its own nack as "dropped", an updated or restarted
// group (join again) as Unavailable.
func (s *Service) dropError(ctx context.Context, op, stream, group string, err error) error {
	if verity.KindOf(err) != verity.Conflict {
		return s.groupError(ctx, op, stream, group, err)
	}
	_ = grpc.SetTrailer(ctx, metadata.Pairs(
		TrailerErrorKind, verity.Conflict.String(),
		trailerException, exceptionSubscriptionDropped,
		trailerStreamName, stream,
		trailerGroupName, group,
	))
	return status.Error(codes.Canceled, err.Error())
}

// connectionName names a consumer: the client's connection name, or its address.
func connectionName(ctx context.Context) string {
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(headerConnectionName); len(v) > 0 && v[0] != "" {
			return v[0]
		}
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}
