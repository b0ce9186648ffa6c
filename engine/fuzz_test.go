package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/uuid"
	"github.com/verity-dev/verity"
)

// The decoders of what the engine reads from disk never panic and never read outside
// their input, whatever the bytes. Seed corpora are in testdata/fuzz/<FuzzName>/; run a
// target with, e.g.:
//
//	go test -run '^$' -fuzz '^FuzzDecodeEntry$' -fuzztime 60s ./engine/

const fuzzMaxBody = 1 << 16

// seedEntries returns a few well-formed entries (events and a stub), chained.
func seedEntries() [][]byte {
	var out [][]byte
	var chain [32]byte
	pos := uint64(1)
	add := func(stream string, ev verity.EventData, flags uint8) {
		p := preparedEvent{payload: encodePayload(stream, &ev, verity.ContentTypeJSON)}
		p.hash = sha256.Sum256(p.payload)
		var b []byte
		b, chain = appendEntry(nil, &chain, entryMeta{position: pos, revision: pos - 1, created: 1_700_000_000_000_000_000 + int64(pos), flags: flags}, &p)
		out = append(out, b)
		pos++
	}
	id := uuid.MustParse("6ba7b810-9dad-11d1-80b4-00c04fd430c8")
	add("order-1", verity.EventData{ID: id, Type: "Placed", Data: []byte(`{"a":1}`)}, flagTxnEnd)
	add("order-1", verity.EventData{ID: id, Type: "Paid", Data: []byte(`{}`), Metadata: []byte(`{"who":"me"}`)}, 0)
	add("o", verity.EventData{ID: id, Type: "T"}, flagTxnEnd)
	var e entry
	if err := decodeEntry(out[0], fuzzMaxBody, &e); err != nil {
		panic(err)
	}
	e.contentHash = e.hashContent()
	e.kind = kindStub
	out = append(out, appendStub(nil, &e))
	return out
}

func FuzzDecodeEntry(f *testing.F) {
	for _, s := range seedEntries() {
		f.Add(s, false)
		f.Add(s[:len(s)-1], false)
		f.Add(append(bytes.Clone(s), 0, 1, 2), true)
	}
	f.Add([]byte{}, false)
	f.Add(make([]byte, minEntrySize), true)
	f.Fuzz(func(t *testing.T, b []byte, fixCRC bool) {
		if fixCRC {
			b = fixEntryCRCs(b, 1)
		}
		var e entry
		err := decodeEntry(b, fuzzMaxBody, &e)
		if err != nil {
			if !errors.Is(err, errShort) && !errors.Is(err, errCorrupt) {
				t.Fatalf("decodeEntry returned %v, neither short nor corrupt", err)
			}
			return
		}
		if e.size < minEntrySize || e.size > len(b) || e.size-entryHeaderSize > fuzzMaxBody {
			t.Fatalf("entry size %d, input %d bytes, max body %d", e.size, len(b), fuzzMaxBody)
		}
		if len(e.raw) != e.size || &e.raw[0] != &b[0] {
			t.Fatalf("raw is not the first %d bytes of the input", e.size)
		}
		if e.position == 0 || e.stream == "" || (e.kind != kindEvent && e.kind != kindStub) || e.flags&^flagTxnEnd != 0 {
			t.Fatalf("accepted an entry with position %d, stream %q, kind %d, flags %#x", e.position, e.stream, e.kind, e.flags)
		}
		// Every prefix of a whole entry is short, never corrupt or whole.
		if err := decodeEntry(b[:e.size-1], fuzzMaxBody, new(entry)); !errors.Is(err, errShort) {
			t.Fatalf("a prefix of %d bytes of a %d-byte entry decodes with %v, want short", e.size-1, e.size, err)
		}
		// Encoding the decoded fields again gives the same entry. The decoder takes
		// lengths in non-minimal varint form too, so the re-encoding may be shorter; it
		// must then still hold exactly the same fields.
		var got []byte
		switch e.kind {
		case kindEvent:
			ev := verity.EventData{ID: e.id, Type: e.typ, Data: e.data, Metadata: e.metadata}
			p := preparedEvent{payload: encodePayload(e.stream, &ev, e.contentType)}
			got, _ = appendEntry(nil, &[32]byte{}, e.meta(), &p)
			copy(got[entryHeaderSize+28:entryHeaderSize+60], e.chain[:])
			binary.LittleEndian.PutUint32(got[4:], crc32.Checksum(got[entryHeaderSize:], castagnoli))
		case kindStub:
			got = appendStub(nil, &e)
		}
		if bytes.Equal(got, b[:e.size]) {
			return
		}
		if len(got) >= e.size {
			t.Fatalf("re-encoding the decoded entry gives %d bytes that differ from the %d decoded:\n got %x\nwant %x", len(got), e.size, got, b[:e.size])
		}
		var e2 entry
		if err := decodeEntry(got, fuzzMaxBody, &e2); err != nil {
			t.Fatalf("the re-encoded entry does not decode: %v", err)
		}
		if e2.kind != e.kind || e2.flags != e.flags || e2.position != e.position || e2.revision != e.revision || e2.created != e.created ||
			e2.chain != e.chain || e2.id != e.id || e2.stream != e.stream || e2.typ != e.typ || e2.contentType != e.contentType ||
			!bytes.Equal(e2.data, e.data) || !bytes.Equal(e2.metadata, e.metadata) || e2.contentHash != e.contentHash {
			t.Fatalf("the re-encoded entry decodes to other fields")
		}
	})
}

