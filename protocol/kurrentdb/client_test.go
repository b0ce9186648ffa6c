package kurrentdb

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"

	"github.com/verity-dev/verity"
)

// These tests drive the service with the official KurrentDB Go client, covering what its
// own test suite checks.

func binaryEvent(typ string) kurrentdb.EventData {
	return kurrentdb.EventData{EventID: uuid.New(), EventType: typ, ContentType: kurrentdb.ContentTypeBinary, Data: []byte{0xb, 0xe, 0xe, 0xf}}
}

func appendN(t testing.TB, c *kurrentdb.Client, stream string, n int) []kurrentdb.EventData {
	t.Helper()
	evs := make([]kurrentdb.EventData, n)
	for i := range evs {
		evs[i] = binaryEvent("TestEvent-" + string(rune('a'+i%26)))
	}
	if _, err := c.AppendToStream(testCtx(t), stream, kurrentdb.AppendToStreamOptions{}, evs...); err != nil {
		t.Fatalf("append %d events to %s: %v", n, stream, err)
	}
	return evs
}

// collect returns a function that reads a whole read stream: collect(t)(c.ReadStream(...)).
func collect(t testing.TB) func(rs *kurrentdb.ReadStream, err error) ([]*kurrentdb.ResolvedEvent, error) {
	return func(rs *kurrentdb.ReadStream, err error) ([]*kurrentdb.ResolvedEvent, error) {
		t.Helper()
		return collectAll(t, rs, err)
	}
}

func collectAll(t testing.TB, rs *kurrentdb.ReadStream, err error) ([]*kurrentdb.ResolvedEvent, error) {
	t.Helper()
	if err != nil {
		t.Fatalf("start read: %v", err)
	}
	defer rs.Close()
	var out []*kurrentdb.ResolvedEvent
	for {
		ev, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, ev)
	}
}

func codeOf(err error) kurrentdb.ErrorCode {
	var e *kurrentdb.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return -1
}

func TestAppendedEventReadsBackAsWritten(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	ctx := testCtx(t)
	ev := kurrentdb.EventData{EventID: uuid.New(), EventType: "OrderPlaced", ContentType: kurrentdb.ContentTypeJson,
		Data: []byte(`{"id":42}`), Metadata: []byte(`{"correlation":"c-1"}`)}
	res, err := c.AppendToStream(ctx, "order-42", kurrentdb.AppendToStreamOptions{StreamState: kurrentdb.NoStream{}}, ev)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	if res.NextExpectedVersion != 0 || res.CommitPosition == 0 || res.PreparePosition != res.CommitPosition {
		t.Fatalf("append result = %+v, want revision 0 and a position", res)
	}
	got, err := collect(t)(c.ReadStream(ctx, "order-42", kurrentdb.ReadStreamOptions{}, 10))
	if err != nil || len(got) != 1 {
		t.Fatalf("read = %d events, %v; want 1", len(got), err)
	}
	r := got[0].OriginalEvent()
	if r.EventID != ev.EventID || r.EventType != "OrderPlaced" || r.StreamID != "order-42" || r.EventNumber != 0 ||
		string(r.Data) != `{"id":42}` || string(r.UserMetadata) != `{"correlation":"c-1"}` || r.ContentType != "application/json" {
		t.Fatalf("read back %+v", r)
	}
	if r.Position.Commit != res.CommitPosition {
		t.Fatalf("read position %d, append said %d", r.Position.Commit, res.CommitPosition)
	}
	if d := r.CreatedDate.Sub(e.clock.Now()); d > time.Millisecond || d < -time.Millisecond {
		t.Fatalf("created %v, engine clock %v", r.CreatedDate, e.clock.Now())
	}
}

