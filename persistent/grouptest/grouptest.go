package grouptest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/verity-dev/verity"
)

// Harness makes what the suite tests. Both functions are called from parallel tests.
type Harness struct {
	// New returns fresh Groups over a fresh Store, both closed by the harness at the end
	// of the test (t.Cleanup).
	New func(t testing.TB) (verity.Groups, verity.Store)
	// Reopen closes the Groups and Store of the test's last New or Reopen and opens them
	// again over the same data, as a server restart does. Nil when unsupported: the
	// restart tests are then skipped.
	Reopen func(t testing.TB) (verity.Groups, verity.Store)
}

// wait is how long the suite waits for any one condition.
const wait = 10 * time.Second

// Run runs the whole suite.
func Run(t *testing.T, h Harness) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"groups are created, described, listed, updated and deleted", testLifecycle},
		{"bad names and settings are invalid and change nothing", testInvalid},
		{"a stream group delivers in order and acks move the checkpoint", testDeliverAck},
		{"a group on a stream not written yet gets its events when they come", testStreamLater},
		{"FromEnd and From choose where a new group starts", testFrom},
		{"nack park parks and replay delivers the event again before new ones", testNackParkReplay},
		{"nack retry delivers again with a retry count", testNackRetry},
		{"nack skip never delivers again", testNackSkip},
		{"nack stop disconnects the consumer and its events go to another", testNackStop},
		{"message timeouts redeliver and park past the max retry count", testTimeout},
		{"a poison event is parked while the others flow", testPoison},
		{"round robin shares events among consumers", testRoundRobin},
		{"dispatch to single gives everything to one consumer", testDispatchToSingle},
		{"pinned keeps each stream on one consumer in order", testPinned},
		{"pinned by correlation pins on the correlation id", testPinnedByCorrelation},
		{"pinned streams move to another consumer when theirs leaves", testPinnedLeave},
		{"a consumer closed without acking has its events redelivered", testCrash},
		{"max in flight holds deliveries back until acks", testMaxInFlight},
		{"max consumers refuses one more consumer", testMaxConsumers},
		{"a log group delivers what its filter selects", testLogFilter},
		{"update disconnects consumers and keeps the checkpoint", testUpdate},
		{"restart redelivers what was not acked and nothing acked", testRestart},
		{"delete disconnects consumers with not found", testDelete},
		{"ordered quarantine holds a stream behind its parked event", testQuarantine},
		{"reopening loses nothing and skips nothing", testReopen},
		{"parked events survive reopening and are replayed once", testReopenParked},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, h)
		})
	}
}

// ---- helpers ----

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

func uniq(prefix string) string {
	return prefix + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
}

// fast makes checkpoints written at once and keeps the other settings.
func fast(s verity.GroupSettings) verity.GroupSettings {
	s.CheckpointAfter = time.Millisecond
	s.CheckpointLowerBound = -1
	return s
}

func appendN(t testing.TB, st verity.Store, stream string, n int) []uuid.UUID {
	t.Helper()
	evs := make([]verity.EventData, n)
	ids := make([]uuid.UUID, n)
	for i := range evs {
		ids[i] = uuid.New()
		evs[i] = verity.EventData{ID: ids[i], Type: "Happened", Data: []byte(fmt.Sprintf(`{"n":%d}`, i))}
	}
	if _, err := st.Append(ctxT(t), stream, verity.Any(), evs...); err != nil {
		t.Fatalf("append %d events to %q: %v", n, stream, err)
	}
	return ids
}

func create(t testing.TB, gs verity.Groups, spec verity.GroupSpec) {
	t.Helper()
	if err := gs.CreateGroup(ctxT(t), spec); err != nil {
		t.Fatalf("create group %q on %q: %v", spec.Group, spec.Stream, err)
	}
}

