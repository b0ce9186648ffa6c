package kurrentdb

import (
	"context"

	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/shared"
	streamsv1 "github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"

	"github.com/verity-dev/verity"
)

// Delete soft-deletes a stream: reads answer not found and it may be written again.
func (x *streamsServer) Delete(ctx context.Context, req *streamsv1.DeleteReq) (*streamsv1.DeleteResp, error) {
	const op = "delete stream"
	st, err := x.s.storeFor(ctx)
	if err != nil {
		return nil, x.s.rpcError(ctx, op, err)
	}
	name, err := streamName(op, req.GetOptions().GetStreamIdentifier())
	if err != nil {
		return nil, x.s.rpcError(ctx, op, err)
	}
	var expected verity.ExpectedRevision
	switch v := req.GetOptions().GetExpectedStreamRevision().(type) {
	case *streamsv1.DeleteReq_Options_Revision:
		expected = verity.Exact(v.Revision)
	case *streamsv1.DeleteReq_Options_NoStream:
		expected = verity.NoStream()
	case *streamsv1.DeleteReq_Options_StreamExists:
		expected = verity.StreamExists()
	}
	res, err := st.DeleteStream(ctx, name, expected)
	if err != nil {
		return nil, x.s.rpcError(ctx, op, err)
	}
	resp := &streamsv1.DeleteResp{PositionOption: &streamsv1.DeleteResp_NoPosition{NoPosition: &shared.Empty{}}}
	if res.Position > 0 {
		resp.PositionOption = &streamsv1.DeleteResp_Position_{Position: &streamsv1.DeleteResp_Position{
			CommitPosition: res.Position, PreparePosition: res.Position,
		}}
	}
	return resp, nil
}

// Tombstone deletes a stream for good: every later read or write of it fails as deleted.
func (x *streamsServer) Tombstone(ctx context.Context, req *streamsv1.TombstoneReq) (*streamsv1.TombstoneResp, error) {
	const op = "tombstone stream"
	st, err := x.s.storeFor(ctx)
	if err != nil {
		return nil, x.s.rpcError(ctx, op, err)
	}
	name, err := streamName(op, req.GetOptions().GetStreamIdentifier())
	if err != nil {
		return nil, x.s.rpcError(ctx, op, err)
	}
	var expected verity.ExpectedRevision
	switch v := req.GetOptions().GetExpectedStreamRevision().(type) {
	case *streamsv1.TombstoneReq_Options_Revision:
		expected = verity.Exact(v.Revision)
	case *streamsv1.TombstoneReq_Options_NoStream:
		expected = verity.NoStream()
	case *streamsv1.TombstoneReq_Options_StreamExists:
		expected = verity.StreamExists()
	}
	res, err := st.TombstoneStream(ctx, name, expected)
	if err != nil {
		return nil, x.s.rpcError(ctx, op, err)
	}
	resp := &streamsv1.TombstoneResp{PositionOption: &streamsv1.TombstoneResp_NoPosition{NoPosition: &shared.Empty{}}}
	if res.Position > 0 {
		resp.PositionOption = &streamsv1.TombstoneResp_Position_{Position: &streamsv1.TombstoneResp_Position{
			CommitPosition: res.Position, PreparePosition: res.Position,
		}}
	}
	return resp, nil
}
