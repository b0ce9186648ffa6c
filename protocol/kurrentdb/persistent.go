package kurrentdb

import (
	"context"
	"errors"
	"math"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/persistent"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/shared"

	"github.com/verity-dev/verity"
)

// persistentServer serves PersistentSubscriptions over the caller's verity.Groups.
type persistentServer struct {
	persistent.UnimplementedPersistentSubscriptionsServer
	s *Service
}

// Trailers of KurrentDB's persistent subscription errors.
const (
	trailerGroupName             = "group-name"
	exceptionGroupNotFound       = "persistent-subscription-does-not-exist"
	exceptionGroupExists         = "persistent-subscription-exists"
	exceptionMaxSubscribers      = "maximum-subscribers-reached"
	exceptionSubscriptionDropped = "persistent-subscription-dropped"
)

// groupsFor authenticates the caller of ctx's request and returns the groups as it may use
// them.
func (s *Service) groupsFor(ctx context.Context) (verity.Groups, error) {
	p, err := s.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	return s.access.Groups(p), nil
}

// groupError turns an error about a group into the status KurrentDB answers: a missing group
// NotFound, an existing one AlreadyExists, a full one FailedPrecondition, each with its
// "exception" trailer and the stream and group names; anything else as rpcError does.
func (s *Service) groupError(ctx context.Context, op, stream, group string, err error) error {
	if err == nil {
		return nil
	}
	var ve *verity.Error
	if !errors.As(err, &ve) {
		return s.rpcError(ctx, op, err)
	}
	var code codes.Code
	var exception string
	switch ve.Kind {
	case verity.NotFound:
		code, exception = codes.NotFound, exceptionGroupNotFound
	case verity.Conflict:
		if op != "create persistent subscription" {
			return s.rpcError(ctx, op, err)
		}
		code, exception = codes.AlreadyExists, exceptionGroupExists
	case verity.ResourceExhausted:
		if op != "read persistent subscription" {
			return s.rpcError(ctx, op, err)
		}
		code, exception = codes.FailedPrecondition, exceptionMaxSubscribers
	default:
		return s.rpcError(ctx, op, err)
	}
	if isLogGroup(stream) {
		stream = verity.AllStream
	}
	_ = grpc.SetTrailer(ctx, metadata.Pairs(
		TrailerErrorKind, ve.Kind.String(),
		trailerException, exception,
		trailerStreamName, stream,
		trailerGroupName, group,
	))
	return status.Error(code, err.Error())
}

// Create creates a group on a stream or on $all (with a filter), starting at a revision or
// position, the start or the end. Clients before 21 name the stream in the deprecated
// top-level field with the start revision in the settings.
func (x *persistentServer) Create(ctx context.Context, req *persistent.CreateReq) (*persistent.CreateResp, error) {
	const op = "create persistent subscription"
	o := req.GetOptions()
	spec, err := createSpec(op, o)
	if err != nil {
		return nil, x.s.rpcError(ctx, op, err)
	}
	groups, err := x.s.groupsFor(ctx)
	if err != nil {
		return nil, x.s.rpcError(ctx, op, err)
	}
	if err := groups.CreateGroup(ctx, spec); err != nil {
		return nil, x.s.groupError(ctx, op, spec.Stream, spec.Group, err)
	}
	return &persistent.CreateResp{}, nil
}

