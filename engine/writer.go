package engine

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/verity-dev/verity"
)

// writerState is owned by the writer goroutine (and by Open before it starts).
type writerState struct {
	active      *segment
	nextPos     uint64
	lastCreated int64
	chain       [32]byte
	buf         []byte

	// streams caches stream states; it is authoritative for everything written, durable
	// or not, and falls back to the index on a miss.
	streams map[string]*streamState

	// pending: offsets and index entries written in this batch but not yet in the
	// memtable, and the event ids among them (for idempotency within a batch).
	pendingOffs []uint32
	pendingIdx  []pendingEvent
	pendingIDs  map[uuid.UUID]pendingEvent
}

type pendingEvent struct {
	stream string
	typ    string
	id     uuid.UUID
	rev    uint64
	pos    uint64
}

// streamState is what the writer knows of a stream.
type streamState struct {
	// lastRev is the last revision written, -1 for none; math.MaxInt64 once tombstoned.
	lastRev int64
	lastPos uint64
	// meta is the stream's metadata (nil when none), for soft delete.
	meta *verity.StreamMetadata
}

func (st *streamState) tombstoned() bool { return st.lastRev == int64(verity.TombstoneRevision) }
func (st *streamState) softDeleted() bool {
	return st.meta != nil && st.meta.IsSoftDeleted()
}

// appendReq is one Append, AppendMulti, delete or metadata write on its way to the writer.
type appendReq struct {
	op    string
	parts []appendPart
	done  chan appendResp
}

type appendPart struct {
	stream   string
	expected verity.ExpectedRevision
	events   []preparedEvent
	// tombstone writes the part's single event at TombstoneRevision.
	tombstone bool
	// meta is the parsed metadata of a metadata stream's event, or nil.
	meta *verity.StreamMetadata
	// softDelete makes the part a soft delete of stream: it carries no events; the writer
	// appends the deleted marker to the metadata stream.
	softDelete bool
}

type appendResp struct {
	results []verity.AppendResult
	err     error
}

// syncItem is a batch written by the writer, waiting for its fsync before it is answered.
type syncItem struct {
	seg     *segment
	lastPos uint64
	events  uint64
	bytes   int
	replies []reply
	restr   []restrUpdate
}

type reply struct {
	req  *appendReq
	resp appendResp
}

// restrUpdate changes a stream's entry in the committed restrictions.
type restrUpdate struct {
	stream     string
	meta       *verity.StreamMetadata
	tombstoned bool
}

// Append implements verity.Store.
func (e *Engine) Append(ctx context.Context, stream string, expected verity.ExpectedRevision, events ...verity.EventData) (verity.AppendResult, error) {
	res, err := e.appendParts(ctx, "append", verity.StreamAppend{Stream: stream, Expected: expected, Events: events})
	if err != nil {
		return verity.AppendResult{}, err
	}
	return res[0], nil
}

// AppendMulti implements verity.Store.
func (e *Engine) AppendMulti(ctx context.Context, appends ...verity.StreamAppend) ([]verity.AppendResult, error) {
	return e.appendParts(ctx, "append multi", appends...)
}

