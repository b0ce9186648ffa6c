package engine

import (
	"cmp"
	"slices"

	"github.com/cespare/xxhash/v2"
	"github.com/google/uuid"
	"github.com/verity-dev/verity"
)

// The indexes map a 64-bit hash of a name to positions. Four kinds share one structure:
//
//	stream:   k1 = hash(stream name), k2 = revision, v = position
//	category: k1 = hash(category),    k2 = position
//	type:     k1 = hash(event type),  k2 = position
//	id:       k1 = hash(event id),    k2 = position
//
// Hashes may collide, so every hit is confirmed against the event it points to. Recent
// events live in a memtable; every IndexFlushEvents events it is frozen and written to an
// immutable run file covering a contiguous range of positions; runs are merged in the
// background. All of it can be rebuilt from the log.
type indexKind int

const (
	ixStream indexKind = iota
	ixCategory
	ixType
	ixID
)

// numKinds is how many index kinds there are.
const numKinds = 4

func hashName(s string) uint64   { return xxhash.Sum64String(s) }
func hashID(id uuid.UUID) uint64 { return xxhash.Sum64(id[:]) }

type kv struct{ k2, v uint64 }

func cmpKV(a, b kv) int {
	if c := cmp.Compare(a.k2, b.k2); c != 0 {
		return c
	}
	return cmp.Compare(a.v, b.v)
}

// memList holds one key's entries in insertion (position) order; sorted says whether that
// is also k2 order, which only a hash collision can break.
type memList struct {
	e      []kv
	sorted bool
}

// memtable is the index of the most recent events. The writer adds to it under Engine.mu
// (write lock); readers query it under the read lock.
//
// Event ids are looked up only by the writer, and only when an append could be a retry, but
// every event adds one: so the id kind is an append-only list (ids) behind a small blocked
// Bloom filter (idBloom, a few hundred KiB, cache-resident), not a map whose every insert
// misses the cache. A look-up that the filter passes scans the list.
type memtable struct {
	lists   [numKinds]map[uint64]*memList
	ids     []runEntry
	idBloom []uint64
	minPos  uint64
	maxPos  uint64
	events  int
}

func newMemtable(minPos uint64, sizeHint int) *memtable {
	m := &memtable{minPos: minPos, maxPos: minPos - 1,
		ids:     make([]runEntry, 0, sizeHint),
		idBloom: make([]uint64, 8*bloomBlocks(uint64(max(sizeHint, 1024))))}
	for k := range m.lists {
		m.lists[k] = make(map[uint64]*memList)
	}
	return m
}

func (m *memtable) addID(k1, pos uint64) {
	m.ids = append(m.ids, runEntry{k1, pos, 0})
	bloomAdd(m.idBloom, k1)
}

func (m *memtable) add(kind indexKind, k1, k2, v uint64) {
	l := m.lists[kind][k1]
	if l == nil {
		l = &memList{sorted: true}
		m.lists[kind][k1] = l
	} else if n := len(l.e); n > 0 && cmpKV(kv{k2, v}, l.e[n-1]) < 0 {
		l.sorted = false
	}
	l.e = append(l.e, kv{k2, v})
}

// addEvent indexes one event.
func (m *memtable) addEvent(stream, typ string, id uuid.UUID, rev, pos uint64) {
	m.add(ixStream, hashName(stream), rev, pos)
	if c := verity.Category(stream); c != "" {
		m.add(ixCategory, hashName(c), pos, 0)
	}
	if typ != "" {
		m.add(ixType, hashName(typ), pos, 0)
	}
	m.addID(hashID(id), pos)
	m.maxPos = pos
	m.events++
}