func TestAppendWithWrongExpectedRevisionReportsTheActual(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	ctx := testCtx(t)
	cases := []struct {
		name     string
		setup    int
		expected kurrentdb.StreamState
		want     string
	}{
		{"stream exists, on a missing stream", 0, kurrentdb.StreamExists{}, "expecting 'stream_exists' but got 'no_stream'"},
		{"no stream, on a stream of 3 events", 3, kurrentdb.NoStream{}, "expecting 'no_stream' but got '2'"},
		{"revision 7, on a stream of 3 events", 3, kurrentdb.Revision(7), "expecting '7' but got '2'"},
		{"revision 0, on a missing stream", 0, kurrentdb.Revision(0), "expecting '0' but got 'no_stream'"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stream := uuid.NewString()
			if tc.setup > 0 {
				appendN(t, c, stream, tc.setup)
			}
			_, err := c.AppendToStream(ctx, stream, kurrentdb.AppendToStreamOptions{StreamState: tc.expected}, binaryEvent("X"))
			if codeOf(err) != kurrentdb.ErrorCodeWrongExpectedVersion {
				t.Fatalf("err = %v, want wrong expected version", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to say %q", err, tc.want)
			}
			evs, _ := e.store.ReadStream(ctx, stream, verity.ReadStreamOptions{})
			if len(evs) != tc.setup {
				t.Fatalf("stream has %d events after a refused append, want %d", len(evs), tc.setup)
			}
		})
	}
}

func TestReadStreamDirectionsAndStarts(t *testing.T) {
	// A small batch makes every read span several store reads.
	e := newEnv(t, withOptions(func(o *Options) { o.MaxReadBatch = 3 }))
	c := e.client(t)
	ctx := testCtx(t)
	stream := uuid.NewString()
	evs := appendN(t, c, stream, 10)
	ids := func(got []*kurrentdb.ResolvedEvent) []uuid.UUID {
		var out []uuid.UUID
		for _, g := range got {
			out = append(out, g.OriginalEvent().EventID)
		}
		return out
	}
	want := func(idx ...int) []uuid.UUID {
		var out []uuid.UUID
		for _, i := range idx {
			out = append(out, evs[i].EventID)
		}
		return out
	}
	cases := []struct {
		name  string
		opts  kurrentdb.ReadStreamOptions
		count uint64
		want  []uuid.UUID
	}{
		{"forwards from the start", kurrentdb.ReadStreamOptions{}, 100, want(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)},
		{"forwards from the start, count 4", kurrentdb.ReadStreamOptions{}, 4, want(0, 1, 2, 3)},
		{"forwards from revision 6", kurrentdb.ReadStreamOptions{From: kurrentdb.Revision(6)}, 100, want(6, 7, 8, 9)},
		{"backwards from the end", kurrentdb.ReadStreamOptions{Direction: kurrentdb.Backwards, From: kurrentdb.End{}}, 100, want(9, 8, 7, 6, 5, 4, 3, 2, 1, 0)},
		{"backwards from the end, count 2", kurrentdb.ReadStreamOptions{Direction: kurrentdb.Backwards, From: kurrentdb.End{}}, 2, want(9, 8)},
		{"backwards from revision 4", kurrentdb.ReadStreamOptions{Direction: kurrentdb.Backwards, From: kurrentdb.Revision(4)}, 100, want(4, 3, 2, 1, 0)},
		{"forwards from the end", kurrentdb.ReadStreamOptions{From: kurrentdb.End{}}, 100, nil},
		{"forwards past the end", kurrentdb.ReadStreamOptions{From: kurrentdb.Revision(50)}, 100, nil},
		{"count 0", kurrentdb.ReadStreamOptions{}, 0, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := collect(t)(c.ReadStream(ctx, stream, tc.opts, tc.count))
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if !slices.Equal(ids(got), tc.want) {
				t.Fatalf("read %d events %v, want %v", len(got), ids(got), tc.want)
			}
		})
	}
}

func TestReadOfAMissingStreamIsResourceNotFound(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	rs, err := c.ReadStream(testCtx(t), uuid.NewString(), kurrentdb.ReadStreamOptions{}, 1)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	defer rs.Close()
	ev, err := rs.Recv()
	if ev != nil || codeOf(err) != kurrentdb.ErrorCodeResourceNotFound {
		t.Fatalf("recv = %v, %v; want resource not found", ev, err)
	}
}

func TestReadOfATombstonedStreamIsStreamDeleted(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	ctx := testCtx(t)
	stream := uuid.NewString()
	appendN(t, c, stream, 1)
	if _, err := c.TombstoneStream(ctx, stream, kurrentdb.TombstoneStreamOptions{}); err != nil {
		t.Fatalf("tombstone: %v", err)
	}
	_, err := collect(t)(c.ReadStream(ctx, stream, kurrentdb.ReadStreamOptions{}, 1))
	if codeOf(err) != kurrentdb.ErrorCodeStreamDeleted || !strings.Contains(err.Error(), stream) {
		t.Fatalf("read err = %v, want stream deleted naming the stream", err)
	}
	_, err = c.AppendToStream(ctx, stream, kurrentdb.AppendToStreamOptions{}, binaryEvent("X"))
	if codeOf(err) != kurrentdb.ErrorCodeStreamDeleted {
		t.Fatalf("append after tombstone err = %v, want stream deleted", err)
	}
}

