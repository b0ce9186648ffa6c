package engine

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"math"

	"github.com/google/uuid"
	"github.com/verity-dev/verity"
)

// restriction is what readers must honour for one stream: its metadata and whether it was
// tombstoned.
type restriction struct {
	meta       *verity.StreamMetadata
	tombstoned bool
}

// restrictions is the committed view of every stream with metadata or a tombstone. It is
// replaced whole on change, so a scan of the log reads one snapshot without locks. Its size
// follows the number of such streams, not the size of the log.
type restrictions struct {
	m map[string]restriction
}

func (r *restrictions) get(stream string) (restriction, bool) {
	if r == nil || len(r.m) == 0 {
		return restriction{}, false
	}
	x, ok := r.m[stream]
	return x, ok
}

func (e *Engine) applyRestrictions(updates []restrUpdate) {
	old := e.restr.Load()
	m := make(map[string]restriction, len(old.m)+len(updates))
	for k, v := range old.m {
		m[k] = v
	}
	for _, u := range updates {
		x := m[u.stream]
		if u.tombstoned {
			x.tombstoned = true
		}
		if u.meta != nil {
			x.meta = u.meta
		}
		m[u.stream] = x
	}
	e.restr.Store(&restrictions{m: m})
}

// loadRestrictions rebuilds the restrictions from the log at open, through the event type
// index: the cost follows the number of metadata and tombstone events.
func (e *Engine) loadRestrictions() error {
	last := e.committed.Load()
	var updates []restrUpdate
	for _, typ := range []string{verity.EventTypeMetadata, verity.EventTypeStreamDeleted} {
		from := uint64(1)
		for from <= last {
			e.mu.RLock()
			hits, err := e.ix.collect(ixType, hashName(typ), from, last, false, 4096, last)
			e.mu.RUnlock()
			if err != nil {
				return err
			}
			for _, h := range hits {
				var en entry
				if err := e.readAt(h.k2, &en); err != nil {
					return err
				}
				if en.kind != kindEvent || en.typ != typ {
					continue
				}
				if typ == verity.EventTypeStreamDeleted {
					updates = append(updates, restrUpdate{stream: en.stream, tombstoned: true})
					continue
				}
				of, ok := verity.IsMetadataStream(en.stream)
				if !ok {
					continue
				}
				var m verity.StreamMetadata
				if json.Unmarshal(en.data, &m) == nil {
					updates = append(updates, restrUpdate{stream: of, meta: &m})
				}
			}
			if len(hits) < 4096 {
				break
			}
			from = hits[len(hits)-1].k2 + 1
		}
	}
	// Later metadata wins: the type lists were read in position order, metadata first;
	// tombstones only ever set a flag.
	e.applyRestrictions(updates)
	return nil
}

// lastRevision finds a stream's last revision (the tombstone's included) and its position,
// among events at positions up to maxPos.
func (e *Engine) lastRevision(stream string, maxPos uint64) (rev, pos uint64, ok bool, err error) {
	k1 := hashName(stream)
	hi := uint64(math.MaxUint64)
	for {
		e.mu.RLock()
		if !e.ix.mayContain(ixStream, k1) {
			e.mu.RUnlock()
			return 0, 0, false, nil
		}
		hits, err := e.ix.collect(ixStream, k1, 0, hi, true, 8, maxPos)
		e.mu.RUnlock()
		if err != nil {
			return 0, 0, false, err
		}
		for _, h := range hits {
			var en entry
			if err := e.readAt(h.v, &en); err != nil {
				return 0, 0, false, err
			}
			if en.stream == stream {
				return h.k2, h.v, true, nil
			}
		}
		if len(hits) < 8 || hits[len(hits)-1].k2 == 0 {
			return 0, 0, false, nil
		}
		hi = hits[len(hits)-1].k2 - 1
	}
}

// readMetadata reads the last metadata event of a metadata stream.
func (e *Engine) readMetadata(metaStream string, maxPos uint64) (verity.StreamMetadata, uint64, bool, error) {
	rev, pos, ok, err := e.lastRevision(metaStream, maxPos)
	if err != nil || !ok {
		return verity.StreamMetadata{}, 0, false, err
	}
	var en entry
	if err := e.readAt(pos, &en); err != nil {
		return verity.StreamMetadata{}, 0, false, err
	}
	var m verity.StreamMetadata
	if en.kind == kindEvent {
		if err := json.Unmarshal(en.data, &m); err != nil {
			return verity.StreamMetadata{}, 0, false, verity.Errorf(verity.Internal, "metadata", "stream %q: stored metadata unreadable: %v", metaStream, err)
		}
	}
	return m, rev, true, nil
}

