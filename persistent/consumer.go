package persistent

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/verity-dev/verity"
)

// consumer is one member of a group. The fields above mu belong to the group's actor;
// the queue and the disconnect error are shared with the consumer's caller under mu.
type consumer struct {
	g         *group
	id, name  string
	max       int
	connected time.Time

	inflight                 map[uuid.UUID]*entry
	delivered, acked, nacked uint64
	pins                     int

	mu     sync.Mutex
	queue  []delivery // delivered, not yet received
	err    error      // set once disconnected
	notify chan struct{}
	gone   chan struct{}
	once   sync.Once
	leave  sync.Once
}

type delivery struct {
	msg verity.GroupMessage
	e   *entry
}

var _ verity.GroupConsumer = (*consumer)(nil)

func (c *consumer) room() bool { return len(c.inflight) < c.max }

// push hands a delivery to the consumer; called by the actor. The queue never holds more
// than max entries, since each is in flight.
func (c *consumer) push(d delivery) {
	c.mu.Lock()
	if c.err == nil {
		c.queue = append(c.queue, d)
	}
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// unqueue takes back a delivery the consumer has not received yet (it timed out).
func (c *consumer) unqueue(e *entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, d := range c.queue {
		if d.e == e {
			c.queue = slices.Delete(c.queue, i, i+1)
			return
		}
	}
}

// disconnect ends the consumer with err (the first error wins).
func (c *consumer) disconnect(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.queue = nil
	c.mu.Unlock()
	c.once.Do(func() { close(c.gone) })
}

func (c *consumer) disconnected() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Recv implements verity.GroupConsumer.
func (c *consumer) Recv(ctx context.Context) (verity.GroupMessage, error) {
	for {
		c.mu.Lock()
		if c.err != nil {
			err := c.err
			c.mu.Unlock()
			return verity.GroupMessage{}, err
		}
		if len(c.queue) > 0 {
			d := c.queue[0]
			c.queue[0] = delivery{}
			c.queue = c.queue[1:]
			c.mu.Unlock()
			return d.msg, nil
		}
		c.mu.Unlock()
		select {
		case <-c.notify:
		case <-c.gone:
		case <-ctx.Done():
			return verity.GroupMessage{}, ctx.Err()
		}
	}
}

// Ack implements verity.GroupConsumer. It returns once the group has the acks in line;
// a GetGroup that follows sees them.
func (c *consumer) Ack(ctx context.Context, ids ...uuid.UUID) error {
	if len(ids) == 0 {
		return nil
	}
	if err := c.disconnected(); err != nil {
		return err
	}
	return c.g.send(ctx, op{kind: opAck, c: c, ids: slices.Clone(ids)})
}

// Nack implements verity.GroupConsumer.
func (c *consumer) Nack(ctx context.Context, action verity.NackAction, reason string, ids ...uuid.UUID) error {
	if action < verity.NackPark || action > verity.NackStop {
		return verity.Errorf(verity.Invalid, "nack", "unknown nack action %d", action)
	}
	if err := c.disconnected(); err != nil {
		return err
	}
	if len(ids) == 0 && action != verity.NackStop {
		return nil
	}
	return c.g.send(ctx, op{kind: opNack, c: c, ids: slices.Clone(ids), action: action, reason: reason})
}

// Close implements verity.GroupConsumer.
func (c *consumer) Close() error {
	c.disconnect(verity.Errorf(verity.Conflict, "recv", "consumer %s of group %q closed", c.id, c.g.def.Group))
	c.leave.Do(func() {
		select {
		case c.g.ops <- op{kind: opLeave, c: c}:
		case <-c.g.done:
		}
	})
	return nil
}
