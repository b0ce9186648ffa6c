package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// ownlog is the ceiling peer: the least a durable event log on this disk has to do. Writers
// hand their encoded events to one goroutine, which writes everything queued with one
// write(2), fsyncs once, then acknowledges all of it (group commit). An in-memory map from
// stream to record offsets serves the concurrency check and stream reads; replay reads the
// file sequentially. It has no index on disk, so reopening scans the whole file.
type ownlog struct {
	f    *os.File
	path string

	reqs chan *ownlogAppend // unbuffered: a queued writer is one blocked on its send
	quit chan struct{}
	wg   sync.WaitGroup
	once sync.Once

	// mu guards streams and size; only the committer writes them.
	mu      sync.RWMutex
	streams map[string]*ownlogStream
	size    int64
	failed  error // sticky write or fsync failure, set by the committer

	subsMu sync.Mutex
	subs   map[*ownlogSub]struct{}
}

var _ system = (*ownlog)(nil)

// ownlogStream lists a stream's records; its revision is len(recs)-1. The committer only
// ever appends, so a reader may keep using a prefix it read under the lock.
type ownlogStream struct {
	recs []ownlogRec
}

type ownlogRec struct {
	off int64
	n   uint32 // the whole record, header included
}

// ownlogAppend is one Append or AppendMulti: all its parts commit or none.
type ownlogAppend struct {
	parts []streamAppend
	done  chan ownlogResult // buffered: the committer never blocks on it
}

type ownlogResult struct {
	next []uint64
	err  error
}

// Record layout: length u32 (of the body) | crc32c u32 (of the body) | body, where body is
// stream length u16 | stream | revision u64 | type length u16 | type | data length u32 | data.
const ownlogHeader = 8

// ownlogMaxRecord is the largest record a reader accepts.
const ownlogMaxRecord = 8 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func openOwnlog(dir string) (*ownlog, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("ownlog: %w", err)
	}
	path := filepath.Join(dir, "ownlog.dat")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("ownlog: %w", err)
	}
	l := &ownlog{
		f: f, path: path,
		reqs:    make(chan *ownlogAppend),
		quit:    make(chan struct{}),
		streams: make(map[string]*ownlogStream),
		subs:    make(map[*ownlogSub]struct{}),
	}
	if err := l.recover(); err != nil {
		f.Close()
		return nil, err
	}
	// The file's directory entry must be durable too.
	if err := syncDir(dir); err != nil {
		f.Close()
		return nil, fmt.Errorf("ownlog: %w", err)
	}
	l.wg.Add(1)
	go l.commitLoop()
	return l, nil
}

// recover rebuilds the index by scanning the file, and cuts off a torn tail.
func (l *ownlog) recover() error {
	r := bufio.NewReaderSize(io.NewSectionReader(l.f, 0, 1<<62), 1<<20)
	var (
		off int64
		buf []byte
		ev  ownlogEvent
	)
	for {
		n, err := readOwnlogRecord(r, &buf, &ev)
		if err != nil {
			break // EOF, or a torn or corrupt tail: everything before it is the log
		}
		st := l.streams[ev.stream]
		if st == nil {
			st = &ownlogStream{}
			l.streams[ev.stream] = st
		}
		st.recs = append(st.recs, ownlogRec{off: off, n: uint32(n)})
		off += int64(n)
	}
	if err := l.f.Truncate(off); err != nil {
		return fmt.Errorf("ownlog: truncate %s to %d: %w", l.path, off, err)
	}
	l.size = off
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ownlogEvent is a decoded record; decoding it is part of what replay measures.
type ownlogEvent struct {
	stream   string
	revision uint64
	typ      string
	data     []byte
}

// readOwnlogRecord reads and checks one record into *buf and decodes it into ev (whose
// data aliases *buf). It returns the record's size.
func readOwnlogRecord(r io.Reader, buf *[]byte, ev *ownlogEvent) (int, error) {
	var h [ownlogHeader]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, err
	}
	n := binary.LittleEndian.Uint32(h[:4])
	if n > ownlogMaxRecord {
		return 0, fmt.Errorf("ownlog: record of %d bytes", n)
	}
	if cap(*buf) < int(n) {
		*buf = make([]byte, n)
	}
	body := (*buf)[:n]
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, err
	}
	if err := decodeOwnlogBody(h, body, ev); err != nil {
		return 0, err
	}
	return ownlogHeader + int(n), nil
}

func decodeOwnlogBody(h [ownlogHeader]byte, body []byte, ev *ownlogEvent) error {
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(h[4:]) {
		return errors.New("ownlog: checksum mismatch")
	}
	p := body
	take := func(k int) ([]byte, bool) {
		if len(p) < k {
			return nil, false
		}
		b := p[:k]
		p = p[k:]
		return b, true
	}
	b, ok := take(2)
	if !ok {
		return errors.New("ownlog: short record")
	}
	s, ok := take(int(binary.LittleEndian.Uint16(b)))
	if !ok {
		return errors.New("ownlog: short record")
	}
	ev.stream = string(s)
	if b, ok = take(8); !ok {
		return errors.New("ownlog: short record")
	}
	ev.revision = binary.LittleEndian.Uint64(b)
	if b, ok = take(2); !ok {
		return errors.New("ownlog: short record")
	}
	t, ok := take(int(binary.LittleEndian.Uint16(b)))
	if !ok {
		return errors.New("ownlog: short record")
	}
	ev.typ = string(t)
	if b, ok = take(4); !ok {
		return errors.New("ownlog: short record")
	}
	if ev.data, ok = take(int(binary.LittleEndian.Uint32(b))); !ok {
		return errors.New("ownlog: short record")
	}
	return nil
}

