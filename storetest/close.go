package storetest

import (
	"context"
	"testing"

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
			requireKind(t, err, verity.Unavailable, "Recv of subscription "+string(rune('2'+i))+" after Close")
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
