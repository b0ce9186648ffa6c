package main

import (
	"context"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/engine"
)

// startTail runs f, a tail, in a goroutine; the returned stop cancels it and returns what it
// returned.
func startTail(t testing.TB, f func(ctx context.Context) error) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	var err error
	go func() {
		defer close(done)
		err = f(ctx)
	}()
	stop = func() error {
		cancel()
		<-done
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

func TestTailPrintsHistoryThenStopsWhenInterrupted(t *testing.T) {
	dir := t.TempDir()
	seedLog(t, dir)
	stdout, stderr := newSyncBuffer(), newSyncBuffer()
	stop := startTail(t, func(ctx context.Context) error {
		return runTail(ctx, []string{"--data", dir, "--from", "start", "order-1"}, stdout, stderr)
	})
	stderr.waitFor(t, "caught up", func(s string) bool { return strings.Contains(s, "caught up") })
	if err := stop(); err != nil {
		t.Fatalf("an interrupted tail returned %v, want nil", err)
	}
	want := []string{"1 order-1@0 OrderPlaced", "2 order-1@1 OrderShipped"}
	if got := summary(stdout.String()); !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestTailPrintsFilteredHistoryOfTheLog(t *testing.T) {
	dir := t.TempDir()
	seedLog(t, dir)
	stdout, stderr := newSyncBuffer(), newSyncBuffer()
	stop := startTail(t, func(ctx context.Context) error {
		return runTail(ctx, []string{"--data", dir, "--from", "2", "--type", "OrderPlaced", "--json"}, stdout, stderr)
	})
	stderr.waitFor(t, "caught up", func(s string) bool { return strings.Contains(s, "caught up") })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	got := lines(stdout.String())
	if len(got) != 1 || !strings.HasPrefix(got[0], `{"position":4,"stream":"order-2","revision":0,`) {
		t.Errorf("got %q, want only order-2's OrderPlaced as JSON", got)
	}
}

func TestTailPrintsEventsAsTheyAreCommitted(t *testing.T) {
	e := openTestEngine(t, t.TempDir())
	mustAppend(t, e, "order-1", jsonEvent("OrderPlaced", `{"before":true}`))
	stdout, stderr := newSyncBuffer(), newSyncBuffer()
	opts := verity.SubscribeOptions{FromEnd: true, Filter: verity.Filter{Categories: []string{"order"}}}
	stop := startTail(t, func(ctx context.Context) error {
		return tail(ctx, e, opts, newEventPrinter(stdout, false), stderr)
	})
	stderr.waitFor(t, "caught up", func(s string) bool { return strings.Contains(s, "caught up") })

	mustAppend(t, e, "customer-1", jsonEvent("CustomerRegistered", `{}`))
	mustAppend(t, e, "order-1", jsonEvent("OrderShipped", `{}`))
	mustAppend(t, e, "order-2", jsonEvent("OrderPlaced", `{"total":7}`))
	out := stdout.waitFor(t, "the live events", func(s string) bool { return len(lines(s)) >= 2 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// Had the filter let customer-1 through, it would have come before order-2's event.
	want := []string{"3 order-1@1 OrderShipped", "4 order-2@0 OrderPlaced"}
	if got := summary(out); !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestTailStopsWhenTheStoreCloses(t *testing.T) {
	e, err := engine.Open(engine.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	stderr := newSyncBuffer()
	done := make(chan error, 1)
	go func() {
		done <- tail(t.Context(), e, verity.SubscribeOptions{}, newEventPrinter(io.Discard, false), stderr)
	}()
	stderr.waitFor(t, "caught up", func(s string) bool { return strings.Contains(s, "caught up") })
	e.Close()
	if err := <-done; err == nil {
		t.Error("tail of a closed store returned nil, want an error")
	}
}

func TestTailRejectsBadCommandLines(t *testing.T) {
	dir := t.TempDir() // usage errors are found before the store is opened
	tests := []struct {
		name string
		args []string
	}{
		{"a filter with a stream", []string{"--category", "order", "order-1"}},
		{"--since with --from", []string{"--since", "2000-01-01T00:00:00Z", "--from", "start"}},
		{"a bad --from", []string{"--from", "now"}},
		{"a bad regexp", []string{"--type-regexp", "[a"}},
		{"two streams", []string{"order-1", "order-2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := runCmd(t, runTail, append([]string{"--data", dir}, tt.args...)...)
			wantUsageError(t, err)
		})
	}
}
