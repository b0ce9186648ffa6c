package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/verity-dev/verity"
)

// Scavenge reclaims the space of events that reads no longer return: those of deleted
// streams, those hidden by max age, max count or truncate before, and superseded metadata.
// Each sealed segment holding such events is rewritten with a stub in place of each of
// them (keeping position, revision, id, stream and content hash, so the hash chain still
// verifies and retries stay idempotent), then swapped in by an atomic rename. Appends and
// reads go on meanwhile; a crash leaves either the old or the new file.
func (e *Engine) Scavenge(ctx context.Context) (ScavengeResult, error) {
	const op = "scavenge"
	if err := e.check(op); err != nil {
		return ScavengeResult{}, err
	}
	e.scavengeMu.Lock()
	defer e.scavengeMu.Unlock()
	committed := e.committed.Load()
	hidden := e.hiddenFn(committed)
	metaLast := map[string]uint64{}
	removable := func(en *entry) (bool, error) {
		if en.kind != kindEvent {
			return false, nil
		}
		if hidden(en) {
			return true, nil
		}
		if _, ok := verity.IsMetadataStream(en.stream); ok {
			last, ok := metaLast[en.stream]
			if !ok {
				rev, _, found, err := e.lastRevision(en.stream, committed)
				if err != nil {
					return false, err
				}
				last = math.MaxUint64
				if found {
					last = rev
				}
				metaLast[en.stream] = last
			}
			return en.revision < last, nil
		}
		return false, nil
	}
	e.mu.RLock()
	var sealed []*segment
	for _, s := range e.segs {
		if s.sealed {
			s.acquire()
			sealed = append(sealed, s)
		}
	}
	e.mu.RUnlock()
	defer func() {
		for _, s := range sealed {
			s.release()
		}
	}()
	var res ScavengeResult
	for _, s := range sealed {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if err := e.check(op); err != nil {
			return res, err
		}
		removed, reclaimed, err := e.scavengeSegment(s, removable)
		if err != nil {
			return res, verity.Errorf(verity.Internal, op, "segment %s: %v", filepath.Base(s.path), err)
		}
		if removed > 0 {
			res.SegmentsRewritten++
			res.EventsRemoved += removed
			res.BytesReclaimed += reclaimed
		}
	}
	if res.SegmentsRewritten > 0 {
		e.log.Info("scavenged", "segments", res.SegmentsRewritten, "events", res.EventsRemoved, "bytes", res.BytesReclaimed)
	}
	return res, nil
}

func (e *Engine) scavengeSegment(s *segment, removable func(*entry) (bool, error)) (int64, int64, error) {
	// First pass: is there anything to remove?
	count := int64(0)
	sc := &scanner{r: s.f, off: segHeaderSize, end: s.tableOff, maxBody: e.maxBody()}
	var en entry
	for {
		_, err := sc.next(&en)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, 0, err
		}
		ok, err := removable(&en)
		if err != nil {
			return 0, 0, err
		}
		if ok {
			count++
		}
	}
	if count == 0 {
		return 0, 0, nil
	}
	tmp := s.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, 0, err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	buf := encodeSegHeader(s.num, s.firstPos, s.chainIn)
	var offs []uint32
	sc = &scanner{r: s.f, off: segHeaderSize, end: s.tableOff, maxBody: e.maxBody()}
	for {
		_, err := sc.next(&en)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, 0, err
		}
		offs = append(offs, uint32(len(buf)))
		rm, err := removable(&en)
		if err != nil {
			return 0, 0, err
		}
		if rm {
			en.contentHash = en.hashContent()
			en.kind = kindStub
			buf = appendStub(buf, &en)
		} else {
			buf = append(buf, en.raw...)
		}
	}
	if uint64(len(offs)) != s.count {
		return 0, 0, fmt.Errorf("scanned %d entries, footer says %d", len(offs), s.count)
	}
	buf = append(buf, encodeFooter(s.firstPos, offs)...)
	if _, err := f.Write(buf); err != nil {
		return 0, 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, 0, err
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return 0, 0, err
	}
	if err := syncDir(filepath.Dir(s.path)); err != nil {
		return 0, 0, err
	}
	ok = true
	ns, err := loadSegment(f, s.path)
	if err != nil {
		f.Close()
		return 0, 0, err
	}
	e.mu.Lock()
	for i, x := range e.segs {
		if x == s {
			e.segs[i] = ns
			s.release() // the list's reference
		}
	}
	e.mu.Unlock()
	oldSize := s.tableOff + 4*int64(s.count) + segTrailerSize
	return count, oldSize - int64(len(buf)), nil
}

// scavengeLoop runs Scavenge every ScavengeInterval.
func (e *Engine) scavengeLoop() {
	defer e.wg.Done()
	t := time.NewTicker(e.cfg.ScavengeInterval)
	defer t.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-e.closing
		cancel()
	}()
	for {
		select {
		case <-t.C:
			if _, err := e.Scavenge(ctx); err != nil && ctx.Err() == nil {
				e.log.Error("online scavenge failed", "err", err)
			}
		case <-e.closing:
			return
		}
	}
}
