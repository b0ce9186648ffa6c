package sdktest_test

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/verity-dev/verity/sdk"
	"github.com/verity-dev/verity/sdk/sdktest"
)

type counter struct{ N int }

type (
	incremented struct{ By int }
	reset       struct{}
)

type add struct{ By int }

var errTooBig = errors.New("too big")

var counterDecider = sdk.Decider[counter, add, any]{
	Decide: func(s counter, c add) ([]any, error) {
		if s.N+c.By > 10 {
			return nil, errTooBig
		}
		return []any{incremented{By: c.By}}, nil
	},
	Evolve: func(s counter, e any) counter {
		switch e := e.(type) {
		case incremented:
			s.N += e.By
		case reset:
			s.N = 0
		}
		return s
	},
}

// recorder is a testing.TB whose Fatalf records the message and ends the goroutine, so a
// failing assertion can itself be tested.
type recorder struct {
	testing.TB
	mu     sync.Mutex
	failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.failed = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}

// run runs f against a recorder and returns the failure message ("" if none).
func run(t *testing.T, f func(tb testing.TB)) string {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

func TestScenarios(t *testing.T) {
	t.Run("passing scenarios pass", func(t *testing.T) {
		sdktest.Given(t, counterDecider, incremented{By: 2}).When(add{By: 3}).Then(incremented{By: 3}).ThenState(counter{N: 5})
		sdktest.Given(t, counterDecider, incremented{By: 9}, reset{}).When(add{By: 10}).Then(incremented{By: 10})
		sdktest.Given(t, counterDecider, incremented{By: 9}).When(add{By: 2}).ThenError(errTooBig)
	})
	tests := []struct {
		name string
		f    func(tb testing.TB)
		want []string
	}{
		{"other events fail with a diff", func(tb testing.TB) {
			sdktest.Given(tb, counterDecider).When(add{By: 3}).Then(incremented{By: 4})
		}, []string{"want events [sdktest_test.incremented{By:4}]", "got events  [sdktest_test.incremented{By:3}]", "-want +got", "-", "+"}},
		{"an error where events were expected fails", func(tb testing.TB) {
			sdktest.Given(tb, counterDecider, incremented{By: 10}).When(add{By: 1}).Then(incremented{By: 1})
		}, []string{"given 1 event(s)", "got error: too big"}},
		{"events where an error was expected fail", func(tb testing.TB) {
			sdktest.Given(tb, counterDecider).When(add{By: 1}).ThenError(errTooBig)
		}, []string{"want error too big", "got events [sdktest_test.incremented{By:1}]"}},
		{"another error fails", func(tb testing.TB) {
			other := errors.New("other")
			d := counterDecider
			d.Decide = func(counter, add) ([]any, error) { return nil, other }
			sdktest.Given(tb, d).When(add{}).ThenError(errTooBig)
		}, []string{"want error too big", "got error  other"}},
		{"another state fails with a diff", func(tb testing.TB) {
			sdktest.Given(tb, counterDecider).When(add{By: 1}).ThenState(counter{N: 2})
		}, []string{"state differs", "N:"}},
		{"Then without When fails", func(tb testing.TB) {
			sdktest.Given(tb, counterDecider).Then()
		}, []string{"without When"}},
		{"a given value of the wrong type fails", func(tb testing.TB) {
			d := sdk.Decider[counter, add, fmt.Stringer]{Decide: func(counter, add) ([]fmt.Stringer, error) { return nil, nil }, Evolve: func(s counter, _ fmt.Stringer) counter { return s }}
			sdktest.Given(tb, d, 42)
		}, []string{"event 0 is a int, not a fmt.Stringer"}},
		{"a view unlike the fold fails", func(tb testing.TB) {
			sdktest.AssertFold(tb, counter{N: 4}, counter{}, counterDecider.Evolve, incremented{By: 2}, incremented{By: 3})
		}, []string{"view differs from the fold of 2 event(s)", "N:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := run(t, tt.f)
			if msg == "" {
				t.Fatal("the assertion passed")
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Fatalf("failure message lacks %q:\n%s", w, msg)
				}
			}
		})
	}
	t.Run("a view equal to the fold passes", func(t *testing.T) {
		sdktest.AssertFold(t, counter{N: 5}, counter{}, counterDecider.Evolve, incremented{By: 2}, incremented{By: 3})
	})
}
