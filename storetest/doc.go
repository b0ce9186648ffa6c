// Package storetest is the conformance suite of the verity.Store contract. Every
// implementation — the embedded engine, the network client, each future backend — runs it
// from its own tests, so that they all keep one contract (DESIGN.md, invariant 8):
//
//	func TestConformance(t *testing.T) {
//		clock := storetest.NewFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
//		storetest.Run(t, storetest.Harness{
//			New: func(t testing.TB) verity.Store { ... open a fresh, empty store ... },
//			Reopen: func(t testing.TB, s verity.Store) verity.Store { ... close s, open its data again ... },
//			Clock:    clock,
//			Features: storetest.Features{Reopen: true, ControlClock: true},
//		})
//	}
//
// The suite checks what the contract documents: expected revisions and the Conflict they
// report, idempotent retries, atomic multi-stream appends, the rejection of bad input,
// stream and log reads with filters, catch-up-then-live subscriptions with no gap or
// duplicate, stream metadata (max count, max age, truncate before), soft delete and
// tombstone, durability across a reopen, Close, and concurrent use. Each test gets a fresh
// store, so tests know the exact positions they expect. Tests of one group run in parallel;
// those that move the shared FakeClock run alone.
//
// Optional behaviour is switched on by Features; tests that need what a harness lacks are
// skipped, saying why. Limits tell the suite the limits the store was configured with, so
// it can probe both sides of each. The suite never sleeps to synchronise: it waits on
// conditions with deadlines, so it is fast against a fast store and safe under -race.
package storetest