func TestReadOfAStreamPastItsMaxAgeIsEmpty(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	ctx := testCtx(t)
	stream := uuid.NewString()
	appendN(t, c, stream, 10)
	var meta kurrentdb.StreamMetadata
	meta.SetMaxAge(time.Second)
	if _, err := c.SetStreamMetadata(ctx, stream, kurrentdb.AppendToStreamOptions{}, meta); err != nil {
		t.Fatalf("set metadata: %v", err)
	}
	got, err := collect(t)(c.ReadStream(ctx, stream, kurrentdb.ReadStreamOptions{}, 10))
	if err != nil || len(got) != 10 {
		t.Fatalf("before max age: %d events, %v; want 10", len(got), err)
	}
	e.clock.Advance(2 * time.Second)
	got, err = collect(t)(c.ReadStream(ctx, stream, kurrentdb.ReadStreamOptions{}, 10))
	if err != nil || len(got) != 0 {
		t.Fatalf("past max age: %d events, %v; want an empty stream (EOF)", len(got), err)
	}
}

func TestReadAllPositionsAndDirections(t *testing.T) {
	e := newEnv(t, withOptions(func(o *Options) { o.MaxReadBatch = 7 }))
	c := e.client(t)
	ctx := testCtx(t)
	stream := uuid.NewString()
	appendN(t, c, stream, 20)
	mid := binaryEvent("Middle")
	res, err := c.AppendToStream(ctx, stream, kurrentdb.AppendToStreamOptions{}, mid)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	appendN(t, c, stream, 20)

	t.Run("forwards from the start reads count events in position order", func(t *testing.T) {
		got, err := collect(t)(c.ReadAll(ctx, kurrentdb.ReadAllOptions{From: kurrentdb.Start{}}, 30))
		if err != nil || len(got) != 30 {
			t.Fatalf("read %d, %v; want 30", len(got), err)
		}
		for i := 1; i < len(got); i++ {
			if got[i].OriginalEvent().Position.Commit <= got[i-1].OriginalEvent().Position.Commit {
				t.Fatalf("positions out of order at %d", i)
			}
		}
	})
	t.Run("forwards from a position starts at that event", func(t *testing.T) {
		pos := kurrentdb.Position{Commit: res.CommitPosition, Prepare: res.PreparePosition}
		got, err := collect(t)(c.ReadAll(ctx, kurrentdb.ReadAllOptions{From: pos}, 1000))
		if err != nil || len(got) != 21 {
			t.Fatalf("read %d, %v; want 21", len(got), err)
		}
		if got[0].OriginalEvent().EventID != mid.EventID || got[1].OriginalEvent().Position.Commit <= res.CommitPosition {
			t.Fatalf("first event %v at %d", got[0].OriginalEvent().EventID, got[0].OriginalEvent().Position.Commit)
		}
	})
	t.Run("backwards from the end reads newest first", func(t *testing.T) {
		got, err := collect(t)(c.ReadAll(ctx, kurrentdb.ReadAllOptions{Direction: kurrentdb.Backwards, From: kurrentdb.End{}}, 1000))
		if err != nil || len(got) != 41 {
			t.Fatalf("read %d, %v; want 41", len(got), err)
		}
		if got[20].OriginalEvent().EventID != mid.EventID {
			t.Fatalf("event 20 back is %v, want the middle one", got[20].OriginalEvent().EventID)
		}
	})
	t.Run("backwards from a position includes it and what came before", func(t *testing.T) {
		pos := kurrentdb.Position{Commit: res.CommitPosition, Prepare: res.PreparePosition}
		got, err := collect(t)(c.ReadAll(ctx, kurrentdb.ReadAllOptions{Direction: kurrentdb.Backwards, From: pos}, 1000))
		if err != nil || len(got) != 21 || got[0].OriginalEvent().EventID != mid.EventID {
			t.Fatalf("read %d, %v", len(got), err)
		}
	})
}

