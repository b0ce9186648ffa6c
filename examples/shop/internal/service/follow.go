package service

import (
	"context"
	"sync"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/sdk"
)

// Follower keeps an in-memory view up to date: it applies every event of the log that
// passes its filter, from the log's start, then live. A view kept this way costs no
// database and is rebuilt by replay at every start; the price is the replay time, which
// is fine for a reference system and is what a SQL projection would save.
type Follower struct {
	store  verity.Store
	filter verity.Filter
	runner *sdk.SubscriptionRunner

	mu    sync.Mutex
	pos   uint64        // position of the last event applied
	moved chan struct{} // closed (and replaced) whenever pos moves
}

// Follow starts applying the events that pass filter to apply, one at a time, in log
// order. apply must not fail: an event is a fact. The filter should name the event types
// the view applies (EventTypes), so that CatchUp knows which events to wait for.
func Follow(ctx context.Context, store verity.Store, reg *sdk.Registry, filter verity.Filter, apply func(sdk.Event)) (*Follower, error) {
	f := &Follower{store: store, filter: filter, moved: make(chan struct{})}
	r, err := sdk.StartSubscriptionRunner(ctx, store, reg, sdk.SubscriptionRunnerConfig{Filter: filter},
		func(_ context.Context, e sdk.Event) error {
			apply(e)
			f.mu.Lock()
			f.pos = e.Recorded.Position
			close(f.moved)
			f.moved = make(chan struct{})
			f.mu.Unlock()
			return nil
		})
	if err != nil {
		return nil, err
	}
	f.runner = r
	return f, nil
}

// CatchUp waits until the view has applied every event that passed the filter before the
// call, or ctx ends. It is how a service reads its own view after the fact it needs was
// written elsewhere (read-your-writes), and how Start waits for the replay.
func (f *Follower) CatchUp(ctx context.Context) error {
	last, err := f.store.ReadAll(ctx, verity.ReadAllOptions{Direction: verity.Backwards, FromEnd: true, Limit: 1, Filter: f.filter})
	if err != nil {
		return err
	}
	if len(last) == 0 {
		return nil
	}
	head := last[0].Position
	for {
		f.mu.Lock()
		pos, moved := f.pos, f.moved
		f.mu.Unlock()
		if pos >= head {
			return nil
		}
		select {
		case <-moved:
		case <-f.runner.Done():
			if err := f.Err(); err != nil {
				return err
			}
			return verity.Errorf(verity.Unavailable, "view", "the view stopped following the log")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Err is the error that stopped the view (an event it could not decode), or nil while it
// runs.
func (f *Follower) Err() error {
	select {
	case <-f.runner.Done():
		if err := f.runner.Close(); err != nil {
			return err
		}
		return verity.Errorf(verity.Unavailable, "view", "the view stopped following the log")
	default:
		return nil
	}
}

// Close stops following.
func (f *Follower) Close() error { return f.runner.Close() }
