package kurrentdb

import (
	"testing"
	"time"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"

	"github.com/verity-dev/verity"
)

// These tests drive PersistentSubscriptions with the official Go client over a real
// persistent.Manager.

// nextEvent receives the next event of a persistent subscription, failing on a drop or
// after a deadline.
func nextEvent(t testing.TB, sub *kurrentdb.PersistentSubscription) *kurrentdb.EventAppeared {
	t.Helper()
	got := make(chan *kurrentdb.PersistentSubscriptionEvent, 1)
	go func() { got <- sub.Recv() }()
	select {
	case ev := <-got:
		if ev.SubscriptionDropped != nil {
			t.Fatalf("subscription dropped: %v", ev.SubscriptionDropped.Error)
		}
		return ev.EventAppeared
	case <-time.After(10 * time.Second):
		sub.Close()
		<-got
		t.Fatal("timed out waiting for an event")
	}
	return nil
}

// dropped waits until the subscription reports its end, and returns the reason.
func dropped(t testing.TB, sub *kurrentdb.PersistentSubscription) error {
	t.Helper()
	got := make(chan error, 1)
	go func() {
		for {
			ev := sub.Recv()
			if ev.SubscriptionDropped != nil {
				got <- ev.SubscriptionDropped.Error
				return
			}
		}
	}()
	select {
	case err := <-got:
		return err
	case <-time.After(10 * time.Second):
		sub.Close()
		<-got
		t.Fatal("timed out waiting for the subscription to drop")
	}
	return nil
}

func subscribe(t testing.TB, c *kurrentdb.Client, stream, group string, buffer uint32) *kurrentdb.PersistentSubscription {
	t.Helper()
	var sub *kurrentdb.PersistentSubscription
	var err error
	if stream == verity.AllStream {
		sub, err = c.SubscribeToPersistentSubscriptionToAll(testCtx(t), group, kurrentdb.SubscribeToPersistentSubscriptionOptions{BufferSize: buffer})
	} else {
		sub, err = c.SubscribeToPersistentSubscription(testCtx(t), stream, group, kurrentdb.SubscribeToPersistentSubscriptionOptions{BufferSize: buffer})
	}
	if err != nil {
		t.Fatalf("subscribe to %s/%s: %v", stream, group, err)
	}
	t.Cleanup(func() { sub.Close() })
	return sub
}

