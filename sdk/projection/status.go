package projection

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/verity-dev/verity"
)

// Status is where a projection stands.
type Status struct {
	Name string
	// Position is the log position up to which the view has applied the source: every
	// event of the source at or below it is applied, and none above it.
	Position uint64
	// Revision, for a stream source, is the number of the stream's events applied.
	Revision uint64
	// Generation counts the rebuilds swapped in, from 1.
	Generation int64
	// LagEvents is how far the view is behind: the log's head position minus Position
	// (for a stream source, the stream's events not yet applied). A filtered projection's
	// Position moves past left-out events in steps (CheckpointEvery of the subscription),
	// so its LagEvents may stay above 0 by fewer than that while it is caught up.
	LagEvents uint64
	// Lag is the age of the oldest event of the source not yet applied; 0 when caught up.
	Lag time.Duration
	// Running says Run runs in this process, CaughtUp that it has caught up with the log.
	Running  bool
	CaughtUp bool
	// Rebuilding says a Rebuild is in progress (its checkpoint row exists), at
	// RebuildPosition.
	Rebuilding      bool
	RebuildPosition uint64
	// LastError is the error that stopped the last Run of this Projector, at
	// LastErrorAt; cleared when a Run catches up.
	LastError   error
	LastErrorAt time.Time
}

// Status reads the projection's checkpoint from the target and the head of the source
// from the store. It sets the projection up (Setup) if that was not done.
func (p *Projector) Status(ctx context.Context) (Status, error) {
	if err := p.Setup(ctx); err != nil {
		return Status{}, err
	}
	st := Status{Name: p.proj.Name}
	live, found, err := p.load(ctx, p.proj.Name)
	if err != nil {
		return Status{}, err
	}
	if found {
		st.Position, st.Revision, st.Generation = live.at.pos, live.at.rev, live.gen
	}
	if rb, found, err := p.load(ctx, p.proj.Name+rebuildSuffix); err != nil {
		return Status{}, err
	} else if found {
		st.Rebuilding, st.RebuildPosition = true, rb.at.pos
	}
	p.runMu.Lock()
	st.Running = p.running
	p.runMu.Unlock()
	p.mu.Lock()
	st.CaughtUp, st.LastError, st.LastErrorAt = p.caughtUp, p.lastErr, p.lastErrAt
	p.mu.Unlock()

	head, err := p.head(ctx)
	if err != nil {
		return Status{}, err
	}
	var oldest []verity.RecordedEvent
	if p.cfg.Stream != "" {
		if head.rev > st.Revision {
			st.LagEvents = head.rev - st.Revision
			oldest, err = p.store.ReadStream(ctx, p.cfg.Stream, verity.ReadStreamOptions{From: st.Revision, Limit: 1})
		}
	} else if head.pos > st.Position {
		st.LagEvents = head.pos - st.Position
		oldest, err = p.store.ReadAll(ctx, verity.ReadAllOptions{From: st.Position + 1, Limit: 1, Filter: p.cfg.Filter})
	}
	if err != nil && !errors.Is(err, verity.ErrNotFound) {
		return Status{}, p.wrap("read the oldest event not applied", err)
	}
	if len(oldest) > 0 {
		st.Lag = max(0, p.cfg.Now().Sub(oldest[0].Created))
	}
	return st, nil
}

// rowFunc is a Row whose Scan runs a query.
type rowFunc func(dest ...any) error

func (f rowFunc) Scan(dest ...any) error { return f(dest...) }

// queryRow runs a one-row query outside any transaction.
func queryRow(ctx context.Context, t Target, stmt string, args ...any) Row {
	return rowFunc(func(dest ...any) error {
		rows, err := t.Query(ctx, stmt, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		if !rows.Next() {
			if err := rows.Err(); err != nil {
				return err
			}
			return sql.ErrNoRows
		}
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		return rows.Close()
	})
}
