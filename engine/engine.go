package engine

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/verity-dev/verity"
)

// Engine is the embedded disk store. Open one per data directory (a lock file keeps other
// processes out); every method is safe for concurrent use.
type Engine struct {
	cfg      Config
	log      *slog.Logger
	dir      string
	logDir   string
	indexDir string
	lockFile *os.File

	// mu guards segs, ix and the active segment's offsets. The writer takes it once per
	// batch; readers take it for index look-ups.
	mu   sync.RWMutex
	segs []*segment
	ix   indexSet

	// restr is the committed view of streams that carry metadata or a tombstone, swapped
	// whole on change (copy on write) so that log scans read it without locking.
	restr atomic.Pointer[restrictions]

	// committed is the position of the last durable, visible event.
	committed atomic.Uint64
	notifyMu  sync.Mutex
	notify    chan struct{}

	reqs    chan *appendReq
	closing chan struct{}
	stopped chan struct{} // closed when the writer has answered everything
	closed  atomic.Bool
	failed  atomic.Pointer[error]
	closeMu sync.Mutex
	wg      sync.WaitGroup

	// flush hands frozen memtables to the indexer; flushed wakes a writer waiting for room.
	flushKick chan struct{}
	flushed   chan struct{}

	w writerState

	// scavengeMu lets one scavenge run at a time.
	scavengeMu sync.Mutex

	stats struct {
		appends, events, bytes, fsyncs, fsyncNanos atomic.Uint64
	}
}

// Open opens (creating if needed) the store in cfg.Dir, recovering from any crash: a torn
// or partial append at the end of the log is cut off, and the indexes are brought up to date
// with the log.
func Open(cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, verity.Errorf(verity.Invalid, "open", "%v", err)
	}
	cfg = cfg.withDefaults()
	e := &Engine{
		cfg:       cfg,
		log:       cfg.Logger.With("component", "engine"),
		dir:       cfg.Dir,
		logDir:    filepath.Join(cfg.Dir, "log"),
		indexDir:  filepath.Join(cfg.Dir, "index"),
		notify:    make(chan struct{}),
		reqs:      make(chan *appendReq, 1024),
		closing:   make(chan struct{}),
		stopped:   make(chan struct{}),
		flushKick: make(chan struct{}, 1),
		flushed:   make(chan struct{}, 1),
	}
	for _, d := range []string{e.dir, e.logDir, e.indexDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, verity.Errorf(verity.Unavailable, "open", "create %s: %v", d, err)
		}
	}
	lf, err := os.OpenFile(filepath.Join(e.dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, verity.Errorf(verity.Unavailable, "open", "lock file: %v", err)
	}
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lf.Close()
		return nil, verity.Errorf(verity.Unavailable, "open", "data directory %s is in use by another process", e.dir)
	}
	e.lockFile = lf
	if err := e.recover(); err != nil {
		e.closeFiles()
		return nil, err
	}
	e.restr.Store(&restrictions{})
	if err := e.loadRestrictions(); err != nil {
		e.closeFiles()
		return nil, err
	}
	e.wg.Add(2)
	go e.writeLoop()
	go e.indexLoop()
	if cfg.ScavengeInterval > 0 {
		e.wg.Add(1)
		go e.scavengeLoop()
	}
	return e, nil
}