func appendOwnlogRecord(buf []byte, stream string, revision uint64, data []byte) []byte {
	start := len(buf)
	buf = append(buf, make([]byte, ownlogHeader)...)
	buf = binary.LittleEndian.AppendUint16(buf, uint16(len(stream)))
	buf = append(buf, stream...)
	buf = binary.LittleEndian.AppendUint64(buf, revision)
	buf = binary.LittleEndian.AppendUint16(buf, uint16(len(benchEventType)))
	buf = append(buf, benchEventType...)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(data)))
	buf = append(buf, data...)
	body := buf[start+ownlogHeader:]
	binary.LittleEndian.PutUint32(buf[start:], uint32(len(body)))
	binary.LittleEndian.PutUint32(buf[start+4:], crc32.Checksum(body, castagnoli))
	return buf
}

var errOwnlogClosed = errors.New("ownlog: closed")

// Append's token is the stream's event count, so 0 means no stream.
func (l *ownlog) Append(ctx context.Context, stream string, expected uint64, events [][]byte) (uint64, error) {
	next, err := l.AppendMulti(ctx, []streamAppend{{stream: stream, expected: expected, events: events}})
	if err != nil {
		return 0, err
	}
	return next[0], nil
}

func (l *ownlog) AppendMulti(ctx context.Context, parts []streamAppend) ([]uint64, error) {
	for _, p := range parts {
		if len(p.stream) > 1<<16-1 {
			return nil, fmt.Errorf("ownlog: stream name of %d bytes", len(p.stream))
		}
	}
	r := &ownlogAppend{parts: parts, done: make(chan ownlogResult, 1)}
	select {
	case l.reqs <- r:
	case <-l.quit:
		return nil, errOwnlogClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// Once taken, an append is always answered: the committer finishes its batch.
	res := <-r.done
	return res.next, res.err
}

// commitLoop is the single writer: take one append, gather every other append already
// waiting, check them, write them with one write(2), fsync once, publish and acknowledge.
func (l *ownlog) commitLoop() {
	defer l.wg.Done()
	var (
		batch   []*ownlogAppend
		results []ownlogResult
		buf     []byte
		pending = make(map[string]uint64) // stream counts including this batch
		added   []ownlogAdded
	)
	for {
		batch, buf, added = batch[:0], buf[:0], added[:0]
		clear(pending)
		select {
		case r := <-l.reqs:
			batch = append(batch, r)
		case <-l.quit:
			return
		}
		// Every other append already waiting joins this commit; each writer has at most
		// one in flight, so a commit holds at most one append per writer.
	gather:
		for {
			select {
			case r := <-l.reqs:
				batch = append(batch, r)
			default:
				break gather
			}
		}
		results = results[:0]
		for _, r := range batch {
			results = append(results, l.stage(r, pending, &buf, &added))
		}
		err := l.failed
		if err == nil && len(buf) > 0 {
			if _, err = l.f.WriteAt(buf, l.size); err == nil {
				err = l.f.Sync()
			}
			if err != nil {
				err = fmt.Errorf("ownlog: write %d bytes at %d: %w", len(buf), l.size, err)
				l.mu.Lock()
				l.failed = err
				l.mu.Unlock()
			}
		}
		if err == nil && len(added) > 0 {
			l.publish(buf, added)
		}
		for i, r := range batch {
			res := results[i]
			if err != nil && res.err == nil {
				res = ownlogResult{err: err}
			}
			r.done <- res
		}
	}
}

// stage checks every part of r against the streams' counts (pending holds those changed
// earlier in the batch) and, if all hold, encodes r's records into buf.
func (l *ownlog) stage(r *ownlogAppend, pending map[string]uint64, buf *[]byte, added *[]ownlogAdded) ownlogResult {
	count := func(stream string) uint64 {
		if c, ok := pending[stream]; ok {
			return c
		}
		if st := l.streams[stream]; st != nil {
			return uint64(len(st.recs))
		}
		return 0
	}
	for i, p := range r.parts {
		if c := count(p.stream); p.expected != c {
			return ownlogResult{err: fmt.Errorf("ownlog: stream %q: expected revision token %d, actual %d", p.stream, p.expected, c)}
		}
		for _, q := range r.parts[:i] {
			if q.stream == p.stream {
				return ownlogResult{err: fmt.Errorf("ownlog: stream %q twice in one append", p.stream)}
			}
		}
	}
	next := make([]uint64, len(r.parts))
	for i, p := range r.parts {
		c := count(p.stream)
		for _, d := range p.events {
			start := len(*buf)
			*buf = appendOwnlogRecord(*buf, p.stream, c, d)
			*added = append(*added, ownlogAdded{stream: p.stream, off: l.size + int64(start), n: uint32(len(*buf) - start), dataLen: len(d)})
			c++
		}
		pending[p.stream] = c
		next[i] = c
	}
	return ownlogResult{next: next}
}

type ownlogAdded struct {
	stream  string
	off     int64
	n       uint32
	dataLen int
}

// publish makes a durable batch visible to readers and subscribers.
func (l *ownlog) publish(buf []byte, added []ownlogAdded) {
	l.mu.Lock()
	for _, a := range added {
		st := l.streams[a.stream]
		if st == nil {
			st = &ownlogStream{}
			l.streams[a.stream] = st
		}
		st.recs = append(st.recs, ownlogRec{off: a.off, n: a.n})
	}
	l.size += int64(len(buf))
	l.mu.Unlock()

	l.subsMu.Lock()
	defer l.subsMu.Unlock()
	if len(l.subs) == 0 {
		return
	}
	// buf is reused by the next batch: subscribers get their own copy of the payloads.
	base := added[0].off
	own := append([]byte(nil), buf...)
	datas := make([][]byte, len(added))
	for i, a := range added {
		end := a.off - base + int64(a.n)
		datas[i] = own[end-int64(a.dataLen) : end]
	}
	for s := range l.subs {
		select {
		case s.ch <- datas:
		case <-s.done:
		}
	}
}

func (l *ownlog) Replay(ctx context.Context, pageSize int, page func(int)) (int, error) {
	l.mu.RLock()
	size := l.size
	l.mu.RUnlock()
	f, err := os.Open(l.path)
	if err != nil {
		return 0, fmt.Errorf("ownlog replay: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(io.LimitReader(f, size), 1<<20)
	var (
		buf     []byte
		ev      ownlogEvent
		n, inPg int
		off     int64
	)
	for off < size {
		k, err := readOwnlogRecord(r, &buf, &ev)
		if err != nil {
			return n, fmt.Errorf("ownlog replay at offset %d: %w", off, err)
		}
		off += int64(k)
		n++
		if inPg++; inPg == pageSize {
			if err := ctx.Err(); err != nil {
				return n, err
			}
			page(inPg)
			inPg = 0
		}
	}
	if inPg > 0 {
		page(inPg)
	}
	return n, nil
}

func (l *ownlog) ReadStream(ctx context.Context, stream string, limit int) (int, error) {
	l.mu.RLock()
	var recs []ownlogRec
	if st := l.streams[stream]; st != nil {
		recs = st.recs[:min(limit, len(st.recs))]
	}
	l.mu.RUnlock()
	if len(recs) == 0 {
		return 0, fmt.Errorf("ownlog: stream %q not found", stream)
	}
	var (
		buf []byte
		ev  ownlogEvent
	)
	for i, rec := range recs {
		if cap(buf) < int(rec.n) {
			buf = make([]byte, rec.n)
		}
		b := buf[:rec.n]
		if _, err := l.f.ReadAt(b, rec.off); err != nil {
			return i, fmt.Errorf("ownlog: read stream %q at offset %d: %w", stream, rec.off, err)
		}
		if err := decodeOwnlogBody([ownlogHeader]byte(b[:ownlogHeader]), b[ownlogHeader:], &ev); err != nil {
			return i, fmt.Errorf("ownlog: stream %q at offset %d: %w", stream, rec.off, err)
		}
		if ev.stream != stream || ev.revision != uint64(i) {
			return i, fmt.Errorf("ownlog: stream %q at offset %d holds %q@%d", stream, rec.off, ev.stream, ev.revision)
		}
	}
	return len(recs), nil
}

type ownlogSub struct {
	l    *ownlog
	ch   chan [][]byte
	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

func (l *ownlog) Subscribe(ctx context.Context, fn func([]byte)) (io.Closer, error) {
	s := &ownlogSub{l: l, ch: make(chan [][]byte, 1024), done: make(chan struct{})}
	l.subsMu.Lock()
	l.subs[s] = struct{}{}
	l.subsMu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		// Unregistered as soon as it stops, so that the committer never waits on it.
		defer s.unregister()
		for {
			select {
			case datas := <-s.ch:
				for _, d := range datas {
					fn(d)
				}
			case <-s.done:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return s, nil
}

func (s *ownlogSub) unregister() {
	s.once.Do(func() {
		// done first: the committer may hold subsMu while it waits to hand s a batch.
		close(s.done)
		s.l.subsMu.Lock()
		delete(s.l.subs, s)
		s.l.subsMu.Unlock()
	})
}

func (s *ownlogSub) Close() error {
	s.unregister()
	s.wg.Wait()
	return nil
}

func (l *ownlog) Close() error {
	var err error
	l.once.Do(func() {
		close(l.quit)
		l.wg.Wait()
		err = l.f.Close()
	})
	return err
}