func FuzzScanner(f *testing.F) {
	seeds := seedEntries()
	all := bytes.Join(seeds, nil)
	f.Add(all, false, false)
	f.Add(all, true, true)
	f.Add(all[:len(all)-7], false, false)
	f.Add(append(bytes.Clone(all), make([]byte, 100)...), false, true)
	f.Add(append(bytes.Clone(seeds[0]), seeds[0]...), true, false)
	f.Add([]byte{}, false, false)
	f.Add([]byte{0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0}, false, false)
	f.Fuzz(func(t *testing.T, data []byte, fresh, fixCRC bool) {
		if fixCRC {
			data = fixEntryCRCs(data, -1)
		}
		file := append(encodeSegHeader(1, 1, [32]byte{}), data...)
		sc := &scanner{r: bytes.NewReader(file), off: segHeaderSize, end: int64(len(file)), maxBody: fuzzMaxBody, fresh: fresh}
		// The model: decodeEntry, entry after entry, over the whole file in memory.
		off := int64(segHeaderSize)
		var kept []entry
		for i := 0; ; i++ {
			if i > len(data)/minEntrySize+1 {
				t.Fatalf("the scanner returned %d entries from %d bytes: it does not end", i, len(data))
			}
			var got entry
			gotOff, err := sc.next(&got)
			var want entry
			var wantErr error
			if off >= int64(len(file)) {
				wantErr = io.EOF
			} else {
				wantErr = decodeEntry(file[off:], fuzzMaxBody, &want)
			}
			if gotOff != off {
				t.Fatalf("entry %d: scanner at offset %d, want %d", i, gotOff, off)
			}
			if err != nil || wantErr != nil {
				if !sameErrClass(err, wantErr) {
					t.Fatalf("entry %d at offset %d: scanner says %v, decodeEntry says %v", i, off, err, wantErr)
				}
				break
			}
			if !bytes.Equal(got.raw, want.raw) || got.position != want.position || got.stream != want.stream {
				t.Fatalf("entry %d at offset %d: scanner decoded another entry than decodeEntry", i, off)
			}
			off += int64(got.size)
			if fresh {
				kept = append(kept, got)
			}
		}
		// Entries of a fresh scanner stay valid: nothing overwrote their buffers.
		o := int64(segHeaderSize)
		for _, e := range kept {
			if !bytes.Equal(e.raw, file[o:o+int64(e.size)]) {
				t.Fatalf("entry at offset %d changed after later reads of a fresh scanner", o)
			}
			o += int64(e.size)
		}
	})
}

