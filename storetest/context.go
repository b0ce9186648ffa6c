package storetest

import (
	"context"
	"errors"
	"testing"

	"github.com/verity-dev/verity"
)

func testContext(t *testing.T, s *suite) {
	calls := []struct {
		name   string
		writes bool
		do     func(ctx context.Context, st verity.Store) error
	}{
		{"Append", true, func(ctx context.Context, st verity.Store) error {
			_, err := st.Append(ctx, "order-1", verity.Any(), event("OrderChanged", 1))
			return err
		}},
		{"AppendMulti", true, func(ctx context.Context, st verity.Store) error {
			_, err := st.AppendMulti(ctx, verity.StreamAppend{Stream: "order-2", Events: events("OrderChanged", 1)})
			return err
		}},
		{"ReadStream", false, func(ctx context.Context, st verity.Store) error {
			_, err := st.ReadStream(ctx, "order-1", verity.ReadStreamOptions{})
			return err
		}},
		{"ReadAll", false, func(ctx context.Context, st verity.Store) error {
			_, err := st.ReadAll(ctx, verity.ReadAllOptions{})
			return err
		}},
		{"GetStreamMetadata", false, func(ctx context.Context, st verity.Store) error {
			_, err := st.GetStreamMetadata(ctx, "order-1")
			return err
		}},
		{"SetStreamMetadata", true, func(ctx context.Context, st verity.Store) error {
			_, err := st.SetStreamMetadata(ctx, "order-1", verity.Any(), verity.StreamMetadata{MaxCount: 1})
			return err
		}},
		{"DeleteStream", true, func(ctx context.Context, st verity.Store) error {
			_, err := st.DeleteStream(ctx, "order-1", verity.Any())
			return err
		}},
		{"TombstoneStream", true, func(ctx context.Context, st verity.Store) error {
			_, err := st.TombstoneStream(ctx, "order-1", verity.Any())
			return err
		}},
	}
	// A call whose context has already ended fails with the context's error and changes
	// nothing (the contract: cancellation is honoured promptly).
	for _, c := range calls {
		s.test(t, c.name+" with a canceled context fails with the context's error and changes nothing", func(t *testing.T, st verity.Store) {
			mustAppend(t, st, "order-1", verity.Any(), events("OrderChanged", 3)...)
			mustSetMetadata(t, st, "order-1", verity.Any(), verity.StreamMetadata{MaxCount: 10})
			before := readAll(t, st, verity.Filter{})
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			err := c.do(ctx, st)
			if err == nil {
				t.Fatalf("%s with a canceled context succeeded; want context.Canceled", c.name)
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("%s with a canceled context returned %v, want context.Canceled", c.name, err)
			}
			requireSameRecorded(t, readAll(t, st, verity.Filter{}), before, "the log")
			requireVisible(t, st, "order-1", []uint64{0, 1, 2})
		})
	}
}
