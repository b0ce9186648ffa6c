package projection

import (
	"context"
	"errors"
	"fmt"

	"github.com/verity-dev/verity"
)

// Rebuild replays the source from its start into a new generation of the projection's
// tables (named table__gN while they are built) and then swaps it in atomically: in one
// transaction the old tables are dropped, the new ones renamed to the tables' names and
// the checkpoint moved to theirs. Readers see either the old view or the whole new one,
// never a half-built one, and the projection keeps serving (and, if Run runs, updating)
// the old tables until the swap. With Run running, the swap happens between two of its
// batches, after the new generation has caught up with the old one; otherwise at the
// head of the log. It returns once swapped in, or when ctx ends.
//
// A rebuild's progress is checkpointed like the projection's: a Rebuild interrupted (ctx,
// crash) resumes where it stopped when called again. One Rebuild at a time per Projector.
func (p *Projector) Rebuild(ctx context.Context) error {
	p.rebuildMu.Lock()
	defer p.rebuildMu.Unlock()
	if err := p.Setup(ctx); err != nil {
		return err
	}
	live, found, err := p.load(ctx, p.proj.Name)
	if err != nil {
		return err
	}
	if !found {
		return verity.Errorf(verity.NotFound, op, "projection %q: its checkpoint row is gone", p.proj.Name)
	}
	key := p.proj.Name + rebuildSuffix
	rb, found, err := p.load(ctx, key)
	if err != nil {
		return err
	}
	if !found {
		rb = p.newView(key, live.gen+1, checkpoint{})
		if err := p.create(ctx, rb); err != nil {
			return err
		}
	}
	p.mu.Lock()
	p.rebuildLive = true
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.rebuildLive = false
		p.mu.Unlock()
	}()
	if err := p.follow(ctx, rb, true, nil); err != nil {
		return err
	}
	for {
		p.runMu.Lock()
		if swaps, done := p.swaps, p.runDone; swaps != nil {
			p.runMu.Unlock()
			req := &swapRequest{rb: rb, done: make(chan error, 1)}
			select {
			case swaps <- req:
				return <-req.done // Run answers every request it takes
			case <-done:
				continue // Run returned: swap here
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		// Run waits for runMu: nothing else writes the live generation meanwhile.
		err := p.swapIdle(ctx, rb)
		p.runMu.Unlock()
		return err
	}
}

// swapIdle swaps rb in at the head of the log while no Run runs.
func (p *Projector) swapIdle(ctx context.Context, rb *view) error {
	live, found, err := p.load(ctx, p.proj.Name)
	if err != nil {
		return err
	}
	if !found {
		return verity.Errorf(verity.NotFound, op, "projection %q: its checkpoint row is gone", p.proj.Name)
	}
	head, err := p.head(ctx)
	if err != nil {
		return err
	}
	return p.finishRebuild(ctx, live, rb, head)
}

// head returns the checkpoint of a projection that has applied the whole source.
func (p *Projector) head(ctx context.Context) (checkpoint, error) {
	if p.cfg.Stream != "" {
		evs, err := p.store.ReadStream(ctx, p.cfg.Stream, verity.ReadStreamOptions{Direction: verity.Backwards, FromEnd: true, Limit: 1})
		if errors.Is(err, verity.ErrNotFound) || (err == nil && len(evs) == 0) {
			return checkpoint{}, nil
		}
		if err != nil {
			return checkpoint{}, p.wrap("read the end of stream "+p.cfg.Stream, err)
		}
		return checkpoint{pos: evs[0].Position, rev: evs[0].Revision + 1}, nil
	}
	evs, err := p.store.ReadAll(ctx, verity.ReadAllOptions{Direction: verity.Backwards, FromEnd: true, Limit: 1})
	if err != nil {
		return checkpoint{}, p.wrap("read the head of the log", err)
	}
	if len(evs) == 0 {
		return checkpoint{}, nil
	}
	return checkpoint{pos: evs[0].Position}, nil
}

// ahead reports whether a has applied at least what b has.
func (p *Projector) ahead(a, b checkpoint) bool {
	if p.cfg.Stream != "" {
		return a.rev >= b.rev
	}
	return a.pos >= b.pos
}

// finishRebuild brings rb up to checkpoint to (reading the store) and swaps it in for
// live: the last batch's transaction also drops the live tables, renames rb's and moves the
// live checkpoint row to rb's generation and checkpoint. If rb is already past to, it is
// swapped in at its own checkpoint. On success *live is the new live view.
func (p *Projector) finishRebuild(ctx context.Context, live, rb *view, to checkpoint) error {
	if p.ahead(rb.at, to) {
		to = rb.at
	}
	for {
		batch, next, last, err := p.readBatch(ctx, rb.at, to)
		if err != nil {
			return err
		}
		if !last {
			if err := p.apply(ctx, rb, batch, next, nil); err != nil {
				return err
			}
			continue
		}
		newLive := p.newView(p.proj.Name, rb.gen, to)
		err = p.apply(ctx, rb, batch, to, func(tx *handlerTx) error {
			for _, t := range p.proj.Tables {
				if err := tx.Exec(ctx, "DROP TABLE IF EXISTS "+t.Name); err != nil {
					return p.wrap("drop table "+t.Name, err)
				}
				if err := tx.Exec(ctx, fmt.Sprintf("ALTER TABLE %s RENAME TO %s", rb.names[t.Name], t.Name)); err != nil {
					return p.wrap("rename table "+rb.names[t.Name], err)
				}
			}
			var gen int64
			err := tx.QueryRow(ctx, `UPDATE verity_projections SET position = $1, revision = $2, generation = $3
				WHERE name = $4 AND position = $5 AND revision = $6 AND generation = $7 RETURNING generation`,
				int64(to.pos), int64(to.rev), rb.gen, live.key, int64(live.at.pos), int64(live.at.rev), live.gen).Scan(&gen)
			if err != nil {
				return p.wrap("move the checkpoint to the rebuilt generation", err)
			}
			return tx.Exec(ctx, `DELETE FROM verity_projections WHERE name = $1`, rb.key)
		})
		if err != nil {
			return err
		}
		*live = *newLive
		return nil
	}
}

// readBatch reads the source's events after from, up to to, at most BatchSize of them,
// and returns them with the checkpoint after them; last says it reached to.
func (p *Projector) readBatch(ctx context.Context, from, to checkpoint) ([]verity.RecordedEvent, checkpoint, bool, error) {
	limit := p.cfg.BatchSize
	if p.cfg.Stream != "" {
		if from.rev >= to.rev {
			return nil, to, true, nil
		}
		evs, err := p.store.ReadStream(ctx, p.cfg.Stream, verity.ReadStreamOptions{From: from.rev, Limit: limit})
		if err != nil && !errors.Is(err, verity.ErrNotFound) {
			return nil, from, false, p.wrap("read stream "+p.cfg.Stream, err)
		}
		var out []verity.RecordedEvent
		for _, e := range evs {
			if e.Revision >= to.rev {
				break
			}
			out = append(out, e)
		}
		if len(out) == 0 {
			return nil, to, true, nil
		}
		last := out[len(out)-1]
		next := checkpoint{pos: last.Position, rev: last.Revision + 1}
		return out, next, next.rev >= to.rev, nil
	}
	if from.pos >= to.pos {
		return nil, to, true, nil
	}
	evs, err := p.store.ReadAll(ctx, verity.ReadAllOptions{From: from.pos + 1, Limit: limit, Filter: p.cfg.Filter})
	if err != nil {
		return nil, from, false, p.wrap("read the log", err)
	}
	var out []verity.RecordedEvent
	for _, e := range evs {
		if e.Position > to.pos {
			break
		}
		out = append(out, e)
	}
	if len(out) == 0 || len(out) < len(evs) || len(evs) < limit {
		return out, to, true, nil
	}
	next := checkpoint{pos: out[len(out)-1].Position}
	return out, next, next.pos >= to.pos, nil
}