// recvUntil reads subscription events until stop says so, failing on a drop or a deadline.
func recvUntil(t testing.TB, sub *kurrentdb.Subscription, stop func(*kurrentdb.SubscriptionEvent) bool) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		for {
			ev := sub.Recv()
			if ev.SubscriptionDropped != nil {
				done <- ev.SubscriptionDropped.Error
				return
			}
			if stop(ev) {
				done <- nil
				return
			}
		}
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("subscription dropped: %v", err)
		}
	case <-time.After(15 * time.Second):
		_ = sub.Close()
		<-done
		t.Fatal("timed out waiting on the subscription")
	}
}

func TestStreamSubscriptionDeliversHistoryCaughtUpThenLive(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	ctx := testCtx(t)
	stream := uuid.NewString()
	hist := appendN(t, c, stream, 10)
	sub, err := c.SubscribeToStream(ctx, stream, kurrentdb.SubscribeToStreamOptions{From: kurrentdb.Start{}})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer sub.Close()
	var got []uuid.UUID
	var caughtUp *kurrentdb.CaughtUp
	recvUntil(t, sub, func(ev *kurrentdb.SubscriptionEvent) bool {
		if ev.EventAppeared != nil {
			got = append(got, ev.EventAppeared.OriginalEvent().EventID)
		}
		if ev.CaughtUp != nil {
			caughtUp = ev.CaughtUp
			return true
		}
		return false
	})
	if len(got) != 10 || got[0] != hist[0].EventID || got[9] != hist[9].EventID {
		t.Fatalf("history = %v", got)
	}
	if caughtUp.StreamRevision == nil || *caughtUp.StreamRevision != 9 || caughtUp.Date.IsZero() {
		t.Fatalf("caught up = %+v, want revision 9 and a date", caughtUp)
	}
	live := binaryEvent("Live")
	res, err := c.AppendToStream(ctx, stream, kurrentdb.AppendToStreamOptions{StreamState: kurrentdb.Revision(9)}, live)
	if err != nil || res.NextExpectedVersion != 10 {
		t.Fatalf("append live: %+v, %v", res, err)
	}
	recvUntil(t, sub, func(ev *kurrentdb.SubscriptionEvent) bool {
		if ev.EventAppeared == nil {
			return false
		}
		r := ev.EventAppeared.OriginalEvent()
		if r.EventID != live.EventID || r.EventNumber != 10 || r.UserMetadata != nil {
			t.Errorf("live event %+v", r)
		}
		return true
	})
}

func TestStreamSubscriptionFromARevisionStartsAfterIt(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	stream := uuid.NewString()
	appendN(t, c, stream, 5)
	sub, err := c.SubscribeToStream(testCtx(t), stream, kurrentdb.SubscribeToStreamOptions{From: kurrentdb.Revision(2)})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer sub.Close()
	var revs []uint64
	recvUntil(t, sub, func(ev *kurrentdb.SubscriptionEvent) bool {
		if ev.EventAppeared != nil {
			revs = append(revs, ev.EventAppeared.OriginalEvent().EventNumber)
		}
		return ev.CaughtUp != nil
	})
	if !slices.Equal(revs, []uint64{3, 4}) {
		t.Fatalf("revisions %v, want [3 4]", revs)
	}
}