// recover opens the segments and index runs, cuts off a torn tail and re-indexes whatever
// the runs do not cover.
func (e *Engine) recover() error {
	names, err := filepath.Glob(filepath.Join(e.logDir, "*.seg"))
	if err != nil {
		return err
	}
	tmps, _ := filepath.Glob(filepath.Join(e.logDir, "*.tmp"))
	for _, t := range tmps {
		os.Remove(t)
	}
	sort.Strings(names)
	for _, name := range names {
		s, err := openSegment(name)
		if err != nil {
			return verity.Errorf(verity.Internal, "open", "%v", err)
		}
		e.segs = append(e.segs, s)
	}
	if len(e.segs) == 0 {
		s, err := createSegment(e.logDir, 1, 1, [32]byte{})
		if err != nil {
			return verity.Errorf(verity.Unavailable, "open", "create first segment: %v", err)
		}
		e.segs = append(e.segs, s)
	}
	// Every segment but the last must be sealed; a sealing cut short by a crash is redone.
	for i, s := range e.segs {
		if i > 0 {
			prev := e.segs[i-1]
			if s.firstPos != prev.firstPos+prev.count {
				return verity.Errorf(verity.Internal, "open", "segment %s starts at position %d, want %d", filepath.Base(s.path), s.firstPos, prev.firstPos+prev.count)
			}
		}
		if s.sealed {
			continue
		}
		last := i == len(e.segs)-1
		if err := e.recoverActive(s, last); err != nil {
			return err
		}
		if !last {
			if err := e.seal(s); err != nil {
				return verity.Errorf(verity.Unavailable, "open", "seal %s: %v", filepath.Base(s.path), err)
			}
		}
	}
	active := e.segs[len(e.segs)-1]
	if active.sealed {
		var chain [32]byte
		var lastCreated int64
		if active.count > 0 {
			var en entry
			off, err := active.offsetOf(active.lastPos(active.count))
			if err == nil {
				err = active.readEntryAt(off, e.maxBody(), &en)
			}
			if err != nil {
				return verity.Errorf(verity.Internal, "open", "read last entry: %v", err)
			}
			chain, lastCreated = en.chain, en.created
		} else {
			chain = active.chainIn
		}
		s, err := createSegment(e.logDir, active.num+1, active.firstPos+active.count, chain)
		if err != nil {
			return verity.Errorf(verity.Unavailable, "open", "create segment: %v", err)
		}
		e.segs = append(e.segs, s)
		e.w.chain, e.w.lastCreated = chain, lastCreated
	}
	active = e.segs[len(e.segs)-1]
	e.w.active = active
	e.w.nextPos = active.firstPos + uint64(len(active.offs))
	e.committed.Store(e.w.nextPos - 1)
	return e.openIndex()
}

// recoverActive scans an unsealed segment, rebuilds its offsets and cuts it after the last
// whole append: a torn entry, or events of an append whose last event never made it, are
// removed. Nothing cut was ever acknowledged, since acknowledgement follows fsync.
func (e *Engine) recoverActive(s *segment, last bool) error {
	sc := &scanner{r: s.f, off: segHeaderSize, end: s.size, maxBody: e.maxBody()}
	var en entry
	good := int64(segHeaderSize)
	var offs []uint32
	goodCount := 0
	chain, lastCreated := s.chainIn, int64(0)
	var scanErr error
	// suspicious: the cut starts at a whole, checksummed entry that does not belong (wrong
	// position or broken chain): not a torn write but damage or tampering, so the cut bytes
	// are kept aside rather than destroyed.
	suspicious := false
	prev := s.chainIn
	for {
		off, err := sc.next(&en)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				scanErr = fmt.Errorf("offset %d: %w", off, err)
			}
			break
		}
		if en.position != s.firstPos+uint64(len(offs)) {
			scanErr = fmt.Errorf("offset %d: position %d, want %d", off, en.position, s.firstPos+uint64(len(offs)))
			suspicious = true
			break
		}
		h := en.hashContent()
		if chainNext(&prev, en.meta(), &h) != en.chain {
			scanErr = fmt.Errorf("offset %d: position %d breaks the hash chain", off, en.position)
			suspicious = true
			break
		}
		prev = en.chain
		offs = append(offs, uint32(off))
		if en.flags&flagTxnEnd != 0 {
			good, goodCount = off+int64(en.size), len(offs)
			chain, lastCreated = en.chain, en.created
		}
	}
	if good < s.size {
		// A torn write leaves little behind; a large cut means damage in the middle of the
		// segment, which may have intact acknowledged appends after it: keep those bytes.
		if suspicious || s.size-good >= 1<<20 {
			aside := fmt.Sprintf("%s.cut-%d", s.path, good)
			if err := saveRange(s.f, good, s.size-good, aside); err != nil {
				return verity.Errorf(verity.Unavailable, "open", "segment %s: damaged entries at offset %d; keeping them aside in %s failed: %v", filepath.Base(s.path), good, aside, err)
			}
			e.log.Error("the end of the log holds damaged entries; cut off and kept aside (run verity verify)",
				"segment", filepath.Base(s.path), "offset", good, "bytes", s.size-good, "kept_in", aside, "cause", scanErr)
		} else {
			e.log.Warn("cutting off a torn or partial append at the end of the log",
				"segment", filepath.Base(s.path), "offset", good, "bytes", s.size-good, "cause", scanErr)
		}
		if err := s.f.Truncate(good); err != nil {
			return verity.Errorf(verity.Unavailable, "open", "truncate %s: %v", s.path, err)
		}
		if err := s.f.Sync(); err != nil {
			return verity.Errorf(verity.Unavailable, "open", "sync %s: %v", s.path, err)
		}
	}
	s.offs = offs[:goodCount]
	s.size = good
	s.written.Store(good)
	if last {
		e.w.chain, e.w.lastCreated = chain, lastCreated
	}
	return nil
}

