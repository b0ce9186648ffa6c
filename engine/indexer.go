package engine

import (
	"math/bits"
	"os"
	"time"
)

// indexLoop writes frozen memtables as runs once everything in them is durable, and merges
// runs so that a look-up touches few of them.
func (e *Engine) indexLoop() {
	defer e.wg.Done()
	for {
		select {
		case <-e.flushKick:
		case <-e.closing:
			return
		}
		for {
			e.mu.RLock()
			var m *memtable
			if len(e.ix.frozen) > 0 {
				m = e.ix.frozen[0]
			}
			e.mu.RUnlock()
			if m == nil {
				break
			}
			// Runs hold durable events only.
			for e.committed.Load() < m.maxPos {
				wait := e.waitChan()
				if e.committed.Load() >= m.maxPos {
					break
				}
				select {
				case <-wait:
				case <-e.closing:
					return
				}
			}
			r, err := writeRun(e.indexDir, m)
			if err != nil {
				e.log.Error("writing an index run failed; retrying", "err", err)
				select {
				case <-time.After(time.Second):
					continue
				case <-e.closing:
					return
				}
			}
			e.mu.Lock()
			e.ix.runs = append(e.ix.runs, r)
			e.ix.frozen = e.ix.frozen[1:]
			e.mu.Unlock()
			select {
			case e.flushed <- struct{}{}:
			default:
			}
			e.mergeRuns()
		}
	}
}

// tier groups runs by size: each tier is four times the one below.
func (e *Engine) tier(r *run) int {
	n := r.events / uint64(e.cfg.IndexFlushEvents)
	if n == 0 {
		return 0
	}
	return (bits.Len64(n) - 1) / 2
}

// mergeRuns merges four adjacent runs of the same tier, repeatedly.
func (e *Engine) mergeRuns() {
	for {
		e.mu.RLock()
		runs := e.ix.runs
		start := -1
		for i := 0; i+4 <= len(runs); i++ {
			t := e.tier(runs[i])
			if e.tier(runs[i+1]) == t && e.tier(runs[i+2]) == t && e.tier(runs[i+3]) == t {
				start = i
				break
			}
		}
		var group []*run
		if start >= 0 {
			group = append(group, runs[start:start+4]...)
		}
		e.mu.RUnlock()
		if group == nil {
			return
		}
		select {
		case <-e.closing:
			return
		default:
		}
		merged, err := mergeRuns(e.indexDir, group)
		if err != nil {
			e.log.Error("merging index runs failed", "err", err)
			return
		}
		e.mu.Lock()
		var next []*run
		for _, r := range e.ix.runs {
			switch r {
			case group[0]:
				next = append(next, merged)
			case group[1], group[2], group[3]:
			default:
				next = append(next, r)
			}
		}
		e.ix.runs = next
		e.mu.Unlock()
		for _, r := range group {
			r.f.Close()
			os.Remove(r.path)
		}
	}
}