func TestAllSubscriptionFilters(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	ctx := testCtx(t)
	prefix := uuid.NewString() + "-"
	for i := range 5 {
		ev := binaryEvent(prefix + "Event")
		if _, err := c.AppendToStream(ctx, "orders-"+string(rune('a'+i)), kurrentdb.AppendToStreamOptions{}, ev); err != nil {
			t.Fatal(err)
		}
		if _, err := c.AppendToStream(ctx, "other-"+string(rune('a'+i)), kurrentdb.AppendToStreamOptions{}, binaryEvent("Other")); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name   string
		filter *kurrentdb.SubscriptionFilter
		want   func(r *kurrentdb.RecordedEvent) bool
	}{
		{"event type prefix", &kurrentdb.SubscriptionFilter{Type: kurrentdb.EventFilterType, Prefixes: []string{prefix}},
			func(r *kurrentdb.RecordedEvent) bool { return strings.HasPrefix(r.EventType, prefix) }},
		{"stream prefix", &kurrentdb.SubscriptionFilter{Type: kurrentdb.StreamFilterType, Prefixes: []string{"orders-"}},
			func(r *kurrentdb.RecordedEvent) bool { return strings.HasPrefix(r.StreamID, "orders-") }},
		{"stream regex", &kurrentdb.SubscriptionFilter{Type: kurrentdb.StreamFilterType, Regex: "^other-[a-e]$"},
			func(r *kurrentdb.RecordedEvent) bool { return strings.HasPrefix(r.StreamID, "other-") }},
		{"exclude system events", kurrentdb.ExcludeSystemEventsFilter(),
			func(r *kurrentdb.RecordedEvent) bool { return !strings.HasPrefix(r.EventType, "$") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sub, err := c.SubscribeToAll(ctx, kurrentdb.SubscribeToAllOptions{From: kurrentdb.Start{}, Filter: tc.filter})
			if err != nil {
				t.Fatalf("subscribe: %v", err)
			}
			defer sub.Close()
			n := 0
			recvUntil(t, sub, func(ev *kurrentdb.SubscriptionEvent) bool {
				if ev.EventAppeared != nil {
					n++
					if r := ev.EventAppeared.OriginalEvent(); !tc.want(r) {
						t.Errorf("filter let through %s/%s", r.StreamID, r.EventType)
					}
				}
				return ev.CaughtUp != nil
			})
			if want := 5; tc.name == "exclude system events" {
				if n != 10 {
					t.Fatalf("got %d events, want 10", n)
				}
			} else if n != want {
				t.Fatalf("got %d events, want %d", n, want)
			}
		})
	}
}

func TestFilteredAllSubscriptionSendsCheckpoints(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	ctx := testCtx(t)
	appendN(t, c, "noise-1", 50)
	sub, err := c.SubscribeToAll(ctx, kurrentdb.SubscribeToAllOptions{
		From:               kurrentdb.Start{},
		Filter:             &kurrentdb.SubscriptionFilter{Type: kurrentdb.StreamFilterType, Prefixes: []string{"nothing-matches-"}},
		MaxSearchWindow:    4,
		CheckpointInterval: 2,
	})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer sub.Close()
	var checkpoints []uint64
	recvUntil(t, sub, func(ev *kurrentdb.SubscriptionEvent) bool {
		if ev.EventAppeared != nil {
			t.Errorf("the filter matches nothing, got %s", ev.EventAppeared.OriginalEvent().StreamID)
		}
		if ev.CheckPointReached != nil {
			checkpoints = append(checkpoints, ev.CheckPointReached.Commit)
		}
		return ev.CaughtUp != nil
	})
	// 50 skipped events with a checkpoint at most every 8 of them.
	if len(checkpoints) < 50/8 {
		t.Fatalf("checkpoints %v, want at least %d", checkpoints, 50/8)
	}
	if !slices.IsSorted(checkpoints) || checkpoints[0] == 0 {
		t.Fatalf("checkpoints %v not increasing positions", checkpoints)
	}
}

func TestDeleteAndTombstoneWithExpectedRevision(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	ctx := testCtx(t)

	t.Run("delete at the right revision, then write again", func(t *testing.T) {
		stream := uuid.NewString()
		appendN(t, c, stream, 1)
		res, err := c.DeleteStream(ctx, stream, kurrentdb.DeleteStreamOptions{StreamState: kurrentdb.Revision(0)})
		if err != nil || res.Position.Commit == 0 || res.Position.Prepare == 0 {
			t.Fatalf("delete = %+v, %v", res, err)
		}
		_, err = collect(t)(c.ReadStream(ctx, stream, kurrentdb.ReadStreamOptions{}, 10))
		if codeOf(err) != kurrentdb.ErrorCodeResourceNotFound {
			t.Fatalf("read after delete err = %v, want not found", err)
		}
		w, err := c.AppendToStream(ctx, stream, kurrentdb.AppendToStreamOptions{}, binaryEvent("Again"))
		if err != nil || w.NextExpectedVersion != 1 {
			t.Fatalf("append after delete = %+v, %v; want revision 1", w, err)
		}
	})
	t.Run("delete at a wrong revision changes nothing", func(t *testing.T) {
		stream := uuid.NewString()
		appendN(t, c, stream, 2)
		_, err := c.DeleteStream(ctx, stream, kurrentdb.DeleteStreamOptions{StreamState: kurrentdb.Revision(0)})
		if err == nil {
			t.Fatal("delete at a wrong revision succeeded")
		}
		got, err := collect(t)(c.ReadStream(ctx, stream, kurrentdb.ReadStreamOptions{}, 10))
		if err != nil || len(got) != 2 {
			t.Fatalf("after refused delete: %d events, %v", len(got), err)
		}
	})
	t.Run("tombstone at the right revision", func(t *testing.T) {
		stream := uuid.NewString()
		appendN(t, c, stream, 1)
		res, err := c.TombstoneStream(ctx, stream, kurrentdb.TombstoneStreamOptions{StreamState: kurrentdb.Revision(0)})
		if err != nil || res.Position.Commit == 0 {
			t.Fatalf("tombstone = %+v, %v", res, err)
		}
		_, err = c.TombstoneStream(ctx, stream, kurrentdb.TombstoneStreamOptions{})
		if codeOf(err) != kurrentdb.ErrorCodeStreamDeleted {
			t.Fatalf("second tombstone err = %v, want stream deleted", err)
		}
	})
}