// saveRange copies n bytes of f from off into a new file at path, durably.
func saveRange(f *os.File, off, n int64, path string) error {
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, io.NewSectionReader(f, off, n)); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// seal writes the footer of a segment whose offsets are all in s.offs and makes it durable.
func (e *Engine) seal(s *segment) error {
	footer := encodeFooter(s.firstPos, s.offs)
	if _, err := s.f.WriteAt(footer, s.size); err != nil {
		return err
	}
	if err := s.f.Sync(); err != nil {
		return err
	}
	s.sealed, s.count, s.tableOff = true, uint64(len(s.offs)), s.size
	s.offs = nil
	return nil
}

// openIndex loads the index runs that agree with the log and re-indexes the rest.
func (e *Engine) openIndex() error {
	entries, err := os.ReadDir(e.indexDir)
	if err != nil {
		return err
	}
	last := e.committed.Load()
	var runs []*run
	for _, de := range entries {
		name := de.Name()
		if strings.HasSuffix(name, ".tmp") {
			os.Remove(filepath.Join(e.indexDir, name))
			continue
		}
		if _, _, ok := parseRunName(name); !ok {
			continue
		}
		r, err := openRun(filepath.Join(e.indexDir, name))
		if err != nil {
			e.log.Warn("dropping a damaged index run; it will be rebuilt from the log", "run", name, "err", err)
			os.Remove(filepath.Join(e.indexDir, name))
			continue
		}
		runs = append(runs, r)
	}
	// Prefer the widest runs: a merge cut short leaves its inputs beside its output.
	slices.SortFunc(runs, func(a, b *run) int {
		if a.minPos != b.minPos {
			return compareU64(a.minPos, b.minPos)
		}
		return compareU64(b.maxPos, a.maxPos)
	})
	next := uint64(1)
	for _, r := range runs {
		if r.minPos == next && r.maxPos <= last {
			e.ix.runs = append(e.ix.runs, r)
			next = r.maxPos + 1
			continue
		}
		r.f.Close()
		if r.maxPos > last {
			e.log.Warn("dropping an index run ahead of the log", "run", filepath.Base(r.path), "last_position", last)
		}
		os.Remove(r.path)
	}
	e.ix.mem = newMemtable(next, e.cfg.IndexFlushEvents)
	if next > last {
		return nil
	}
	e.log.Info("indexing the log tail", "from", next, "to", last)
	return e.scanLog(next, last, func(en *entry) error {
		e.ix.mem.addEvent(en.stream, en.typ, en.id, en.revision, en.position)
		if e.ix.mem.events >= e.cfg.IndexFlushEvents {
			r, err := writeRun(e.indexDir, e.ix.mem)
			if err != nil {
				return verity.Errorf(verity.Unavailable, "open", "write index run: %v", err)
			}
			e.ix.runs = append(e.ix.runs, r)
			e.ix.mem = newMemtable(r.maxPos+1, e.cfg.IndexFlushEvents)
		}
		return nil
	})
}