// appendParts validates and prepares appends on the caller's goroutine and submits them as
// one transaction; op names the operation in errors.
func (e *Engine) appendParts(ctx context.Context, op string, appends ...verity.StreamAppend) ([]verity.AppendResult, error) {
	if err := e.check(op); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(appends) == 0 {
		return nil, verity.Errorf(verity.Invalid, op, "no streams to append to")
	}
	req := &appendReq{op: op, parts: make([]appendPart, len(appends))}
	seen := make(map[string]bool, len(appends))
	total, count := 0, 0
	for i, a := range appends {
		if err := e.validStream(op, a.Stream); err != nil {
			return nil, err
		}
		if seen[a.Stream] {
			return nil, &verity.Error{Kind: verity.Invalid, Op: op, Stream: a.Stream, Message: "stream appears more than once in one atomic append"}
		}
		seen[a.Stream] = true
		p := &req.parts[i]
		p.stream, p.expected = a.Stream, a.Expected
		count += len(a.Events)
		if count > e.cfg.MaxAppendEvents {
			return nil, &verity.Error{Kind: verity.Invalid, Op: op, Stream: a.Stream, Message: fmt.Sprintf("append of %d or more events is over the limit of %d", count, e.cfg.MaxAppendEvents)}
		}
		p.events = make([]preparedEvent, len(a.Events))
		for j := range a.Events {
			n, err := e.prepare(op, a.Stream, &a.Events[j], &p.events[j])
			if err != nil {
				return nil, err
			}
			total += n
		}
		if of, ok := verity.IsMetadataStream(a.Stream); ok && len(a.Events) > 0 {
			var m verity.StreamMetadata
			last := a.Events[len(a.Events)-1]
			if err := json.Unmarshal(last.Data, &m); err != nil {
				return nil, &verity.Error{Kind: verity.Invalid, Op: op, Stream: a.Stream, Message: fmt.Sprintf("metadata of stream %q: %v", of, err)}
			}
			p.meta = &m
		}
	}
	if total > e.cfg.MaxAppendSize {
		return nil, verity.Errorf(verity.Invalid, op, "append of %d bytes is over the limit of %d bytes", total, e.cfg.MaxAppendSize)
	}
	resp, err := e.submit(ctx, req)
	if err != nil {
		return nil, err
	}
	return resp.results, resp.err
}

// validStream checks a stream name that may be written.
func (e *Engine) validStream(op, stream string) error {
	if err := e.validName(op, stream); err != nil {
		return err
	}
	if stream == verity.AllStream {
		return &verity.Error{Kind: verity.Invalid, Op: op, Stream: stream, Message: "$all is the log itself and cannot be written to"}
	}
	return nil
}

