package persistent

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verity-dev/verity"
)

// clockManager is a Manager over a fresh engine whose clock the test moves.
func clockManager(t *testing.T) (*Manager, verity.Store, *atomic.Int64) {
	t.Helper()
	in := openInstance(t, t.TempDir())
	in.gs.Close()
	now := new(atomic.Int64)
	now.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	gs, err := New(in.st, Config{Now: func() time.Time { return time.Unix(0, now.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gs.Close(); in.st.Close() })
	return gs, in.st, now
}

// checkpointsWritten counts the events of a group's checkpoint stream.
func checkpointsWritten(t testing.TB, st verity.Store, stream, group string) int {
	t.Helper()
	evs, err := st.ReadStream(tctx(t), verity.CheckpointStreamOf(stream, group), verity.ReadStreamOptions{})
	if errors.Is(err, verity.ErrNotFound) {
		return 0
	}
	if err != nil {
		t.Fatalf("read checkpoint stream: %v", err)
	}
	return len(evs)
}

// putAt appends n events to stream and returns the log position of the last.
func putAt(t testing.TB, st verity.Store, stream string, n int) uint64 {
	t.Helper()
	evs := make([]verity.EventData, n)
	for i := range evs {
		evs[i] = verity.EventData{Type: "Happened", Data: []byte(`{}`)}
	}
	res, err := st.Append(tctx(t), stream, verity.Any(), evs...)
	if err != nil {
		t.Fatalf("append to %q: %v", stream, err)
	}
	return res.Position
}

// TestFilteredLogGroupCheckpointFollowsUnrelatedTraffic: a log group whose filter leaves
// out everything written writes its checkpoint once CheckpointAfter has passed since the
// store's markers moved it, not before, and not for its own checkpoint writes; its Lag
// follows the written checkpoint.
func TestFilteredLogGroupCheckpointFollowsUnrelatedTraffic(t *testing.T) {
	gs, st, now := clockManager(t)
	const after = time.Minute
	mustCreate(t, gs, verity.GroupSpec{Stream: verity.AllStream, Group: "acct", Filter: verity.Filter{Categories: []string{"acct"}},
		Settings: verity.GroupSettings{CheckpointAfter: after}})
	tick := func(d time.Duration) { now.Add(int64(d)) }

	last := putAt(t, st, "order-1", 50)
	inf := waitFor(t, gs, "", "acct", "the unrelated events considered", func(i verity.GroupInfo) bool { return i.LastKnown >= last })
	if inf.Checkpointed || inf.Lag < last {
		t.Fatalf("before CheckpointAfter: checkpointed %v, lag %d; want no checkpoint and lag >= %d", inf.Checkpointed, inf.Lag, last)
	}
	tick(after - time.Second)
	for range 2 { // the second call comes after a step that followed the first
		if inf, _ = gs.GetGroup(tctx(t), "", "acct"); inf.Checkpointed {
			t.Fatalf("checkpoint written %v before CheckpointAfter passed", after-time.Second)
		}
	}
	if n := checkpointsWritten(t, st, "", "acct"); n != 0 {
		t.Fatalf("%d checkpoints written before CheckpointAfter passed", n)
	}

	tick(2 * time.Second)
	inf = waitFor(t, gs, "", "acct", "checkpoint past the unrelated events", func(i verity.GroupInfo) bool { return i.Checkpointed && i.Checkpoint >= last })
	if inf.Lag > 2 { // at most the group's own metadata and checkpoint events
		t.Fatalf("after CheckpointAfter: checkpoint %d, last known %d, lag %d", inf.Checkpoint, inf.LastKnown, inf.Lag)
	}
	first := inf.Checkpoint

	// More unrelated traffic: the written checkpoint and Lag stay until CheckpointAfter.
	last = putAt(t, st, "order-2", 30)
	inf = waitFor(t, gs, "", "acct", "more unrelated events considered", func(i verity.GroupInfo) bool { return i.LastKnown >= last })
	if inf.Checkpoint != first || inf.Lag < 30 {
		t.Fatalf("before CheckpointAfter: checkpoint %d (was %d), lag %d; want it unchanged and lag >= 30", inf.Checkpoint, first, inf.Lag)
	}
	tick(after)
	inf = waitFor(t, gs, "", "acct", "checkpoint past the new events", func(i verity.GroupInfo) bool { return i.Checkpoint >= last })
	if inf.Lag > 2 {
		t.Fatalf("after CheckpointAfter: checkpoint %d, last known %d, lag %d", inf.Checkpoint, inf.LastKnown, inf.Lag)
	}

	// The group's own checkpoint write moves its in-memory checkpoint but starts no timer:
	// an idle log is not written to for ever.
	evs, err := st.ReadStream(tctx(t), verity.CheckpointStreamOf("", "acct"), verity.ReadStreamOptions{Direction: verity.Backwards, FromEnd: true, Limit: 1})
	if err != nil || len(evs) != 1 {
		t.Fatalf("read the last checkpoint: %v", err)
	}
	own := evs[0].Position
	inf = waitFor(t, gs, "", "acct", "its own checkpoint considered", func(i verity.GroupInfo) bool { return i.LastKnown >= own })
	if inf.Lag != 0 {
		t.Errorf("idle after its own checkpoint write: lag %d (checkpoint %d, last known %d), want 0", inf.Lag, inf.Checkpoint, inf.LastKnown)
	}
	written := checkpointsWritten(t, st, "", "acct")
	tick(10 * after)
	// One more unrelated event gives the group a step at the new time; that event's own
	// timer starts now, so a write in that step could only come from the own write.
	one := putAt(t, st, "order-3", 1)
	waitFor(t, gs, "", "acct", "one more event considered", func(i verity.GroupInfo) bool { return i.LastKnown >= one })
	if inf, _ = gs.GetGroup(tctx(t), "", "acct"); inf.Checkpoint >= one {
		t.Fatalf("checkpoint %d written for the group's own checkpoint", inf.Checkpoint)
	}
	if n := checkpointsWritten(t, st, "", "acct"); n != written {
		t.Fatalf("%d checkpoints written, was %d: the group wrote for its own checkpoint", n, written)
	}
}

// TestAcksBelowTheLowerBoundWaitForAStop: acks below CheckpointLowerBound are
// not written on the timer (as KurrentDB), even when CheckpointAfter has passed.
func TestAcksBelowTheLowerBoundWaitForAStop(t *testing.T) {
	gs, st, now := clockManager(t)
	mustCreate(t, gs, verity.GroupSpec{Stream: "order-1", Group: "g", Settings: verity.GroupSettings{CheckpointAfter: time.Minute, CheckpointLowerBound: 5}})
	put(t, st, "order-1", 3)
	c := mustJoin(t, gs, "order-1", "g", 10)
	for range 3 {
		m := mustRecv(t, c)
		if err := c.Ack(tctx(t), m.Event.ID); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, gs, "order-1", "g", "three acks", func(i verity.GroupInfo) bool { return i.Acked == 3 })
	now.Add(int64(time.Hour))
	put(t, st, "order-1", 1) // a step at the new time
	mustRecv(t, c)
	if inf, _ := gs.GetGroup(tctx(t), "order-1", "g"); inf.Checkpointed {
		t.Fatalf("checkpoint %d written for 3 acks under a lower bound of 5", inf.Checkpoint)
	}
	if err := gs.RestartGroups(tctx(t)); err != nil {
		t.Fatal(err)
	}
	if inf, _ := gs.GetGroup(tctx(t), "order-1", "g"); !inf.Checkpointed || inf.Checkpoint != 2 {
		t.Fatalf("after a stop: checkpointed %v at %d, want 2", inf.Checkpointed, inf.Checkpoint)
	}
}

func TestOnlyOwn(t *testing.T) {
	m := &Manager{}
	for _, p := range []uint64{5, 7, 6, 9, 0} {
		m.noteOwn(p)
	}
	for _, tc := range []struct {
		name     string
		from, to uint64
		want     bool
	}{
		{"nothing passed", 4, 4, true},
		{"passed one own write", 4, 5, true},
		{"passed own writes only", 4, 7, true},
		{"passed an unrelated event too", 4, 8, false},
		{"passed an unrelated event before them", 3, 5, false},
		{"passed own writes after a gap", 8, 9, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := m.onlyOwn(tc.from, tc.to); got != tc.want {
				t.Fatalf("onlyOwn(%d, %d) = %v, want %v", tc.from, tc.to, got, tc.want)
			}
		})
	}
	for p := range uint64(2 * maxOwn) {
		m.noteOwn(100 + p)
	}
	if len(m.own) > maxOwn {
		t.Fatalf("%d own writes remembered, want at most %d", len(m.own), maxOwn)
	}
}

// hangingStore blocks Appends to one stream, once hang is set, until their ctx ends.
type hangingStore struct {
	verity.Store
	stream    string
	hang      atomic.Bool
	entered   chan struct{}
	cancelled atomic.Int32
}

func (s *hangingStore) Append(ctx context.Context, stream string, exp verity.ExpectedRevision, evs ...verity.EventData) (verity.AppendResult, error) {
	if stream == s.stream && s.hang.Load() {
		select {
		case s.entered <- struct{}{}:
		default:
		}
		<-ctx.Done()
		s.cancelled.Add(1)
		return verity.AppendResult{}, ctx.Err()
	}
	return s.Store.Append(ctx, stream, exp, evs...)
}

// TestCloseOverAHangingStoreReturns: a group whose store hangs (its final checkpoint
// write, or a park while it runs) stops within Config.StopTimeout, and so does Close.
func TestCloseOverAHangingStoreReturns(t *testing.T) {
	const bound = 200 * time.Millisecond
	for _, tc := range []struct {
		name   string
		stream string
		hang   func(t *testing.T, c verity.GroupConsumer, ms []verity.GroupMessage)
	}{
		{"when the final checkpoint write hangs", verity.CheckpointStreamOf("order-1", "g"), func(t *testing.T, c verity.GroupConsumer, ms []verity.GroupMessage) {
			for _, m := range ms {
				if err := c.Ack(tctx(t), m.Event.ID); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"when a park hangs while the group runs", verity.ParkedStreamOf("order-1", "g"), func(t *testing.T, c verity.GroupConsumer, ms []verity.GroupMessage) {
			nackPark(t, c, ms[0])
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := openInstance(t, t.TempDir())
			in.gs.Close()
			t.Cleanup(func() { in.st.Close() })
			st := &hangingStore{Store: in.st, stream: tc.stream, entered: make(chan struct{}, 1)}
			gs, err := New(st, Config{StopTimeout: bound})
			if err != nil {
				t.Fatal(err)
			}
			mustCreate(t, gs, verity.GroupSpec{Stream: "order-1", Group: "g", Settings: verity.GroupSettings{
				CheckpointLowerBound: 1000, CheckpointUpperBound: 1000, CheckpointAfter: time.Hour}})
			put(t, in.st, "order-1", 3)
			c, err := gs.JoinGroup(tctx(t), "order-1", "g", verity.JoinOptions{MaxInFlight: 10})
			if err != nil {
				t.Fatal(err)
			}
			ms := []verity.GroupMessage{mustRecv(t, c), mustRecv(t, c), mustRecv(t, c)}
			st.hang.Store(true)
			tc.hang(t, c, ms)
			if tc.stream == verity.ParkedStreamOf("order-1", "g") {
				<-st.entered // the group's actor is held in the park
			}

			start := time.Now()
			closed := make(chan error, 1)
			go func() { closed <- gs.Close() }()
			select {
			case err := <-closed:
				if err != nil {
					t.Fatalf("close: %v", err)
				}
			case <-time.After(bound + 10*time.Second):
				t.Fatalf("Close did not return %v after its bound of %v", bound+10*time.Second, bound)
			}
			elapsed := time.Since(start)
			if st.cancelled.Load() == 0 {
				t.Fatal("the hanging Append was never cancelled")
			}
			if elapsed < bound {
				t.Fatalf("Close returned after %v, before its bound %v: the hanging call had no chance", elapsed, bound)
			}
			t.Logf("Close returned after %v (bound %v)", elapsed, bound)
			if _, err := c.Recv(tctx(t)); verity.KindOf(err) != verity.Unavailable {
				t.Fatalf("recv after close: %v", err)
			}
		})
	}
}
