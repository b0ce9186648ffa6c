package engine

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
	"unsafe"

	"github.com/google/uuid"
	"github.com/verity-dev/verity"
)

// An entry is one event in a segment file:
//
//	0   u32  size of the body (bytes after the crc field)
//	4   u32  CRC-32C of the body
//	8   body:
//	    0   u8   kind: kindEvent, or kindStub for an event whose content scavenging removed
//	    1   u8   flags: flagTxnEnd on the last event of an append (a transaction)
//	    2   u16  zero
//	    4   u64  position
//	    12  u64  revision
//	    20  i64  commit time, Unix nanoseconds
//	    28  [32] chain: SHA-256(previous chain | flags | position | revision | time | content hash)
//	    60  payload
//
// The payload of an event is: id [16], then stream, type, content type, data and metadata,
// each as a uvarint length and the bytes. Its content hash is the SHA-256 of the payload.
// A stub keeps id and stream (so the indexes and idempotency survive scavenging) and the
// content hash, so the hash chain still verifies after the content is gone.
//
// All integers are little-endian. Entries never span segment files. The chain makes any
// change of a past event evident: `verity verify` recomputes it.
const (
	entryHeaderSize = 8
	bodyFixedSize   = 60
	minEntrySize    = entryHeaderSize + bodyFixedSize + 16 + 1

	kindEvent = 1
	kindStub  = 2

	flagTxnEnd = 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errCorrupt marks an entry that fails its checks: torn, overwritten or not an entry at all.
var errCorrupt = errors.New("corrupt entry")

// preparedEvent is an event validated and encoded by the caller's goroutine, so that the
// single writer only fills in the header, the chain and the checksum.
type preparedEvent struct {
	payload []byte
	hash    [32]byte
	id      uuid.UUID
	typ     string
	// fresh: the store chose the id, so it cannot repeat an earlier append.
	fresh bool
}

// encodePayload validates nothing; see validateEvent.
func encodePayload(stream string, ev *verity.EventData, contentType string) []byte {
	n := 16 + 5*binary.MaxVarintLen32 + len(stream) + len(ev.Type) + len(contentType) + len(ev.Data) + len(ev.Metadata)
	b := make([]byte, 0, n)
	b = append(b, ev.ID[:]...)
	b = appendBytes(b, stream)
	b = appendBytes(b, ev.Type)
	b = appendBytes(b, contentType)
	b = appendBytes(b, ev.Data)
	b = appendBytes(b, ev.Metadata)
	return b
}

func appendBytes[T string | []byte](b []byte, s T) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// entryMeta is what the writer assigns to an event.
type entryMeta struct {
	position uint64
	revision uint64
	created  int64
	flags    uint8
}

// chainNext computes the chain value of an entry from the previous one.
func chainNext(prev *[32]byte, m entryMeta, contentHash *[32]byte) [32]byte {
	var buf [32 + 1 + 24 + 32]byte
	copy(buf[:32], prev[:])
	buf[32] = m.flags
	binary.LittleEndian.PutUint64(buf[33:], m.position)
	binary.LittleEndian.PutUint64(buf[41:], m.revision)
	binary.LittleEndian.PutUint64(buf[49:], uint64(m.created))
	copy(buf[57:], contentHash[:])
	return sha256.Sum256(buf[:])
}

// appendEntry encodes an event entry onto dst and returns the new chain value.
func appendEntry(dst []byte, prevChain *[32]byte, m entryMeta, p *preparedEvent) ([]byte, [32]byte) {
	chain := chainNext(prevChain, m, &p.hash)
	start := len(dst)
	dst = append(dst, make([]byte, entryHeaderSize+bodyFixedSize)...)
	body := dst[start+entryHeaderSize:]
	body[0] = kindEvent
	body[1] = m.flags
	binary.LittleEndian.PutUint64(body[4:], m.position)
	binary.LittleEndian.PutUint64(body[12:], m.revision)
	binary.LittleEndian.PutUint64(body[20:], uint64(m.created))
	copy(body[28:60], chain[:])
	dst = append(dst, p.payload...)
	body = dst[start+entryHeaderSize:]
	binary.LittleEndian.PutUint32(dst[start:], uint32(len(body)))
	binary.LittleEndian.PutUint32(dst[start+4:], crc32.Checksum(body, castagnoli))
	return dst, chain
}

// appendStub encodes the stub that replaces a scavenged event.
func appendStub(dst []byte, e *entry) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, entryHeaderSize+bodyFixedSize)...)
	body := dst[start+entryHeaderSize:]
	body[0] = kindStub
	body[1] = e.flags
	binary.LittleEndian.PutUint64(body[4:], e.position)
	binary.LittleEndian.PutUint64(body[12:], e.revision)
	binary.LittleEndian.PutUint64(body[20:], uint64(e.created))
	copy(body[28:60], e.chain[:])
	dst = append(dst, e.id[:]...)
	dst = appendBytes(dst, e.stream)
	dst = append(dst, e.contentHash[:]...)
	body = dst[start+entryHeaderSize:]
	binary.LittleEndian.PutUint32(dst[start:], uint32(len(body)))
	binary.LittleEndian.PutUint32(dst[start+4:], crc32.Checksum(body, castagnoli))
	return dst
}