// validName checks a stream name that may be read.
func (e *Engine) validName(op, stream string) error {
	switch {
	case stream == "":
		return verity.Errorf(verity.Invalid, op, "stream name is empty")
	case len(stream) > e.cfg.MaxStreamNameLength:
		return verity.Errorf(verity.Invalid, op, "stream name of %d bytes is over the limit of %d", len(stream), e.cfg.MaxStreamNameLength)
	case !utf8.ValidString(stream):
		return verity.Errorf(verity.Invalid, op, "stream name %q is not valid UTF-8", stream)
	case hasControl(stream):
		return verity.Errorf(verity.Invalid, op, "stream name %q contains a control character", stream)
	}
	return nil
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// prepare validates an event and encodes its payload on the caller's goroutine, so the
// writer's work per event stays small. It returns the encoded size.
func (e *Engine) prepare(op, stream string, ev *verity.EventData, p *preparedEvent) (int, error) {
	bad := func(format string, args ...any) (int, error) {
		return 0, &verity.Error{Kind: verity.Invalid, Op: op, Stream: stream, Message: fmt.Sprintf(format, args...)}
	}
	switch {
	case ev.Type == "":
		return bad("event %s has an empty type", ev.ID)
	case len(ev.Type) > e.cfg.MaxEventTypeLength:
		return bad("event type of %d bytes is over the limit of %d", len(ev.Type), e.cfg.MaxEventTypeLength)
	case !utf8.ValidString(ev.Type) || hasControl(ev.Type):
		return bad("event type %q is not printable UTF-8", ev.Type)
	case ev.Type == verity.EventTypeStreamDeleted:
		return bad("event type %s is reserved for tombstones; use TombstoneStream", ev.Type)
	}
	if _, ok := verity.IsMetadataStream(stream); ok && ev.Type != verity.EventTypeMetadata {
		return bad("a metadata stream only takes %s events, not %q", verity.EventTypeMetadata, ev.Type)
	}
	ct := ev.ContentType
	if ct == "" {
		ct = verity.ContentTypeJSON
	}
	if ct == verity.ContentTypeJSON && len(ev.Data) > 0 && !validJSON(ev.Data) {
		return bad("event %q data is not valid JSON (content type %s)", ev.Type, ct)
	}
	p.id = ev.ID
	if p.id == (uuid.UUID{}) {
		p.id = uuid.New()
		p.fresh = true
	}
	evc := *ev
	evc.ID = p.id
	p.payload = encodePayload(stream, &evc, ct)
	if n := len(p.payload); n > e.cfg.MaxEventSize {
		return bad("event %q of %d bytes is over the limit of %d bytes", ev.Type, n, e.cfg.MaxEventSize)
	}
	p.hash = sha256.Sum256(p.payload)
	p.typ = ev.Type
	return len(p.payload), nil
}

// submit hands a request to the writer and waits for its answer. If ctx ends first the
// append may still commit: its outcome is unknown to the caller.
func (e *Engine) submit(ctx context.Context, req *appendReq) (appendResp, error) {
	req.done = make(chan appendResp, 1)
	select {
	case e.reqs <- req:
	case <-e.closing:
		return appendResp{}, verity.Errorf(verity.Unavailable, req.op, "store is closed")
	case <-ctx.Done():
		return appendResp{}, ctx.Err()
	}
	select {
	case r := <-req.done:
		return r, nil
	case <-ctx.Done():
		return appendResp{}, ctx.Err()
	case <-e.stopped:
		select {
		case r := <-req.done:
			return r, nil
		default:
			return appendResp{}, verity.Errorf(verity.Unavailable, req.op, "store is closed")
		}
	}
}

const maxBatchBytes = 8 << 20

// parallelIndexEvents is the batch size from which memtable inserts overlap the fsync.
const parallelIndexEvents = 256

// writeLoop is the single writer. Each turn it takes every queued request, checks and
// encodes them, writes the batch with one write, fsyncs, and only then makes the batch
// visible and answers it. Requests that arrive during the fsync form the next batch: that
// is the group commit. (Fsyncing in a second goroutine while the writer encodes the next
// batch was measured slower: closed-loop clients split into groups that each wait for a
// different fsync, so every fsync carried fewer events.)
func (e *Engine) writeLoop() {
	defer e.wg.Done()
	defer close(e.stopped)
	w := &e.w
	w.streams = make(map[string]*streamState)
	w.pendingIDs = make(map[uuid.UUID]pendingEvent)
	var batch []*appendReq
	for {
		batch = batch[:0]
		select {
		case r := <-e.reqs:
			batch = append(batch, r)
		case <-e.closing:
			e.drainClosed()
			return
		}
	gather:
		for len(batch) < 4096 && len(w.buf) < maxBatchBytes {
			select {
			case r := <-e.reqs:
				batch = append(batch, r)
			default:
				break gather
			}
		}
		item := e.process(batch)
		// A large batch's memtable inserts run while the fsync waits on the disk (the batch
		// becomes visible only after both); a small one's cost less than the hand-off.
		var indexed sync.WaitGroup
		if item.events >= parallelIndexEvents {
			indexed.Go(e.flushPending)
		} else {
			e.flushPending()
		}
		e.commit(item, &indexed)
		e.evictStreams()
	}
}

// drainClosed answers requests still queued at Close.
func (e *Engine) drainClosed() {
	for {
		select {
		case r := <-e.reqs:
			r.done <- appendResp{err: verity.Errorf(verity.Unavailable, r.op, "store is closed")}
		default:
			return
		}
	}
}

// process applies a batch: each request is checked against the stream states and encoded
// into the write buffer (or refused), and the buffer is written. flushPending then gives the
// memtable the new events; nothing becomes visible before commit has fsynced.
func (e *Engine) process(batch []*appendReq) *syncItem {
	w := &e.w
	item := &syncItem{replies: make([]reply, 0, len(batch))}
	firstPos := w.nextPos
	bytesBefore := e.stats.bytes.Load()
	failed := e.failed.Load() != nil
	for _, req := range batch {
		var resp appendResp
		if failed {
			resp.err = e.check(req.op)
		} else {
			resp.results, resp.err = e.apply(req, item)
			if resp.err != nil && verity.KindOf(resp.err) == verity.Unavailable {
				failed = true
			}
		}
		item.replies = append(item.replies, reply{req, resp})
	}
	if !failed {
		if err := e.writeBuf(); err != nil {
			e.fail(err)
		}
	}
	item.seg = w.active
	item.seg.acquire()
	item.lastPos = w.nextPos - 1
	item.events = w.nextPos - firstPos
	item.bytes = int(e.stats.bytes.Load() - bytesBefore)
	return item
}

// writeBuf writes the buffered entries to the active segment.
func (e *Engine) writeBuf() error {
	w := &e.w
	if len(w.buf) == 0 {
		return nil
	}
	if _, err := w.active.f.WriteAt(w.buf, w.active.size); err != nil {
		return fmt.Errorf("write segment %s: %w", w.active.path, err)
	}
	w.active.size += int64(len(w.buf))
	w.active.written.Store(w.active.size)
	e.stats.bytes.Add(uint64(len(w.buf)))
	w.buf = w.buf[:0]
	return nil
}

// flushPending moves the batch's offsets and index entries into the shared structures.
func (e *Engine) flushPending() {
	w := &e.w
	if len(w.pendingOffs) == 0 && len(w.pendingIdx) == 0 {
		return
	}
	e.mu.Lock()
	w.active.offs = append(w.active.offs, w.pendingOffs...)
	for _, p := range w.pendingIdx {
		e.ix.mem.addEvent(p.stream, p.typ, p.id, p.rev, p.pos)
	}
	rotate := e.ix.mem.events >= e.cfg.IndexFlushEvents
	if rotate {
		e.ix.frozen = append(e.ix.frozen, e.ix.mem)
		e.ix.mem = newMemtable(w.nextPos, e.cfg.IndexFlushEvents)
	}
	frozen := len(e.ix.frozen)
	e.mu.Unlock()
	w.pendingOffs = w.pendingOffs[:0]
	w.pendingIdx = w.pendingIdx[:0]
	clear(w.pendingIDs)
	if rotate {
		select {
		case e.flushKick <- struct{}{}:
		default:
		}
	}
	// Back-pressure: with two tables already waiting for the indexer, wait for it, so
	// index memory stays bounded.
	for frozen > 2 {
		select {
		case <-e.flushed:
		case <-e.closing:
			return
		}
		e.mu.RLock()
		frozen = len(e.ix.frozen)
		e.mu.RUnlock()
	}
}

// apply checks one request and, if it may go ahead, encodes its events.
func (e *Engine) apply(req *appendReq, item *syncItem) ([]verity.AppendResult, error) {
	w := &e.w
	states := make([]*streamState, len(req.parts))
	results := make([]verity.AppendResult, len(req.parts))
	dup := 0
	for i := range req.parts {
		p := &req.parts[i]
		st, err := e.streamState(p.stream)
		if err != nil {
			return nil, err
		}
		states[i] = st
		if st.tombstoned() {
			return nil, &verity.Error{Kind: verity.Deleted, Op: req.op, Stream: p.stream, Message: "stream was tombstoned and cannot be written again"}
		}
		if of, ok := verity.IsMetadataStream(p.stream); ok {
			target, err := e.streamState(of)
			if err != nil {
				return nil, err
			}
			if target.tombstoned() {
				return nil, &verity.Error{Kind: verity.Deleted, Op: req.op, Stream: of, Message: "stream was tombstoned; its metadata cannot change"}
			}
		}
		// An Exact or NoStream condition that holds proves the append was never committed
		// (committing it would have moved the stream past that revision), so the event ids
		// need looking up only when the condition fails, or for Any and StreamExists.
		condErr := checkExpected(req.op, p, st)
		_, exact := p.expected.Revision()
		if condErr != nil || !(exact || p.expected.IsNoStream()) || st.softDeleted() {
			if r, ok, err := e.idempotent(req.op, p, st); err != nil {
				return nil, err
			} else if ok {
				results[i] = r
				dup++
				continue
			}
		}
		if condErr != nil {
			return nil, condErr
		}
		if p.softDelete && st.lastRev < 0 && !st.softDeleted() {
			return nil, &verity.Error{Kind: verity.NotFound, Op: req.op, Stream: p.stream, Message: "stream does not exist"}
		}
	}
	if dup == len(req.parts) {
		return results, nil
	}
	if dup > 0 {
		return nil, verity.Errorf(verity.Conflict, req.op, "an atomic append was retried in part: some streams already hold its events, others do not")
	}
	// The conditions hold: lay out the events. Soft delete and undelete become metadata
	// events in the same transaction. Everything that can fail is resolved here, before
	// the first byte is encoded: a transaction is never half in the buffer.
	type planned struct {
		stream string
		st     *streamState
		rev    uint64
		ev     *preparedEvent
		// meta and target: a metadata event's parsed metadata and the state of the stream
		// it describes (nil for other events).
		meta   *verity.StreamMetadata
		target *streamState
		// part is the index of the part whose result this event sets, or -1; deleted
		// marks the metadata event of a soft delete, which sets only the position.
		part    int
		deleted bool
	}
	var plan []planned
	markerOf := func(i int, stream string, st *streamState, m verity.StreamMetadata, deleted bool) error {
		ev, err := e.metadataEvent(stream, m)
		if err != nil {
			return err
		}
		mst, err := e.streamState(verity.MetadataStreamOf(stream))
		if err != nil {
			return err
		}
		part := -1
		if deleted {
			part = i
		}
		plan = append(plan, planned{stream: verity.MetadataStreamOf(stream), st: mst, rev: uint64(mst.lastRev + 1), ev: ev,
			meta: &m, target: st, part: part, deleted: deleted})
		return nil
	}
	for i := range req.parts {
		p, st := &req.parts[i], states[i]
		if len(p.events) == 0 && !p.softDelete {
			results[i] = verity.AppendResult{Revision: uint64(max(st.lastRev, 0))}
			continue
		}
		switch {
		case p.softDelete:
			m := verity.StreamMetadata{}
			if st.meta != nil {
				m = *st.meta
			}
			if err := markerOf(i, p.stream, st, m.SoftDeleted(), true); err != nil {
				return nil, err
			}
			results[i] = verity.AppendResult{Revision: uint64(max(st.lastRev, 0))}
			continue
		case st.softDeleted() && !p.tombstone:
			// Undelete: the old events stay hidden below the new truncate-before.
			m := *st.meta
			tb := uint64(st.lastRev + 1)
			m.TruncateBefore = &tb
			if err := markerOf(i, p.stream, st, m, false); err != nil {
				return nil, err
			}
		}
		var target *streamState
		if of, ok := verity.IsMetadataStream(p.stream); ok && p.meta != nil {
			var err error
			if target, err = e.streamState(of); err != nil {
				return nil, err
			}
		}
		next := uint64(st.lastRev + 1)
		for j := range p.events {
			pl := planned{stream: p.stream, st: st, rev: next + uint64(j), ev: &p.events[j], part: i}
			if p.tombstone {
				pl.rev = verity.TombstoneRevision
			}
			if j == len(p.events)-1 && target != nil {
				pl.meta, pl.target = p.meta, target
			}
			plan = append(plan, pl)
		}
	}
	size := 0
	for _, pl := range plan {
		size += entryHeaderSize + bodyFixedSize + len(pl.ev.payload)
	}
	if size > 0 && w.active.size+int64(len(w.buf))+int64(size)+int64(4*(len(w.active.offs)+len(w.pendingOffs)+len(plan)))+segTrailerSize > e.cfg.SegmentSize {
		if err := e.roll(); err != nil {
			e.fail(err)
			return nil, verity.Errorf(verity.Unavailable, req.op, "%v", err)
		}
	}
	now := e.cfg.Now().UnixNano()
	if now < w.lastCreated {
		now = w.lastCreated // commit times never go backwards along the log
	}
	for k, pl := range plan {
		m := entryMeta{position: w.nextPos, revision: pl.rev, created: now}
		if k == len(plan)-1 {
			m.flags = flagTxnEnd
		}
		off := w.active.size + int64(len(w.buf))
		w.buf, w.chain = appendEntry(w.buf, &w.chain, m, pl.ev)
		w.pendingOffs = append(w.pendingOffs, uint32(off))
		pe := pendingEvent{stream: pl.stream, typ: pl.ev.typ, id: pl.ev.id, rev: pl.rev, pos: w.nextPos}
		w.pendingIdx = append(w.pendingIdx, pe)
		w.pendingIDs[pl.ev.id] = pe
		pl.st.lastRev, pl.st.lastPos = int64(pl.rev), w.nextPos
		if pl.target != nil {
			pl.target.meta = pl.meta
			item.restr = append(item.restr, restrUpdate{stream: streamOfMeta(pl.stream), meta: pl.meta})
		}
		if pl.rev == verity.TombstoneRevision {
			item.restr = append(item.restr, restrUpdate{stream: pl.stream, tombstoned: true})
		}
		switch {
		case pl.deleted:
			results[pl.part].Position = w.nextPos
		case pl.part >= 0:
			results[pl.part] = verity.AppendResult{Revision: pl.rev, Position: w.nextPos}
		}
		w.nextPos++
	}
	w.lastCreated = now
	return results, nil
}

func streamOfMeta(s string) string {
	of, _ := verity.IsMetadataStream(s)
	return of
}

// metadataEvent prepares the $metadata event that records m for stream.
func (e *Engine) metadataEvent(stream string, m verity.StreamMetadata) (*preparedEvent, error) {
	data, err := json.Marshal(m)
	if err != nil {
		return nil, verity.Errorf(verity.Internal, "metadata", "%v", err)
	}
	p := &preparedEvent{}
	if _, err := e.prepare("metadata", verity.MetadataStreamOf(stream), &verity.EventData{Type: verity.EventTypeMetadata, Data: data}, p); err != nil {
		return nil, err
	}
	return p, nil
}

// checkExpected applies the expected revision. A soft-deleted stream counts as not
// existing, yet its last revision is still accepted as exact (its revisions continue).
func checkExpected(op string, p *appendPart, st *streamState) error {
	exists := st.lastRev >= 0 && !st.softDeleted()
	ok := false
	switch rev, exact := p.expected.Revision(); {
	case p.expected.IsAny():
		ok = true
	case p.expected.IsNoStream():
		ok = !exists
	case p.expected.IsStreamExists():
		ok = exists
	case exact:
		ok = st.lastRev >= 0 && uint64(st.lastRev) == rev
	}
	if ok {
		return nil
	}
	actual := verity.StreamState{Exists: exists}
	if exists {
		actual.Revision = uint64(st.lastRev)
	}
	return verity.WrongRevision(op, p.stream, p.expected, actual)
}

// idempotent reports whether a part's events were all committed to its stream before, in
// the same order, and if so the original result. A partial overlap is a Conflict.
func (e *Engine) idempotent(op string, p *appendPart, st *streamState) (verity.AppendResult, bool, error) {
	if len(p.events) == 0 || p.softDelete || st.lastRev < 0 {
		return verity.AppendResult{}, false, nil
	}
	var first pendingEvent
	found := 0
	for i := range p.events {
		ev := &p.events[i]
		if ev.fresh {
			continue
		}
		pe, ok, err := e.findEvent(p.stream, ev.id)
		if err != nil {
			return verity.AppendResult{}, false, err
		}
		if !ok {
			continue
		}
		if found == 0 {
			first = pe
		}
		if found != i || pe.rev != first.rev+uint64(i) {
			return verity.AppendResult{}, false, partialRetry(op, p.stream, ev.id)
		}
		found++
	}
	if found == 0 {
		return verity.AppendResult{}, false, nil
	}
	if found != len(p.events) {
		return verity.AppendResult{}, false, partialRetry(op, p.stream, p.events[found].id)
	}
	last, _, err := e.findEvent(p.stream, p.events[found-1].id)
	if err != nil {
		return verity.AppendResult{}, false, err
	}
	return verity.AppendResult{Revision: last.rev, Position: last.pos}, true, nil
}

func partialRetry(op, stream string, id uuid.UUID) error {
	return &verity.Error{Kind: verity.Conflict, Op: op, Stream: stream,
		Message: fmt.Sprintf("append overlaps an earlier one only in part (event %s): a retry must carry exactly the same events in the same order", id)}
}

// findEvent looks an event id up in one stream, among everything written (writer only).
func (e *Engine) findEvent(stream string, id uuid.UUID) (pendingEvent, bool, error) {
	w := &e.w
	if pe, ok := w.pendingIDs[id]; ok && pe.stream == stream {
		return pe, true, nil
	}
	k1 := hashID(id)
	e.mu.RLock()
	if !e.ix.mayContain(ixID, k1) {
		e.mu.RUnlock()
		return pendingEvent{}, false, nil
	}
	hits, err := e.ix.collect(ixID, k1, 0, math.MaxUint64, false, 64, math.MaxUint64)
	e.mu.RUnlock()
	if err != nil {
		return pendingEvent{}, false, err
	}
	for _, h := range hits {
		var en entry
		if err := e.readAt(h.k2, &en); err != nil {
			return pendingEvent{}, false, err
		}
		if en.id == id && en.stream == stream {
			return pendingEvent{stream: stream, id: id, rev: en.revision, pos: en.position}, true, nil
		}
	}
	return pendingEvent{}, false, nil
}

// streamState returns the writer's state of a stream, loading it from the index on a miss.
func (e *Engine) streamState(stream string) (*streamState, error) {
	w := &e.w
	if st, ok := w.streams[stream]; ok {
		return st, nil
	}
	st := &streamState{lastRev: -1}
	rev, pos, ok, err := e.lastRevision(stream, math.MaxUint64)
	if err != nil {
		return nil, err
	}
	if ok {
		st.lastRev, st.lastPos = int64(rev), pos
	}
	if _, isMeta := verity.IsMetadataStream(stream); !isMeta {
		m, _, ok, err := e.readMetadata(verity.MetadataStreamOf(stream), math.MaxUint64)
		if err != nil {
			return nil, err
		}
		if ok {
			st.meta = &m
		}
	}
	w.streams[stream] = st
	return st, nil
}

// evictStreams keeps the stream cache within its size, dropping states whose last write
// is in the memtable already (so a reload finds it).
func (e *Engine) evictStreams() {
	w := &e.w
	if len(w.streams) <= e.cfg.StreamCacheSize {
		return
	}
	target := e.cfg.StreamCacheSize * 7 / 8
	for name := range w.streams {
		if len(w.streams) <= target {
			break
		}
		delete(w.streams, name)
	}
}

// roll seals the active segment and starts the next one.
func (e *Engine) roll() error {
	w := &e.w
	if err := e.writeBuf(); err != nil {
		return err
	}
	e.flushPending()
	old := w.active
	e.mu.RLock()
	offs := old.offs
	e.mu.RUnlock()
	if _, err := old.f.WriteAt(encodeFooter(old.firstPos, offs), old.size); err != nil {
		return fmt.Errorf("seal segment %s: %w", old.path, err)
	}
	if err := old.f.Sync(); err != nil {
		return fmt.Errorf("seal segment %s: %w", old.path, err)
	}
	s, err := createSegment(e.logDir, old.num+1, w.nextPos, w.chain)
	if err != nil {
		return fmt.Errorf("create segment: %w", err)
	}
	e.mu.Lock()
	old.sealed, old.count, old.tableOff = true, uint64(len(offs)), old.size
	old.offs = nil
	e.segs = append(e.segs, s)
	e.mu.Unlock()
	w.active = s
	return nil
}

// commit fsyncs a written batch, waits until the memtable has it (indexed), then makes it
// visible and answers its requests in order.
func (e *Engine) commit(it *syncItem, indexed *sync.WaitGroup) {
	defer it.seg.release()
	var fsync time.Duration
	if e.failed.Load() == nil && it.events > 0 {
		start := time.Now()
		err := it.seg.f.Sync()
		fsync = time.Since(start)
		e.stats.fsyncs.Add(1)
		e.stats.fsyncNanos.Add(uint64(fsync))
		if err != nil {
			e.fail(fmt.Errorf("fsync %s: %w", it.seg.path, err))
		}
	}
	indexed.Wait()
	if e.failed.Load() != nil {
		for _, r := range it.replies {
			r.req.done <- appendResp{err: e.check(r.req.op)}
		}
		return
	}
	if len(it.restr) > 0 {
		e.applyRestrictions(it.restr)
	}
	if it.lastPos > e.committed.Load() {
		e.committed.Store(it.lastPos)
		e.broadcast()
	}
	appends := uint64(0)
	for _, r := range it.replies {
		if r.resp.err == nil {
			appends++
		}
	}
	e.stats.events.Add(it.events)
	e.stats.appends.Add(appends)
	if e.cfg.OnCommit != nil && it.events > 0 {
		e.cfg.OnCommit(CommitInfo{Appends: int(appends), Events: int(it.events), Bytes: it.bytes, Fsync: fsync})
	}
	for _, r := range it.replies {
		r.req.done <- r.resp
	}
}