func compareU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// maxBody bounds the size field of an entry when decoding. It is a property of the format,
// not of the configuration: a store reopened with a smaller MaxEventSize must still read the
// larger events it holds. A torn entry whose size runs past the end of the file is caught
// as short, and any other damage by its checksum.
func (e *Engine) maxBody() int { return maxEntryBody }

const maxEntryBody = 2 << 30

// scanLog calls fn for every entry with from ≤ position ≤ to, in order, stubs included. The
// entry struct is reused between calls, but what it points to is in fresh buffers, so fn
// may keep its strings and slices (not the *entry).
func (e *Engine) scanLog(from, to uint64, fn func(*entry) error) error {
	return e.scanLogChunk(from, to, 0, fn)
}

// scanLogChunk is scanLog reading at most chunk bytes at a time (0: the default), for short
// ranges that should not read a whole default chunk.
func (e *Engine) scanLogChunk(from, to uint64, chunk int, fn func(*entry) error) error {
	for from <= to {
		e.mu.RLock()
		s, off, err := e.locateLocked(from)
		var end int64
		var sealed bool
		if err == nil {
			s.acquire()
			// Read under the lock: roll may be sealing the segment.
			sealed = s.sealed
			end = s.written.Load()
			if sealed {
				end = s.tableOff
			}
		}
		e.mu.RUnlock()
		if err != nil {
			return err
		}
		sc := &scanner{r: s.f, off: off, end: end, maxBody: e.maxBody(), fresh: true, chunk: chunk}
		var en entry
		for from <= to {
			_, err := sc.next(&en)
			if errors.Is(err, io.EOF) || errors.Is(err, errShort) {
				break
			}
			if err != nil {
				s.release()
				return verity.Errorf(verity.Internal, "read", "segment %s: %v", filepath.Base(s.path), err)
			}
			if en.position != from {
				s.release()
				return verity.Errorf(verity.Internal, "read", "segment %s: found position %d, want %d", filepath.Base(s.path), en.position, from)
			}
			if err := fn(&en); err != nil {
				s.release()
				return err
			}
			from++
		}
		s.release()
		if from <= to && !sealed {
			break // the rest is not written yet
		}
	}
	return nil
}

// locateLocked finds the segment and file offset of a position. Caller holds e.mu.
func (e *Engine) locateLocked(pos uint64) (*segment, int64, error) {
	i := sort.Search(len(e.segs), func(i int) bool { return e.segs[i].firstPos > pos }) - 1
	if i < 0 || pos == 0 {
		return nil, 0, verity.Errorf(verity.Internal, "read", "position %d is before the log", pos)
	}
	s := e.segs[i]
	if s.sealed {
		if pos >= s.firstPos+s.count {
			return nil, 0, verity.Errorf(verity.Internal, "read", "position %d is past segment %d", pos, s.num)
		}
		off, err := s.offsetOf(pos)
		if err != nil {
			return nil, 0, verity.Errorf(verity.Internal, "read", "segment %d offsets: %v", s.num, err)
		}
		return s, off, nil
	}
	k := pos - s.firstPos
	if k >= uint64(len(s.offs)) {
		return nil, 0, verity.Errorf(verity.Internal, "read", "position %d is past the end of the log", pos)
	}
	return s, int64(s.offs[k]), nil
}