// collect appends to out the entries of key k1 with lo ≤ k2 ≤ hi and a position at most
// maxPos, at most limit of them, the lowest k2 first (or the highest when desc).
func (m *memtable) collect(kind indexKind, k1, lo, hi uint64, desc bool, limit int, maxPos uint64, out []kv) []kv {
	if kind == ixID {
		if limit <= 0 || !bloomHas(m.idBloom, k1) {
			return out
		}
		var sel []kv
		for _, e := range m.ids {
			if e.k1 == k1 && e.k2 >= lo && e.k2 <= hi && e.k2 <= maxPos {
				sel = append(sel, kv{e.k2, 0})
			}
		}
		if desc {
			slices.Reverse(sel)
		}
		return append(out, sel[:min(limit, len(sel))]...)
	}
	l := m.lists[kind][k1]
	if l == nil || limit <= 0 {
		return out
	}
	ok := func(e kv) bool {
		if kind == ixStream {
			return e.v <= maxPos
		}
		return e.k2 <= maxPos
	}
	if !l.sorted {
		var sel []kv
		for _, e := range l.e {
			if e.k2 >= lo && e.k2 <= hi && ok(e) {
				sel = append(sel, e)
			}
		}
		slices.SortFunc(sel, cmpKV)
		if desc {
			slices.Reverse(sel)
		}
		return append(out, sel[:min(limit, len(sel))]...)
	}
	i, _ := slices.BinarySearchFunc(l.e, lo, func(e kv, t uint64) int { return cmp.Compare(e.k2, t) })
	j, _ := slices.BinarySearchFunc(l.e, hi, func(e kv, t uint64) int {
		if e.k2 <= t {
			return -1
		}
		return 1
	})
	sel := l.e[i:j]
	if !desc {
		for _, e := range sel {
			if limit == 0 || !ok(e) {
				break // entries are in position order: the rest are later still
			}
			out = append(out, e)
			limit--
		}
		return out
	}
	for k := len(sel) - 1; k >= 0 && limit > 0; k-- {
		if ok(sel[k]) {
			out = append(out, sel[k])
			limit--
		}
	}
	return out
}

// sortedEntries returns the memtable's entries of one kind sorted by (k1, k2, v). Sorting
// the keys alone (plain uint64s) and emitting each key's list, already in k2 order unless a
// collision mixed it, is much cheaper than sorting every entry with a comparison function.
func (m *memtable) sortedEntries(kind indexKind) []runEntry {
	if kind == ixID {
		out := slices.Clone(m.ids)
		slices.SortFunc(out, cmpRunEntry)
		return out
	}
	lists := m.lists[kind]
	n := 0
	for _, l := range lists {
		n += len(l.e)
	}
	keys := make([]uint64, 0, len(lists))
	for k1 := range lists {
		keys = append(keys, k1)
	}
	slices.Sort(keys)
	out := make([]runEntry, 0, n)
	for _, k1 := range keys {
		start := len(out)
		l := lists[k1]
		for _, e := range l.e {
			out = append(out, runEntry{k1, e.k2, e.v})
		}
		if !l.sorted {
			slices.SortFunc(out[start:], cmpRunEntry)
		}
	}
	return out
}

// indexSet is what readers query: runs (ordered by position range, disjoint), then frozen
// memtables being flushed, then the active memtable. Engine.mu guards it.
type indexSet struct {
	runs   []*run
	frozen []*memtable
	mem    *memtable
}

// collect gathers up to limit entries of key k1 in [lo, hi] from every part of the index,
// ordered by k2 (descending when desc). The caller holds Engine.mu for reading; run reads
// happen under it (runs are immutable and only closed under the write lock).
func (ix *indexSet) collect(kind indexKind, k1, lo, hi uint64, desc bool, limit int, maxPos uint64) ([]kv, error) {
	if kind != ixStream {
		hi = min(hi, maxPos)
	}
	if lo > hi {
		return nil, nil
	}
	var out []kv
	for _, r := range ix.runs {
		var err error
		if out, err = r.collect(kind, k1, lo, hi, desc, limit, out); err != nil {
			return nil, err
		}
	}
	for _, m := range ix.frozen {
		out = m.collect(kind, k1, lo, hi, desc, limit, maxPos, out)
	}
	out = ix.mem.collect(kind, k1, lo, hi, desc, limit, maxPos, out)
	if desc {
		slices.SortFunc(out, func(a, b kv) int { return cmpKV(b, a) })
	} else {
		slices.SortFunc(out, cmpKV)
	}
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (m *memtable) has(kind indexKind, k1 uint64) bool {
	if kind == ixID {
		return bloomHas(m.idBloom, k1)
	}
	_, ok := m.lists[kind][k1]
	return ok
}

// mayContain reports whether key k1 may have entries: false is certain.
func (ix *indexSet) mayContain(kind indexKind, k1 uint64) bool {
	if ix.mem.has(kind, k1) {
		return true
	}
	for _, m := range ix.frozen {
		if m.has(kind, k1) {
			return true
		}
	}
	for _, r := range ix.runs {
		if k := &r.kinds[kind]; k.n > 0 && bloomHas(k.bloom, k1) {
			return true
		}
	}
	return false
}