func TestStreamMetadataRoundTrip(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	ctx := testCtx(t)
	stream := uuid.NewString()
	appendN(t, c, stream, 3)
	var acl kurrentdb.Acl
	acl.AddReadRoles("admin")
	// One role per list: the Go client cannot read back a list of several (it expects a
	// []string from encoding/json), whatever the server sends.
	acl.AddWriteRoles("ops")
	var meta kurrentdb.StreamMetadata
	meta.SetMaxAge(2 * time.Second)
	meta.SetMaxCount(100)
	meta.SetAcl(acl)
	meta.AddCustomProperty("owner", "team-a")
	if _, err := c.SetStreamMetadata(ctx, stream, kurrentdb.AppendToStreamOptions{}, meta); err != nil {
		t.Fatalf("set: %v", err)
	}
	got, err := c.GetStreamMetadata(ctx, stream, kurrentdb.ReadStreamOptions{})
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	gotJSON, _ := got.ToJson()
	wantJSON, _ := meta.ToJson()
	if string(gotJSON) != string(wantJSON) {
		t.Fatalf("metadata read back %s, want %s", gotJSON, wantJSON)
	}
	// The store holds it as metadata, not as an opaque event.
	sm, err := e.store.GetStreamMetadata(ctx, stream)
	if err != nil || sm.Metadata.MaxAge != 2*time.Second || sm.Metadata.MaxCount != 100 || !slices.Equal(sm.Metadata.ACL.Write, []string{"ops"}) {
		t.Fatalf("store metadata %+v, %v", sm, err)
	}
	// The metadata stream expects its own revisions.
	_, err = c.SetStreamMetadata(ctx, stream, kurrentdb.AppendToStreamOptions{StreamState: kurrentdb.NoStream{}}, meta)
	if codeOf(err) != kurrentdb.ErrorCodeWrongExpectedVersion {
		t.Fatalf("set with no stream on existing metadata err = %v", err)
	}
	// Malformed metadata is refused and changes nothing.
	_, err = c.AppendToStream(ctx, "$$"+stream, kurrentdb.AppendToStreamOptions{}, kurrentdb.EventData{
		EventType: "$metadata", ContentType: kurrentdb.ContentTypeJson, Data: []byte(`{"$maxCount":"lots"}`)})
	if err == nil {
		t.Fatal("malformed metadata accepted")
	}
	after, err := e.store.GetStreamMetadata(ctx, stream)
	if err != nil || after.Revision != sm.Revision {
		t.Fatalf("metadata revision %d after a refused write, want %d (%v)", after.Revision, sm.Revision, err)
	}
}

func TestMetadataOfAStreamWithoutIsNotFound(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	_, err := collect(t)(c.ReadStream(testCtx(t), "$$"+uuid.NewString(), kurrentdb.ReadStreamOptions{}, 1))
	if codeOf(err) != kurrentdb.ErrorCodeResourceNotFound {
		t.Fatalf("err = %v, want not found", err)
	}
}

func multiRequest(stream string, expected kurrentdb.StreamState, evs ...kurrentdb.EventData) kurrentdb.AppendStreamRequest {
	return kurrentdb.AppendStreamRequest{StreamName: stream, Events: slices.Values(evs), ExpectedStreamState: expected}
}

