package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/engine"
)

// benchEventType is the type of every event the benchmark writes.
const benchEventType = "BenchEvent"

// verityStore runs the workloads through the verity.Store contract.
type verityStore struct {
	s verity.Store
}

var _ system = (*verityStore)(nil)

func openVerity(dir string) (*verityStore, error) {
	// Only warnings and errors: --json keeps stderr for what went wrong.
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	e, err := engine.Open(engine.Config{Dir: dir, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("open engine in %s: %w", dir, err)
	}
	return &verityStore{s: e}, nil
}

// Append's token is the stream's revision plus one, so that 0 means no stream.
func (v *verityStore) Append(ctx context.Context, stream string, expected uint64, events [][]byte) (uint64, error) {
	res, err := v.s.Append(ctx, stream, verityExpected(expected), verityEvents(events)...)
	if err != nil {
		return 0, err
	}
	return res.Revision + 1, nil
}

func (v *verityStore) AppendMulti(ctx context.Context, parts []streamAppend) ([]uint64, error) {
	appends := make([]verity.StreamAppend, len(parts))
	for i, p := range parts {
		appends[i] = verity.StreamAppend{Stream: p.stream, Expected: verityExpected(p.expected), Events: verityEvents(p.events)}
	}
	res, err := v.s.AppendMulti(ctx, appends...)
	if err != nil {
		return nil, err
	}
	next := make([]uint64, len(res))
	for i, r := range res {
		next[i] = r.Revision + 1
	}
	return next, nil
}

func verityExpected(token uint64) verity.ExpectedRevision {
	if token == 0 {
		return verity.NoStream()
	}
	return verity.Exact(token - 1)
}

func verityEvents(events [][]byte) []verity.EventData {
	evs := make([]verity.EventData, len(events))
	for i, d := range events {
		evs[i] = verity.EventData{Type: benchEventType, Data: d}
	}
	return evs
}

func (v *verityStore) Replay(ctx context.Context, pageSize int, page func(int)) (int, error) {
	var (
		from uint64
		n    int
		last uint64
	)
	for {
		evs, err := v.s.ReadAll(ctx, verity.ReadAllOptions{From: from, Limit: pageSize})
		if err != nil {
			return n, fmt.Errorf("read all from %d: %w", from, err)
		}
		if len(evs) == 0 {
			return n, nil
		}
		for _, e := range evs {
			if e.Position <= last {
				return n, fmt.Errorf("read all: position %d after %d", e.Position, last)
			}
			last = e.Position
		}
		n += len(evs)
		page(len(evs))
		from = last + 1
	}
}

func (v *verityStore) ReadStream(ctx context.Context, stream string, limit int) (int, error) {
	evs, err := v.s.ReadStream(ctx, stream, verity.ReadStreamOptions{Limit: limit})
	return len(evs), err
}

func (v *verityStore) Subscribe(ctx context.Context, fn func([]byte)) (io.Closer, error) {
	ctx, cancel := context.WithCancel(ctx)
	sub, err := v.s.Subscribe(ctx, verity.SubscribeOptions{FromEnd: true})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("subscribe to %s: %w", verity.AllStream, err)
	}
	vs := &veritySub{sub: sub, cancel: cancel}
	vs.wg.Add(1)
	go func() {
		defer vs.wg.Done()
		for {
			m, err := sub.Recv(ctx)
			if err != nil {
				if ctx.Err() == nil && !errors.Is(err, verity.ErrUnavailable) {
					vs.err = fmt.Errorf("subscription: %w", err)
				}
				return
			}
			if m.Kind == verity.MessageEvent {
				fn(m.Event.Data)
			}
		}
	}()
	return vs, nil
}

type veritySub struct {
	sub    verity.Subscription
	cancel context.CancelFunc
	wg     sync.WaitGroup
	err    error // set by the receiving goroutine before it ends
}

func (s *veritySub) Close() error {
	s.cancel()
	cerr := s.sub.Close()
	s.wg.Wait()
	return errors.Join(s.err, cerr)
}

func (v *verityStore) Close() error { return v.s.Close() }