func TestPersistentStreamGroupDeliversAcksAndDescribes(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	ctx := testCtx(t)
	evs := appendN(t, c, "order-1", 3)
	if err := c.CreatePersistentSubscription(ctx, "order-1", "billing", kurrentdb.PersistentStreamSubscriptionOptions{StartFrom: kurrentdb.Start{}}); err != nil {
		t.Fatalf("create: %v", err)
	}
	sub := subscribe(t, c, "order-1", "billing", 2)
	first, second := nextEvent(t, sub), nextEvent(t, sub)
	for i, got := range []*kurrentdb.EventAppeared{first, second} {
		ev := got.Event.OriginalEvent()
		if ev.EventID != evs[i].EventID || ev.EventNumber != uint64(i) || ev.StreamID != "order-1" || got.RetryCount != 0 {
			t.Fatalf("event %d: id %s revision %d stream %s retries %d, want %s %d order-1 0", i, ev.EventID, ev.EventNumber, ev.StreamID, got.RetryCount, evs[i].EventID, i)
		}
		if ev.Position.Commit == 0 || got.Event.Commit == nil || *got.Event.Commit != ev.Position.Commit {
			t.Fatalf("event %d: commit position %d (resolved %v), want the event's position in $all", i, ev.Position.Commit, got.Event.Commit)
		}
	}
	if err := sub.Ack(first.Event); err != nil {
		t.Fatalf("ack: %v", err)
	}
	if third := nextEvent(t, sub); third.Event.OriginalEvent().EventID != evs[2].EventID {
		t.Fatalf("third event %s, want %s", third.Event.OriginalEvent().EventID, evs[2].EventID)
	}

	info, err := c.GetPersistentSubscriptionInfo(ctx, "order-1", "billing", kurrentdb.GetPersistentSubscriptionOptions{})
	if err != nil {
		t.Fatalf("get info: %v", err)
	}
	def := kurrentdb.SubscriptionSettingsDefault()
	if info.EventSource != "order-1" || info.GroupName != "billing" || info.Settings.ConsumerStrategyName != kurrentdb.ConsumerStrategyRoundRobin ||
		info.Settings.MessageTimeout != def.MessageTimeout || info.Settings.MaxRetryCount != def.MaxRetryCount ||
		info.Settings.CheckpointAfter != def.CheckpointAfter || info.Settings.HistoryBufferSize != def.HistoryBufferSize {
		t.Fatalf("info %+v settings %+v, want the defaults on order-1/billing", info, info.Settings)
	}
	if _, ok := info.Settings.StartFrom.(kurrentdb.Start); !ok {
		t.Fatalf("start from %#v, want Start", info.Settings.StartFrom)
	}
	if len(info.Connections) != 1 || info.Connections[0].InFlightMessages != 2 {
		t.Fatalf("connections %+v, want one with 2 in flight", info.Connections)
	}

	list, err := c.ListPersistentSubscriptionsForStream(ctx, "order-1", kurrentdb.ListPersistentSubscriptionsOptions{})
	if err != nil || len(list) != 1 || list[0].GroupName != "billing" {
		t.Fatalf("list for order-1: %v %+v, want billing", err, list)
	}
	if err := c.DeletePersistentSubscription(ctx, "order-1", "billing", kurrentdb.DeletePersistentSubscriptionOptions{}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if err := dropped(t, sub); err == nil {
		t.Fatal("the consumer of a deleted group was not dropped with an error")
	}
	_, err = c.GetPersistentSubscriptionInfo(ctx, "order-1", "billing", kurrentdb.GetPersistentSubscriptionOptions{})
	if codeOf(err) != kurrentdb.ErrorCodeResourceNotFound {
		t.Fatalf("info of a deleted group: %v, want resource not found", err)
	}
}

func TestPersistentGroupErrorsAsTheClientExpects(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	ctx := testCtx(t)
	if err := c.CreatePersistentSubscription(ctx, "s-1", "g", kurrentdb.PersistentStreamSubscriptionOptions{}); err != nil {
		t.Fatalf("create: %v", err)
	}
	err := c.CreatePersistentSubscription(ctx, "s-1", "g", kurrentdb.PersistentStreamSubscriptionOptions{})
	if codeOf(err) != kurrentdb.ErrorCodeResourceAlreadyExists {
		t.Fatalf("second create: %v, want resource already exists", err)
	}
	_, err = c.SubscribeToPersistentSubscription(ctx, "s-1", "missing", kurrentdb.SubscribeToPersistentSubscriptionOptions{})
	if codeOf(err) != kurrentdb.ErrorCodeResourceNotFound {
		t.Fatalf("subscribe to a missing group: %v, want resource not found", err)
	}
	err = c.UpdatePersistentSubscription(ctx, "s-1", "missing", kurrentdb.PersistentStreamSubscriptionOptions{})
	if codeOf(err) != kurrentdb.ErrorCodeResourceNotFound {
		t.Fatalf("update of a missing group: %v, want resource not found", err)
	}
	err = c.DeletePersistentSubscriptionToAll(ctx, "g", kurrentdb.DeletePersistentSubscriptionOptions{})
	if codeOf(err) != kurrentdb.ErrorCodeResourceNotFound {
		t.Fatalf("delete of a missing $all group: %v, want resource not found", err)
	}
	_, err = c.ListPersistentSubscriptionsForStream(ctx, "s-2", kurrentdb.ListPersistentSubscriptionsOptions{})
	if codeOf(err) != kurrentdb.ErrorCodeResourceNotFound {
		t.Fatalf("list of a stream without groups: %v, want resource not found (as KurrentDB)", err)
	}
	all, err := c.ListAllPersistentSubscriptions(ctx, kurrentdb.ListPersistentSubscriptionsOptions{})
	if err != nil || len(all) != 1 {
		t.Fatalf("list all: %v %+v, want the one group", err, all)
	}
	settings := kurrentdb.SubscriptionSettingsDefault()
	settings.MaxSubscriberCount = 1
	if err := c.CreatePersistentSubscription(ctx, "s-1", "single", kurrentdb.PersistentStreamSubscriptionOptions{Settings: &settings}); err != nil {
		t.Fatalf("create: %v", err)
	}
	subscribe(t, c, "s-1", "single", 1)
	if _, err := c.SubscribeToPersistentSubscription(ctx, "s-1", "single", kurrentdb.SubscribeToPersistentSubscriptionOptions{}); err == nil {
		t.Fatal("a second consumer joined a group of at most one")
	}
}

func TestPersistentSettingsOfZeroMeanNone(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	ctx := testCtx(t)
	settings := kurrentdb.SubscriptionSettingsDefault()
	settings.MessageTimeout = 0
	settings.MaxRetryCount = 0
	settings.CheckpointLowerBound = 0
	settings.ConsumerStrategyName = kurrentdb.ConsumerStrategyPinned
	if err := c.CreatePersistentSubscription(ctx, "s-1", "g", kurrentdb.PersistentStreamSubscriptionOptions{Settings: &settings}); err != nil {
		t.Fatalf("create: %v", err)
	}
	g, err := e.groups.GetGroup(ctx, "s-1", "g")
	if err != nil {
		t.Fatal(err)
	}
	if st := g.Settings; st.MessageTimeout >= 0 || st.MaxRetryCount >= 0 || st.CheckpointLowerBound > 0 || st.Strategy != verity.Pinned || !st.FromEnd {
		t.Fatalf("settings %+v, want no timeout, park at once, lower bound 0, Pinned, from the end", st)
	}
	info, err := c.GetPersistentSubscriptionInfo(ctx, "s-1", "g", kurrentdb.GetPersistentSubscriptionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if info.Settings.MessageTimeout != 0 || info.Settings.MaxRetryCount != 0 || info.Settings.CheckpointLowerBound != 0 {
		t.Fatalf("settings read back %+v, want zeros", info.Settings)
	}
	if _, ok := info.Settings.StartFrom.(kurrentdb.End); !ok {
		t.Fatalf("start from %#v, want End", info.Settings.StartFrom)
	}

	settings.HistoryBufferSize = 123
	settings.ConsumerStrategyName = kurrentdb.ConsumerStrategyDispatchToSingle
	if err := c.UpdatePersistentSubscription(ctx, "s-1", "g", kurrentdb.PersistentStreamSubscriptionOptions{Settings: &settings}); err != nil {
		t.Fatalf("update: %v", err)
	}
	info, err = c.GetPersistentSubscriptionInfo(ctx, "s-1", "g", kurrentdb.GetPersistentSubscriptionOptions{})
	if err != nil || info.Settings.HistoryBufferSize != 123 || info.Settings.ConsumerStrategyName != kurrentdb.ConsumerStrategyDispatchToSingle {
		t.Fatalf("after update: %v %+v", err, info.Settings)
	}
}

func TestPersistentAllGroupWithFilter(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	ctx := testCtx(t)
	appendN(t, c, "other-1", 2)
	want := appendN(t, c, "order-1", 2)
	err := c.CreatePersistentSubscriptionToAll(ctx, "orders", kurrentdb.PersistentAllSubscriptionOptions{
		StartFrom: kurrentdb.Start{},
		Filter:    &kurrentdb.SubscriptionFilter{Type: kurrentdb.StreamFilterType, Prefixes: []string{"order-"}},
		Settings:  ptr(kurrentdb.SubscriptionSettingsDefault()),
	})
	if err != nil {
		t.Fatalf("create to $all: %v", err)
	}
	g, err := e.groups.GetGroup(ctx, verity.AllStream, "orders")
	if err != nil || len(g.Filter.StreamPrefixes) != 1 || g.Filter.StreamPrefixes[0] != "order-" {
		t.Fatalf("group %+v %v, want the stream prefix filter", g.Filter, err)
	}
	sub := subscribe(t, c, verity.AllStream, "orders", 10)
	for i := range want {
		got := nextEvent(t, sub)
		ev := got.Event.OriginalEvent()
		if ev.EventID != want[i].EventID || ev.StreamID != "order-1" || ev.Position.Commit == 0 {
			t.Fatalf("event %d: %s of %s at %d, want %s of order-1", i, ev.EventID, ev.StreamID, ev.Position.Commit, want[i].EventID)
		}
		if err := sub.Ack(got.Event); err != nil {
			t.Fatal(err)
		}
	}
	info, err := c.GetPersistentSubscriptionInfoToAll(ctx, "orders", kurrentdb.GetPersistentSubscriptionOptions{})
	if err != nil || info.EventSource != verity.AllStream {
		t.Fatalf("info of $all group: %v %+v", err, info)
	}
	if _, ok := info.Settings.StartFrom.(kurrentdb.Start); !ok {
		t.Fatalf("start from %#v, want Start", info.Settings.StartFrom)
	}
	list, err := c.ListPersistentSubscriptionsToAll(ctx, kurrentdb.ListPersistentSubscriptionsOptions{})
	if err != nil || len(list) != 1 {
		t.Fatalf("list $all: %v %+v", err, list)
	}
}

func ptr[T any](v T) *T { return &v }

func TestPersistentNackRetryParkAndReplay(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	ctx := testCtx(t)
	evs := appendN(t, c, "s-1", 2)
	if err := c.CreatePersistentSubscription(ctx, "s-1", "g", kurrentdb.PersistentStreamSubscriptionOptions{StartFrom: kurrentdb.Start{}}); err != nil {
		t.Fatal(err)
	}
	sub := subscribe(t, c, "s-1", "g", 1)
	first := nextEvent(t, sub)
	if err := sub.Nack("try again", kurrentdb.NackActionRetry, first.Event); err != nil {
		t.Fatal(err)
	}
	again := nextEvent(t, sub)
	if again.Event.OriginalEvent().EventID != evs[0].EventID || again.RetryCount != 1 {
		t.Fatalf("after a retry nack: %s with %d retries, want %s with 1", again.Event.OriginalEvent().EventID, again.RetryCount, evs[0].EventID)
	}
	if err := sub.Nack("poison", kurrentdb.NackActionPark, again.Event); err != nil {
		t.Fatal(err)
	}
	second := nextEvent(t, sub)
	if second.Event.OriginalEvent().EventID != evs[1].EventID {
		t.Fatalf("after parking: %s, want %s", second.Event.OriginalEvent().EventID, evs[1].EventID)
	}
	if err := sub.Ack(second.Event); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the parked event counted", func() bool {
		info, err := c.GetPersistentSubscriptionInfo(ctx, "s-1", "g", kurrentdb.GetPersistentSubscriptionOptions{})
		return err == nil && info.Stats.ParkedMessagesCount == 1
	})
	if err := c.ReplayParkedMessages(ctx, "s-1", "g", kurrentdb.ReplayParkedMessagesOptions{}); err != nil {
		t.Fatalf("replay parked: %v", err)
	}
	replayed := nextEvent(t, sub)
	if replayed.Event.OriginalEvent().EventID != evs[0].EventID {
		t.Fatalf("replayed %s, want %s", replayed.Event.OriginalEvent().EventID, evs[0].EventID)
	}
	if err := sub.Ack(replayed.Event); err != nil {
		t.Fatal(err)
	}
}

