package engine

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/verity-dev/verity"
)

// Verify checks a data directory's log without opening it for writing: every entry's
// checksum, the positions, the sealed segments' offset tables and the hash chain from the
// first event to the last. It names the first bad position. Run it on a store that is not
// open elsewhere, or accept that the newest, unacknowledged appends may show as a torn tail.
func Verify(ctx context.Context, dir string) (VerifyResult, error) {
	names, err := filepath.Glob(filepath.Join(dir, "log", "*.seg"))
	if err != nil {
		return VerifyResult{}, err
	}
	if len(names) == 0 {
		return VerifyResult{}, verity.Errorf(verity.NotFound, "verify", "no log in %s (expected segment files in %s)", dir, filepath.Join(dir, "log"))
	}
	sort.Strings(names)
	var res VerifyResult
	var chain [32]byte
	next := uint64(1)
	bad := func(format string, args ...any) (VerifyResult, error) {
		res.FirstBadPosition = next
		res.Problem = fmt.Sprintf(format, args...)
		res.Head = hex.EncodeToString(chain[:])
		return res, nil
	}
	maxBody := 64 << 20
	for i, name := range names {
		f, err := os.Open(name)
		if err != nil {
			return VerifyResult{}, err
		}
		s, err := loadSegment(f, name)
		if err != nil {
			f.Close()
			return bad("segment %s: %v", filepath.Base(name), err)
		}
		base := filepath.Base(name)
		if s.firstPos != next {
			f.Close()
			return bad("segment %s starts at position %d, want %d", base, s.firstPos, next)
		}
		if !bytes.Equal(s.chainIn[:], chain[:]) {
			f.Close()
			return bad("segment %s: chain value in its header does not follow the previous segment", base)
		}
		end := s.size
		var table []int64
		if s.sealed {
			end = s.tableOff
			table = make([]int64, s.count)
			if s.count > 0 {
				if err := s.offsetsOf(s.firstPos, table); err != nil {
					f.Close()
					return VerifyResult{}, err
				}
			}
		}
		sc := &scanner{r: f, off: segHeaderSize, end: end, maxBody: maxBody}
		var en entry
		k := 0
		txnOpen := false
		for {
			if k%4096 == 0 {
				if err := ctx.Err(); err != nil {
					f.Close()
					return VerifyResult{}, err
				}
			}
			off, err := sc.next(&en)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				f.Close()
				if !s.sealed && i == len(names)-1 {
					return bad("segment %s offset %d: torn tail (%v): an unacknowledged append cut short by a crash; the next open removes it", base, off, err)
				}
				return bad("segment %s offset %d: %v", base, off, err)
			}
			if en.position != next {
				f.Close()
				return bad("segment %s offset %d: holds position %d", base, off, en.position)
			}
			if s.sealed && (k >= len(table) || table[k] != off) {
				f.Close()
				return bad("segment %s: offset table does not match entry at offset %d", base, off)
			}
			h := en.hashContent()
			want := chainNext(&chain, en.meta(), &h)
			if want != en.chain {
				f.Close()
				return bad("segment %s offset %d: hash chain broken: the event or one before it was changed", base, off)
			}
			chain = en.chain
			txnOpen = en.flags&flagTxnEnd == 0
			res.Events++
			res.LastPosition = en.position
			next++
			k++
		}
		f.Close()
		if s.sealed && uint64(k) != s.count {
			return bad("segment %s: footer lists %d entries, found %d", base, s.count, k)
		}
		if txnOpen {
			return bad("segment %s: the last append is incomplete (no end-of-append marker): cut short by a crash; the next open removes it", base)
		}
	}
	res.OK = true
	res.Head = hex.EncodeToString(chain[:])
	return res, nil
}
