package engine

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"strings"
)

// A run file is an immutable, sorted index of a contiguous range of positions:
//
//	header: magic "VRTYRUN1", u32 version, u32 zero
//	per kind: entries, 24 bytes each (k1, k2, v), sorted
//	per kind: fences, the (k1, k2) of the first entry of each block of runBlock entries
//	per kind: a blocked Bloom filter over k1 (stream and id kinds only)
//	footer: per kind (entries offset, count, fences offset, bloom offset, bloom length),
//	    then min position, max position, events, u32 CRC-32C of the footer, u32 zero,
//	    magic "VRTYRUNF"
//
// Fences and filters are loaded at open (about 16 bytes per 128 entries and 10 bits per
// key); entries stay on disk and are read a block at a time.
const (
	runBlock        = 128
	runEntrySize    = 24
	runVersion      = 1
	runHeaderSize   = 16
	runFooterSize   = numKinds*40 + 24 + 16
	bloomBitsPerKey = 10
)

var (
	runMagic       = []byte("VRTYRUN1")
	runFooterMagic = []byte("VRTYRUNF")
)

type runEntry struct{ k1, k2, v uint64 }

func cmpRunEntry(a, b runEntry) int {
	if c := cmp.Compare(a.k1, b.k1); c != 0 {
		return c
	}
	if c := cmp.Compare(a.k2, b.k2); c != 0 {
		return c
	}
	return cmp.Compare(a.v, b.v)
}

type fence struct{ k1, k2 uint64 }

type runKind struct {
	off    int64
	n      uint64
	fences []fence
	bloom  []uint64
}

type run struct {
	path   string
	f      *os.File
	minPos uint64
	maxPos uint64
	events uint64
	kinds  [numKinds]runKind
}

func runName(minPos, maxPos uint64) string { return fmt.Sprintf("%016x-%016x.run", minPos, maxPos) }

func hasBloom(k indexKind) bool { return k == ixStream || k == ixID }

// bloom: 512-bit blocks; one block per key, seven bits within it.
func bloomBlocks(n uint64) uint64 { return max(1, (n*bloomBitsPerKey+511)/512) }

func bloomAdd(b []uint64, k1 uint64) {
	blocks := uint64(len(b) / 8)
	blk, h := bloomSpot(k1, blocks)
	for i := 0; i < 7; i++ {
		bit := (h >> (9 * i)) & 511
		b[blk*8+bit/64] |= 1 << (bit % 64)
	}
}

func bloomHas(b []uint64, k1 uint64) bool {
	if b == nil {
		return true
	}
	blocks := uint64(len(b) / 8)
	blk, h := bloomSpot(k1, blocks)
	for i := 0; i < 7; i++ {
		bit := (h >> (9 * i)) & 511
		if b[blk*8+bit/64]&(1<<(bit%64)) == 0 {
			return false
		}
	}
	return true
}

func bloomSpot(k1, blocks uint64) (blk, h uint64) {
	hi, _ := bits.Mul64(k1, blocks)
	return hi, bits.RotateLeft64(k1*0x9E3779B97F4A7C15, 17)
}

// runWriter streams sorted entries of each kind into a new run file.
type runWriter struct {
	tmp   string
	f     *os.File
	w     *bufio.Writer
	off   int64
	kinds [numKinds]runKind
}

func createRunWriter(dir string) (*runWriter, error) {
	f, err := os.CreateTemp(dir, "run-*.tmp")
	if err != nil {
		return nil, err
	}
	rw := &runWriter{tmp: f.Name(), f: f, w: bufio.NewWriterSize(f, 1<<20)}
	hdr := make([]byte, runHeaderSize)
	copy(hdr, runMagic)
	binary.LittleEndian.PutUint32(hdr[8:], runVersion)
	rw.write(hdr)
	return rw, nil
}

func (rw *runWriter) write(b []byte) {
	rw.w.Write(b) // errors surface at Flush
	rw.off += int64(len(b))
}

