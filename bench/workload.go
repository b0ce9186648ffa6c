package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// runWorkers runs fn on n goroutines and waits for all of them. The first error cancels
// the others' context and is returned.
func runWorkers(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := fn(ctx, i); err != nil {
				cancel(err)
			}
		})
	}
	wg.Wait()
	// Set only by a failed worker or by the caller's cancellation: defer has not run yet.
	return context.Cause(ctx)
}

func streamName(prefix string, i int) string { return fmt.Sprintf("%s%d", prefix, i) }

// runAppend: writers append batches of batch events, each to its own share of the 10,000
// streams in turn, each append with the exact expected revision, for dur.
func runAppend(ctx context.Context, s system, writers, batch int, dur time.Duration) (Result, error) {
	hists := make([]histogram, writers)
	counts := make([]int64, writers)
	start := time.Now()
	deadline := start.Add(dur)
	err := runWorkers(ctx, writers, func(ctx context.Context, w int) error {
		var mine []string
		for i := w; i < appendStreams; i += writers {
			mine = append(mine, streamName("bench-", i))
		}
		tokens := make([]uint64, len(mine))
		events := make([][]byte, batch)
		var n uint64
		// At least one append per writer, however late the writer starts on a loaded
		// machine: a measurement of nothing is no measurement.
		for k, first := 0, true; first || time.Now().Before(deadline); k, first = (k+1)%len(mine), false {
			for i := range events {
				events[i] = makePayload(n)
				n++
			}
			t0 := time.Now()
			next, err := s.Append(ctx, mine[k], tokens[k], events)
			if err != nil {
				return fmt.Errorf("append %d events to %s: %w", batch, mine[k], err)
			}
			hists[w].record(time.Since(t0))
			tokens[k] = next
			counts[w] += int64(batch)
		}
		return nil
	})
	elapsed := time.Since(start)
	if err != nil {
		return Result{}, err
	}
	var h histogram
	var events int64
	for i := range hists {
		h.merge(&hists[i])
		events += counts[i]
	}
	return Result{
		EventsPerSec: float64(events) / elapsed.Seconds(),
		P50ms:        ms(h.quantile(0.50)),
		P99ms:        ms(h.quantile(0.99)),
		Events:       events,
		ElapsedS:     elapsed.Seconds(),
		Ops:          int64(h.n),
		Streams:      appendStreams,
	}, nil
}

// logSpec shapes a store built for reading: streams of perStream events, written in rounds
// of chunk events per stream so that a stream's events are spread along the log. Each
// writer commits buildCommit events at a time, to several of its streams at once.
type logSpec struct {
	prefix    string
	streams   int
	perStream int
	chunk     int
	writers   int
}

// buildCommit is the most events a build commits at once.
const buildCommit = 100

// buildLog writes the store logSpec describes, calling progress (from one goroutine) about
// once a second with the events written so far.
func buildLog(ctx context.Context, s system, spec logSpec, progress func(done int64)) error {
	var done atomic.Int64
	stop := make(chan struct{})
	var tick sync.WaitGroup
	tick.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				progress(done.Load())
			case <-stop:
				return
			}
		}
	})
	defer tick.Wait()
	defer close(stop)
	writers := min(spec.writers, spec.streams)
	group := max(1, buildCommit/spec.chunk) // streams per commit
	return runWorkers(ctx, writers, func(ctx context.Context, w int) error {
		var mine []string
		for i := w; i < spec.streams; i += writers {
			mine = append(mine, streamName(spec.prefix, i))
		}
		tokens := make([]uint64, len(mine))
		var n uint64
		for written := 0; written < spec.perStream; written += spec.chunk {
			size := min(spec.chunk, spec.perStream-written)
			for g := 0; g < len(mine); g += group {
				parts := make([]streamAppend, 0, group)
				for k := g; k < min(g+group, len(mine)); k++ {
					events := make([][]byte, size)
					for j := range events {
						events[j] = makePayload(n)
						n++
					}
					parts = append(parts, streamAppend{stream: mine[k], expected: tokens[k], events: events})
				}
				next, err := s.AppendMulti(ctx, parts)
				if err != nil {
					return fmt.Errorf("append %d events to %d streams from %s: %w", len(parts)*size, len(parts), mine[g], err)
				}
				copy(tokens[g:], next)
				done.Add(int64(len(parts) * size))
			}
		}
		return nil
	})
}

// runReplay reads the whole log from its start; the latency is that of each page.
func runReplay(ctx context.Context, s system, want int) (Result, error) {
	var h histogram
	start := time.Now()
	last := start
	n, err := s.Replay(ctx, replayPage, func(int) {
		now := time.Now()
		h.record(now.Sub(last))
		last = now
	})
	elapsed := time.Since(start)
	if err != nil {
		return Result{}, err
	}
	if n != want {
		return Result{}, fmt.Errorf("replay read %d events, want %d", n, want)
	}
	return Result{
		EventsPerSec: float64(n) / elapsed.Seconds(),
		P50ms:        ms(h.quantile(0.50)),
		P99ms:        ms(h.quantile(0.99)),
		Events:       int64(n),
		ElapsedS:     elapsed.Seconds(),
		Ops:          int64(h.n),
		PageSize:     replayPage,
	}, nil
}

