package engine

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
)

// A segment file holds a run of consecutive positions:
//
//	header (64 bytes): magic "VRTYSEG1", u32 version, u32 segment number, u64 first
//	    position, [32] chain value before the first entry, u32 CRC-32C of the preceding 60
//	    bytes
//	entries
//	footer, once sealed: [count]u32 entry offsets, then u64 first position, u32 count,
//	    u32 CRC-32C of the table and these two fields, and magic "VRTYSEAL"
//
// Only the last segment is open for appends; it has no footer, and recovery rebuilds its
// offsets by scanning it.
const (
	segHeaderSize  = 64
	segTrailerSize = 24
	segVersion     = 1
)

var (
	segMagic  = []byte("VRTYSEG1")
	sealMagic = []byte("VRTYSEAL")
)

type segment struct {
	num      uint32
	firstPos uint64
	chainIn  [32]byte
	path     string
	f        *os.File

	// refs counts the list's reference and every reader's; the file closes at zero.
	refs atomic.Int32

	// Sealed segments: count entries, table at tableOff. Guarded by nothing: immutable.
	sealed   bool
	count    uint64
	tableOff int64

	// Active segment: offsets of its entries, appended by the writer under Engine.mu;
	// size is the end of the written entries (writer only).
	offs []uint32
	size int64
	// written is the end of the bytes written so far (scanners stop there).
	written atomic.Int64
}

func segmentName(num uint32) string { return fmt.Sprintf("%08d.seg", num) }

// lastPos returns the segment's last position given its entry count.
func (s *segment) lastPos(count uint64) uint64 { return s.firstPos + count - 1 }

func (s *segment) acquire() { s.refs.Add(1) }

func (s *segment) release() {
	if s.refs.Add(-1) == 0 {
		s.f.Close()
	}
}

func encodeSegHeader(num uint32, firstPos uint64, chainIn [32]byte) []byte {
	b := make([]byte, segHeaderSize)
	copy(b, segMagic)
	binary.LittleEndian.PutUint32(b[8:], segVersion)
	binary.LittleEndian.PutUint32(b[12:], num)
	binary.LittleEndian.PutUint64(b[16:], firstPos)
	copy(b[24:56], chainIn[:])
	binary.LittleEndian.PutUint32(b[60:], crc32.Checksum(b[:60], castagnoli))
	return b
}