// writeKind writes one kind's entries, fed by next until it returns false. Kinds must be
// written in order.
func (rw *runWriter) writeKind(kind indexKind, next func() (runEntry, bool)) {
	k := &rw.kinds[kind]
	k.off = rw.off
	var buf [runEntrySize]byte
	var keys []uint64
	for {
		e, ok := next()
		if !ok {
			break
		}
		if k.n%runBlock == 0 {
			k.fences = append(k.fences, fence{e.k1, e.k2})
		}
		binary.LittleEndian.PutUint64(buf[0:], e.k1)
		binary.LittleEndian.PutUint64(buf[8:], e.k2)
		binary.LittleEndian.PutUint64(buf[16:], e.v)
		rw.write(buf[:])
		if hasBloom(kind) && (len(keys) == 0 || keys[len(keys)-1] != e.k1) {
			keys = append(keys, e.k1)
		}
		k.n++
	}
	if hasBloom(kind) {
		k.bloom = make([]uint64, 8*bloomBlocks(uint64(len(keys))))
		for _, key := range keys {
			bloomAdd(k.bloom, key)
		}
	}
}

// finish writes fences, filters and footer, makes the file durable under its final name and
// opens it as a run.
func (rw *runWriter) finish(dir string, minPos, maxPos, events uint64) (*run, error) {
	var fenceOff, bloomOff [numKinds]int64
	for kind := range rw.kinds {
		k := &rw.kinds[kind]
		fenceOff[kind] = rw.off
		b := make([]byte, 16*len(k.fences))
		for i, f := range k.fences {
			binary.LittleEndian.PutUint64(b[16*i:], f.k1)
			binary.LittleEndian.PutUint64(b[16*i+8:], f.k2)
		}
		rw.write(b)
	}
	for kind := range rw.kinds {
		k := &rw.kinds[kind]
		bloomOff[kind] = rw.off
		b := make([]byte, 8*len(k.bloom))
		for i, w := range k.bloom {
			binary.LittleEndian.PutUint64(b[8*i:], w)
		}
		rw.write(b)
	}
	foot := make([]byte, runFooterSize)
	for kind := range rw.kinds {
		k := &rw.kinds[kind]
		p := foot[kind*40:]
		binary.LittleEndian.PutUint64(p[0:], uint64(k.off))
		binary.LittleEndian.PutUint64(p[8:], k.n)
		binary.LittleEndian.PutUint64(p[16:], uint64(fenceOff[kind]))
		binary.LittleEndian.PutUint64(p[24:], uint64(bloomOff[kind]))
		binary.LittleEndian.PutUint64(p[32:], uint64(8*len(k.bloom)))
	}
	p := foot[numKinds*40:]
	binary.LittleEndian.PutUint64(p[0:], minPos)
	binary.LittleEndian.PutUint64(p[8:], maxPos)
	binary.LittleEndian.PutUint64(p[16:], events)
	binary.LittleEndian.PutUint32(p[24:], crc32.Checksum(foot[:numKinds*40+24], castagnoli))
	copy(p[32:], runFooterMagic)
	rw.write(foot)
	if err := rw.w.Flush(); err != nil {
		rw.abort()
		return nil, err
	}
	if err := rw.f.Sync(); err != nil {
		rw.abort()
		return nil, err
	}
	path := filepath.Join(dir, runName(minPos, maxPos))
	if err := os.Rename(rw.tmp, path); err != nil {
		rw.abort()
		return nil, err
	}
	if err := syncDir(dir); err != nil {
		rw.f.Close()
		return nil, err
	}
	r := &run{path: path, f: rw.f, minPos: minPos, maxPos: maxPos, events: events, kinds: rw.kinds}
	return r, nil
}

func (rw *runWriter) abort() {
	rw.f.Close()
	os.Remove(rw.tmp)
}

// writeRun writes a memtable as a run file.
func writeRun(dir string, m *memtable) (*run, error) {
	rw, err := createRunWriter(dir)
	if err != nil {
		return nil, err
	}
	for kind := range indexKind(numKinds) {
		entries := m.sortedEntries(kind)
		i := 0
		rw.writeKind(kind, func() (runEntry, bool) {
			if i == len(entries) {
				return runEntry{}, false
			}
			i++
			return entries[i-1], true
		})
	}
	return rw.finish(dir, m.minPos, m.maxPos, uint64(m.events))
}

// openRun opens a run file and loads its fences and filters.
func openRun(path string) (*run, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r, err := loadRun(f, path)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("index run %s: %w", filepath.Base(path), err)
	}
	return r, nil
}

