package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/verity-dev/verity"
)

// subscribe starts a subscription that ends with the test.
func subscribe(t testing.TB, st verity.Store, opts verity.SubscribeOptions) verity.Subscription {
	t.Helper()
	sub, err := st.Subscribe(t.Context(), opts)
	if err != nil {
		t.Fatalf("Subscribe(%+v): %v", opts, err)
	}
	if sub == nil {
		t.Fatalf("Subscribe(%+v) returned a nil subscription", opts)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return sub
}

// subscribeErr returns the error that refuses opts: that of Subscribe, or, for a store that
// checks lazily, that of the first Recv.
func subscribeErr(t testing.TB, st verity.Store, opts verity.SubscribeOptions) error {
	t.Helper()
	sub, err := st.Subscribe(t.Context(), opts)
	if err != nil {
		return err
	}
	defer sub.Close()
	ctx, cancel := recvCtx(t)
	defer cancel()
	msg, err := sub.Recv(ctx)
	if err == nil {
		t.Fatalf("Subscribe(%+v) was accepted and delivered a %v message", opts, msg.Kind)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Subscribe(%+v) was accepted and Recv waited %v without an error", opts, waitTimeout)
	}
	return err
}

// recv returns the next message, failing the test if none comes within waitTimeout.
func recv(t testing.TB, sub verity.Subscription) verity.SubscriptionMessage {
	t.Helper()
	ctx, cancel := recvCtx(t)
	defer cancel()
	msg, err := sub.Recv(ctx)
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	switch msg.Kind {
	case verity.MessageEvent, verity.MessageCaughtUp, verity.MessageCheckpoint:
	default:
		t.Fatalf("Recv returned a message of unknown kind %d", msg.Kind)
	}
	return msg
}

// recvUntilCaughtUp returns the events delivered before the CaughtUp message, and that
// message. Checkpoints are skipped; events must come in position order.
func recvUntilCaughtUp(t testing.TB, sub verity.Subscription) ([]verity.RecordedEvent, verity.SubscriptionMessage) {
	t.Helper()
	var evs []verity.RecordedEvent
	for {
		msg := recv(t, sub)
		switch msg.Kind {
		case verity.MessageCaughtUp:
			return evs, msg
		case verity.MessageEvent:
			if n := len(evs); n > 0 && msg.Event.Position <= evs[n-1].Position {
				t.Fatalf("the subscription delivered position %d after %d", msg.Event.Position, evs[n-1].Position)
			}
			evs = append(evs, msg.Event)
		}
	}
}

// recvEvents returns the next n events. Checkpoints are skipped; a second CaughtUp fails
// the test, and events must come in position order.
func recvEvents(t testing.TB, sub verity.Subscription, n int, after uint64) []verity.RecordedEvent {
	t.Helper()
	evs := make([]verity.RecordedEvent, 0, n)
	for len(evs) < n {
		msg := recv(t, sub)
		switch msg.Kind {
		case verity.MessageCaughtUp:
			t.Fatalf("a second CaughtUp message came after %d live events", len(evs))
		case verity.MessageEvent:
			if msg.Event.Position <= after {
				t.Fatalf("the subscription delivered position %d after %d", msg.Event.Position, after)
			}
			after = msg.Event.Position
			evs = append(evs, msg.Event)
		}
	}
	return evs
}

// lastOf is the position of the last event of evs, or def when there is none.
func lastOf(evs []verity.RecordedEvent, def uint64) uint64 {
	if len(evs) == 0 {
		return def
	}
	return evs[len(evs)-1].Position
}

// filterProgress checks what a filtered subscription delivered against the whole log: the
// matching events in order, each once; checkpoints and CaughtUp that never go back and
// never claim a matching event that was not delivered; and never more than every skipped
// events between two messages.
type filterProgress struct {
	log        []verity.RecordedEvent // the whole log, positions 1..n
	match      func(verity.RecordedEvent) bool
	every      int
	considered uint64
}

func (p *filterProgress) check(msg verity.SubscriptionMessage) error {
	var upTo uint64 // last position the message covers
	switch msg.Kind {
	case verity.MessageEvent:
		upTo = msg.Event.Position
		if upTo <= p.considered {
			return fmt.Errorf("event at position %d delivered after progress up to %d", upTo, p.considered)
		}
		if !p.match(msg.Event) {
			return fmt.Errorf("event %s does not pass the filter", describe(msg.Event))
		}
	case verity.MessageCheckpoint, verity.MessageCaughtUp:
		upTo = msg.Position
		if upTo < p.considered {
			return fmt.Errorf("%v at position %d after progress up to %d", msg.Kind, upTo, p.considered)
		}
	}
	if upTo > uint64(len(p.log)) {
		return fmt.Errorf("%v at position %d, past the end of the log at %d", msg.Kind, upTo, len(p.log))
	}
	if msg.Kind == verity.MessageEvent && p.log[upTo-1].ID != msg.Event.ID {
		return fmt.Errorf("event delivered at position %d is %s, the log holds %s", upTo, describe(msg.Event), describe(p.log[upTo-1]))
	}
	skipped := 0
	for pos := p.considered + 1; pos <= upTo; pos++ {
		e := p.log[pos-1]
		if pos == upTo && msg.Kind == verity.MessageEvent {
			break
		}
		if p.match(e) {
			return fmt.Errorf("%v at position %d, but matching position %d was never delivered", msg.Kind, upTo, pos)
		}
		skipped++
	}
	if skipped > p.every {
		return fmt.Errorf("%v at position %d came after %d skipped events since position %d; CheckpointEvery is %d", msg.Kind, upTo, skipped, p.considered, p.every)
	}
	p.considered = upTo
	return nil
}

// fmtMessages lists messages briefly for a failure report.
func fmtMessages(msgs []verity.SubscriptionMessage) string {
	var b []byte
	for _, m := range msgs {
		switch m.Kind {
		case verity.MessageEvent:
			b = fmt.Appendf(b, "[event %d %s] ", m.Event.Position, m.Event.Type)
		default:
			b = fmt.Appendf(b, "[%v %d] ", m.Kind, m.Position)
		}
	}
	return string(b)
}