func decodeSegHeader(b []byte) (num uint32, firstPos uint64, chainIn [32]byte, err error) {
	if len(b) < segHeaderSize || !bytes.Equal(b[:8], segMagic) {
		return 0, 0, chainIn, fmt.Errorf("%w: not a segment file header", errCorrupt)
	}
	if crc32.Checksum(b[:60], castagnoli) != binary.LittleEndian.Uint32(b[60:]) {
		return 0, 0, chainIn, fmt.Errorf("%w: segment header checksum mismatch", errCorrupt)
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != segVersion {
		return 0, 0, chainIn, fmt.Errorf("segment format version %d is not supported (want %d)", v, segVersion)
	}
	copy(chainIn[:], b[24:56])
	return binary.LittleEndian.Uint32(b[12:]), binary.LittleEndian.Uint64(b[16:]), chainIn, nil
}

// createSegment creates a new active segment file and makes it durable.
func createSegment(dir string, num uint32, firstPos uint64, chainIn [32]byte) (*segment, error) {
	// Written under a temporary name and renamed, so a crash never leaves a segment file
	// without its whole header (recovery removes leftover temporary files).
	path := filepath.Join(dir, segmentName(num))
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*segment, error) {
		f.Close()
		os.Remove(tmp)
		return nil, err
	}
	if _, err := f.Write(encodeSegHeader(num, firstPos, chainIn)); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if _, err := os.Stat(path); err == nil {
		return fail(fmt.Errorf("segment %s already exists", path))
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	if err := syncDir(dir); err != nil {
		f.Close()
		return nil, err
	}
	s := &segment{num: num, firstPos: firstPos, chainIn: chainIn, path: path, f: f, size: segHeaderSize}
	s.refs.Store(1)
	s.written.Store(segHeaderSize)
	return s, nil
}

// openSegment opens a segment file and reads its header and, if sealed, its footer.
func openSegment(path string) (*segment, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	s, err := loadSegment(f, path)
	if err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

func loadSegment(f *os.File, path string) (*segment, error) {
	hdr := make([]byte, segHeaderSize)
	if _, err := f.ReadAt(hdr, 0); err != nil {
		return nil, fmt.Errorf("segment %s: read header: %w", path, err)
	}
	num, firstPos, chainIn, err := decodeSegHeader(hdr)
	if err != nil {
		return nil, fmt.Errorf("segment %s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	s := &segment{num: num, firstPos: firstPos, chainIn: chainIn, path: path, f: f, size: st.Size()}
	s.refs.Store(1)
	s.written.Store(st.Size())
	if count, tableOff, ok := readFooter(f, st.Size()); ok {
		s.sealed, s.count, s.tableOff = true, count, tableOff
		s.size = tableOff
	}
	return s, nil
}

// readFooter returns the entry count and table offset of a sealed segment; ok is false when
// the file has no valid footer (an active segment, or one whose sealing was cut short).
func readFooter(f *os.File, size int64) (count uint64, tableOff int64, ok bool) {
	if size < segHeaderSize+segTrailerSize {
		return 0, 0, false
	}
	tr := make([]byte, segTrailerSize)
	if _, err := f.ReadAt(tr, size-segTrailerSize); err != nil || !bytes.Equal(tr[16:], sealMagic) {
		return 0, 0, false
	}
	n := int64(binary.LittleEndian.Uint32(tr[8:]))
	tableOff = size - segTrailerSize - 4*n
	if tableOff < segHeaderSize {
		return 0, 0, false
	}
	table := make([]byte, 4*n+12)
	if _, err := f.ReadAt(table, tableOff); err != nil {
		return 0, 0, false
	}
	if crc32.Checksum(table, castagnoli) != binary.LittleEndian.Uint32(tr[12:]) {
		return 0, 0, false
	}
	return uint64(n), tableOff, true
}

// encodeFooter builds the footer that seals a segment with these entry offsets.
func encodeFooter(firstPos uint64, offs []uint32) []byte {
	b := make([]byte, 4*len(offs)+segTrailerSize)
	for i, o := range offs {
		binary.LittleEndian.PutUint32(b[4*i:], o)
	}
	t := b[4*len(offs):]
	binary.LittleEndian.PutUint64(t, firstPos)
	binary.LittleEndian.PutUint32(t[8:], uint32(len(offs)))
	binary.LittleEndian.PutUint32(t[12:], crc32.Checksum(b[:4*len(offs)+12], castagnoli))
	copy(t[16:], sealMagic)
	return b
}

// offsetOf returns the file offset of a sealed segment's entry at pos.
func (s *segment) offsetOf(pos uint64) (int64, error) {
	var b [4]byte
	if _, err := s.f.ReadAt(b[:], s.tableOff+4*int64(pos-s.firstPos)); err != nil {
		return 0, err
	}
	return int64(binary.LittleEndian.Uint32(b[:])), nil
}

// offsetsOf fills offs with the file offsets of positions from..from+len(offs)-1 of a
// sealed segment, in one read.
func (s *segment) offsetsOf(from uint64, offs []int64) error {
	b := make([]byte, 4*len(offs))
	if _, err := s.f.ReadAt(b, s.tableOff+4*int64(from-s.firstPos)); err != nil {
		return err
	}
	for i := range offs {
		offs[i] = int64(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return nil
}

// readEntryAt reads and decodes the entry at off. The buffer is fresh, so the entry may
// alias it for good.
func (s *segment) readEntryAt(off int64, maxBody int, e *entry) error {
	buf := make([]byte, 512)
	n, err := s.f.ReadAt(buf, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	buf = buf[:n]
	size, err := entrySize(buf, maxBody)
	if err != nil {
		return fmt.Errorf("segment %s offset %d: %w", s.path, off, err)
	}
	if size > len(buf) {
		buf = make([]byte, size)
		if _, err := s.f.ReadAt(buf, off); err != nil {
			return fmt.Errorf("segment %s offset %d: %w", s.path, off, err)
		}
	}
	if err := decodeEntry(buf, maxBody, e); err != nil {
		return fmt.Errorf("segment %s offset %d: %w", s.path, off, err)
	}
	return nil
}

// scanner reads a segment's entries in order, a large chunk at a time.
type scanner struct {
	r       io.ReaderAt
	off     int64 // file offset of the next entry
	end     int64 // end of the entry region
	maxBody int
	// fresh: allocate a new chunk for every read, so decoded entries may be kept.
	fresh bool
	// chunk is the read size; zero means scanChunk.
	chunk int

	buf    []byte
	bufOff int64
}

const scanChunk = 256 << 10

// next decodes the next entry. It returns io.EOF at the end of the region, errShort when
// the region ends inside an entry, and errCorrupt for a damaged entry; off is the entry's
// file offset.
func (sc *scanner) next(e *entry) (off int64, err error) {
	if sc.off >= sc.end {
		return sc.off, io.EOF
	}
	rel := int(sc.off - sc.bufOff)
	if sc.buf == nil || rel < 0 || rel+entryHeaderSize > len(sc.buf) {
		if err := sc.fill(entryHeaderSize); err != nil {
			return sc.off, err
		}
		rel = 0
	}
	size, err := entrySize(sc.buf[rel:], sc.maxBody)
	if err != nil {
		return sc.off, err
	}
	if rel+size > len(sc.buf) {
		if err := sc.fill(size); err != nil {
			return sc.off, err
		}
		rel = 0
	}
	if err := decodeEntry(sc.buf[rel:], sc.maxBody, e); err != nil {
		return sc.off, err
	}
	off = sc.off
	sc.off += int64(size)
	return off, nil
}

// fill reads a chunk starting at sc.off holding at least need bytes.
func (sc *scanner) fill(need int) error {
	chunk := sc.chunk
	if chunk <= 0 {
		chunk = scanChunk
	}
	n := int64(max(chunk, need))
	if rem := sc.end - sc.off; n > rem {
		n = rem
	}
	if n < int64(need) {
		return errShort
	}
	if sc.fresh || int64(cap(sc.buf)) < n {
		sc.buf = make([]byte, n)
	}
	sc.buf = sc.buf[:n]
	read, err := sc.r.ReadAt(sc.buf, sc.off)
	if int64(read) < n {
		if err == nil || errors.Is(err, io.EOF) {
			return errShort
		}
		return err
	}
	sc.bufOff = sc.off
	return nil
}

// syncDir fsyncs a directory so that a created or renamed file in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
