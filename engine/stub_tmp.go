package engine

// TEMPORARY: replaced by the real engine within this session.

import (
	"context"
	"errors"

	"github.com/verity-dev/verity"
)

type Engine struct{}

var errTODO = errors.New("engine: not implemented yet")

func Open(cfg Config) (*Engine, error) { return nil, errTODO }
func (e *Engine) Append(ctx context.Context, stream string, expected verity.ExpectedRevision, events ...verity.EventData) (verity.AppendResult, error) {
	return verity.AppendResult{}, errTODO
}
func (e *Engine) AppendMulti(ctx context.Context, appends ...verity.StreamAppend) ([]verity.AppendResult, error) {
	return nil, errTODO
}
func (e *Engine) ReadStream(ctx context.Context, stream string, opts verity.ReadStreamOptions) ([]verity.RecordedEvent, error) {
	return nil, errTODO
}
func (e *Engine) ReadAll(ctx context.Context, opts verity.ReadAllOptions) ([]verity.RecordedEvent, error) {
	return nil, errTODO
}
func (e *Engine) Subscribe(ctx context.Context, opts verity.SubscribeOptions) (verity.Subscription, error) {
	return nil, errTODO
}
func (e *Engine) GetStreamMetadata(ctx context.Context, stream string) (verity.StreamMetadataResult, error) {
	return verity.StreamMetadataResult{}, errTODO
}
func (e *Engine) SetStreamMetadata(ctx context.Context, stream string, expected verity.ExpectedRevision, meta verity.StreamMetadata) (verity.AppendResult, error) {
	return verity.AppendResult{}, errTODO
}
func (e *Engine) DeleteStream(ctx context.Context, stream string, expected verity.ExpectedRevision) (verity.DeleteResult, error) {
	return verity.DeleteResult{}, errTODO
}
func (e *Engine) TombstoneStream(ctx context.Context, stream string, expected verity.ExpectedRevision) (verity.DeleteResult, error) {
	return verity.DeleteResult{}, errTODO
}
func (e *Engine) Close() error { return nil }
func (e *Engine) Stats() Stats { return Stats{} }
func (e *Engine) Scavenge(ctx context.Context) (ScavengeResult, error) {
	return ScavengeResult{}, errTODO
}
func Verify(ctx context.Context, dir string) (VerifyResult, error) { return VerifyResult{}, errTODO }