// entry is a decoded entry. Its strings and slices alias the buffer it was decoded from,
// which must therefore never be written again.
type entry struct {
	kind        uint8
	flags       uint8
	position    uint64
	revision    uint64
	created     int64
	chain       [32]byte
	id          uuid.UUID
	stream      string
	typ         string
	contentType string
	data        []byte
	metadata    []byte
	// payload is the event's payload (events only), for hashing.
	payload []byte
	// contentHash is set for stubs; for events it is computed on demand (hashContent).
	contentHash [32]byte
	// size is the whole entry's size in bytes, header included; raw is the whole entry.
	size int
	raw  []byte
}

// entrySize returns the size of the entry starting at b, or an error when b cannot hold one
// (short: need more bytes; corrupt: the size field is out of range).
func entrySize(b []byte, maxBody int) (int, error) {
	if len(b) < entryHeaderSize {
		return 0, errShort
	}
	n := int(binary.LittleEndian.Uint32(b))
	if n < bodyFixedSize+17 || n > maxBody {
		return 0, fmt.Errorf("%w: body size %d out of range", errCorrupt, n)
	}
	return entryHeaderSize + n, nil
}

var errShort = errors.New("short buffer")

// decodeEntry decodes the entry at the start of b. It never panics on any input: it returns
// errShort when b ends inside the entry and errCorrupt for anything that is not a whole,
// checksummed, well-formed entry.
func decodeEntry(b []byte, maxBody int, e *entry) error {
	size, err := entrySize(b, maxBody)
	if err != nil {
		return err
	}
	if len(b) < size {
		return errShort
	}
	body := b[entryHeaderSize:size:size]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[4:]) {
		return fmt.Errorf("%w: checksum mismatch", errCorrupt)
	}
	*e = entry{
		kind:     body[0],
		flags:    body[1],
		position: binary.LittleEndian.Uint64(body[4:]),
		revision: binary.LittleEndian.Uint64(body[12:]),
		created:  int64(binary.LittleEndian.Uint64(body[20:])),
		size:     size,
		raw:      b[:size:size],
	}
	if body[2] != 0 || body[3] != 0 || e.flags&^flagTxnEnd != 0 || e.position == 0 {
		return fmt.Errorf("%w: bad header fields", errCorrupt)
	}
	copy(e.chain[:], body[28:60])
	rest := body[60:]
	if len(rest) < 16 {
		return fmt.Errorf("%w: no event id", errCorrupt)
	}
	copy(e.id[:], rest[:16])
	payload := rest
	rest = rest[16:]
	var stream []byte
	if stream, rest, err = takeBytes(rest); err != nil {
		return err
	}
	e.stream = aliasString(stream)
	switch e.kind {
	case kindEvent:
		var typ, ct []byte
		if typ, rest, err = takeBytes(rest); err != nil {
			return err
		}
		if ct, rest, err = takeBytes(rest); err != nil {
			return err
		}
		if e.data, rest, err = takeBytes(rest); err != nil {
			return err
		}
		if e.metadata, rest, err = takeBytes(rest); err != nil {
			return err
		}
		e.typ, e.contentType = aliasString(typ), aliasString(ct)
		e.payload = payload
	case kindStub:
		if len(rest) < 32 {
			return fmt.Errorf("%w: stub without content hash", errCorrupt)
		}
		copy(e.contentHash[:], rest[:32])
		rest = rest[32:]
	default:
		return fmt.Errorf("%w: unknown kind %d", errCorrupt, e.kind)
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", errCorrupt, len(rest))
	}
	if e.stream == "" {
		return fmt.Errorf("%w: empty stream name", errCorrupt)
	}
	return nil
}

func takeBytes(b []byte) (v, rest []byte, err error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return nil, nil, fmt.Errorf("%w: bad length field", errCorrupt)
	}
	end := k + int(n)
	return b[k:end:end], b[end:], nil
}

// aliasString returns a string sharing b's memory; b must never be written again.
func aliasString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// hashContent returns the entry's content hash.
func (e *entry) hashContent() [32]byte {
	if e.kind == kindStub {
		return e.contentHash
	}
	return sha256.Sum256(e.payload)
}

func (e *entry) meta() entryMeta {
	return entryMeta{position: e.position, revision: e.revision, created: e.created, flags: e.flags}
}

// recorded turns an event entry into the contract's type.
func (e *entry) recorded() verity.RecordedEvent {
	return verity.RecordedEvent{
		ID:          e.id,
		Type:        e.typ,
		ContentType: e.contentType,
		Data:        e.data,
		Metadata:    e.metadata,
		Stream:      e.stream,
		Revision:    e.revision,
		Position:    e.position,
		Created:     time.Unix(0, e.created).UTC(),
	}
}