// GetStreamMetadata implements verity.Store.
func (e *Engine) GetStreamMetadata(ctx context.Context, stream string) (verity.StreamMetadataResult, error) {
	const op = "get metadata"
	if err := e.check(op); err != nil {
		return verity.StreamMetadataResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return verity.StreamMetadataResult{}, err
	}
	if err := e.validStream(op, stream); err != nil {
		return verity.StreamMetadataResult{}, err
	}
	if r, _ := e.restr.Load().get(stream); r.tombstoned {
		return verity.StreamMetadataResult{}, &verity.Error{Kind: verity.Deleted, Op: op, Stream: stream, Message: "stream was tombstoned"}
	}
	m, rev, ok, err := e.readMetadata(verity.MetadataStreamOf(stream), e.committed.Load())
	if err != nil {
		return verity.StreamMetadataResult{}, err
	}
	if !ok {
		return verity.StreamMetadataResult{}, &verity.Error{Kind: verity.NotFound, Op: op, Stream: stream, Message: "no metadata was ever set"}
	}
	return verity.StreamMetadataResult{Stream: stream, Metadata: m, Revision: rev}, nil
}

// SetStreamMetadata implements verity.Store.
func (e *Engine) SetStreamMetadata(ctx context.Context, stream string, expected verity.ExpectedRevision, meta verity.StreamMetadata) (verity.AppendResult, error) {
	const op = "set metadata"
	if err := e.validStream(op, stream); err != nil {
		return verity.AppendResult{}, err
	}
	if _, ok := verity.IsMetadataStream(stream); ok {
		return verity.AppendResult{}, &verity.Error{Kind: verity.Invalid, Op: op, Stream: stream, Message: "a metadata stream has no metadata of its own"}
	}
	data, err := json.Marshal(meta)
	if err != nil {
		return verity.AppendResult{}, verity.Errorf(verity.Invalid, op, "%v", err)
	}
	res, err := e.appendParts(ctx, op, verity.StreamAppend{
		Stream: verity.MetadataStreamOf(stream), Expected: expected,
		Events: []verity.EventData{{Type: verity.EventTypeMetadata, Data: data}},
	})
	if err != nil {
		return verity.AppendResult{}, err
	}
	return res[0], nil
}

// DeleteStream implements verity.Store.
func (e *Engine) DeleteStream(ctx context.Context, stream string, expected verity.ExpectedRevision) (verity.DeleteResult, error) {
	return e.deleteStream(ctx, "delete", appendPart{stream: stream, expected: expected, softDelete: true})
}

// TombstoneStream implements verity.Store.
func (e *Engine) TombstoneStream(ctx context.Context, stream string, expected verity.ExpectedRevision) (verity.DeleteResult, error) {
	ev := verity.EventData{ID: uuid.New(), Type: verity.EventTypeStreamDeleted, ContentType: verity.ContentTypeJSON, Data: []byte("{}")}
	p := preparedEvent{id: ev.ID, typ: ev.Type, fresh: true}
	p.payload = encodePayload(stream, &ev, ev.ContentType)
	p.hash = sha256.Sum256(p.payload)
	return e.deleteStream(ctx, "tombstone", appendPart{stream: stream, expected: expected, tombstone: true, events: []preparedEvent{p}})
}

func (e *Engine) deleteStream(ctx context.Context, op string, part appendPart) (verity.DeleteResult, error) {
	if err := e.check(op); err != nil {
		return verity.DeleteResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return verity.DeleteResult{}, err
	}
	if err := e.validStream(op, part.stream); err != nil {
		return verity.DeleteResult{}, err
	}
	resp, err := e.submit(ctx, &appendReq{op: op, parts: []appendPart{part}})
	if err != nil {
		return verity.DeleteResult{}, err
	}
	if resp.err != nil {
		return verity.DeleteResult{}, resp.err
	}
	return verity.DeleteResult{Position: resp.results[0].Position}, nil
}
