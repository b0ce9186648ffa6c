package grouptest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/verity-dev/verity"
)

func testLifecycle(t *testing.T, h Harness) {
	gs, _ := h.New(t)
	ctx := ctxT(t)
	a, b := uniq("order-"), uniq("order-")
	create(t, gs, verity.GroupSpec{Stream: b, Group: "g2"})
	create(t, gs, verity.GroupSpec{Stream: a, Group: "g1", Settings: verity.GroupSettings{MaxRetryCount: 3}})
	create(t, gs, verity.GroupSpec{Stream: a, Group: "g0"})
	create(t, gs, verity.GroupSpec{Stream: verity.AllStream, Group: "g1", Filter: verity.Filter{Categories: []string{"order"}}})

	requireKind(t, gs.CreateGroup(ctx, verity.GroupSpec{Stream: a, Group: "g1"}), verity.Conflict, "create an existing group")

	inf, err := gs.GetGroup(ctx, a, "g1")
	if err != nil {
		t.Fatalf("get group: %v", err)
	}
	if inf.Stream != a || inf.Group != "g1" || inf.Settings.MaxRetryCount != 3 {
		t.Fatalf("got %q/%q max retry %d, want %q/g1 max retry 3", inf.Stream, inf.Group, inf.Settings.MaxRetryCount, a)
	}
	s := inf.Settings
	if s.MessageTimeout != verity.DefaultMessageTimeout || s.LiveBufferSize != verity.DefaultLiveBufferSize ||
		s.ReadBatchSize != verity.DefaultReadBatchSize || s.HistoryBufferSize != verity.DefaultHistoryBufferSize ||
		s.CheckpointAfter != verity.DefaultCheckpointAfter || s.CheckpointLowerBound != verity.DefaultCheckpointLowerBound ||
		s.CheckpointUpperBound != verity.DefaultCheckpointUpperBound {
		t.Fatalf("defaults not filled in: %+v", s)
	}
	if inf.Status != verity.GroupIdle || inf.Checkpointed {
		t.Fatalf("new group: status %s checkpointed %v, want Idle and no checkpoint", inf.Status, inf.Checkpointed)
	}
	log, err := gs.GetGroup(ctx, "", "g1")
	if err != nil || log.Stream != verity.AllStream || len(log.Filter.Categories) != 1 {
		t.Fatalf("get log group via \"\": %+v, %v", log, err)
	}

	list, err := gs.ListGroups(ctx, a)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(list) != 2 || list[0].Group != "g0" || list[1].Group != "g1" {
		t.Fatalf("list %q: %+v, want g0 then g1", a, list)
	}
	all, err := gs.ListGroups(ctx, "")
	if err != nil {
		t.Fatalf("list all: %v", err)
	}
	var mine []string
	for _, g := range all {
		if g.Stream == a || g.Stream == b {
			mine = append(mine, g.Stream+"/"+g.Group)
		}
	}
	want := []string{a + "/g0", a + "/g1", b + "/g2"}
	if a > b {
		want = []string{b + "/g2", a + "/g0", a + "/g1"}
	}
	if strings.Join(mine, ",") != strings.Join(want, ",") {
		t.Fatalf("list all: %v, want %v in that order", mine, want)
	}
	logs, err := gs.ListGroups(ctx, verity.AllStream)
	if err != nil || len(logs) == 0 {
		t.Fatalf("list log groups: %v, %v", logs, err)
	}
	for _, g := range logs {
		if g.Stream != verity.AllStream {
			t.Fatalf("list $all returned a group on %q", g.Stream)
		}
	}

	if err := gs.UpdateGroup(ctx, verity.GroupSpec{Stream: a, Group: "g1", Settings: verity.GroupSettings{MaxRetryCount: 7}}); err != nil {
		t.Fatalf("update: %v", err)
	}
	if inf, _ := gs.GetGroup(ctx, a, "g1"); inf.Settings.MaxRetryCount != 7 {
		t.Fatalf("after update max retry %d, want 7", inf.Settings.MaxRetryCount)
	}
	requireKind(t, gs.UpdateGroup(ctx, verity.GroupSpec{Stream: a, Group: "nope"}), verity.NotFound, "update a missing group")

	if err := gs.DeleteGroup(ctx, a, "g1"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	_, err = gs.GetGroup(ctx, a, "g1")
	requireKind(t, err, verity.NotFound, "get a deleted group")
	requireKind(t, gs.DeleteGroup(ctx, a, "g1"), verity.NotFound, "delete a deleted group")
	_, err = gs.JoinGroup(ctx, a, "g1", verity.JoinOptions{})
	requireKind(t, err, verity.NotFound, "join a deleted group")
	requireKind(t, gs.ReplayParked(ctx, a, "g1", verity.ReplayParkedOptions{}), verity.NotFound, "replay a deleted group")
	if _, err := gs.GetGroup(ctx, a, "g0"); err != nil {
		t.Fatalf("the other group on the stream went too: %v", err)
	}
}

func testInvalid(t *testing.T, h Harness) {
	gs, _ := h.New(t)
	ctx := ctxT(t)
	s := uniq("order-")
	long := strings.Repeat("x", 257)
	cases := []struct {
		what string
		spec verity.GroupSpec
	}{
		{"an empty name", verity.GroupSpec{Stream: s, Group: ""}},
		{"a name of 257 characters", verity.GroupSpec{Stream: s, Group: long}},
		{"a name with a control character", verity.GroupSpec{Stream: s, Group: "a\nb"}},
		{"a filter on a stream group", verity.GroupSpec{Stream: s, Group: "g", Filter: verity.Filter{EventTypes: []string{"x"}}}},
		{"a bad filter regexp", verity.GroupSpec{Stream: verity.AllStream, Group: "g", Filter: verity.Filter{StreamRegexp: "("}}},
		{"an unknown strategy", verity.GroupSpec{Stream: s, Group: "g", Settings: verity.GroupSettings{Strategy: 99}}},
		{"a negative buffer", verity.GroupSpec{Stream: s, Group: "g", Settings: verity.GroupSettings{LiveBufferSize: -1}}},
		{"negative max consumers", verity.GroupSpec{Stream: s, Group: "g", Settings: verity.GroupSettings{MaxConsumers: -1}}},
	}
	for _, tc := range cases {
		requireKind(t, gs.CreateGroup(ctx, tc.spec), verity.Invalid, "create with "+tc.what)
	}
	list, err := gs.ListGroups(ctx, s)
	if err != nil || len(list) != 0 {
		t.Fatalf("invalid creates left groups behind: %+v, %v", list, err)
	}
	create(t, gs, verity.GroupSpec{Stream: s, Group: strings.Repeat("é", 256)})
	create(t, gs, verity.GroupSpec{Stream: s, Group: "g"})
	requireKind(t, gs.UpdateGroup(ctx, verity.GroupSpec{Stream: s, Group: "g", Settings: verity.GroupSettings{HistoryBufferSize: -5}}), verity.Invalid, "update with a negative buffer")
	if _, err := gs.JoinGroup(ctx, s, "g", verity.JoinOptions{MaxInFlight: -1}); verity.KindOf(err) != verity.Invalid {
		t.Fatalf("join with negative max in flight: %v, want Invalid", err)
	}
}

func testDeliverAck(t *testing.T, h Harness) {
	gs, st := h.New(t)
	s := uniq("order-")
	want := appendN(t, st, s, 10)
	create(t, gs, verity.GroupSpec{Stream: s, Group: "g", Settings: fast(verity.GroupSettings{})})
	c := join(t, gs, s, "g", 20)
	got := recvN(t, c, 10)
	requireIDs(t, ids(got), want, "delivered")
	for i, m := range got {
		if m.Event.Stream != s || m.Event.Revision != uint64(i) || m.RetryCount != 0 {
			t.Fatalf("message %d: stream %q revision %d retry %d", i, m.Event.Stream, m.Event.Revision, m.RetryCount)
		}
	}
	inf := waitInfo(t, gs, s, "g", "ten in flight", func(i verity.GroupInfo) bool { return i.InFlight == 10 })
	if inf.Delivered != 10 || len(inf.Consumers) != 1 || inf.Consumers[0].InFlight != 10 || inf.Consumers[0].MaxInFlight != 20 {
		t.Fatalf("info before acks: %+v", inf)
	}
	ack(t, c, got[:4]...)
	ack(t, c, got[5:]...)
	inf = waitInfo(t, gs, s, "g", "checkpoint at 3", func(i verity.GroupInfo) bool { return i.Checkpointed && i.Checkpoint == 3 })
	if inf.Acked != 9 || inf.InFlight != 1 || inf.LastKnown != 9 || inf.Lag != 6 {
		t.Fatalf("info after 9 acks: acked %d in flight %d last known %d lag %d", inf.Acked, inf.InFlight, inf.LastKnown, inf.Lag)
	}
	ack(t, c, got[4])
	inf = waitInfo(t, gs, s, "g", "checkpoint at 9", func(i verity.GroupInfo) bool { return i.Checkpoint == 9 })
	if inf.Lag != 0 || inf.Consumers[0].Acked != 10 || inf.Status != verity.GroupLive {
		t.Fatalf("info after all acks: %+v", inf)
	}
	// Acking again, or an id never delivered, is ignored.
	if err := c.Ack(ctxT(t), got[0].Event.ID, uuid.New()); err != nil {
		t.Fatalf("ack again: %v", err)
	}
	more := appendN(t, st, s, 2)
	requireIDs(t, ids(recvN(t, c, 2)), more, "live events")
}

func testStreamLater(t *testing.T, h Harness) {
	gs, st := h.New(t)
	s := uniq("order-")
	create(t, gs, verity.GroupSpec{Stream: s, Group: "g"})
	c := join(t, gs, s, "g", 0)
	want := appendN(t, st, s, 3)
	requireIDs(t, ids(recvN(t, c, 3)), want, "events written after the group")
}

func testFrom(t *testing.T, h Harness) {
	gs, st := h.New(t)
	s := uniq("order-")
	old := appendN(t, st, s, 5)
	create(t, gs, verity.GroupSpec{Stream: s, Group: "end", Settings: verity.GroupSettings{FromEnd: true}})
	create(t, gs, verity.GroupSpec{Stream: s, Group: "from3", Settings: verity.GroupSettings{From: 3}})
	fresh := appendN(t, st, s, 2)
	requireIDs(t, ids(recvN(t, join(t, gs, s, "end", 0), 2)), fresh, "FromEnd group")
	requireIDs(t, ids(recvN(t, join(t, gs, s, "from3", 0), 4)), append(old[3:], fresh...), "From 3 group")

	create(t, gs, verity.GroupSpec{Stream: verity.AllStream, Group: uniq("end-"), Settings: verity.GroupSettings{FromEnd: true}})
}

func testNackParkReplay(t *testing.T, h Harness) {
	gs, st := h.New(t)
	s := uniq("order-")
	want := appendN(t, st, s, 3)
	create(t, gs, verity.GroupSpec{Stream: s, Group: "g", Settings: fast(verity.GroupSettings{})})
	c := join(t, gs, s, "g", 10)
	got := recvN(t, c, 3)
	nack(t, c, verity.NackPark, got[0])
	ack(t, c, got[1:]...)
	inf := waitInfo(t, gs, s, "g", "one parked, checkpoint past it", func(i verity.GroupInfo) bool {
		return i.Parked == 1 && i.Checkpoint == 2 && i.Checkpointed
	})
	if inf.Nacked != 1 || inf.Acked != 2 {
		t.Fatalf("nacked %d acked %d, want 1 and 2", inf.Nacked, inf.Acked)
	}
	if evs := readStream(t, st, verity.ParkedStreamOf(s, "g")); len(evs) == 0 {
		t.Fatalf("the parked stream %q is empty", verity.ParkedStreamOf(s, "g"))
	}
	if err := gs.ReplayParked(ctxT(t), s, "g", verity.ReplayParkedOptions{}); err != nil {
		t.Fatalf("replay: %v", err)
	}
	again := recv(t, c)
	if again.Event.ID != want[0] {
		t.Fatalf("replayed %s, want %s", again.Event.ID, want[0])
	}
	newer := appendN(t, st, s, 1)
	ack(t, c, again)
	if m := recv(t, c); m.Event.ID != newer[0] {
		t.Fatalf("after the replay got %s, want the new event %s", m.Event.ID, newer[0])
	}
	waitInfo(t, gs, s, "g", "nothing parked", func(i verity.GroupInfo) bool { return i.Parked == 0 })
	// A replay with nothing parked is fine.
	if err := gs.ReplayParked(ctxT(t), s, "g", verity.ReplayParkedOptions{Limit: 5}); err != nil {
		t.Fatalf("empty replay: %v", err)
	}
}

func testNackRetry(t *testing.T, h Harness) {
	gs, st := h.New(t)
	s := uniq("order-")
	want := appendN(t, st, s, 1)
	create(t, gs, verity.GroupSpec{Stream: s, Group: "g"})
	c := join(t, gs, s, "g", 0)
	m := recv(t, c)
	nack(t, c, verity.NackRetry, m)
	m2 := recv(t, c)
	if m2.Event.ID != want[0] || m2.RetryCount != 1 {
		t.Fatalf("retry: got %s retry %d, want %s retry 1", m2.Event.ID, m2.RetryCount, want[0])
	}
	ack(t, c, m2)
	waitInfo(t, gs, s, "g", "acked", func(i verity.GroupInfo) bool { return i.Acked == 1 && i.Nacked == 1 && i.InFlight == 0 })
}

func testNackSkip(t *testing.T, h Harness) {
	gs, st := h.New(t)
	s := uniq("order-")
	want := appendN(t, st, s, 2)
	create(t, gs, verity.GroupSpec{Stream: s, Group: "g", Settings: fast(verity.GroupSettings{})})
	c := join(t, gs, s, "g", 1)
	nack(t, c, verity.NackSkip, recv(t, c))
	m := recv(t, c)
	if m.Event.ID != want[1] {
		t.Fatalf("after a skip got %s, want %s", m.Event.ID, want[1])
	}
	ack(t, c, m)
	inf := waitInfo(t, gs, s, "g", "checkpoint at 1", func(i verity.GroupInfo) bool { return i.Checkpoint == 1 && i.Checkpointed })
	if inf.Parked != 0 {
		t.Fatalf("a skip parked %d events", inf.Parked)
	}
	requireQuiet(t, c, 100*time.Millisecond)
}

func testNackStop(t *testing.T, h Harness) {
	gs, st := h.New(t)
	s := uniq("order-")
	want := appendN(t, st, s, 1)
	create(t, gs, verity.GroupSpec{Stream: s, Group: "g", Settings: verity.GroupSettings{Strategy: verity.DispatchToSingle}})
	c1 := join(t, gs, s, "g", 0)
	m := recv(t, c1)
	c2 := join(t, gs, s, "g", 0)
	nack(t, c1, verity.NackStop, m)
	requireRecvKind(t, c1, verity.Conflict)
	if m2 := recv(t, c2); m2.Event.ID != want[0] {
		t.Fatalf("other consumer got %s, want %s", m2.Event.ID, want[0])
	}
	inf := waitInfo(t, gs, s, "g", "one consumer", func(i verity.GroupInfo) bool { return len(i.Consumers) == 1 })
	if inf.Nacked != 1 {
		t.Fatalf("nacked %d, want 1", inf.Nacked)
	}
}

func testTimeout(t *testing.T, h Harness) {
	gs, st := h.New(t)
	s := uniq("order-")
	want := appendN(t, st, s, 1)
	create(t, gs, verity.GroupSpec{Stream: s, Group: "g", Settings: verity.GroupSettings{MessageTimeout: 200 * time.Millisecond, MaxRetryCount: 1}})
	c := join(t, gs, s, "g", 0)
	for retry := range 2 {
		m := recv(t, c)
		if m.Event.ID != want[0] || m.RetryCount != retry {
			t.Fatalf("delivery %d: %s retry %d", retry, m.Event.ID, m.RetryCount)
		}
	}
	inf := waitInfo(t, gs, s, "g", "parked after two timeouts", func(i verity.GroupInfo) bool { return i.Parked == 1 })
	if inf.TimedOut != 2 || inf.InFlight != 0 {
		t.Fatalf("timed out %d in flight %d, want 2 and 0", inf.TimedOut, inf.InFlight)
	}
	requireQuiet(t, c, 300*time.Millisecond)
}

func testPoison(t *testing.T, h Harness) {
	gs, st := h.New(t)
	s := uniq("order-")
	want := appendN(t, st, s, 5)
	create(t, gs, verity.GroupSpec{Stream: s, Group: "g", Settings: verity.GroupSettings{MaxRetryCount: 2}})
	c := join(t, gs, s, "g", 0)
	acked, tries := 0, 0
	for acked < 4 || tries < 3 {
		m := recv(t, c)
		if m.Event.ID == want[2] {
			tries++
			nack(t, c, verity.NackRetry, m)
			continue
		}
		ack(t, c, m)
		acked++
	}
	inf := waitInfo(t, gs, s, "g", "poison parked", func(i verity.GroupInfo) bool { return i.Parked == 1 })
	if tries != 3 || inf.Acked != 4 {
		t.Fatalf("poison tried %d times (want 3), %d acked (want 4)", tries, inf.Acked)
	}
}

func testRoundRobin(t *testing.T, h Harness) {
	gs, st := h.New(t)
	s := uniq("order-")
	create(t, gs, verity.GroupSpec{Stream: s, Group: "g"})
	c1, c2 := join(t, gs, s, "g", 100), join(t, gs, s, "g", 100)
	waitInfo(t, gs, s, "g", "two consumers", func(i verity.GroupInfo) bool { return len(i.Consumers) == 2 })
	want := appendN(t, st, s, 10)
	col := collect(t, c1, c2)
	got := col.waitN(t, 10)
	per := map[int]int{}
	seen := map[uuid.UUID]bool{}
	for _, r := range got {
		per[r.consumer]++
		seen[r.msg.Event.ID] = true
	}
	if per[0] == 0 || per[1] == 0 || len(seen) != len(want) {
		t.Fatalf("round robin: per consumer %v, %d distinct of %d", per, len(seen), len(want))
	}
}

func testDispatchToSingle(t *testing.T, h Harness) {
	gs, st := h.New(t)
	s := uniq("order-")
	create(t, gs, verity.GroupSpec{Stream: s, Group: "g", Settings: verity.GroupSettings{Strategy: verity.DispatchToSingle}})
	c1 := join(t, gs, s, "g", 100)
	c2 := join(t, gs, s, "g", 100)
	want := appendN(t, st, s, 10)
	requireIDs(t, ids(recvN(t, c1, 10)), want, "the single consumer")
	requireQuiet(t, c2, 100*time.Millisecond)
}

// requirePinned checks that each key's events went to one consumer, in revision order.
func requirePinned(t testing.TB, got []received, keyOf func(verity.GroupMessage) string) {
	t.Helper()
	owner := map[string]int{}
	last := map[string]int64{}
	for _, r := range got {
		k := keyOf(r.msg)
		if o, ok := owner[k]; ok && o != r.consumer {
			t.Fatalf("key %q went to consumers %d and %d", k, o, r.consumer)
		}
		owner[k] = r.consumer
		rk := r.msg.Event.Stream
		if l, ok := last[rk]; ok && int64(r.msg.Event.Revision) <= l {
			t.Fatalf("stream %q: revision %d after %d", rk, r.msg.Event.Revision, l)
		}
		last[rk] = int64(r.msg.Event.Revision)
	}
}

func testPinned(t *testing.T, h Harness) {
	gs, st := h.New(t)
	cat := uniq("pin")
	create(t, gs, verity.GroupSpec{Stream: verity.AllStream, Group: cat, Filter: verity.Filter{Categories: []string{cat}},
		Settings: verity.GroupSettings{Strategy: verity.Pinned}})
	cs := []verity.GroupConsumer{join(t, gs, "", cat, 3), join(t, gs, "", cat, 3), join(t, gs, "", cat, 3)}
	waitInfo(t, gs, "", cat, "three consumers", func(i verity.GroupInfo) bool { return len(i.Consumers) == 3 })
	col := collect(t, cs...)
	for range 10 {
		for s := range 4 {
			appendN(t, st, cat+"-"+string(rune('a'+s)), 1)
		}
	}
	got := col.waitN(t, 40)
	requirePinned(t, got, func(m verity.GroupMessage) string { return m.Event.Stream })
	used := map[int]bool{}
	for _, r := range got {
		used[r.consumer] = true
	}
	if len(used) < 2 {
		t.Fatalf("4 streams went to %d consumer(s), want them spread", len(used))
	}
}

func testPinnedByCorrelation(t *testing.T, h Harness) {
	gs, st := h.New(t)
	cat := uniq("corr")
	create(t, gs, verity.GroupSpec{Stream: verity.AllStream, Group: cat, Filter: verity.Filter{Categories: []string{cat}},
		Settings: verity.GroupSettings{Strategy: verity.PinnedByCorrelation}})
	cs := []verity.GroupConsumer{join(t, gs, "", cat, 2), join(t, gs, "", cat, 2)}
	waitInfo(t, gs, "", cat, "two consumers", func(i verity.GroupInfo) bool { return len(i.Consumers) == 2 })
	col := collect(t, cs...)
	corr := map[uuid.UUID]string{}
	for i := range 12 {
		id := uuid.New()
		c := []string{"x", "y", "z"}[i%3]
		key := `{"$correlationId":"` + c + `"}`
		if i%2 == 1 {
			key = `{"correlationId":"` + c + `"}`
		}
		corr[id] = c
		// Each event in a stream of its own: only the correlation id ties them.
		if _, err := st.Append(ctxT(t), cat+"-"+uuid.NewString()[:8], verity.Any(), verity.EventData{ID: id, Type: "Happened", Data: []byte(`{}`), Metadata: []byte(key)}); err != nil {
			t.Fatalf("append: %v", err)
		}
	}
	got := col.waitN(t, 12)
	requirePinned(t, got, func(m verity.GroupMessage) string { return corr[m.Event.ID] })
}

func testPinnedLeave(t *testing.T, h Harness) {
	gs, st := h.New(t)
	s := uniq("order-")
	create(t, gs, verity.GroupSpec{Stream: s, Group: "g", Settings: verity.GroupSettings{Strategy: verity.Pinned}})
	c1 := join(t, gs, s, "g", 10)
	c2 := join(t, gs, s, "g", 10)
	want := appendN(t, st, s, 2)
	// One stream: all to one consumer; whichever it is, closing it moves the stream.
	ctx := ctxT(t)
	var holder, other verity.GroupConsumer
	m, err := recvEither(t, c1, c2, &holder, &other)
	if err != nil {
		t.Fatal(err)
	}
	if m.Event.ID != want[0] {
		t.Fatalf("first event %s, want %s", m.Event.ID, want[0])
	}
	if m2, err := holder.Recv(ctx); err != nil || m2.Event.ID != want[1] {
		t.Fatalf("the pinned consumer got %v, %v, want %s", m2.Event.ID, err, want[1])
	}
	holder.Close()
	got := recvN(t, other, 2)
	requireIDs(t, ids(got), want, "after the pinned consumer left")
	if got[0].RetryCount != 1 {
		t.Fatalf("redelivered with retry count %d, want 1", got[0].RetryCount)
	}
	ack(t, other, got...)
	more := appendN(t, st, s, 1)
	requireIDs(t, ids(recvN(t, other, 1)), more, "new events of the moved stream")
}

// recvEither receives the first event from whichever consumer gets one.
func recvEither(t testing.TB, a, b verity.GroupConsumer, got, other *verity.GroupConsumer) (verity.GroupMessage, error) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		for _, pair := range [][2]verity.GroupConsumer{{a, b}, {b, a}} {
			ctx := ctxT(t)
			if m, err := recvWithin(ctx, pair[0], 20*time.Millisecond); err == nil {
				*got, *other = pair[0], pair[1]
				return m, nil
			}
		}
	}
	return verity.GroupMessage{}, errors.New("no consumer received an event")
}