// fixEntryCRCs returns a copy of b in which the checksums of up to n entries (all when n
// is negative), found by following their size fields from the start, are made right, so
// that the fuzzer gets past the checksum to the field checks behind it.
func fixEntryCRCs(b []byte, n int) []byte {
	b = bytes.Clone(b)
	for off := 0; n != 0 && off+entryHeaderSize <= len(b); n-- {
		size := entryHeaderSize + int(binary.LittleEndian.Uint32(b[off:]))
		if size <= entryHeaderSize || size > len(b)-off {
			break
		}
		binary.LittleEndian.PutUint32(b[off+4:], crc32.Checksum(b[off+entryHeaderSize:off+size], castagnoli))
		off += size
	}
	return b
}

func sameErrClass(a, b error) bool {
	for _, c := range []error{io.EOF, errShort, errCorrupt} {
		if errors.Is(a, c) || errors.Is(b, c) {
			return errors.Is(a, c) && errors.Is(b, c)
		}
	}
	return (a == nil) == (b == nil)
}

// recoverBase is a data directory written by the engine, shared by FuzzRecover's inputs.
type recoverBase struct {
	dir     string
	seg     []byte // the active segment file
	segName string
	events  []verity.RecordedEvent
	entries []segEntry
}

// buildRecoverBase writes a store of a few appends (one event, several, a multi-stream
// one, a large one) and closes it.
func buildRecoverBase(tb testing.TB, dir string) recoverBase {
	tb.Helper()
	ctx := context.Background()
	e, err := Open(quietConfig(dir))
	if err != nil {
		tb.Fatal(err)
	}
	defer e.Close()
	appends := [][]verity.StreamAppend{
		{{Stream: "order-1", Events: jsonEvents(1, 10, "Placed")}},
		{{Stream: "order-1", Events: jsonEvents(3, 40, "Paid")}},
		{{Stream: "order-2", Events: jsonEvents(2, 20, "Placed")}, {Stream: "stock-1", Events: jsonEvents(1, 20, "Reserved")}},
		{{Stream: "order-3", Events: jsonEvents(1, 1500, "Big")}},
		{{Stream: "order-1", Events: jsonEvents(2, 5, "Shipped")}},
	}
	for _, a := range appends {
		if _, err := e.AppendMulti(ctx, a...); err != nil {
			tb.Fatal(err)
		}
	}
	rb := recoverBase{dir: dir, segName: segmentName(1), events: readAllEvents(tb, e)}
	closeEngine(tb, e)
	path := filepath.Join(dir, "log", rb.segName)
	if rb.seg, err = os.ReadFile(path); err != nil {
		tb.Fatal(err)
	}
	rb.entries = scanSegmentFile(tb, path)
	if len(rb.entries) != len(rb.events) {
		tb.Fatalf("base store: %d entries for %d events", len(rb.entries), len(rb.events))
	}
	return rb
}

