package sdktest

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/verity-dev/verity/sdk"
)

// Scenario is one given/when/then test of a Decider.
type Scenario[S, C, E any] struct {
	t       testing.TB
	decider sdk.Decider[S, C, E]
	given   []E
	state   S

	cmd     C
	decided bool
	events  []E
	err     error
}

// Given starts a scenario: the entity's state is the fold of events over the decider's
// initial state. Each event must be an E; they are typed any only so that Go can infer
// the decider's types when E is an interface (Given(t, d, Opened{}) rather than
// Given(t, d, []AccountEvent{Opened{}}...)). A value that is not an E fails the test.
func Given[S, C, E any](t testing.TB, d sdk.Decider[S, C, E], events ...any) *Scenario[S, C, E] {
	t.Helper()
	if err := d.Validate(); err != nil {
		t.Fatalf("sdktest.Given: %v", err)
	}
	given := asEvents[E](t, "Given", events)
	return &Scenario[S, C, E]{t: t, decider: d, given: given, state: d.Fold(d.InitialState(), given...)}
}

// When decides cmd against the given state.
func (s *Scenario[S, C, E]) When(cmd C) *Scenario[S, C, E] {
	s.cmd, s.decided = cmd, true
	s.events, s.err = s.decider.Decide(s.state, cmd)
	return s
}

func (s *Scenario[S, C, E]) mustHaveDecided(then string) {
	s.t.Helper()
	if !s.decided {
		s.t.Fatalf("sdktest: %s without When: call When(command) first", then)
	}
}

// Then checks that the command was accepted and decided exactly the events want, in
// order (none when want is empty). It returns the scenario for ThenState.
func (s *Scenario[S, C, E]) Then(want ...E) *Scenario[S, C, E] {
	s.t.Helper()
	s.mustHaveDecided("Then")
	if s.err != nil {
		s.t.Fatalf("given %d event(s), when %#v:\nwant events %s\ngot error: %v", len(s.given), s.cmd, show(want), s.err)
	}
	if diff := Diff(want, s.events); diff != "" {
		s.t.Fatalf("given %d event(s), when %#v:\nwant events %s\ngot events  %s\ndiff (-want +got):\n%s", len(s.given), s.cmd, show(want), show(s.events), diff)
	}
	return s
}

// ThenError checks that the command was refused with an error matching target
// (errors.Is; errors.As when target is a pointer to an error type's variable).
func (s *Scenario[S, C, E]) ThenError(target error) {
	s.t.Helper()
	s.mustHaveDecided("ThenError")
	if s.err == nil {
		s.t.Fatalf("given %d event(s), when %#v:\nwant error %v\ngot events %s", len(s.given), s.cmd, target, show(s.events))
	}
	if errors.Is(s.err, target) {
		return
	}
	s.t.Fatalf("given %d event(s), when %#v:\nwant error %v (%T)\ngot error  %v (%T)", len(s.given), s.cmd, target, target, s.err, s.err)
}

// ThenState checks the state after the given events and the decided ones.
func (s *Scenario[S, C, E]) ThenState(want S) *Scenario[S, C, E] {
	s.t.Helper()
	got := s.decider.Fold(s.state, s.events...)
	if diff := Diff(want, got); diff != "" {
		s.t.Fatalf("given %d event(s), when %#v: state differs (-want +got):\n%s", len(s.given), s.cmd, diff)
	}
	return s
}

// AssertFold checks that got (a view read back from a projection, a cache, a report)
// equals the fold of events through evolve from initial: the view is what the log says.
// Each event must be an E (typed any for inference, as in Given).
func AssertFold[V, E any](t testing.TB, got V, initial V, evolve func(V, E) V, events ...any) {
	t.Helper()
	want := initial
	for _, e := range asEvents[E](t, "AssertFold", events) {
		want = evolve(want, e)
	}
	if diff := Diff(want, got); diff != "" {
		t.Fatalf("view differs from the fold of %d event(s) (-want +got):\n%s", len(events), diff)
	}
}

func asEvents[E any](t testing.TB, caller string, events []any) []E {
	t.Helper()
	out := make([]E, len(events))
	for i, v := range events {
		e, ok := v.(E)
		if !ok {
			t.Fatalf("sdktest.%s: event %d is a %T, not a %v", caller, i, v, reflect.TypeFor[E]())
		}
		out[i] = e
	}
	return out
}

// Diff returns a readable diff of two values (-want +got), "" when they are equal.
// Unexported fields are compared too.
func Diff(want, got any) string {
	return cmp.Diff(want, got, cmp.Exporter(func(reflect.Type) bool { return true }))
}

func show[E any](events []E) string {
	if len(events) == 0 {
		return "(none)"
	}
	var b []byte
	b = append(b, '[')
	for i, e := range events {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = fmt.Appendf(b, "%#v", e)
	}
	return string(append(b, ']'))
}