func testCrash(t *testing.T, h Harness) {
	gs, st := h.New(t)
	s := uniq("order-")
	create(t, gs, verity.GroupSpec{Stream: s, Group: "g", Settings: verity.GroupSettings{Strategy: verity.DispatchToSingle}})
	c1 := join(t, gs, s, "g", 10)
	want := appendN(t, st, s, 3)
	recvN(t, c1, 3)
	c2 := join(t, gs, s, "g", 10)
	if err := c1.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	requireRecvKind(t, c1, verity.Conflict)
	got := recvN(t, c2, 3)
	requireIDs(t, ids(got), want, "redelivered to the other consumer")
	for _, m := range got {
		if m.RetryCount != 1 {
			t.Fatalf("redelivered with retry count %d, want 1", m.RetryCount)
		}
	}
	if err := c1.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func testMaxInFlight(t *testing.T, h Harness) {
	gs, st := h.New(t)
	s := uniq("order-")
	want := appendN(t, st, s, 5)
	create(t, gs, verity.GroupSpec{Stream: s, Group: "g"})
	c := join(t, gs, s, "g", 2)
	got := recvN(t, c, 2)
	requireQuiet(t, c, 150*time.Millisecond)
	inf := waitInfo(t, gs, s, "g", "three waiting", func(i verity.GroupInfo) bool { return i.Waiting == 3 && i.InFlight == 2 })
	if inf.Consumers[0].InFlight != 2 {
		t.Fatalf("consumer in flight %d, want 2", inf.Consumers[0].InFlight)
	}
	ack(t, c, got[0])
	if m := recv(t, c); m.Event.ID != want[2] {
		t.Fatalf("after an ack got %s, want %s", m.Event.ID, want[2])
	}
	requireQuiet(t, c, 100*time.Millisecond)
}

func testMaxConsumers(t *testing.T, h Harness) {
	gs, _ := h.New(t)
	s := uniq("order-")
	create(t, gs, verity.GroupSpec{Stream: s, Group: "g", Settings: verity.GroupSettings{MaxConsumers: 2}})
	c1 := join(t, gs, s, "g", 0)
	join(t, gs, s, "g", 0)
	_, err := gs.JoinGroup(ctxT(t), s, "g", verity.JoinOptions{})
	requireKind(t, err, verity.ResourceExhausted, "a third consumer")
	c1.Close()
	waitInfo(t, gs, s, "g", "one consumer left", func(i verity.GroupInfo) bool { return len(i.Consumers) == 1 })
	join(t, gs, s, "g", 0)
}

func testLogFilter(t *testing.T, h Harness) {
	gs, st := h.New(t)
	cat, other := uniq("inv"), uniq("pay")
	create(t, gs, verity.GroupSpec{Stream: verity.AllStream, Group: "g", Filter: verity.Filter{Categories: []string{cat}}, Settings: fast(verity.GroupSettings{})})
	c := join(t, gs, verity.AllStream, "g", 50)
	var want []uuid.UUID
	for i := range 5 {
		want = append(want, appendN(t, st, cat+"-1", 1)...)
		appendN(t, st, other+"-1", 2)
		_ = i
	}
	got := recvN(t, c, 5)
	requireIDs(t, ids(got), want, "filtered events")
	ack(t, c, got...)
	inf := waitInfo(t, gs, verity.AllStream, "g", "checkpoint at the last event", func(i verity.GroupInfo) bool {
		return i.Checkpointed && i.Checkpoint >= got[4].Event.Position
	})
	if inf.Stream != verity.AllStream {
		t.Fatalf("log group stream %q", inf.Stream)
	}
	// The checkpoint moves past filtered-out events too, once the group has seen them.
	appendN(t, st, other+"-2", 3)
	tail, err := st.ReadAll(ctxT(t), verity.ReadAllOptions{Direction: verity.Backwards, FromEnd: true, Limit: 1})
	if err != nil || len(tail) != 1 {
		t.Fatalf("read the log's end: %v", err)
	}
	end := tail[0].Position
	waitInfo(t, gs, verity.AllStream, "g", "filtered-out events seen", func(i verity.GroupInfo) bool { return i.LastKnown >= end })
	requireQuiet(t, c, 50*time.Millisecond)
	if err := gs.RestartGroups(ctxT(t)); err != nil {
		t.Fatalf("restart: %v", err)
	}
	waitInfo(t, gs, verity.AllStream, "g", "checkpoint past the filtered-out events", func(i verity.GroupInfo) bool {
		return i.Checkpointed && i.Checkpoint >= end
	})
}

func testUpdate(t *testing.T, h Harness) {
	gs, st := h.New(t)
	s := uniq("order-")
	want := appendN(t, st, s, 3)
	create(t, gs, verity.GroupSpec{Stream: s, Group: "g", Settings: fast(verity.GroupSettings{})})
	c := join(t, gs, s, "g", 10)
	got := recvN(t, c, 3)
	ack(t, c, got[0])
	waitInfo(t, gs, s, "g", "checkpoint at 0", func(i verity.GroupInfo) bool { return i.Checkpointed && i.Checkpoint == 0 })
	if err := gs.UpdateGroup(ctxT(t), verity.GroupSpec{Stream: s, Group: "g", Settings: fast(verity.GroupSettings{MaxRetryCount: 4})}); err != nil {
		t.Fatalf("update: %v", err)
	}
	requireRecvKind(t, c, verity.Unavailable)
	inf, err := gs.GetGroup(ctxT(t), s, "g")
	if err != nil || inf.Settings.MaxRetryCount != 4 || !inf.Checkpointed || inf.Checkpoint != 0 {
		t.Fatalf("after update: %+v, %v", inf, err)
	}
	c2 := join(t, gs, s, "g", 10)
	requireIDs(t, ids(recvN(t, c2, 2)), want[1:], "redelivered after the update")
}

func testRestart(t *testing.T, h Harness) {
	gs, st := h.New(t)
	s := uniq("order-")
	want := appendN(t, st, s, 4)
	create(t, gs, verity.GroupSpec{Stream: s, Group: "g"})
	c := join(t, gs, s, "g", 10)
	got := recvN(t, c, 4)
	ack(t, c, got[:2]...)
	waitInfo(t, gs, s, "g", "two acked", func(i verity.GroupInfo) bool { return i.Acked == 2 })
	if err := gs.RestartGroups(ctxT(t)); err != nil {
		t.Fatalf("restart: %v", err)
	}
	requireRecvKind(t, c, verity.Unavailable)
	c2 := join(t, gs, s, "g", 10)
	requireIDs(t, ids(recvN(t, c2, 2)), want[2:], "after restart")
	requireQuiet(t, c2, 100*time.Millisecond)
}

func testDelete(t *testing.T, h Harness) {
	gs, st := h.New(t)
	s := uniq("order-")
	want := appendN(t, st, s, 2)
	create(t, gs, verity.GroupSpec{Stream: s, Group: "g", Settings: fast(verity.GroupSettings{})})
	c := join(t, gs, s, "g", 10)
	got := recvN(t, c, 2)
	nack(t, c, verity.NackPark, got[0])
	ack(t, c, got[1])
	waitInfo(t, gs, s, "g", "checkpoint at 1", func(i verity.GroupInfo) bool { return i.Checkpoint == 1 && i.Parked == 1 })
	if err := gs.DeleteGroup(ctxT(t), s, "g"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	requireRecvKind(t, c, verity.NotFound)
	// A new group of the same name starts afresh: no checkpoint, nothing parked.
	create(t, gs, verity.GroupSpec{Stream: s, Group: "g"})
	inf, err := gs.GetGroup(ctxT(t), s, "g")
	if err != nil || inf.Checkpointed || inf.Parked != 0 {
		t.Fatalf("re-created group: %+v, %v", inf, err)
	}
	requireIDs(t, ids(recvN(t, join(t, gs, s, "g", 10), 2)), want, "re-created group")
}

func testQuarantine(t *testing.T, h Harness) {
	gs, st := h.New(t)
	cat := uniq("q")
	a, b := cat+"-a", cat+"-b"
	create(t, gs, verity.GroupSpec{Stream: verity.AllStream, Group: "g", Filter: verity.Filter{Categories: []string{cat}},
		Settings: fast(verity.GroupSettings{Strategy: verity.Pinned})})
	c := join(t, gs, "", "g", 10)
	a0 := appendN(t, st, a, 1)
	m := recv(t, c)
	if m.Event.ID != a0[0] {
		t.Fatalf("got %s, want %s", m.Event.ID, a0[0])
	}
	nack(t, c, verity.NackPark, m)
	waitInfo(t, gs, "", "g", "a0 parked", func(i verity.GroupInfo) bool { return i.Parked == 1 })
	aRest := appendN(t, st, a, 3)
	bs := appendN(t, st, b, 3)
	got := recvN(t, c, 3)
	requireIDs(t, ids(got), bs, "the other stream flows")
	ack(t, c, got...)
	waitInfo(t, gs, "", "g", "a's later events held", func(i verity.GroupInfo) bool { return i.Parked == 4 })
	requireQuiet(t, c, 100*time.Millisecond)

	if err := gs.ReplayParked(ctxT(t), "", "g", verity.ReplayParkedOptions{}); err != nil {
		t.Fatalf("replay: %v", err)
	}
	for i, id := range append(a0, aRest...) {
		m := recv(t, c)
		if m.Event.ID != id {
			t.Fatalf("replayed %d: got %s (revision %d), want %s", i, m.Event.ID, m.Event.Revision, id)
		}
		// One at a time: nothing more until this one is acked.
		requireQuiet(t, c, 50*time.Millisecond)
		ack(t, c, m)
	}
	waitInfo(t, gs, "", "g", "nothing parked", func(i verity.GroupInfo) bool { return i.Parked == 0 && i.Waiting == 0 })
	// Lifted: a's new events flow.
	more := appendN(t, st, a, 2)
	requireIDs(t, ids(recvN(t, c, 2)), more, "after the quarantine lifted")
}

func testReopen(t *testing.T, h Harness) {
	if h.Reopen == nil {
		t.Skip("the harness cannot reopen (Harness.Reopen is nil)")
	}
	gs, st := h.New(t)
	s := uniq("order-")
	want := appendN(t, st, s, 10)
	create(t, gs, verity.GroupSpec{Stream: s, Group: "g"})
	cat := uniq("cat")
	create(t, gs, verity.GroupSpec{Stream: verity.AllStream, Group: cat, Filter: verity.Filter{Categories: []string{cat}}})
	logWant := appendN(t, st, cat+"-1", 4)
	c := join(t, gs, s, "g", 20)
	got := recvN(t, c, 10)
	ack(t, c, got[:5]...)
	lc := join(t, gs, "", cat, 20)
	lgot := recvN(t, lc, 4)
	ack(t, lc, lgot[:2]...)
	waitInfo(t, gs, s, "g", "five acked", func(i verity.GroupInfo) bool { return i.Acked == 5 })
	waitInfo(t, gs, "", cat, "two acked", func(i verity.GroupInfo) bool { return i.Acked == 2 })

	gs, st = h.Reopen(t)
	if _, err := gs.GetGroup(ctxT(t), s, "g"); err != nil {
		t.Fatalf("group lost by reopening: %v", err)
	}
	c = join(t, gs, s, "g", 20)
	requireIDs(t, ids(recvN(t, c, 5)), want[5:], "stream group after reopening")
	lc = join(t, gs, "", cat, 20)
	requireIDs(t, ids(recvN(t, lc, 2)), logWant[2:], "log group after reopening")
	more := appendN(t, st, s, 1)
	requireIDs(t, ids(recvN(t, c, 1)), more, "live after reopening")
}

func testReopenParked(t *testing.T, h Harness) {
	if h.Reopen == nil {
		t.Skip("the harness cannot reopen (Harness.Reopen is nil)")
	}
	gs, st := h.New(t)
	s := uniq("order-")
	want := appendN(t, st, s, 3)
	create(t, gs, verity.GroupSpec{Stream: s, Group: "g", Settings: verity.GroupSettings{Quarantine: verity.QuarantineOff}})
	c := join(t, gs, s, "g", 10)
	got := recvN(t, c, 3)
	nack(t, c, verity.NackPark, got[0])
	nack(t, c, verity.NackPark, got[1])
	ack(t, c, got[2])
	waitInfo(t, gs, s, "g", "two parked", func(i verity.GroupInfo) bool { return i.Parked == 2 && i.Acked == 1 })

	gs, st = h.Reopen(t)
	waitInfo(t, gs, s, "g", "two parked after reopening", func(i verity.GroupInfo) bool { return i.Parked == 2 })
	c = join(t, gs, s, "g", 10)
	requireQuiet(t, c, 100*time.Millisecond)
	if err := gs.ReplayParked(ctxT(t), s, "g", verity.ReplayParkedOptions{Limit: 1}); err != nil {
		t.Fatalf("replay: %v", err)
	}
	m := recv(t, c)
	if m.Event.ID != want[0] {
		t.Fatalf("replayed %s, want %s", m.Event.ID, want[0])
	}
	ack(t, c, m)
	waitInfo(t, gs, s, "g", "one parked", func(i verity.GroupInfo) bool { return i.Parked == 1 && i.Waiting == 0 && i.InFlight == 0 })

	gs, st = h.Reopen(t)
	waitInfo(t, gs, s, "g", "one parked after the second reopening", func(i verity.GroupInfo) bool { return i.Parked == 1 })
	c = join(t, gs, s, "g", 10)
	more := appendN(t, st, s, 1)
	requireIDs(t, ids(recvN(t, c, 1)), more, "nothing replayed twice")
	if err := gs.ReplayParked(ctxT(t), s, "g", verity.ReplayParkedOptions{}); err != nil {
		t.Fatalf("replay: %v", err)
	}
	if m := recv(t, c); m.Event.ID != want[1] {
		t.Fatalf("replayed %s, want %s", m.Event.ID, want[1])
	}
}