// FuzzRecover damages the tail of the active segment (cut at a point, then junk appended;
// or junk written over the bytes from a point on) and reopens the store: recovery must
// keep every append whose entries all lie before the damage and leave a log that Verify
// accepts, even after one more append.
func FuzzRecover(f *testing.F) {
	seeds := seedEntries()
	f.Add(uint32(0), false, []byte{})
	f.Add(uint32(1), false, []byte{})
	f.Add(uint32(37), false, []byte{})
	f.Add(uint32(500), true, []byte("garbage garbage garbage"))
	f.Add(uint32(0), false, make([]byte, 64))
	f.Add(uint32(0), false, seeds[0])
	f.Add(uint32(3000), false, bytes.Join(seeds, nil))
	f.Add(uint32(1<<20), true, []byte{0xff, 0xff, 0xff, 0xff})
	f.Add(uint32(90), true, []byte{1})
	base := buildRecoverBase(f, f.TempDir())
	// Well-formed entries (checksums right, positions in sequence) whose hash chain does
	// not follow the log's, after the first append: stale or foreign data at the tail.
	afterFirst := base.entries[0].off + int64(base.entries[0].size)
	f.Add(uint32(int64(len(base.seg))-afterFirst), false, bytes.Join(seeds[1:3], nil))
	f.Fuzz(func(t *testing.T, back uint32, overwrite bool, junk []byte) {
		dir := t.TempDir()
		copyDir(t, base.dir, dir)
		path := filepath.Join(dir, "log", base.segName)
		// The damage starts at cut, somewhere in the entries (back bytes from the end).
		orig := base.seg
		cut := int64(len(orig)) - int64(back)%int64(len(orig)-segHeaderSize+1)
		b := append(orig[:cut:cut], junk...)
		if overwrite && len(b) < len(orig) {
			b = append(b, orig[len(b):]...)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		safe := 0 // events of appends wholly before the cut
		for i, en := range base.entries {
			if en.off+int64(en.size) > cut {
				break
			}
			if en.txnEnd {
				safe = i + 1
			}
		}
		ctx := context.Background()
		e, err := Open(quietConfig(dir))
		if err != nil {
			t.Fatalf("open after damage at offset %d: %v", cut, err)
		}
		defer e.Close()
		got := readAllEvents(t, e)
		if len(got) < safe {
			t.Fatalf("damage at offset %d: recovery kept %d events, want at least the %d before it", cut, len(got), safe)
		}
		// Past the damage, recovery may keep entries that are whole and in sequence (the
		// junk may itself be well-formed entries); Verify below checks they chain on.
		sameEvents(t, got[:safe], base.events[:safe])
		res, err := e.Append(ctx, "after-1", verity.Any(), jsonEvents(1, 5, "After")...)
		if err != nil {
			t.Fatalf("append after recovery: %v", err)
		}
		if res.Position != uint64(len(got))+1 {
			t.Fatalf("append after recovery at position %d, want %d", res.Position, len(got)+1)
		}
		closeEngine(t, e)
		vr, err := Verify(ctx, dir)
		if err != nil || !vr.OK || vr.LastPosition != res.Position {
			t.Fatalf("verify after recovery: %+v %v; want OK through %d", vr, err, res.Position)
		}
	})
}

// FuzzRunFile opens arbitrary bytes as an index run file. With fix set, the header and
// footer magic and the footer checksum are made right first, so that the fuzzer reaches
// the checks behind the checksum (a footer damaged in a way its CRC does not catch, or
// written wrong). openRun must return an error or a run, never panic; a run it returns
// must be safe to query.
func FuzzRunFile(f *testing.F) {
	dir := f.TempDir()
	m := newMemtable(1, 0)
	// Small, so that the fuzzer's inputs (and their minimization) stay cheap.
	for i := range 12 {
		id := uuid.UUID{byte(i), byte(i >> 8), 1}
		m.addEvent(fmt.Sprintf("order-%d", i%7), fmt.Sprintf("T%d", i%3), id, uint64(i/7), uint64(i+1))
	}
	r, err := writeRun(dir, m)
	if err != nil {
		f.Fatal(err)
	}
	valid, err := os.ReadFile(r.path)
	r.f.Close()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid, false)
	f.Add(valid, true)
	f.Add(valid[:len(valid)-1], false)
	f.Add(make([]byte, runHeaderSize+runFooterSize), true)
	f.Add([]byte("VRTYRUN1"), false)
	f.Fuzz(func(t *testing.T, data []byte, fix bool) {
		if fix && len(data) >= runHeaderSize+runFooterSize {
			data = bytes.Clone(data)
			copy(data, runMagic)
			binary.LittleEndian.PutUint32(data[8:], runVersion)
			foot := data[len(data)-runFooterSize:]
			p := foot[numKinds*40:]
			binary.LittleEndian.PutUint32(p[24:], crc32.Checksum(foot[:numKinds*40+24], castagnoli))
			copy(p[32:], runFooterMagic)
		}
		path := filepath.Join(t.TempDir(), runName(1, 12))
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := openRun(path)
		if err != nil {
			return
		}
		defer r.f.Close()
		for kind := range indexKind(numKinds) {
			for _, k1 := range []uint64{0, hashName("order-1"), r.kinds[kind].fenceKey()} {
				r.collect(kind, k1, 0, ^uint64(0), false, 10, nil)
				r.collect(kind, k1, 0, ^uint64(0), true, 10, nil)
			}
			it := r.iter(kind)
			for n := 0; n < 1000; n++ {
				if _, ok := it.next(); !ok {
					break
				}
			}
		}
	})
}

// fenceKey is a key the run's fences name, so that queries reach its blocks.
func (k *runKind) fenceKey() uint64 {
	if len(k.fences) == 0 {
		return 1
	}
	return k.fences[len(k.fences)/2].k1
}