func TestMultiStreamAppend(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	ctx := testCtx(t)

	t.Run("appends to every stream, with the schema in the metadata", func(t *testing.T) {
		s1, s2 := uuid.NewString(), uuid.NewString()
		ev1 := binaryEvent("OrderCreated")
		ev1.Metadata = []byte(`{"stringValue":"string"}`)
		ev2 := kurrentdb.EventData{EventID: uuid.New(), EventType: "OrderShipped", ContentType: kurrentdb.ContentTypeJson, Data: []byte(`{"a":1}`)}
		res, err := c.MultiStreamAppend(ctx, slices.Values([]kurrentdb.AppendStreamRequest{
			multiRequest(s1, kurrentdb.NoStream{}, ev1), multiRequest(s2, kurrentdb.NoStream{}, ev2),
		}))
		if err != nil || res.Position <= 0 || len(res.Responses) != 2 || res.Responses[1].Stream != s2 {
			t.Fatalf("multi append = %+v, %v", res, err)
		}
		got, err := collect(t)(c.ReadStream(ctx, s1, kurrentdb.ReadStreamOptions{}, 1))
		if err != nil || len(got) != 1 || got[0].OriginalEvent().EventID != ev1.EventID {
			t.Fatalf("read %s: %v", s1, err)
		}
		var md map[string]string
		if err := json.Unmarshal(got[0].OriginalEvent().UserMetadata, &md); err != nil {
			t.Fatalf("metadata %s: %v", got[0].OriginalEvent().UserMetadata, err)
		}
		if md["stringValue"] != "string" || md["$schema.format"] != "Bytes" || md["$schema.name"] != "OrderCreated" {
			t.Fatalf("metadata %v", md)
		}
		got, _ = collect(t)(c.ReadStream(ctx, s2, kurrentdb.ReadStreamOptions{}, 1))
		if len(got) != 1 || got[0].OriginalEvent().ContentType != "application/json" || string(got[0].OriginalEvent().Data) != `{"a":1}` {
			t.Fatalf("read %s: %+v", s2, got)
		}
	})
	t.Run("a wrong revision reports stream, expected and actual, and writes nothing", func(t *testing.T) {
		s1, s2 := uuid.NewString(), uuid.NewString()
		appendN(t, c, s2, 10)
		_, err := c.MultiStreamAppend(ctx, slices.Values([]kurrentdb.AppendStreamRequest{
			multiRequest(s1, kurrentdb.NoStream{}, binaryEvent("A")), multiRequest(s2, kurrentdb.NoStream{}, binaryEvent("B")),
		}))
		if codeOf(err) != kurrentdb.ErrorCodeStreamRevisionConflict {
			t.Fatalf("err = %v, want revision conflict", err)
		}
		var conflict *kurrentdb.StreamRevisionConflictError
		if !errors.As(err, &conflict) || conflict.Stream != s2 || conflict.ExpectedRevision != (kurrentdb.NoStream{}) ||
			conflict.ActualRevision != (kurrentdb.StreamRevision{Value: 9}) {
			t.Fatalf("conflict = %+v", conflict)
		}
		if _, err := e.store.ReadStream(ctx, s1, verity.ReadStreamOptions{}); verity.KindOf(err) != verity.NotFound {
			t.Fatalf("%s was written by a failed multi append (%v)", s1, err)
		}
	})
	t.Run("a tombstoned stream is reported", func(t *testing.T) {
		s := uuid.NewString()
		appendN(t, c, s, 2)
		if _, err := c.TombstoneStream(ctx, s, kurrentdb.TombstoneStreamOptions{}); err != nil {
			t.Fatal(err)
		}
		_, err := c.MultiStreamAppend(ctx, slices.Values([]kurrentdb.AppendStreamRequest{multiRequest(s, kurrentdb.NoStream{}, binaryEvent("A"))}))
		var tomb *kurrentdb.StreamTombstoneError
		if codeOf(err) != kurrentdb.ErrorCodeStreamTombstoned || !errors.As(err, &tomb) || tomb.Stream != s {
			t.Fatalf("err = %v, want tombstoned %s", err, s)
		}
	})
}