func createSpec(op string, o *persistent.CreateReq_Options) (verity.GroupSpec, error) {
	if o == nil || o.GetSettings() == nil {
		return verity.GroupSpec{}, invalid(op, "the request carries no options or no settings")
	}
	settings, err := createWireSettings(o.GetSettings()).groupSettings(op)
	if err != nil {
		return verity.GroupSpec{}, err
	}
	spec := verity.GroupSpec{Group: o.GetGroupName()}
	switch so := o.GetStreamOption().(type) {
	case *persistent.CreateReq_Options_Stream:
		if spec.Stream, err = streamName(op, so.Stream.GetStreamIdentifier()); err != nil {
			return verity.GroupSpec{}, err
		}
		switch r := so.Stream.GetRevisionOption().(type) {
		case *persistent.CreateReq_StreamOptions_Revision:
			settings.From = r.Revision
		case *persistent.CreateReq_StreamOptions_Start:
		case *persistent.CreateReq_StreamOptions_End:
			settings.FromEnd = true
		default:
			return verity.GroupSpec{}, invalid(op, "stream %q: the request gives no revision, start or end", spec.Stream)
		}
	case *persistent.CreateReq_Options_All:
		spec.Stream = verity.AllStream
		switch a := so.All.GetAllOption().(type) {
		case *persistent.CreateReq_AllOptions_Position:
			settings.From = a.Position.GetCommitPosition()
			if settings.From == math.MaxUint64 {
				settings.From, settings.FromEnd = 0, true
			}
		case *persistent.CreateReq_AllOptions_Start:
		case *persistent.CreateReq_AllOptions_End:
			settings.FromEnd = true
		default:
			return verity.GroupSpec{}, invalid(op, "$all: the request gives no position, start or end")
		}
		if f, ok := so.All.GetFilterOption().(*persistent.CreateReq_AllOptions_Filter); ok {
			if spec.Filter, err = createFilter(op, f.Filter); err != nil {
				return verity.GroupSpec{}, err
			}
		}
	case nil:
		// Before 21: the stream in the deprecated field, the start in settings.revision,
		// where the largest revision means the end.
		if spec.Stream, err = streamName(op, o.GetStreamIdentifier()); err != nil {
			return verity.GroupSpec{}, err
		}
		if r := o.GetSettings().GetRevision(); r == math.MaxUint64 || int64(r) == -1 {
			settings.FromEnd = true
		} else {
			settings.From = r
		}
	}
	spec.Settings = settings
	return spec, nil
}

// Update replaces a group's settings and its starting point; its source and filter stay.
func (x *persistentServer) Update(ctx context.Context, req *persistent.UpdateReq) (*persistent.UpdateResp, error) {
	const op = "update persistent subscription"
	spec, err := updateSpec(op, req.GetOptions())
	if err != nil {
		return nil, x.s.rpcError(ctx, op, err)
	}
	groups, err := x.s.groupsFor(ctx)
	if err != nil {
		return nil, x.s.rpcError(ctx, op, err)
	}
	if err := groups.UpdateGroup(ctx, spec); err != nil {
		return nil, x.s.groupError(ctx, op, spec.Stream, spec.Group, err)
	}
	return &persistent.UpdateResp{}, nil
}

func updateSpec(op string, o *persistent.UpdateReq_Options) (verity.GroupSpec, error) {
	if o == nil || o.GetSettings() == nil {
		return verity.GroupSpec{}, invalid(op, "the request carries no options or no settings")
	}
	settings, err := updateWireSettings(o.GetSettings()).groupSettings(op)
	if err != nil {
		return verity.GroupSpec{}, err
	}
	spec := verity.GroupSpec{Group: o.GetGroupName()}
	switch so := o.GetStreamOption().(type) {
	case *persistent.UpdateReq_Options_Stream:
		if spec.Stream, err = streamName(op, so.Stream.GetStreamIdentifier()); err != nil {
			return verity.GroupSpec{}, err
		}
		switch r := so.Stream.GetRevisionOption().(type) {
		case *persistent.UpdateReq_StreamOptions_Revision:
			settings.From = r.Revision
		case *persistent.UpdateReq_StreamOptions_End:
			settings.FromEnd = true
		}
	case *persistent.UpdateReq_Options_All:
		spec.Stream = verity.AllStream
		switch a := so.All.GetAllOption().(type) {
		case *persistent.UpdateReq_AllOptions_Position:
			settings.From = a.Position.GetCommitPosition()
			if settings.From == math.MaxUint64 {
				settings.From, settings.FromEnd = 0, true
			}
		case *persistent.UpdateReq_AllOptions_End:
			settings.FromEnd = true
		}
	case nil:
		if spec.Stream, err = streamName(op, o.GetStreamIdentifier()); err != nil {
			return verity.GroupSpec{}, err
		}
		if r := o.GetSettings().GetRevision(); r == math.MaxUint64 || int64(r) == -1 {
			settings.FromEnd = true
		} else {
			settings.From = r
		}
	}
	spec.Settings = settings
	return spec, nil
}

// Delete deletes a group, its checkpoint and its parked events.
func (x *persistentServer) Delete(ctx context.Context, req *persistent.DeleteReq) (*persistent.DeleteResp, error) {
	const op = "delete persistent subscription"
	o := req.GetOptions()
	stream, err := streamOrAll(op, o.GetStreamIdentifier(), o.GetAll())
	if err != nil {
		return nil, x.s.rpcError(ctx, op, err)
	}
	groups, err := x.s.groupsFor(ctx)
	if err != nil {
		return nil, x.s.rpcError(ctx, op, err)
	}
	if err := groups.DeleteGroup(ctx, stream, o.GetGroupName()); err != nil {
		return nil, x.s.groupError(ctx, op, stream, o.GetGroupName(), err)
	}
	return &persistent.DeleteResp{}, nil
}