// readAt reads the entry at a position.
func (e *Engine) readAt(pos uint64, en *entry) error {
	e.mu.RLock()
	s, off, err := e.locateLocked(pos)
	if err == nil {
		s.acquire()
	}
	e.mu.RUnlock()
	if err != nil {
		return err
	}
	defer s.release()
	if err := s.readEntryAt(off, e.maxBody(), en); err != nil {
		return verity.Errorf(verity.Internal, "read", "position %d: %v", pos, err)
	}
	if en.position != pos {
		return verity.Errorf(verity.Internal, "read", "index points position %d at an entry of position %d", pos, en.position)
	}
	return nil
}

// check returns Unavailable once the engine is closed or failed.
func (e *Engine) check(op string) error {
	if e.closed.Load() {
		return verity.Errorf(verity.Unavailable, op, "store is closed")
	}
	if p := e.failed.Load(); p != nil {
		return &verity.Error{Kind: verity.Unavailable, Op: op, Message: "store failed and must be reopened", Err: *p}
	}
	return nil
}

// fail stops all writing after an I/O error: what was written but not fsynced can no longer
// be trusted to become durable, so nothing more is acknowledged until a reopen recovers.
func (e *Engine) fail(err error) {
	if e.failed.CompareAndSwap(nil, &err) {
		e.log.Error("store failed; reopen it to recover", "err", err)
	}
}

// waitChan returns a channel closed at the next commit.
func (e *Engine) waitChan() <-chan struct{} {
	e.notifyMu.Lock()
	defer e.notifyMu.Unlock()
	return e.notify
}

func (e *Engine) broadcast() {
	e.notifyMu.Lock()
	close(e.notify)
	e.notify = make(chan struct{})
	e.notifyMu.Unlock()
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	e.mu.RLock()
	segs := len(e.segs)
	runs := len(e.ix.runs)
	var disk int64
	for _, s := range e.segs {
		if s.sealed {
			disk += s.tableOff + 4*int64(s.count) + segTrailerSize
		} else {
			disk += s.written.Load()
		}
	}
	e.mu.RUnlock()
	return Stats{
		LastPosition: e.committed.Load(),
		Appends:      e.stats.appends.Load(),
		Events:       e.stats.events.Load(),
		Bytes:        e.stats.bytes.Load(),
		Fsyncs:       e.stats.fsyncs.Load(),
		FsyncNanos:   e.stats.fsyncNanos.Load(),
		Segments:     segs,
		IndexRuns:    runs,
		DiskBytes:    disk,
	}
}

// Close stops the writer after answering every queued append, writes the in-memory index
// to disk (so the next open need not re-index), and releases the files.
func (e *Engine) Close() error {
	e.closeMu.Lock()
	defer e.closeMu.Unlock()
	if e.closed.Swap(true) {
		return nil
	}
	close(e.closing)
	e.wg.Wait()
	var err error
	if e.failed.Load() == nil {
		err = e.flushAllIndex()
	}
	e.closeFiles()
	return err
}

// flushAllIndex writes every memtable as a run; used at Close.
func (e *Engine) flushAllIndex() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	tables := append(e.ix.frozen, e.ix.mem)
	for _, m := range tables {
		if m.events == 0 {
			continue
		}
		r, err := writeRun(e.indexDir, m)
		if err != nil {
			return verity.Errorf(verity.Unavailable, "close", "write index run: %v", err)
		}
		e.ix.runs = append(e.ix.runs, r)
	}
	e.ix.frozen = nil
	e.ix.mem = newMemtable(e.committed.Load()+1, e.cfg.IndexFlushEvents)
	return nil
}

func (e *Engine) closeFiles() {
	e.mu.Lock()
	for _, s := range e.segs {
		s.release()
	}
	e.segs = nil
	for _, r := range e.ix.runs {
		r.f.Close()
	}
	e.ix.runs = nil
	e.mu.Unlock()
	if e.lockFile != nil {
		syscall.Flock(int(e.lockFile.Fd()), syscall.LOCK_UN)
		e.lockFile.Close()
	}
}
