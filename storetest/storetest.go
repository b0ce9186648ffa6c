package storetest

import (
	"testing"
	"time"

	"github.com/verity-dev/verity"
)

// Features switches optional behaviour on for implementations that have it. A test that
// needs a feature the harness lacks is skipped with a message saying which.
type Features struct {
	// Reopen: the harness can close and reopen the same store (durability across restart).
	Reopen bool
	// ControlClock: the store's clock is Harness.Clock (for max-age and FromTime tests).
	ControlClock bool
}

// Limits are the limits the store under test was configured with. The suite probes both
// sides of each. A zero field means the embedded engine's default, repeated here because
// this package depends on the root contract only.
type Limits struct {
	// MaxEventSize is the largest encoded event in bytes. Default 1 MiB.
	MaxEventSize int
	// MaxAppendEvents is the most events one append may carry. Default 10,000.
	MaxAppendEvents int
	// MaxStreamNameLength is the longest stream name in bytes. Default 1,024.
	MaxStreamNameLength int
	// MaxEventTypeLength is the longest event type in bytes. Default 512.
	MaxEventTypeLength int
}

// Defaults of Limits (those of the embedded engine).
const (
	DefaultMaxEventSize        = 1 << 20
	DefaultMaxAppendEvents     = 10_000
	DefaultMaxStreamNameLength = 1024
	DefaultMaxEventTypeLength  = 512
)

func (l Limits) withDefaults() Limits {
	if l.MaxEventSize == 0 {
		l.MaxEventSize = DefaultMaxEventSize
	}
	if l.MaxAppendEvents == 0 {
		l.MaxAppendEvents = DefaultMaxAppendEvents
	}
	if l.MaxStreamNameLength == 0 {
		l.MaxStreamNameLength = DefaultMaxStreamNameLength
	}
	if l.MaxEventTypeLength == 0 {
		l.MaxEventTypeLength = DefaultMaxEventTypeLength
	}
	return l
}

// Harness makes stores for the suite.
type Harness struct {
	// New returns a fresh, empty store. The suite closes it (t.Cleanup is fine too). New
	// is called from parallel tests and must be safe for that.
	New func(t testing.TB) verity.Store
	// Reopen closes s and opens the same data again (only with Features.Reopen).
	Reopen func(t testing.TB, s verity.Store) verity.Store
	// Clock, with Features.ControlClock, is the fake clock New wired into the store. Every
	// store of one Run shares it; the suite only ever moves it forward, and only from tests
	// that run alone.
	Clock *FakeClock
	// Features switches optional tests on.
	Features Features
	// Limits the store was configured with; zero fields mean the defaults.
	Limits Limits
}

// Run runs the whole conformance suite against the stores h makes. Tests of one group run
// in parallel, each on its own fresh store; tests that move the shared clock run alone.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.New == nil {
		t.Fatal("storetest: Harness.New is nil")
	}
	if h.Features.Reopen && h.Reopen == nil {
		t.Fatal("storetest: Features.Reopen is set but Harness.Reopen is nil")
	}
	if h.Features.ControlClock && h.Clock == nil {
		t.Fatal("storetest: Features.ControlClock is set but Harness.Clock is nil")
	}
	h.Limits = h.Limits.withDefaults()
	s := &suite{h: h}

	groups := []struct {
		name string
		run  func(*testing.T, *suite)
	}{
		{"Append", testAppend},
		{"Idempotency", testIdempotency},
		{"AppendMulti", testAppendMulti},
		{"Validation", testValidation},
		{"ReadStream", testReadStream},
		{"ReadAll", testReadAll},
		{"Filter", testFilter},
		{"Subscribe", testSubscribe},
		{"Metadata", testMetadata},
		{"DeleteStream", testDeleteStream},
		{"TombstoneStream", testTombstoneStream},
		{"Concurrency", testConcurrency},
		{"Durability", testDurability},
		{"Context", testContext},
		{"Close", testClose},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) { g.run(t, s) })
	}
}

// suite carries the harness through the tests.
type suite struct {
	h Harness
}

// test runs fn on a fresh store, in parallel with the other tests of its group.
func (s *suite) test(t *testing.T, name string, fn func(t *testing.T, st verity.Store)) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		t.Parallel()
		fn(t, s.open(t))
	})
}

// serialTest runs fn on a fresh store, alone: no other test of the suite runs meanwhile,
// so it may move the shared clock. (Go runs a group's serial subtests before its parallel
// ones, and the groups one after the other.)
func (s *suite) serialTest(t *testing.T, name string, fn func(t *testing.T, st verity.Store)) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		fn(t, s.open(t))
	})
}

// open returns a fresh store that is closed when the test ends.
func (s *suite) open(t testing.TB) verity.Store {
	t.Helper()
	st := s.h.New(t)
	if st == nil {
		t.Fatal("storetest: Harness.New returned nil")
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// reopen closes st and opens its data again; it skips the test without Features.Reopen.
func (s *suite) reopen(t testing.TB, st verity.Store) verity.Store {
	t.Helper()
	s.needReopen(t)
	st2 := s.h.Reopen(t, st)
	if st2 == nil {
		t.Fatal("storetest: Harness.Reopen returned nil")
	}
	t.Cleanup(func() { _ = st2.Close() })
	return st2
}

func (s *suite) needReopen(t testing.TB) {
	t.Helper()
	if !s.h.Features.Reopen {
		t.Skip("storetest: the harness cannot reopen a store (Features.Reopen is false)")
	}
}

func (s *suite) needClock(t testing.TB) *FakeClock {
	t.Helper()
	if !s.h.Features.ControlClock {
		t.Skip("storetest: the harness does not control the store's clock (Features.ControlClock is false)")
	}
	return s.h.Clock
}

// tick moves the controlled clock forward by d so that events appended before and after
// get distinct commit times; without a controlled clock it does nothing.
func (s *suite) tick(d time.Duration) {
	if s.h.Features.ControlClock {
		s.h.Clock.Advance(d)
	}
}
