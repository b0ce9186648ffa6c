package storetest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/verity-dev/verity"
)

func testConcurrency(t *testing.T, s *suite) {
	s.test(t, "racing appends with the same Exact revision have exactly one winner each round", func(t *testing.T, st verity.Store) {
		const rounds, racers = 10, 8
		for r := 0; r < rounds; r++ {
			exp := verity.NoStream()
			if r > 0 {
				exp = verity.Exact(uint64(r - 1))
			}
			var (
				wg      sync.WaitGroup
				winners atomic.Int32
				errs    = make(chan error, racers)
			)
			start := make(chan struct{})
			for g := 0; g < racers; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					res, err := st.Append(t.Context(), "order-1", exp, event("OrderChanged", g))
					if err == nil {
						winners.Add(1)
						if res.Revision != uint64(r) {
							errs <- fmt.Errorf("round %d: the winner got revision %d", r, res.Revision)
						}
						return
					}
					var ve *verity.Error
					if !errors.As(err, &ve) || ve.Kind != verity.Conflict {
						errs <- fmt.Errorf("round %d: a loser got %v, want a Conflict", r, err)
						return
					}
					if ve.Actual == nil || !ve.Actual.Exists || ve.Actual.Revision != uint64(r) {
						errs <- fmt.Errorf("round %d: a loser's Conflict has Actual %v, want %d", r, ve.Actual, r)
					}
				}()
			}
			close(start)
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			waitFor(t, done, fmt.Sprintf("round %d", r))
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if n := winners.Load(); n != 1 {
				t.Fatalf("round %d had %d winners, want 1", r, n)
			}
		}
		requireRevisions(t, readStream(t, st, "order-1"), seq(0, rounds), "the stream")
		requireGaplessLog(t, readAll(t, st, verity.Filter{}), rounds, "the log")
	})

	s.test(t, "concurrent appends to different streams all succeed and the log stays gapless", func(t *testing.T, st verity.Store) {
		written := appendConcurrently(t, st, 16, 20, func(g, i int) string { return fmt.Sprintf("order-%d", g) })
		log := readAll(t, st, verity.Filter{})
		requireGaplessLog(t, log, len(written), "the log")
		requireSameIDs(t, log, written)
		for g := 0; g < 16; g++ {
			stream := fmt.Sprintf("order-%d", g)
			evs := readStream(t, st, stream)
			requireRevisions(t, evs, seq(0, len(evs)), stream)
		}
	})

	s.test(t, "concurrent appends with Any to one stream all succeed at distinct revisions", func(t *testing.T, st verity.Store) {
		written := appendConcurrently(t, st, 8, 20, func(g, i int) string { return "order-1" })
		evs := readStream(t, st, "order-1")
		requireRevisions(t, evs, seq(0, len(written)), "the stream")
		requireSameIDs(t, evs, written)
	})

	s.test(t, "readers racing appends always see a gapless prefix of the log", func(t *testing.T, st verity.Store) {
		stop := make(chan struct{})
		var readers sync.WaitGroup
		errs := make(chan error, 4)
		for r := 0; r < 4; r++ {
			readers.Add(1)
			go func() {
				defer readers.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					evs, err := st.ReadAll(t.Context(), verity.ReadAllOptions{})
					if err == nil && r%2 == 1 {
						evs, err = st.ReadAll(t.Context(), verity.ReadAllOptions{Direction: verity.Backwards, FromEnd: true})
						evs = reversed(evs)
					}
					if err != nil {
						errs <- err
						return
					}
					for i, e := range evs {
						if e.Position != uint64(i+1) {
							errs <- fmt.Errorf("a reader saw position %d at index %d: a gap in the visible log", e.Position, i)
							return
						}
					}
				}
			}()
		}
		written := appendConcurrently(t, st, 8, 25, func(g, i int) string { return fmt.Sprintf("order-%d", (g+i)%5) })
		close(stop)
		readers.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		requireGaplessLog(t, readAll(t, st, verity.Filter{}), len(written), "the log")
	})
}