func TestPersistentRestartDropsConsumersWhoMayJoinAgain(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	ctx := testCtx(t)
	evs := appendN(t, c, "s-1", 1)
	if err := c.CreatePersistentSubscription(ctx, "s-1", "g", kurrentdb.PersistentStreamSubscriptionOptions{StartFrom: kurrentdb.Start{}}); err != nil {
		t.Fatal(err)
	}
	sub := subscribe(t, c, "s-1", "g", 1)
	nextEvent(t, sub) // in flight, not acked
	if err := c.RestartPersistentSubscriptionSubsystem(ctx, kurrentdb.RestartPersistentSubscriptionSubsystemOptions{}); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if err := dropped(t, sub); err == nil {
		t.Fatal("a consumer was not dropped by a restart")
	}
	again := subscribe(t, c, "s-1", "g", 1)
	if got := nextEvent(t, again); got.Event.OriginalEvent().EventID != evs[0].EventID {
		t.Fatalf("after restart: %s, want the unacked %s again", got.Event.OriginalEvent().EventID, evs[0].EventID)
	}
}

func TestPersistentCallsNeedTheCallersRights(t *testing.T) {
	e := newEnv(t, withAccess(func(a *fakeAccess) { a.authErr = verity.Errorf(verity.Unauthenticated, "authenticate", "bad password") }))
	c := e.client(t)
	ctx := testCtx(t)
	err := c.CreatePersistentSubscription(ctx, "s-1", "g", kurrentdb.PersistentStreamSubscriptionOptions{})
	if codeOf(err) != kurrentdb.ErrorCodeUnauthenticated {
		t.Fatalf("create with bad credentials: %v, want unauthenticated", err)
	}
	if _, err := e.groups.GetGroup(ctx, "s-1", "g"); verity.KindOf(err) != verity.NotFound {
		t.Fatalf("a refused create made a group: %v", err)
	}
	_, err = c.SubscribeToPersistentSubscription(ctx, "s-1", "g", kurrentdb.SubscribeToPersistentSubscriptionOptions{})
	if codeOf(err) != kurrentdb.ErrorCodeUnauthenticated {
		t.Fatalf("subscribe with bad credentials: %v, want unauthenticated", err)
	}
}

func TestPersistentReadEndsWhenTheClientCloses(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	ctx := testCtx(t)
	if err := c.CreatePersistentSubscription(ctx, "s-1", "g", kurrentdb.PersistentStreamSubscriptionOptions{}); err != nil {
		t.Fatal(err)
	}
	sub := subscribe(t, c, "s-1", "g", 1)
	waitFor(t, "the consumer connected", func() bool {
		g, err := e.groups.GetGroup(ctx, "s-1", "g")
		return err == nil && len(g.Consumers) == 1
	})
	sub.Close()
	waitFor(t, "the consumer gone and the call ended", func() bool {
		g, err := e.groups.GetGroup(ctx, "s-1", "g")
		return err == nil && len(g.Consumers) == 0 && e.svc.liveSubscriptions() == 0
	})
}
