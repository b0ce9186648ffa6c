package persistent

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/verity-dev/verity"
)

func tctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func put(t testing.TB, st verity.Store, stream string, n int) []uuid.UUID {
	t.Helper()
	evs := make([]verity.EventData, n)
	ids := make([]uuid.UUID, n)
	for i := range evs {
		ids[i] = uuid.New()
		evs[i] = verity.EventData{ID: ids[i], Type: "Happened", Data: []byte(`{}`)}
	}
	if _, err := st.Append(tctx(t), stream, verity.Any(), evs...); err != nil {
		t.Fatalf("append to %q: %v", stream, err)
	}
	return ids
}

func mustCreate(t testing.TB, gs verity.Groups, spec verity.GroupSpec) {
	t.Helper()
	if err := gs.CreateGroup(tctx(t), spec); err != nil {
		t.Fatalf("create %q: %v", spec.Group, err)
	}
}

func mustJoin(t testing.TB, gs verity.Groups, stream, group string, maxInFlight int) verity.GroupConsumer {
	t.Helper()
	c, err := gs.JoinGroup(tctx(t), stream, group, verity.JoinOptions{MaxInFlight: maxInFlight})
	if err != nil {
		t.Fatalf("join %q: %v", group, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func mustRecv(t testing.TB, c verity.GroupConsumer) verity.GroupMessage {
	t.Helper()
	m, err := c.Recv(tctx(t))
	if err != nil {
		t.Fatalf("recv: %v", err)
	}
	return m
}

func waitFor(t testing.TB, gs verity.Groups, stream, group, what string, ok func(verity.GroupInfo) bool) verity.GroupInfo {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		inf, err := gs.GetGroup(tctx(t), stream, group)
		if err != nil {
			t.Fatalf("get group: %v", err)
		}
		if ok(inf) {
			return inf
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %+v", what, inf)
		}
		time.Sleep(5 * time.Millisecond) // polling interval of the condition
	}
}

func TestQuarantineIsRebuiltAfterRestart(t *testing.T) {
	in := openInstance(t, t.TempDir())
	t.Cleanup(func() { in.close() })
	spec := verity.GroupSpec{Stream: verity.AllStream, Group: "g", Filter: verity.Filter{Categories: []string{"acct"}},
		Settings: verity.GroupSettings{Strategy: verity.Pinned, CheckpointAfter: time.Millisecond, CheckpointLowerBound: -1}}
	mustCreate(t, in.gs, spec)
	c := mustJoin(t, in.gs, "", "g", 10)
	a := put(t, in.st, "acct-a", 1)
	nackPark(t, c, mustRecv(t, c))
	waitFor(t, in.gs, "", "g", "a0 parked", func(i verity.GroupInfo) bool { return i.Parked == 1 })
	a = append(a, put(t, in.st, "acct-a", 2)...)
	b := put(t, in.st, "acct-b", 1)
	if m := mustRecv(t, c); m.Event.ID != b[0] {
		t.Fatalf("got %s, want b0 %s", m.Event.ID, b[0])
	}
	waitFor(t, in.gs, "", "g", "a1, a2 held", func(i verity.GroupInfo) bool { return i.Parked == 3 })

	// Restart the whole server: a is still quarantined, and a3 is held behind a0 at once.
	dir := in.dir
	in.close()
	in = openInstance(t, dir)
	waitFor(t, in.gs, "", "g", "three parked after restart", func(i verity.GroupInfo) bool { return i.Parked == 3 })
	c = mustJoin(t, in.gs, "", "g", 10)
	// b0 was not acked: it comes again (at least once); a3 is held, b1 flows.
	if m := mustRecv(t, c); m.Event.ID != b[0] {
		t.Fatalf("after restart got %s, want b0 again", m.Event.ID)
	}
	a = append(a, put(t, in.st, "acct-a", 1)...)
	b = append(b, put(t, in.st, "acct-b", 1)...)
	if m := mustRecv(t, c); m.Event.ID != b[1] {
		t.Fatalf("got %s, want b1 %s", m.Event.ID, b[1])
	}
	waitFor(t, in.gs, "", "g", "a3 held", func(i verity.GroupInfo) bool { return i.Parked == 4 })

	// The parked stream says why each was parked.
	evs, err := in.st.ReadStream(tctx(t), verity.ParkedStreamOf("", "g"), verity.ReadStreamOptions{})
	if err != nil {
		t.Fatalf("read parked stream: %v", err)
	}
	var held int
	for _, ev := range evs {
		var p parkedRecord
		if ev.Type != EventTypeParked || json.Unmarshal(ev.Data, &p) != nil {
			continue
		}
		if p.Stream != "acct-a" || p.Position == 0 {
			t.Fatalf("parked record %+v", p)
		}
		if p.Held {
			held++
			if p.Reason != "held behind parked event "+a[0].String() {
				t.Fatalf("held reason %q", p.Reason)
			}
		}
	}
	if held != 3 {
		t.Fatalf("%d held records, want 3", held)
	}

	if err := in.gs.ReplayParked(tctx(t), "", "g", verity.ReplayParkedOptions{}); err != nil {
		t.Fatalf("replay: %v", err)
	}
	for i, id := range a {
		m := mustRecv(t, c)
		if m.Event.ID != id {
			t.Fatalf("replay %d: got %s (%s %d), want %s", i, m.Event.ID, m.Event.Stream, m.Event.Revision, id)
		}
		if err := c.Ack(tctx(t), m.Event.ID); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, in.gs, "", "g", "quarantine lifted", func(i verity.GroupInfo) bool { return i.Parked == 0 && i.Waiting == 0 })
	next := put(t, in.st, "acct-a", 1)
	if m := mustRecv(t, c); m.Event.ID != next[0] {
		t.Fatalf("after the lift got %s, want %s", m.Event.ID, next[0])
	}
}

func nackPark(t testing.TB, c verity.GroupConsumer, m verity.GroupMessage) {
	t.Helper()
	if err := c.Nack(tctx(t), verity.NackPark, "bad", m.Event.ID); err != nil {
		t.Fatalf("nack: %v", err)
	}
}

func TestCheckpointStreamContents(t *testing.T) {
	in := openInstance(t, t.TempDir())
	t.Cleanup(func() { in.close() })
	mustCreate(t, in.gs, verity.GroupSpec{Stream: "order-1", Group: "g", Settings: verity.GroupSettings{
		CheckpointAfter: time.Millisecond, CheckpointLowerBound: -1, CheckpointUpperBound: 1}})
	put(t, in.st, "order-1", 20)
	c := mustJoin(t, in.gs, "order-1", "g", 1)
	for range 20 {
		m := mustRecv(t, c)
		if err := c.Ack(tctx(t), m.Event.ID); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, in.gs, "order-1", "g", "checkpoint 19", func(i verity.GroupInfo) bool { return i.Checkpoint == 19 })
	cs := verity.CheckpointStreamOf("order-1", "g")
	meta, err := in.st.GetStreamMetadata(tctx(t), cs)
	if err != nil || meta.Metadata.MaxCount != checkpointStreamMaxCnt {
		t.Fatalf("checkpoint stream metadata: %+v, %v", meta, err)
	}
	evs, err := in.st.ReadStream(tctx(t), cs, verity.ReadStreamOptions{})
	if err != nil {
		t.Fatalf("read checkpoint stream: %v", err)
	}
	if len(evs) == 0 || len(evs) > checkpointStreamMaxCnt {
		t.Fatalf("checkpoint stream shows %d events, want 1..%d", len(evs), checkpointStreamMaxCnt)
	}
	last := evs[len(evs)-1]
	var rec checkpointRecord
	if last.Type != EventTypeCheckpoint || json.Unmarshal(last.Data, &rec) != nil || !rec.Checkpointed || rec.Checkpoint != 19 || rec.ParkedCursor != -1 {
		t.Fatalf("last checkpoint %s %s", last.Type, last.Data)
	}
	if last.Revision < 10 {
		t.Fatalf("checkpoint written %d times for 20 acks with upper bound 1, want more", last.Revision+1)
	}
}

func TestLogGroupLeavesOutItsOwnStreams(t *testing.T) {
	in := openInstance(t, t.TempDir())
	t.Cleanup(func() { in.close() })
	mustCreate(t, in.gs, verity.GroupSpec{Stream: verity.AllStream, Group: "all", Settings: verity.GroupSettings{CheckpointAfter: time.Millisecond, CheckpointLowerBound: -1}})
	c := mustJoin(t, in.gs, "", "all", 10)
	for i := range 3 {
		ids := put(t, in.st, fmt.Sprintf("order-%d", i), 1)
		m := mustRecv(t, c)
		if m.Event.ID != ids[0] {
			t.Fatalf("got %s %q, want the user event %s", m.Event.Type, m.Event.Stream, ids[0])
		}
		if err := c.Ack(tctx(t), m.Event.ID); err != nil {
			t.Fatal(err)
		}
		waitFor(t, in.gs, "", "all", "checkpoint written", func(inf verity.GroupInfo) bool { return inf.Checkpoint >= m.Event.Position })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if m, err := c.Recv(ctx); err == nil {
		t.Fatalf("delivered %s on %q", m.Event.Type, m.Event.Stream)
	}
}

func TestTimeoutsFollowTheInjectedClock(t *testing.T) {
	st := openInstance(t, t.TempDir())
	st.gs.Close()
	var now atomic.Int64
	now.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	gs, err := New(st.st, Config{Now: func() time.Time { return time.Unix(0, now.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gs.Close(); st.st.Close() })
	mustCreate(t, gs, verity.GroupSpec{Stream: "order-1", Group: "g", Settings: verity.GroupSettings{MessageTimeout: time.Hour}})
	ids := put(t, st.st, "order-1", 1)
	c := mustJoin(t, gs, "order-1", "g", 1)
	if m := mustRecv(t, c); m.Event.ID != ids[0] {
		t.Fatal("wrong event")
	}
	now.Add(int64(2 * time.Hour))
	m := mustRecv(t, c)
	if m.Event.ID != ids[0] || m.RetryCount != 1 {
		t.Fatalf("after the clock moved: %s retry %d", m.Event.ID, m.RetryCount)
	}
}

func TestClosedManagerIsUnavailable(t *testing.T) {
	in := openInstance(t, t.TempDir())
	t.Cleanup(func() { in.st.Close() })
	mustCreate(t, in.gs, verity.GroupSpec{Stream: "order-1", Group: "g"})
	c := mustJoin(t, in.gs, "order-1", "g", 1)
	if err := in.gs.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Recv(tctx(t)); verity.KindOf(err) != verity.Unavailable {
		t.Fatalf("recv after close: %v", err)
	}
	if _, err := in.gs.GetGroup(tctx(t), "order-1", "g"); verity.KindOf(err) != verity.Unavailable {
		t.Fatalf("get after close: %v", err)
	}
	if err := in.gs.CreateGroup(tctx(t), verity.GroupSpec{Stream: "order-1", Group: "h"}); verity.KindOf(err) != verity.Unavailable {
		t.Fatalf("create after close: %v", err)
	}
	if err := in.gs.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func TestConfigAndSettings(t *testing.T) {
	if err := (Config{RetryDelay: -1}).Validate(); err == nil {
		t.Fatal("negative RetryDelay accepted")
	}
	if err := (Config{StopTimeout: -time.Second}).Validate(); err == nil {
		t.Fatal("negative StopTimeout accepted")
	}
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero config: %v", err)
	}
	if _, err := New(nil, Config{MaxPins: -1}); verity.KindOf(err) != verity.Invalid {
		t.Fatalf("New with a bad config: %v", err)
	}
	e := effectiveOf(verity.GroupSettings{MaxRetryCount: -1, MessageTimeout: -1, CheckpointLowerBound: -1, Strategy: verity.Pinned})
	if e.maxRetry != 0 || e.timeout != 0 || e.cpLower != 0 || !e.ordered {
		t.Fatalf("negative settings: %+v", e)
	}
	if e := effectiveOf(verity.GroupSettings{Strategy: verity.Pinned, Quarantine: verity.QuarantineOff}); e.ordered {
		t.Fatal("QuarantineOff ignored")
	}
	if err := validateSpec("create", verity.GroupSpec{Stream: "s", Group: "g", Settings: verity.GroupSettings{CheckpointLowerBound: 50, CheckpointUpperBound: 10}}); verity.KindOf(err) != verity.Invalid {
		t.Fatalf("upper bound below lower bound: %v", err)
	}
	for meta, want := range map[string]string{
		`{"$correlationId":"a"}`: "a", `{"correlationId":"b"}`: "b", `{"correlationId":7}`: "7",
		`{}`: "", `not json`: "", ``: "",
	} {
		if got := correlationOf([]byte(meta)); got != want {
			t.Errorf("correlationOf(%s) = %q, want %q", meta, got, want)
		}
	}
}

// TestFourConsumersAckEachEventOnce runs 10,000 events through four consumers and checks
// the accounting: every event delivered and acked exactly once, the checkpoint at the end.
func TestFourConsumersAckEachEventOnce(t *testing.T) {
	in := openInstance(t, t.TempDir())
	t.Cleanup(func() { in.close() })
	const streams, per = 100, 100
	for strategy, name := range map[verity.ConsumerStrategy]string{verity.RoundRobin: "rr", verity.Pinned: "pinned"} {
		mustCreate(t, in.gs, verity.GroupSpec{Stream: verity.AllStream, Group: name, Filter: verity.Filter{Categories: []string{"load"}},
			Settings: verity.GroupSettings{Strategy: strategy}})
	}
	var last uint64
	for i := range streams {
		evs := make([]verity.EventData, per)
		for j := range evs {
			evs[j] = verity.EventData{Type: "Happened", Data: []byte(`{}`)}
		}
		res, err := in.st.Append(tctx(t), fmt.Sprintf("load-%d", i), verity.NoStream(), evs...)
		if err != nil {
			t.Fatal(err)
		}
		last = res.Position
	}
	for _, name := range []string{"rr", "pinned"} {
		t.Run(name, func(t *testing.T) {
			var mu sync.Mutex
			seen := make(map[uuid.UUID]int, streams*per)
			lastRev := map[string]int64{}
			var total atomic.Int64
			done := make(chan struct{})
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			start := time.Now()
			for range 4 {
				c := mustJoin(t, in.gs, "", name, 50)
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						m, err := c.Recv(ctx)
						if err != nil {
							return
						}
						mu.Lock()
						seen[m.Event.ID]++
						if name == "pinned" {
							if l, ok := lastRev[m.Event.Stream]; ok && int64(m.Event.Revision) != l+1 {
								t.Errorf("stream %s: revision %d after %d", m.Event.Stream, m.Event.Revision, l)
							}
							lastRev[m.Event.Stream] = int64(m.Event.Revision)
						}
						mu.Unlock()
						if c.Ack(ctx, m.Event.ID) != nil {
							return
						}
						if total.Add(1) == streams*per {
							close(done)
						}
					}
				}()
			}
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				t.Fatalf("only %d of %d events handled", total.Load(), streams*per)
			}
			elapsed := time.Since(start)
			inf := waitFor(t, in.gs, "", name, "all acked", func(i verity.GroupInfo) bool { return i.Acked == streams*per && i.InFlight == 0 })
			cancel()
			wg.Wait()
			if len(seen) != streams*per {
				t.Fatalf("%d distinct events, want %d", len(seen), streams*per)
			}
			for id, n := range seen {
				if n != 1 {
					t.Fatalf("event %s delivered %d times", id, n)
				}
			}
			if inf.Delivered != streams*per || inf.Nacked != 0 || inf.TimedOut != 0 {
				t.Fatalf("accounting: %+v", inf)
			}
			if err := in.gs.RestartGroups(tctx(t)); err != nil {
				t.Fatal(err)
			}
			inf = waitFor(t, in.gs, "", name, "checkpoint at the end", func(i verity.GroupInfo) bool { return i.Checkpoint >= last })
			t.Logf("%s: %d events through 4 consumers in %v (%.0f events/s)", name, streams*per, elapsed, float64(streams*per)/elapsed.Seconds())
		})
	}
}

// gatedStore holds back Appends to one stream until released, to keep a group's actor busy.
type gatedStore struct {
	verity.Store
	stream  string
	entered chan struct{}
	release chan struct{}
}

func (s *gatedStore) Append(ctx context.Context, stream string, exp verity.ExpectedRevision, evs ...verity.EventData) (verity.AppendResult, error) {
	if stream == s.stream {
		s.entered <- struct{}{}
		<-s.release
	}
	return s.Store.Append(ctx, stream, exp, evs...)
}

// busyGroup creates group "g" on "order-1" (checkpoint written only when it stops), appends
// five events, receives them on c and parks the first: the group's actor is then held in
// the parking Append until release is closed.
func busyGroup(t *testing.T) (gs *Manager, g *group, c verity.GroupConsumer, ms []verity.GroupMessage, release chan struct{}) {
	t.Helper()
	in := openInstance(t, t.TempDir())
	in.gs.Close()
	st := &gatedStore{Store: in.st, stream: verity.ParkedStreamOf("order-1", "g"), entered: make(chan struct{}), release: make(chan struct{})}
	gs, err := New(st, Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gs.Close(); in.st.Close() })
	mustCreate(t, gs, verity.GroupSpec{Stream: "order-1", Group: "g", Settings: verity.GroupSettings{
		CheckpointLowerBound: 1000, CheckpointUpperBound: 1000, CheckpointAfter: time.Hour}})
	put(t, in.st, "order-1", 5)
	c = mustJoin(t, gs, "order-1", "g", 10)
	ms = make([]verity.GroupMessage, 5)
	for i := range ms {
		ms[i] = mustRecv(t, c)
	}
	gs.mu.Lock()
	g = gs.groups[groupKey{"order-1", "g"}]
	gs.mu.Unlock()
	nackPark(t, c, ms[0])
	<-st.entered
	t.Cleanup(func() {
		select {
		case <-st.release:
		default:
			close(st.release)
		}
	})
	return gs, g, c, ms, st.release
}

// restartBehind starts RestartGroups and waits until its stop is in line behind the ops
// already queued to g; it returns RestartGroups' result.
func restartBehind(t *testing.T, gs *Manager, g *group) <-chan error {
	t.Helper()
	restarted := make(chan error, 1)
	go func() { restarted <- gs.RestartGroups(context.Background()) }()
	deadline := time.Now().Add(10 * time.Second)
	for len(g.stopc) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("RestartGroups did not ask the group to stop")
		}
		time.Sleep(time.Millisecond) // polling interval of the condition
	}
	return restarted
}

