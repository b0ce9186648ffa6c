package kurrentdb

import (
	"context"
	"errors"
	"io"

	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/shared"
	streamsv1 "github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"

	"github.com/verity-dev/verity"
)

// streamsServer serves the v1 Streams service.
type streamsServer struct {
	streamsv1.UnimplementedStreamsServer
	s *Service
}

// appendRequest is a v1 append as received, checked, before it reaches the store.
type appendRequest struct {
	stream   string
	expected verity.ExpectedRevision
	events   []verity.EventData
}

// receiveAppend reads a whole v1 append: the options, then the proposed messages, up to the
// configured bounds. A request over them is refused before it is read to its end, so it
// never holds more than the bounds in memory.
func (s *Service) receiveAppend(recv func() (*streamsv1.AppendReq, error)) (appendRequest, error) {
	const op = "append"
	first, err := recv()
	if errors.Is(err, io.EOF) {
		return appendRequest{}, invalid(op, "the append request ended before its options")
	}
	if err != nil {
		return appendRequest{}, err
	}
	opts := first.GetOptions()
	if opts == nil {
		return appendRequest{}, invalid(op, "the first message of an append must carry its options")
	}
	var req appendRequest
	if req.stream, err = streamName(op, opts.GetStreamIdentifier()); err != nil {
		return appendRequest{}, err
	}
	req.expected = expectedOfAppend(opts)
	size := 0
	for {
		msg, err := recv()
		if errors.Is(err, io.EOF) {
			return req, nil
		}
		if err != nil {
			return appendRequest{}, err
		}
		pm := msg.GetProposedMessage()
		if pm == nil {
			return appendRequest{}, invalid(op, "stream %q: an append carries its options once, then only proposed messages", req.stream)
		}
		if len(req.events) >= s.opts.MaxAppendEvents {
			return appendRequest{}, invalid(op, "stream %q: an append of more than %d events is over the limit", req.stream, s.opts.MaxAppendEvents)
		}
		ev, err := eventFromProposed(op, pm)
		if err != nil {
			return appendRequest{}, err
		}
		if size += eventSize(ev); size > s.opts.MaxAppendSize {
			return appendRequest{}, invalid(op, "stream %q: an append of more than %d bytes is over the limit", req.stream, s.opts.MaxAppendSize)
		}
		req.events = append(req.events, ev)
	}
}

func expectedOfAppend(o *streamsv1.AppendReq_Options) verity.ExpectedRevision {
	switch v := o.GetExpectedStreamRevision().(type) {
	case *streamsv1.AppendReq_Options_Revision:
		return verity.Exact(v.Revision)
	case *streamsv1.AppendReq_Options_NoStream:
		return verity.NoStream()
	case *streamsv1.AppendReq_Options_StreamExists:
		return verity.StreamExists()
	}
	return verity.Any()
}

// Append implements the v1 append: options, then events, then one answer. A wrong expected
// revision is an answer, not an error, carrying the stream's actual revision.
func (x *streamsServer) Append(stream streamsv1.Streams_AppendServer) error {
	const op = "append"
	ctx := stream.Context()
	st, err := x.s.storeFor(ctx)
	if err != nil {
		// Take the request before refusing it: the clients send the whole append before
		// they read the answer, and a send that meets a closed call reports EOF instead of
		// the refusal. receiveAppend bounds what it reads by the append limits.
		_, _ = x.s.receiveAppend(stream.Recv)
		return x.s.rpcError(ctx, op, err)
	}
	req, err := x.s.receiveAppend(stream.Recv)
	if err != nil {
		return x.s.rpcError(ctx, op, err)
	}
	var res verity.AppendResult
	if of, ok := verity.IsMetadataStream(req.stream); ok {
		res, err = setMetadata(ctx, st, of, req)
	} else {
		res, err = st.Append(ctx, req.stream, req.expected, req.events...)
	}
	if err != nil {
		var ve *verity.Error
		if errors.As(err, &ve) && ve.Kind == verity.Conflict && ve.Actual != nil {
			return stream.SendAndClose(&streamsv1.AppendResp{Result: wrongExpectedVersion(req.expected, *ve.Actual)})
		}
		return x.s.rpcError(ctx, op, err)
	}
	success := &streamsv1.AppendResp_Success{
		CurrentRevisionOption: &streamsv1.AppendResp_Success_CurrentRevision{CurrentRevision: res.Revision},
		PositionOption:        &streamsv1.AppendResp_Success_NoPosition{NoPosition: &shared.Empty{}},
	}
	if res.Position > 0 {
		success.PositionOption = &streamsv1.AppendResp_Success_Position{Position: &streamsv1.AppendResp_Position{
			CommitPosition: res.Position, PreparePosition: res.Position,
		}}
	}
	return stream.SendAndClose(&streamsv1.AppendResp{Result: &streamsv1.AppendResp_Success_{Success: success}})
}