// GetInfo describes one group.
func (x *persistentServer) GetInfo(ctx context.Context, req *persistent.GetInfoReq) (*persistent.GetInfoResp, error) {
	const op = "get persistent subscription info"
	o := req.GetOptions()
	stream, err := streamOrAll(op, o.GetStreamIdentifier(), o.GetAll())
	if err != nil {
		return nil, x.s.rpcError(ctx, op, err)
	}
	groups, err := x.s.groupsFor(ctx)
	if err != nil {
		return nil, x.s.rpcError(ctx, op, err)
	}
	info, err := groups.GetGroup(ctx, stream, o.GetGroupName())
	if err != nil {
		return nil, x.s.groupError(ctx, op, stream, o.GetGroupName(), err)
	}
	return &persistent.GetInfoResp{SubscriptionInfo: subscriptionInfo(info)}, nil
}

// List describes every group, or the groups of one source. As in KurrentDB, a source without
// groups is NotFound; the whole list may be empty.
func (x *persistentServer) List(ctx context.Context, req *persistent.ListReq) (*persistent.ListResp, error) {
	const op = "list persistent subscriptions"
	stream := ""
	switch lo := req.GetOptions().GetListOption().(type) {
	case *persistent.ListReq_Options_ListAllSubscriptions:
	case *persistent.ListReq_Options_ListForStream:
		var err error
		if stream, err = streamOrAll(op, lo.ListForStream.GetStream(), lo.ListForStream.GetAll()); err != nil {
			return nil, x.s.rpcError(ctx, op, err)
		}
	default:
		return nil, x.s.rpcError(ctx, op, invalid(op, "the request asks for neither all groups nor those of a stream"))
	}
	groups, err := x.s.groupsFor(ctx)
	if err != nil {
		return nil, x.s.rpcError(ctx, op, err)
	}
	infos, err := groups.ListGroups(ctx, stream)
	if err != nil {
		return nil, x.s.groupError(ctx, op, stream, "", err)
	}
	if stream != "" && len(infos) == 0 {
		return nil, x.s.groupError(ctx, op, stream, "",
			verity.Errorf(verity.NotFound, op, "no persistent subscription on %q", stream))
	}
	resp := &persistent.ListResp{Subscriptions: make([]*persistent.SubscriptionInfo, 0, len(infos))}
	for _, info := range infos {
		resp.Subscriptions = append(resp.Subscriptions, subscriptionInfo(info))
	}
	return resp, nil
}

// ReplayParked puts a group's parked events back in line; stop_at bounds how many.
func (x *persistentServer) ReplayParked(ctx context.Context, req *persistent.ReplayParkedReq) (*persistent.ReplayParkedResp, error) {
	const op = "replay parked"
	o := req.GetOptions()
	stream, err := streamOrAll(op, o.GetStreamIdentifier(), o.GetAll())
	if err != nil {
		return nil, x.s.rpcError(ctx, op, err)
	}
	var opts verity.ReplayParkedOptions
	if s, ok := o.GetStopAtOption().(*persistent.ReplayParkedReq_Options_StopAt); ok {
		if s.StopAt < 0 {
			return nil, x.s.rpcError(ctx, op, invalid(op, "stop_at %d is negative", s.StopAt))
		}
		opts.Limit = int(min(s.StopAt, math.MaxInt32))
	}
	groups, err := x.s.groupsFor(ctx)
	if err != nil {
		return nil, x.s.rpcError(ctx, op, err)
	}
	if err := groups.ReplayParked(ctx, stream, o.GetGroupName(), opts); err != nil {
		return nil, x.s.groupError(ctx, op, stream, o.GetGroupName(), err)
	}
	return &persistent.ReplayParkedResp{}, nil
}

// RestartSubsystem restarts every group from its checkpoint.
func (x *persistentServer) RestartSubsystem(ctx context.Context, _ *shared.Empty) (*shared.Empty, error) {
	const op = "restart persistent subscriptions"
	groups, err := x.s.groupsFor(ctx)
	if err != nil {
		return nil, x.s.rpcError(ctx, op, err)
	}
	if err := groups.RestartGroups(ctx); err != nil {
		return nil, x.s.rpcError(ctx, op, err)
	}
	return &shared.Empty{}, nil
}