func loadRun(f *os.File, path string) (*run, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	if size < runHeaderSize+runFooterSize {
		return nil, fmt.Errorf("%w: run file too short", errCorrupt)
	}
	hdr := make([]byte, runHeaderSize)
	if _, err := f.ReadAt(hdr, 0); err != nil {
		return nil, err
	}
	if !bytes.Equal(hdr[:8], runMagic) || binary.LittleEndian.Uint32(hdr[8:]) != runVersion {
		return nil, fmt.Errorf("%w: not a run file of version %d", errCorrupt, runVersion)
	}
	foot := make([]byte, runFooterSize)
	if _, err := f.ReadAt(foot, size-runFooterSize); err != nil {
		return nil, err
	}
	p := foot[numKinds*40:]
	if !bytes.Equal(p[32:], runFooterMagic) || crc32.Checksum(foot[:numKinds*40+24], castagnoli) != binary.LittleEndian.Uint32(p[24:]) {
		return nil, fmt.Errorf("%w: run footer damaged", errCorrupt)
	}
	r := &run{path: path, f: f,
		minPos: binary.LittleEndian.Uint64(p[0:]),
		maxPos: binary.LittleEndian.Uint64(p[8:]),
		events: binary.LittleEndian.Uint64(p[16:]),
	}
	for kind := range r.kinds {
		q := foot[kind*40:]
		k := &r.kinds[kind]
		k.off = int64(binary.LittleEndian.Uint64(q[0:]))
		k.n = binary.LittleEndian.Uint64(q[8:])
		fenceOff := int64(binary.LittleEndian.Uint64(q[16:]))
		bloomOff := int64(binary.LittleEndian.Uint64(q[24:]))
		bloomLen := int64(binary.LittleEndian.Uint64(q[32:]))
		// Every bound is checked without overflow: the footer may hold anything.
		if k.off < runHeaderSize || k.off > size || k.n > uint64(size-k.off)/runEntrySize ||
			fenceOff < 0 || fenceOff > size || bloomOff < 0 || bloomOff > size ||
			bloomLen < 0 || bloomLen > size-bloomOff || bloomLen%64 != 0 {
			return nil, fmt.Errorf("%w: run footer out of range", errCorrupt)
		}
		nf := int64((k.n + runBlock - 1) / runBlock)
		if nf > (size-fenceOff)/16 {
			return nil, fmt.Errorf("%w: run footer out of range", errCorrupt)
		}
		b := make([]byte, 16*nf)
		if _, err := f.ReadAt(b, fenceOff); err != nil {
			return nil, err
		}
		k.fences = make([]fence, nf)
		for i := range k.fences {
			k.fences[i] = fence{binary.LittleEndian.Uint64(b[16*i:]), binary.LittleEndian.Uint64(b[16*i+8:])}
		}
		if bloomLen > 0 {
			b := make([]byte, bloomLen)
			if _, err := f.ReadAt(b, bloomOff); err != nil {
				return nil, err
			}
			k.bloom = make([]uint64, bloomLen/8)
			for i := range k.bloom {
				k.bloom[i] = binary.LittleEndian.Uint64(b[8*i:])
			}
		}
	}
	return r, nil
}

func parseRunName(name string) (minPos, maxPos uint64, ok bool) {
	if !strings.HasSuffix(name, ".run") {
		return 0, 0, false
	}
	_, err := fmt.Sscanf(name, "%016x-%016x.run", &minPos, &maxPos)
	return minPos, maxPos, err == nil && minPos >= 1 && maxPos >= minPos-1
}

// readBlock reads block b of a kind.
func (r *run) readBlock(k *runKind, b int, buf []byte) ([]runEntry, error) {
	first := uint64(b) * runBlock
	n := min(runBlock, k.n-first)
	buf = buf[:n*runEntrySize]
	if _, err := r.f.ReadAt(buf, k.off+int64(first)*runEntrySize); err != nil {
		return nil, fmt.Errorf("index run %s: %w", filepath.Base(r.path), err)
	}
	out := make([]runEntry, n)
	for i := range out {
		p := buf[i*runEntrySize:]
		out[i] = runEntry{binary.LittleEndian.Uint64(p), binary.LittleEndian.Uint64(p[8:]), binary.LittleEndian.Uint64(p[16:])}
	}
	return out, nil
}