// runReadStream: readers read whole streams chosen at random, for dur.
func runReadStream(ctx context.Context, s system, prefix string, streams, perStream, readers int, dur time.Duration) (Result, error) {
	hists := make([]histogram, readers)
	start := time.Now()
	deadline := start.Add(dur)
	err := runWorkers(ctx, readers, func(ctx context.Context, w int) error {
		rng := rand.New(rand.NewPCG(uint64(start.UnixNano()), uint64(w)))
		for first := true; first || time.Now().Before(deadline); first = false { // at least one read
			name := streamName(prefix, rng.IntN(streams))
			t0 := time.Now()
			n, err := s.ReadStream(ctx, name, perStream)
			if err != nil {
				return fmt.Errorf("read stream %s: %w", name, err)
			}
			hists[w].record(time.Since(t0))
			if n != perStream {
				return fmt.Errorf("read stream %s: %d events, want %d", name, n, perStream)
			}
		}
		return nil
	})
	elapsed := time.Since(start)
	if err != nil {
		return Result{}, err
	}
	var h histogram
	for i := range hists {
		h.merge(&hists[i])
	}
	events := int64(h.n) * int64(perStream)
	return Result{
		EventsPerSec: float64(events) / elapsed.Seconds(),
		P50ms:        ms(h.quantile(0.50)),
		P99ms:        ms(h.quantile(0.99)),
		Events:       events,
		ElapsedS:     elapsed.Seconds(),
		Ops:          int64(h.n),
		Streams:      streams,
	}, nil
}

// e2eWarmUp numbers the e2e workload's warm-up event.
const e2eWarmUp = 1 << 40

// waitFor waits until done is closed, for at most d.
func waitFor(ctx context.Context, done <-chan struct{}, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
		return fmt.Errorf("not done after %v", d)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// runE2E measures the time from an append's acknowledgement to a live subscriber of the
// whole log receiving the event, with one writer appending one event at a time at rate
// events/s for dur. A subscriber may see an event before the writer's Append has
// returned; that counts as zero.
func runE2E(ctx context.Context, s system, rate int, dur time.Duration) (Result, error) {
	total := max(1, int(dur.Seconds()*float64(rate)))
	base := time.Now()
	acked := make([]int64, total) // ns since base; written by the writer
	recvd := make([]int64, total) // ns since base, 0 until received; written by the subscriber
	var (
		received atomic.Int64
		badMu    sync.Mutex
		bad      error
	)
	all := make(chan struct{})
	warm := make(chan struct{})
	var warmOnce sync.Once
	sub, err := s.Subscribe(ctx, func(data []byte) {
		now := time.Since(base)
		n, err := payloadNumber(data)
		if err == nil && n == e2eWarmUp {
			warmOnce.Do(func() { close(warm) })
			return
		}
		if err == nil && (n >= uint64(total) || recvd[n] != 0) {
			err = fmt.Errorf("unexpected or repeated event %d", n)
		}
		if err != nil {
			badMu.Lock()
			bad = errors.Join(bad, err)
			badMu.Unlock()
			return
		}
		recvd[n] = int64(max(now, 1))
		if received.Add(1) == int64(total) {
			close(all)
		}
	})
	if err != nil {
		return Result{}, err
	}
	defer sub.Close()

	// One event first, not measured: it proves the subscription live and takes whatever a
	// store does on its first append out of the measurement.
	if _, err := s.Append(ctx, "e2e-warm-up", 0, [][]byte{makePayload(e2eWarmUp)}); err != nil {
		return Result{}, fmt.Errorf("warm-up append: %w", err)
	}
	if err := waitFor(ctx, warm, 10*time.Second); err != nil {
		return Result{}, fmt.Errorf("subscriber did not receive the warm-up event: %w", err)
	}

	interval := time.Second / time.Duration(rate)
	token := uint64(0)
	start := time.Now()
	for i := range total {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return Result{}, ctx.Err()
			}
		}
		next, err := s.Append(ctx, "e2e-0", token, [][]byte{makePayload(uint64(i))})
		if err != nil {
			return Result{}, fmt.Errorf("append event %d to e2e-0: %w", i, err)
		}
		acked[i] = int64(time.Since(base))
		token = next
	}
	if err := waitFor(ctx, all, 10*time.Second); err != nil && ctx.Err() != nil {
		return Result{}, err
	}
	elapsed := time.Since(start)
	if err := sub.Close(); err != nil {
		return Result{}, err
	}
	// The subscriber's goroutine has ended: its writes are visible.
	if bad != nil {
		return Result{}, fmt.Errorf("subscriber: %w", bad)
	}
	if got := received.Load(); got != int64(total) {
		return Result{}, fmt.Errorf("subscriber received %d of %d events within 10s of the last append", got, total)
	}
	var h histogram
	for i := range total {
		h.record(time.Duration(recvd[i] - acked[i]))
	}
	return Result{
		EventsPerSec: float64(total) / elapsed.Seconds(),
		P50ms:        ms(h.quantile(0.50)),
		P99ms:        ms(h.quantile(0.99)),
		Events:       int64(total),
		ElapsedS:     elapsed.Seconds(),
		Ops:          int64(total),
		RateEPS:      rate,
	}, nil
}
