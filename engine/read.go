package engine

import (
	"context"
	"errors"
	"math"
	"slices"
	"time"

	"github.com/verity-dev/verity"
)

// errStop ends a scan early without an error.
var errStop = errors.New("stop")

// ReadStream implements verity.Store.
func (e *Engine) ReadStream(ctx context.Context, stream string, opts verity.ReadStreamOptions) ([]verity.RecordedEvent, error) {
	const op = "read stream"
	if err := e.check(op); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := e.validName(op, stream); err != nil {
		return nil, err
	}
	if stream == verity.AllStream {
		return nil, &verity.Error{Kind: verity.Invalid, Op: op, Stream: stream, Message: "read $all with ReadAll"}
	}
	limit, err := readLimit(op, opts.Limit)
	if err != nil {
		return nil, err
	}
	committed := e.committed.Load()
	r, _ := e.restr.Load().get(stream)
	if r.tombstoned {
		return nil, &verity.Error{Kind: verity.Deleted, Op: op, Stream: stream, Message: "stream was tombstoned"}
	}
	if r.meta != nil && r.meta.IsSoftDeleted() {
		return nil, &verity.Error{Kind: verity.NotFound, Op: op, Stream: stream, Message: "stream was deleted"}
	}
	lastRev, lastPos, exists, err := e.lastRevision(stream, committed)
	if err != nil {
		return nil, err
	}
	if !exists {
		return nil, &verity.Error{Kind: verity.NotFound, Op: op, Stream: stream, Message: "stream does not exist"}
	}
	if lastRev == verity.TombstoneRevision {
		return nil, &verity.Error{Kind: verity.Deleted, Op: op, Stream: stream, Message: "stream was tombstoned"}
	}
	if err := e.checkVisible(op, stream, r.meta, lastRev, lastPos); err != nil {
		return nil, err
	}
	lo, hi := uint64(0), lastRev
	minCreated := int64(math.MinInt64)
	if m := r.meta; m != nil {
		if m.TruncateBefore != nil {
			lo = max(lo, *m.TruncateBefore)
		}
		if m.MaxCount > 0 && lastRev+1 > m.MaxCount {
			lo = max(lo, lastRev+1-m.MaxCount)
		}
		if m.MaxAge > 0 {
			minCreated = e.cfg.Now().Add(-m.MaxAge).UnixNano()
		}
	}
	desc := opts.Direction == verity.Backwards
	switch {
	case desc && !opts.FromEnd:
		hi = min(hi, opts.From)
	case !desc && opts.FromEnd:
		return nil, nil
	case !desc:
		lo = max(lo, opts.From)
	}
	k1 := hashName(stream)
	var out []verity.RecordedEvent
	for lo <= hi && len(out) < limit {
		want := limit - len(out)
		e.mu.RLock()
		hits, err := e.ix.collect(ixStream, k1, lo, hi, desc, want, committed)
		e.mu.RUnlock()
		if err != nil {
			return nil, err
		}
		k := 0 // readPositions calls back once per hit, in order
		err = e.readPositions(hits, desc, func(en *entry) {
			h := hits[k]
			k++
			// The index may collide or be damaged: the event itself has the last word.
			if en.stream == stream && en.kind == kindEvent && en.created >= minCreated && en.revision == h.k2 && en.position == h.v {
				out = append(out, en.recorded())
			}
		})
		if err != nil {
			return nil, err
		}
		if len(hits) < want {
			break
		}
		last := hits[len(hits)-1].k2
		if desc {
			if last == 0 {
				break
			}
			hi = last - 1
		} else {
			lo = last + 1
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// checkVisible answers NotFound for a stream whose metadata hides every event: truncated
// past its end, or with its newest event older than max age (commit times never decrease,
// so the newest is the last to expire). Max count always leaves the last event visible.
func (e *Engine) checkVisible(op, stream string, m *verity.StreamMetadata, lastRev, lastPos uint64) error {
	if m == nil {
		return nil
	}
	gone := m.TruncateBefore != nil && *m.TruncateBefore > lastRev
	if !gone && m.MaxAge > 0 {
		var en entry
		if err := e.readAt(lastPos, &en); err != nil {
			return err
		}
		gone = en.created < e.cfg.Now().Add(-m.MaxAge).UnixNano()
	}
	if gone {
		return &verity.Error{Kind: verity.NotFound, Op: op, Stream: stream, Message: "every event of the stream is hidden by its metadata (truncate before or max age)"}
	}
	return nil
}

// readPositions reads the events at the positions of hits (their v), in the order given,
// calling fn once per hit.
// Consecutive positions, common since a stream's events are often written together, are read
// with one sequential read instead of one read each.
func (e *Engine) readPositions(hits []kv, desc bool, fn func(*entry)) error {
	for i := 0; i < len(hits); {
		j := i + 1
		step := uint64(1)
		for j < len(hits) && ((!desc && hits[j].v == hits[j-1].v+step) || (desc && hits[j].v+step == hits[j-1].v)) {
			j++
		}
		lo, hi := hits[i].v, hits[j-1].v
		if desc {
			lo, hi = hi, lo
		}
		if lo == hi {
			var en entry
			if err := e.readAt(lo, &en); err != nil {
				return err
			}
			fn(&en)
			i = j
			continue
		}
		var group []entry
		err := e.scanLogChunk(lo, hi, int(min(hi-lo+1, 512))*512, func(en *entry) error {
			if desc {
				group = append(group, *en)
			} else {
				fn(en)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for k := len(group) - 1; k >= 0; k-- {
			fn(&group[k])
		}
		i = j
	}
	return nil
}

func readLimit(op string, limit int) (int, error) {
	switch {
	case limit == 0:
		return verity.DefaultReadLimit, nil
	case limit < 0:
		return 0, verity.Errorf(verity.Invalid, op, "limit %d is negative", limit)
	}
	return limit, nil
}

// ReadAll implements verity.Store.
func (e *Engine) ReadAll(ctx context.Context, opts verity.ReadAllOptions) ([]verity.RecordedEvent, error) {
	const op = "read all"
	if err := e.check(op); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	limit, err := readLimit(op, opts.Limit)
	if err != nil {
		return nil, err
	}
	m, err := opts.Filter.Compile()
	if err != nil {
		return nil, err
	}
	committed := e.committed.Load()
	desc := opts.Direction == verity.Backwards
	from := opts.From
	switch {
	case !opts.FromTime.IsZero():
		if from, err = e.positionAtTime(opts.FromTime, committed, desc); err != nil {
			return nil, err
		}
		if desc && from == 0 {
			return nil, nil
		}
	case opts.FromEnd && desc, desc && from == 0:
		from = committed
	case opts.FromEnd:
		return nil, nil
	case from == 0:
		from = 1
	}
	out, _, err := e.readAll(ctx, from, desc, m, limit, committed, 0)
	return out, err
}

// readAll reads events that pass m from position from (inclusive) towards the end (or the
// start when desc), up to committed. It stops after limit matches or, when maxScan > 0,
// after considering maxScan positions, and returns the last position considered.
func (e *Engine) readAll(ctx context.Context, from uint64, desc bool, m *verity.Matcher, limit int, committed uint64, maxScan int) ([]verity.RecordedEvent, uint64, error) {
	if !desc && from > committed || desc && from == 0 {
		return nil, 0, nil
	}
	from = min(from, committed)
	hidden := e.hiddenFn(committed)
	f := m.Filter()
	if len(f.EventTypes) > 0 || len(f.Categories) > 0 {
		kind, names := ixType, f.EventTypes
		if len(names) == 0 {
			kind, names = ixCategory, f.Categories
		}
		bound := committed
		if maxScan > 0 && !desc {
			bound = min(committed, from+uint64(maxScan)-1)
		}
		return e.readIndexed(ctx, kind, names, from, desc, m, hidden, limit, bound)
	}
	// Size the result for what it will likely hold: a full page when nothing is filtered.
	size := min(limit, 256)
	if m.MatchesAll() && !desc {
		size = int(min(uint64(limit), committed-from+1))
	}
	out := make([]verity.RecordedEvent, 0, size)
	keep := func(en *entry) bool {
		return en.kind == kindEvent && m.Match(en.stream, en.typ) && !hidden(en)
	}
	if !desc {
		last := from - 1
		n := 0
		err := e.scanLog(from, committed, func(en *entry) error {
			last = en.position
			if keep(en) {
				out = append(out, en.recorded())
			}
			if n++; len(out) >= limit || maxScan > 0 && n >= maxScan {
				return errStop
			}
			if n%4096 == 0 {
				return ctx.Err()
			}
			return nil
		})
		if err != nil && err != errStop {
			return nil, 0, err
		}
		return out, last, nil
	}
	// Backwards: scan windows forwards, newest window first.
	const window = 1024
	hi := from
	last := hi + 1
	for hi >= 1 && len(out) < limit {
		lo := uint64(1)
		if hi > window {
			lo = hi - window + 1
		}
		var got []verity.RecordedEvent
		err := e.scanLog(lo, hi, func(en *entry) error {
			if keep(en) {
				got = append(got, en.recorded())
			}
			return nil
		})
		if err != nil {
			return nil, 0, err
		}
		slices.Reverse(got)
		if need := limit - len(out); len(got) > need {
			got = got[:need]
			last = got[len(got)-1].Position
		} else {
			last = lo
		}
		out = append(out, got...)
		hi = lo - 1
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		if maxScan > 0 && int(from-hi) >= maxScan {
			break
		}
	}
	return out, last, nil
}

// readIndexed serves a read from the category or event type index: its cost follows what
// it returns, not the size of the log.
func (e *Engine) readIndexed(ctx context.Context, kind indexKind, names []string, from uint64, desc bool, m *verity.Matcher, hidden func(*entry) bool, limit int, committed uint64) ([]verity.RecordedEvent, uint64, error) {
	keys := make([]uint64, len(names))
	for i, n := range names {
		keys[i] = hashName(n)
	}
	lo, hi := from, committed
	if desc {
		lo, hi = 1, from
	}
	var out []verity.RecordedEvent
	last := from
	for lo <= hi && len(out) < limit {
		want := limit - len(out)
		var hits []kv
		e.mu.RLock()
		for _, k1 := range keys {
			h, err := e.ix.collect(kind, k1, lo, hi, desc, want, committed)
			if err != nil {
				e.mu.RUnlock()
				return nil, 0, err
			}
			hits = append(hits, h...)
		}
		e.mu.RUnlock()
		if desc {
			slices.SortFunc(hits, func(a, b kv) int { return compareU64(b.k2, a.k2) })
		} else {
			slices.SortFunc(hits, func(a, b kv) int { return compareU64(a.k2, b.k2) })
		}
		hits = slices.CompactFunc(hits, func(a, b kv) bool { return a.k2 == b.k2 })
		full := len(hits) >= want
		if len(hits) > want {
			hits = hits[:want]
		}
		for _, h := range hits {
			var en entry
			if err := e.readAt(h.k2, &en); err != nil {
				return nil, 0, err
			}
			if en.kind == kindEvent && m.Match(en.stream, en.typ) && !hidden(&en) {
				out = append(out, en.recorded())
			}
		}
		if !full || len(hits) == 0 {
			if desc {
				last = lo
			} else {
				last = hi
			}
			break
		}
		last = hits[len(hits)-1].k2
		if desc {
			if last <= 1 {
				break
			}
			hi = last - 1
		} else {
			lo = last + 1
		}
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
	}
	return out, last, nil
}

// hiddenFn returns a predicate telling which events the streams' metadata hides from
// reads of the log: everything of a deleted stream (a tombstone's own event excepted), and
// what max age, max count and truncate before leave out.
func (e *Engine) hiddenFn(committed uint64) func(*entry) bool {
	r := e.restr.Load()
	if r == nil || len(r.m) == 0 {
		return func(*entry) bool { return false }
	}
	now := e.cfg.Now()
	lastRevs := map[string]uint64{}
	return func(en *entry) bool {
		x, ok := r.m[en.stream]
		if !ok {
			return false
		}
		if x.tombstoned {
			return en.revision != verity.TombstoneRevision
		}
		mt := x.meta
		if mt == nil {
			return false
		}
		if mt.IsSoftDeleted() || mt.TruncateBefore != nil && en.revision < *mt.TruncateBefore {
			return true
		}
		if mt.MaxAge > 0 && en.created < now.Add(-mt.MaxAge).UnixNano() {
			return true
		}
		if mt.MaxCount > 0 {
			last, ok := lastRevs[en.stream]
			if !ok {
				rev, _, found, err := e.lastRevision(en.stream, committed)
				if err != nil || !found {
					return false
				}
				last = rev
				lastRevs[en.stream] = last
			}
			if last+1 > mt.MaxCount && en.revision < last+1-mt.MaxCount {
				return true
			}
		}
		return false
	}
}

// unixNanoClamped is t in Unix nanoseconds, clamped to the int64 range (UnixNano wraps
// outside years 1678 to 2262).
func unixNanoClamped(t time.Time) int64 {
	switch {
	case t.After(maxTime):
		return math.MaxInt64
	case t.Before(minTime):
		return math.MinInt64
	}
	return t.UnixNano()
}

var (
	maxTime = time.Unix(0, math.MaxInt64)
	minTime = time.Unix(0, math.MinInt64)
)

// positionAtTime finds, by binary search over commit times (which never decrease along the
// log), the first position committed at or after t, or committed+1 when there is none; when
// desc, the last position committed at or before t, or 0.
func (e *Engine) positionAtTime(t time.Time, committed uint64, desc bool) (uint64, error) {
	target := unixNanoClamped(t)
	lo, hi := uint64(1), committed+1
	if desc && target < math.MaxInt64 {
		target++ // last at or before t = first after t, minus one
	}
	for lo < hi {
		mid := lo + (hi-lo)/2
		var en entry
		if err := e.readAt(mid, &en); err != nil {
			return 0, err
		}
		if en.created < target {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if desc {
		return lo - 1, nil
	}
	return lo, nil
}
