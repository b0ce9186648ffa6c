package storetest

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/verity-dev/verity"
)

func testClose(t *testing.T, s *suite) {
	calls := []struct {
		name string
		do   func(ctx context.Context, st verity.Store) error
	}{
		{"Append", func(ctx context.Context, st verity.Store) error {
			_, err := st.Append(ctx, "order-1", verity.Any(), event("OrderChanged", 1))
			return err
		}},
		{"AppendMulti", func(ctx context.Context, st verity.Store) error {
			_, err := st.AppendMulti(ctx, verity.StreamAppend{Stream: "order-1", Events: events("OrderChanged", 1)})
			return err
		}},
		{"ReadStream", func(ctx context.Context, st verity.Store) error {
			_, err := st.ReadStream(ctx, "order-1", verity.ReadStreamOptions{})
			return err
		}},
		{"ReadAll", func(ctx context.Context, st verity.Store) error {
			_, err := st.ReadAll(ctx, verity.ReadAllOptions{})
			return err
		}},
		{"GetStreamMetadata", func(ctx context.Context, st verity.Store) error {
			_, err := st.GetStreamMetadata(ctx, "order-1")
			return err
		}},
		{"SetStreamMetadata", func(ctx context.Context, st verity.Store) error {
			_, err := st.SetStreamMetadata(ctx, "order-1", verity.Any(), verity.StreamMetadata{MaxCount: 3})
			return err
		}},
		{"DeleteStream", func(ctx context.Context, st verity.Store) error {
			_, err := st.DeleteStream(ctx, "order-1", verity.Any())
			return err
		}},
		{"TombstoneStream", func(ctx context.Context, st verity.Store) error {
			_, err := st.TombstoneStream(ctx, "order-1", verity.Any())
			return err
		}},
	}
	for _, c := range calls {
		s.test(t, c.name+" after Close is Unavailable", func(t *testing.T, st verity.Store) {
			mustAppend(t, st, "order-1", verity.Any(), event("OrderChanged", 0))
			mustSetMetadata(t, st, "order-1", verity.Any(), verity.StreamMetadata{MaxCount: 10})
			if err := st.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			requireKind(t, c.do(t.Context(), st), verity.Unavailable, c.name+" after Close")
		})
	}

	s.test(t, "Subscribe after Close is Unavailable", func(t *testing.T, st verity.Store) {
		mustAppend(t, st, "order-1", verity.Any(), event("OrderChanged", 0))
		if err := st.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		requireKind(t, subscribeErr(t, st, verity.SubscribeOptions{}), verity.Unavailable, "Subscribe to the log after Close")
		requireKind(t, subscribeErr(t, st, verity.SubscribeOptions{Stream: "order-1"}), verity.Unavailable, "Subscribe to a stream after Close")
	})

	s.test(t, "Close ends the Recv of every subscription with Unavailable", func(t *testing.T, st verity.Store) {
		mustAppend(t, st, "order-1", verity.Any(), event("OrderChanged", 0))
		subs := []verity.Subscription{
			subscribe(t, st, verity.SubscribeOptions{}),
			subscribe(t, st, verity.SubscribeOptions{Stream: "order-1"}),
			subscribe(t, st, verity.SubscribeOptions{Filter: verity.Filter{EventTypes: []string{"Nothing"}}}),
		}
		for _, sub := range subs {
			recvUntilCaughtUp(t, sub)
		}
		errc := make(chan error, 1)
		go func() {
			ctx, cancel := recvCtx(t)
			defer cancel()
			_, err := subs[0].Recv(ctx)
			errc <- err
		}()
		if err := st.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		done := make(chan struct{})
		var err error
		go func() { err = <-errc; close(done) }()
		waitFor(t, done, "a waiting Recv after Close")
		requireKind(t, err, verity.Unavailable, "a waiting Recv after Close")
		for i, sub := range subs[1:] {
			ctx, cancel := recvCtx(t)
			msg, err := sub.Recv(ctx)
			cancel()
			for err == nil && msg.Kind == verity.MessageCheckpoint {
				ctx, cancel = recvCtx(t)
				msg, err = sub.Recv(ctx)
				cancel()
			}
			requireKind(t, err, verity.Unavailable, fmt.Sprintf("Recv of subscription %d after Close", i+2))
		}
	})

	t.Run("Close leaves no goroutine of the store running", func(t *testing.T) {
		// Not parallel: it counts the goroutines of the whole process.
		before := runtime.NumGoroutine()
		st := s.h.New(t)
		t.Cleanup(func() { _ = st.Close() })
		mustAppend(t, st, "order-1", verity.Any(), events("OrderChanged", 3)...)
		subs := []verity.Subscription{
			subscribe(t, st, verity.SubscribeOptions{}),
			subscribe(t, st, verity.SubscribeOptions{Stream: "order-1"}),
			subscribe(t, st, verity.SubscribeOptions{Filter: verity.Filter{EventTypes: []string{"OrderChanged"}}}),
			subscribe(t, st, verity.SubscribeOptions{FromEnd: true}),
		}
		for _, sub := range subs[:3] {
			recvUntilCaughtUp(t, sub)
		}
		appendConcurrently(t, st, 4, 5, func(g, i int) string { return "order-1" })
		if _, err := st.DeleteStream(t.Context(), "order-1", verity.Any()); err != nil {
			t.Fatal(err)
		}
		subs[0].Close() // one closed by its owner, the others by the store
		if err := st.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		// Close waits for the store's goroutines; a network client's transport may take a
		// moment longer to wind down, hence the wait.
		deadline := time.Now().Add(waitTimeout)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Fatalf("%d goroutines ran before the store was opened, %d after it was closed:\n%s", before, runtime.NumGoroutine(), buf)
			}
			runtime.Gosched()
			time.Sleep(time.Millisecond)
		}
	})

	s.test(t, "Close twice does not fail the first time nor panic the second", func(t *testing.T, st verity.Store) {
		mustAppend(t, st, "order-1", verity.Any(), event("OrderChanged", 0))
		if err := st.Close(); err != nil {
			t.Fatalf("the first Close: %v", err)
		}
		_ = st.Close() // may report that it is already closed
		requireKind(t, func() error { _, err := st.ReadAll(t.Context(), verity.ReadAllOptions{}); return err }(), verity.Unavailable, "ReadAll after two Closes")
	})
}