func join(t testing.TB, gs verity.Groups, stream, group string, maxInFlight int) verity.GroupConsumer {
	t.Helper()
	c, err := gs.JoinGroup(ctxT(t), stream, group, verity.JoinOptions{MaxInFlight: maxInFlight, Name: t.Name()})
	if err != nil {
		t.Fatalf("join group %q on %q: %v", group, stream, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func recv(t testing.TB, c verity.GroupConsumer) verity.GroupMessage {
	t.Helper()
	m, err := c.Recv(ctxT(t))
	if err != nil {
		t.Fatalf("recv: %v", err)
	}
	return m
}

func recvN(t testing.TB, c verity.GroupConsumer, n int) []verity.GroupMessage {
	t.Helper()
	out := make([]verity.GroupMessage, n)
	for i := range out {
		out[i] = recv(t, c)
	}
	return out
}

// requireQuiet checks that nothing arrives for a while (asserting an absence needs a
// window; it is short).
func requireQuiet(t testing.TB, c verity.GroupConsumer, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if m, err := c.Recv(ctx); err == nil {
		t.Fatalf("got event %s (stream %q revision %d), want nothing", m.Event.ID, m.Event.Stream, m.Event.Revision)
	} else if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("recv: %v, want nothing", err)
	}
}

func requireRecvKind(t testing.TB, c verity.GroupConsumer, k verity.ErrorKind) {
	t.Helper()
	for {
		m, err := c.Recv(ctxT(t))
		if err == nil {
			continue // an event delivered before the disconnect
		}
		_ = m
		if verity.KindOf(err) != k {
			t.Fatalf("recv: %v (kind %s), want kind %s", err, verity.KindOf(err), k)
		}
		return
	}
}

func requireKind(t testing.TB, err error, k verity.ErrorKind, what string) {
	t.Helper()
	if err == nil || verity.KindOf(err) != k {
		t.Fatalf("%s: got %v, want kind %s", what, err, k)
	}
}

func ack(t testing.TB, c verity.GroupConsumer, ms ...verity.GroupMessage) {
	t.Helper()
	for _, m := range ms {
		if err := c.Ack(ctxT(t), m.Event.ID); err != nil {
			t.Fatalf("ack %s: %v", m.Event.ID, err)
		}
	}
}

func nack(t testing.TB, c verity.GroupConsumer, a verity.NackAction, m verity.GroupMessage) {
	t.Helper()
	if err := c.Nack(ctxT(t), a, "test says "+a.String(), m.Event.ID); err != nil {
		t.Fatalf("nack %s %s: %v", a, m.Event.ID, err)
	}
}

// waitInfo waits until the group's info satisfies ok.
func waitInfo(t testing.TB, gs verity.Groups, stream, group, what string, ok func(verity.GroupInfo) bool) verity.GroupInfo {
	t.Helper()
	deadline := time.Now().Add(wait)
	var last verity.GroupInfo
	for {
		inf, err := gs.GetGroup(ctxT(t), stream, group)
		if err != nil {
			t.Fatalf("get group %q on %q: %v", group, stream, err)
		}
		if ok(inf) {
			return inf
		}
		last = inf
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: last info %+v", what, last)
		}
		time.Sleep(5 * time.Millisecond) // polling interval of the condition
	}
}

func ids(ms []verity.GroupMessage) []uuid.UUID {
	out := make([]uuid.UUID, len(ms))
	for i, m := range ms {
		out[i] = m.Event.ID
	}
	return out
}

func requireIDs(t testing.TB, got, want []uuid.UUID, what string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

// collector receives from several consumers at once, acking everything.
type collector struct {
	mu   sync.Mutex
	got  []received
	more chan struct{}
	wg   sync.WaitGroup
	stop context.CancelFunc
}

type received struct {
	consumer int
	msg      verity.GroupMessage
}

func collect(t testing.TB, cs ...verity.GroupConsumer) *collector {
	ctx, cancel := context.WithCancel(context.Background())
	col := &collector{more: make(chan struct{}, 1), stop: cancel}
	for i, c := range cs {
		col.wg.Add(1)
		go func() {
			defer col.wg.Done()
			for {
				m, err := c.Recv(ctx)
				if err != nil {
					return
				}
				col.mu.Lock()
				col.got = append(col.got, received{i, m})
				col.mu.Unlock()
				select {
				case col.more <- struct{}{}:
				default:
				}
				if err := c.Ack(ctx, m.Event.ID); err != nil {
					return
				}
			}
		}()
	}
	t.Cleanup(col.close)
	return col
}

func (col *collector) close() {
	col.stop()
	col.wg.Wait()
}

// waitN waits for n messages and returns them.
func (col *collector) waitN(t testing.TB, n int) []received {
	t.Helper()
	timeout := time.After(wait)
	for {
		col.mu.Lock()
		if len(col.got) >= n {
			out := slices.Clone(col.got)
			col.mu.Unlock()
			return out
		}
		have := len(col.got)
		col.mu.Unlock()
		select {
		case <-col.more:
		case <-timeout:
			t.Fatalf("received %d events, want %d", have, n)
		}
	}
}

func readStream(t testing.TB, st verity.Store, stream string) []verity.RecordedEvent {
	t.Helper()
	evs, err := st.ReadStream(ctxT(t), stream, verity.ReadStreamOptions{})
	if err != nil && !errors.Is(err, verity.ErrNotFound) {
		t.Fatalf("read %q: %v", stream, err)
	}
	return evs
}

func recvWithin(ctx context.Context, c verity.GroupConsumer, d time.Duration) (verity.GroupMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return c.Recv(ctx)
}
