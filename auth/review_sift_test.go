package auth

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/verity-dev/verity"
)

// queuedConsumer is a GroupConsumer over a fixed queue that, as package persistent's,
// hands out what it has queued even when ctx has ended, and whose Nack fails once ctx has
// ended (the group's op channel and ctx.Done both ready: persistent picks either).
type queuedConsumer struct {
	queue  []verity.GroupMessage
	parked []uuid.UUID
}

func (c *queuedConsumer) Recv(ctx context.Context) (verity.GroupMessage, error) {
	if len(c.queue) == 0 {
		<-ctx.Done()
		return verity.GroupMessage{}, ctx.Err()
	}
	m := c.queue[0]
	c.queue = c.queue[1:]
	return m, nil
}

func (c *queuedConsumer) Ack(context.Context, ...uuid.UUID) error { return nil }

func (c *queuedConsumer) Nack(ctx context.Context, a verity.NackAction, _ string, ids ...uuid.UUID) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if a == verity.NackPark {
		c.parked = append(c.parked, ids...)
	}
	return nil
}

func (c *queuedConsumer) Close() error { return nil }

// A Recv whose context ends while it parks a hidden event must not strand that event in
// flight with the consumer (where it holds one of MaxInFlight's places, for ever when the
// group's MessageTimeout is never): the next Recv parks it.
func TestAHiddenEventIsParkedEvenIfTheRecvThatMetItEnded(t *testing.T) {
	_, svc := decisionFixture(t, Config{})
	hidden := verity.GroupMessage{Event: verity.RecordedEvent{ID: uuid.New(), Stream: "invoice-1"}}
	seen := verity.GroupMessage{Event: verity.RecordedEvent{ID: uuid.New(), Stream: "order-7"}}
	q := &queuedConsumer{queue: []verity.GroupMessage{hidden, seen}}
	clk := newClock()
	c := &siftedConsumer{GroupConsumer: q, user: orders.Name, sift: svc.newSifter(orders), now: clk.Now, reset: clk.Now()}
	if ok, err := c.visible(context.Background(), "invoice-1"); ok || err != nil {
		t.Fatalf("invoice-1 visible to orders: %t, %v; the test wants it hidden", ok, err)
	}

	ended, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Recv(ended); err == nil {
		t.Fatalf("Recv with an ended context: no error")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := c.Recv(ctx)
	if err != nil || m.Event.ID != seen.Event.ID {
		t.Fatalf("the next Recv: %v, %v; want order-7's event", m.Event.Stream, err)
	}
	if len(q.parked) != 1 || q.parked[0] != hidden.Event.ID {
		t.Fatalf("parked %v, want invoice-1's event %v: it is left in flight", q.parked, hidden.Event.ID)
	}
}