// wrongExpectedVersion is the answer to an append whose condition did not hold, in both the
// current and the 20.6 fields, which older clients read.
func wrongExpectedVersion(expected verity.ExpectedRevision, actual verity.StreamState) *streamsv1.AppendResp_WrongExpectedVersion_ {
	w := &streamsv1.AppendResp_WrongExpectedVersion{}
	empty := &shared.Empty{}
	if actual.Exists {
		w.CurrentRevisionOption = &streamsv1.AppendResp_WrongExpectedVersion_CurrentRevision{CurrentRevision: actual.Revision}
		w.CurrentRevisionOption_20_6_0 = &streamsv1.AppendResp_WrongExpectedVersion_CurrentRevision_20_6_0{CurrentRevision_20_6_0: actual.Revision}
	} else {
		w.CurrentRevisionOption = &streamsv1.AppendResp_WrongExpectedVersion_CurrentNoStream{CurrentNoStream: empty}
		w.CurrentRevisionOption_20_6_0 = &streamsv1.AppendResp_WrongExpectedVersion_NoStream_20_6_0{NoStream_20_6_0: empty}
	}
	switch rev, exact := expected.Revision(); {
	case exact:
		w.ExpectedRevisionOption = &streamsv1.AppendResp_WrongExpectedVersion_ExpectedRevision{ExpectedRevision: rev}
		w.ExpectedRevisionOption_20_6_0 = &streamsv1.AppendResp_WrongExpectedVersion_ExpectedRevision_20_6_0{ExpectedRevision_20_6_0: rev}
	case expected.IsNoStream():
		w.ExpectedRevisionOption = &streamsv1.AppendResp_WrongExpectedVersion_ExpectedNoStream{ExpectedNoStream: empty}
	case expected.IsStreamExists():
		w.ExpectedRevisionOption = &streamsv1.AppendResp_WrongExpectedVersion_ExpectedStreamExists{ExpectedStreamExists: empty}
		w.ExpectedRevisionOption_20_6_0 = &streamsv1.AppendResp_WrongExpectedVersion_StreamExists_20_6_0{StreamExists_20_6_0: empty}
	default:
		w.ExpectedRevisionOption = &streamsv1.AppendResp_WrongExpectedVersion_ExpectedAny{ExpectedAny: empty}
		w.ExpectedRevisionOption_20_6_0 = &streamsv1.AppendResp_WrongExpectedVersion_Any_20_6_0{Any_20_6_0: empty}
	}
	return &streamsv1.AppendResp_WrongExpectedVersion_{WrongExpectedVersion: w}
}

// setMetadata turns an append to "$$<of>" into SetStreamMetadata, so that the store (and
// the access rules around it) treat it as a metadata write of stream of.
func setMetadata(ctx context.Context, st verity.Store, of string, req appendRequest) (verity.AppendResult, error) {
	const op = "set stream metadata"
	if len(req.events) != 1 || req.events[0].Type != verity.EventTypeMetadata {
		return verity.AppendResult{}, &verity.Error{Kind: verity.Invalid, Op: op, Stream: req.stream,
			Message: "a metadata stream takes exactly one event of type " + verity.EventTypeMetadata + " per append"}
	}
	meta, err := parseKurrentMetadata(req.events[0].Data)
	if err != nil {
		return verity.AppendResult{}, &verity.Error{Kind: verity.Invalid, Op: op, Stream: of, Message: err.Error()}
	}
	return st.SetStreamMetadata(ctx, of, req.expected, meta)
}