func TestServerFeaturesAndGossip(t *testing.T) {
	e := newEnv(t, withOptions(func(o *Options) { o.Advertise = "db.example:2113" }))
	c := e.client(t)
	v, err := c.GetServerVersion()
	if err != nil || v.Major != 25 || v.Minor != 1 {
		t.Fatalf("version = %+v, %v; want 25.1", v, err)
	}
	members, err := c.Gossip(testCtx(t))
	if err != nil || len(members) != 1 {
		t.Fatalf("gossip = %v, %v", members, err)
	}
	m := members[0]
	if !m.IsAlive || m.State.String() != "Leader" || m.HttpEndPoint.Address != "db.example" || m.HttpEndPoint.Port != 2113 {
		t.Fatalf("member %v", m)
	}
}

func TestErrorsOfAccess(t *testing.T) {
	t.Run("a denied caller gets access denied and changes nothing", func(t *testing.T) {
		e := newEnv(t, withAccess(func(a *fakeAccess) { a.wrap = func(s verity.Store) verity.Store { return deniedStore{s} } }))
		c := e.client(t)
		ctx := testCtx(t)
		_, err := c.AppendToStream(ctx, "orders-1", kurrentdb.AppendToStreamOptions{}, binaryEvent("X"))
		if codeOf(err) != kurrentdb.ErrorCodeAccessDenied {
			t.Fatalf("append err = %v, want access denied", err)
		}
		_, err = collect(t)(c.ReadStream(ctx, "orders-1", kurrentdb.ReadStreamOptions{}, 1))
		if codeOf(err) != kurrentdb.ErrorCodeAccessDenied {
			t.Fatalf("read err = %v, want access denied", err)
		}
		_, err = c.SubscribeToAll(ctx, kurrentdb.SubscribeToAllOptions{From: kurrentdb.Start{}})
		if codeOf(err) != kurrentdb.ErrorCodeAccessDenied {
			t.Fatalf("subscribe err = %v, want access denied", err)
		}
		if evs, _ := e.store.ReadAll(ctx, verity.ReadAllOptions{}); len(evs) != 0 {
			t.Fatalf("a denied append wrote %d events", len(evs))
		}
	})
	t.Run("wrong credentials are unauthenticated", func(t *testing.T) {
		e := newEnv(t, withAccess(func(a *fakeAccess) {
			a.authErr = verity.Errorf(verity.Unauthenticated, "authenticate", "wrong password for user %q", "admin")
		}))
		c := e.client(t)
		_, err := c.AppendToStream(testCtx(t), "orders-1", kurrentdb.AppendToStreamOptions{}, binaryEvent("X"))
		if codeOf(err) != kurrentdb.ErrorCodeUnauthenticated {
			t.Fatalf("append err = %v, want unauthenticated", err)
		}
	})
}

func TestSubscriptionsPerConnectionAreLimited(t *testing.T) {
	e := newEnv(t, withOptions(func(o *Options) { o.MaxSubscriptionsPerConnection = 2 }))
	c := e.client(t)
	ctx := testCtx(t)
	var subs []*kurrentdb.Subscription
	for range 2 {
		sub, err := c.SubscribeToAll(ctx, kurrentdb.SubscribeToAllOptions{From: kurrentdb.End{}})
		if err != nil {
			t.Fatalf("subscribe: %v", err)
		}
		subs = append(subs, sub)
	}
	_, err := c.SubscribeToAll(ctx, kurrentdb.SubscribeToAllOptions{From: kurrentdb.End{}})
	if err == nil || !strings.Contains(err.Error(), "ResourceExhausted") {
		t.Fatalf("third subscription err = %v, want resource exhausted", err)
	}
	_ = subs[0].Close()
	waitFor(t, "the closed subscription to be released", func() bool { return e.svc.liveSubscriptions() == 1 })
	sub, err := c.SubscribeToAll(ctx, kurrentdb.SubscribeToAllOptions{From: kurrentdb.End{}})
	if err != nil {
		t.Fatalf("subscribe after a close: %v", err)
	}
	_ = sub.Close()
	_ = subs[1].Close()
	waitFor(t, "every subscription to end", func() bool { return e.svc.liveSubscriptions() == 0 })
}

func TestClosingTheClientEndsItsSubscriptions(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	if _, err := c.SubscribeToStream(context.Background(), "s-1", kurrentdb.SubscribeToStreamOptions{From: kurrentdb.Start{}}); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	waitFor(t, "the subscription to start", func() bool { return e.svc.liveSubscriptions() == 1 })
	_ = c.Close()
	waitFor(t, "the subscription to end", func() bool { return e.svc.liveSubscriptions() == 0 })
}