// collect appends entries of key k1 with lo ≤ k2 ≤ hi, at most limit, in k2 order
// (descending when desc).
func (r *run) collect(kind indexKind, k1, lo, hi uint64, desc bool, limit int, out []kv) ([]kv, error) {
	k := &r.kinds[kind]
	if k.n == 0 || limit <= 0 || !bloomHas(k.bloom, k1) {
		return out, nil
	}
	less := func(f fence, a, b uint64) bool { return f.k1 < a || (f.k1 == a && f.k2 < b) }
	buf := make([]byte, runBlock*runEntrySize)
	got := 0
	if !desc {
		// The last block whose first entry is below (k1, lo) may hold the first match.
		b := max(0, searchFirst(len(k.fences), func(i int) bool { return !less(k.fences[i], k1, lo) })-1)
		for ; b < len(k.fences) && got < limit; b++ {
			if f := k.fences[b]; f.k1 > k1 || (f.k1 == k1 && f.k2 > hi) {
				break
			}
			entries, err := r.readBlock(k, b, buf)
			if err != nil {
				return nil, err
			}
			for _, e := range entries {
				if e.k1 == k1 && e.k2 >= lo && e.k2 <= hi {
					out = append(out, kv{e.k2, e.v})
					if got++; got == limit {
						break
					}
				}
			}
		}
		return out, nil
	}
	// Descending: start at the last block whose first entry is at or below (k1, hi).
	b := searchFirst(len(k.fences), func(i int) bool { return less(fence{k1, hi}, k.fences[i].k1, k.fences[i].k2) }) - 1
	for ; b >= 0 && got < limit; b-- {
		entries, err := r.readBlock(k, b, buf)
		if err != nil {
			return nil, err
		}
		for i := len(entries) - 1; i >= 0; i-- {
			e := entries[i]
			if e.k1 == k1 && e.k2 >= lo && e.k2 <= hi {
				out = append(out, kv{e.k2, e.v})
				if got++; got == limit {
					break
				}
			}
		}
		if f := k.fences[b]; f.k1 < k1 || (f.k1 == k1 && f.k2 < lo) {
			break
		}
	}
	return out, nil
}

// searchFirst returns the smallest i in [0, n) with f(i) true, or n (sort.Search).
func searchFirst(n int, f func(int) bool) int {
	lo, hi := 0, n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if !f(m) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// runIter streams one kind's entries of a run, for merging.
type runIter struct {
	r   *bufio.Reader
	n   uint64
	buf [runEntrySize]byte
	err error
}

func (r *run) iter(kind indexKind) *runIter {
	k := &r.kinds[kind]
	return &runIter{r: bufio.NewReaderSize(io.NewSectionReader(r.f, k.off, int64(k.n)*runEntrySize), 256<<10), n: k.n}
}

func (it *runIter) next() (runEntry, bool) {
	if it.n == 0 || it.err != nil {
		return runEntry{}, false
	}
	if _, err := io.ReadFull(it.r, it.buf[:]); err != nil {
		it.err = err
		return runEntry{}, false
	}
	it.n--
	b := it.buf[:]
	return runEntry{binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:]), binary.LittleEndian.Uint64(b[16:])}, true
}

// mergeRuns writes one run holding every entry of rs, which cover adjacent position ranges
// in order.
func mergeRuns(dir string, rs []*run) (*run, error) {
	rw, err := createRunWriter(dir)
	if err != nil {
		return nil, err
	}
	var events uint64
	for _, r := range rs {
		events += r.events
	}
	for kind := range indexKind(numKinds) {
		its := make([]*runIter, len(rs))
		heads := make([]runEntry, len(rs))
		live := make([]bool, len(rs))
		for i, r := range rs {
			its[i] = r.iter(kind)
			heads[i], live[i] = its[i].next()
		}
		rw.writeKind(kind, func() (runEntry, bool) {
			best := -1
			for i := range heads {
				if live[i] && (best < 0 || cmpRunEntry(heads[i], heads[best]) < 0) {
					best = i
				}
			}
			if best < 0 {
				return runEntry{}, false
			}
			e := heads[best]
			heads[best], live[best] = its[best].next()
			return e, true
		})
		for _, it := range its {
			if it.err != nil {
				rw.abort()
				return nil, it.err
			}
		}
	}
	return rw.finish(dir, rs[0].minPos, rs[len(rs)-1].maxPos, events)
}