// TestAcksQueuedBeforeARestartAreCheckpointed: Acks that returned before RestartGroups are
// in the checkpoint the restart writes, even when the group was busy when they came.
func TestAcksQueuedBeforeARestartAreCheckpointed(t *testing.T) {
	gs, g, c, ms, release := busyGroup(t)
	for _, m := range ms[1:] {
		if err := c.Ack(tctx(t), m.Event.ID); err != nil {
			t.Fatal(err)
		}
	}
	restarted := restartBehind(t, gs, g)
	close(release)
	if err := <-restarted; err != nil {
		t.Fatalf("restart: %v", err)
	}
	inf, err := gs.GetGroup(tctx(t), "order-1", "g")
	if err != nil {
		t.Fatal(err)
	}
	if !inf.Checkpointed || inf.Checkpoint != 4 || inf.Parked != 1 {
		t.Fatalf("after the restart: checkpointed %v at %d, %d parked; want 4 and 1", inf.Checkpointed, inf.Checkpoint, inf.Parked)
	}
}

// TestDescribingARestartingGroupAsksItsSuccessor: GetGroup and ListGroups made while a
// group restarts answer from the restarted group; they neither fail nor leave it out.
func TestDescribingARestartingGroupAsksItsSuccessor(t *testing.T) {
	gs, g, _, _, release := busyGroup(t)
	got, listed := make(chan error, 1), make(chan error, 1)
	go func() {
		_, err := gs.GetGroup(context.Background(), "order-1", "g")
		got <- err
	}()
	go func() {
		infos, err := gs.ListGroups(context.Background(), "")
		if err == nil && len(infos) != 1 {
			err = fmt.Errorf("%d groups listed, want 1", len(infos))
		}
		listed <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for len(g.ops) < 2 { // both asked the busy group
		if time.Now().After(deadline) {
			t.Fatal("GetGroup and ListGroups did not reach the group")
		}
		time.Sleep(time.Millisecond) // polling interval of the condition
	}
	restarted := restartBehind(t, gs, g)
	close(release)
	if err := <-restarted; err != nil {
		t.Fatalf("restart: %v", err)
	}
	if err := <-got; err != nil {
		t.Errorf("get group during the restart: %v", err)
	}
	if err := <-listed; err != nil {
		t.Errorf("list groups during the restart: %v", err)
	}
}

// TestParkedFirstRevisionIsPassedAfterACrash: a stream group whose revision 0 was parked
// before a crash (no checkpoint written) passes it when it reads it again, so the next
// checkpoint says revision 0 is handled.
func TestParkedFirstRevisionIsPassedAfterACrash(t *testing.T) {
	in := openInstance(t, t.TempDir())
	t.Cleanup(func() { in.close() })
	mustCreate(t, in.gs, verity.GroupSpec{Stream: "order-1", Group: "g", Settings: verity.GroupSettings{
		CheckpointLowerBound: 1000, CheckpointUpperBound: 1000, CheckpointAfter: time.Hour}})
	put(t, in.st, "order-1", 1)
	c := mustJoin(t, in.gs, "order-1", "g", 1)
	nackPark(t, c, mustRecv(t, c))
	parked := verity.ParkedStreamOf("order-1", "g")
	waitFor(t, in.gs, "order-1", "g", "revision 0 parked", func(verity.GroupInfo) bool {
		evs, err := in.st.ReadStream(tctx(t), parked, verity.ReadStreamOptions{})
		return err == nil && len(evs) == 1
	})

	// A second Manager over the same store sees what a restart after a crash would: the
	// parked record, and no checkpoint.
	after, err := New(in.st, Config{})
	if err != nil {
		t.Fatal(err)
	}
	// Lag 1 (from no checkpoint written) once it has read revision 0 again, parked or not.
	inf := waitFor(t, after, "order-1", "g", "revision 0 read", func(i verity.GroupInfo) bool { return i.Lag == 1 })
	if inf.Parked != 1 || inf.Waiting != 0 {
		t.Fatalf("after the crash: %d parked, %d waiting; want 1 and 0", inf.Parked, inf.Waiting)
	}
	after.Close()
	evs, err := in.st.ReadStream(tctx(t), verity.CheckpointStreamOf("order-1", "g"), verity.ReadStreamOptions{Direction: verity.Backwards, FromEnd: true, Limit: 1})
	if err != nil || len(evs) != 1 {
		t.Fatalf("no checkpoint written on close: %v", err)
	}
	var rec checkpointRecord
	if err := json.Unmarshal(evs[0].Data, &rec); err != nil || !rec.Checkpointed || rec.Checkpoint != 0 {
		t.Fatalf("checkpoint %s, want revision 0", evs[0].Data)
	}
}
