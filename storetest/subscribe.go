package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/verity-dev/verity"
)

func testSubscribe(t *testing.T, s *suite) {
	// order-1 holds revisions 0..2 (interleaved with order-2) when the subscription starts.
	streamCases := []struct {
		name    string
		stream  string
		opts    verity.SubscribeOptions
		history []uint64
	}{
		{"a stream subscription from the start delivers the whole stream, then live events", "order-1", verity.SubscribeOptions{}, []uint64{0, 1, 2}},
		{"a stream subscription from a revision delivers from it, then live events", "order-1", verity.SubscribeOptions{From: 1}, []uint64{1, 2}},
		{"a stream subscription from the next revision delivers only live events", "order-1", verity.SubscribeOptions{From: 3}, nil},
		{"a stream subscription from the end delivers only live events", "order-1", verity.SubscribeOptions{FromEnd: true}, nil},
		{"a subscription to a stream not yet written delivers it once it is", "order-9", verity.SubscribeOptions{}, nil},
	}
	for _, c := range streamCases {
		s.test(t, c.name, func(t *testing.T, st verity.Store) {
			for i := 0; i < 3; i++ {
				mustAppend(t, st, "order-1", verity.Any(), event("OrderChanged", i))
				mustAppend(t, st, "order-2", verity.Any(), event("OrderChanged", i))
			}
			opts := c.opts
			opts.Stream = c.stream
			sub := subscribe(t, st, opts)
			hist, _ := recvUntilCaughtUp(t, sub)
			requireRevisions(t, hist, c.history, "the history")
			requireSameRecorded(t, hist, tail(readStreamOrNone(t, st, c.stream), len(c.history)), "the history")

			next := uint64(0)
			if c.stream == "order-1" {
				next = 3
			}
			live := events("OrderChanged", 2)
			mustAppend(t, st, "order-2", verity.Any(), event("OrderChanged", 9))
			mustAppend(t, st, c.stream, verity.Any(), live...)
			mustAppend(t, st, "order-2", verity.Any(), event("OrderChanged", 10))
			got := recvEvents(t, sub, 2, lastOf(hist, 0))
			requireWritten(t, got, live, "the live events")
			requireRevisions(t, got, seq(next, 2), "the live events")
			// A last event proves nothing else (another stream, a duplicate, a second
			// CaughtUp) was delivered in between.
			last := event("OrderChanged", 11)
			mustAppend(t, st, c.stream, verity.Any(), last)
			requireWritten(t, recvEvents(t, sub, 1, lastOf(got, 0)), []verity.EventData{last}, "the event after the live ones")
		})
	}

	// The log holds positions 1..5 when the subscription starts.
	allCases := []struct {
		name    string
		opts    verity.SubscribeOptions
		history []uint64
	}{
		{"a log subscription from the start delivers the whole log, then live events", verity.SubscribeOptions{}, seq(1, 5)},
		{"a subscription to $all by name is a log subscription", verity.SubscribeOptions{Stream: verity.AllStream}, seq(1, 5)},
		{"a log subscription from a position delivers from it, then live events", verity.SubscribeOptions{From: 3}, []uint64{3, 4, 5}},
		{"a log subscription from the next position delivers only live events", verity.SubscribeOptions{From: 6}, nil},
		{"a log subscription from the end delivers only live events", verity.SubscribeOptions{FromEnd: true}, nil},
	}
	for _, c := range allCases {
		s.test(t, c.name, func(t *testing.T, st verity.Store) {
			for i, stream := range []string{"order-1", "customer-1", "order-2", "order-1", "stock-1"} {
				mustAppend(t, st, stream, verity.Any(), event("Changed", i))
			}
			log := readAll(t, st, verity.Filter{})
			sub := subscribe(t, st, c.opts)
			hist, caughtUp := recvUntilCaughtUp(t, sub)
			requirePositions(t, hist, c.history, "the history")
			requireSameRecorded(t, hist, tail(log, len(c.history)), "the history")
			if caughtUp.Position != 5 {
				t.Errorf("CaughtUp at position %d, want 5, the end of the log", caughtUp.Position)
			}
			live := events("Changed", 3)
			mustAppend(t, st, "order-3", verity.Any(), live[0])
			mustAppend(t, st, "order-1", verity.Any(), live[1:]...)
			got := recvEvents(t, sub, 3, lastOf(hist, 0))
			requireWritten(t, got, live, "the live events")
			requirePositions(t, got, []uint64{6, 7, 8}, "the live events")
			last := event("Changed", 9)
			mustAppend(t, st, "order-4", verity.Any(), last)
			requirePositions(t, recvEvents(t, sub, 1, 8), []uint64{9}, "the event after the live ones")
		})
	}

	s.serialTest(t, "a log subscription from a time delivers from the first event at or after it", func(t *testing.T, st verity.Store) {
		for i := 0; i < 4; i++ {
			mustAppend(t, st, fmt.Sprintf("order-%d", i), verity.Any(), events("Changed", 1+i%2)...)
			s.tick(time.Minute)
		}
		log := readAll(t, st, verity.Filter{})
		for _, at := range fromTimes(log) {
			var want []uint64
			for _, e := range log {
				if !e.Created.Before(at.t) {
					want = append(want, e.Position)
				}
			}
			sub := subscribe(t, st, verity.SubscribeOptions{FromTime: at.t})
			hist, _ := recvUntilCaughtUp(t, sub)
			requirePositions(t, hist, want, "the history from "+at.name)
			sub.Close()
		}
		sub := subscribe(t, st, verity.SubscribeOptions{FromTime: log[len(log)-1].Created.Add(time.Hour)})
		if hist, _ := recvUntilCaughtUp(t, sub); len(hist) != 0 {
			t.Fatalf("a subscription from after the last event delivered %d events of history", len(hist))
		}
		mustAppend(t, st, "order-9", verity.Any(), event("Changed", 0))
		requirePositions(t, recvEvents(t, sub, 1, 0), []uint64{uint64(len(log) + 1)}, "the live event")
	})

	s.test(t, "appends racing the catch-up are delivered once, in order, around a single CaughtUp", func(t *testing.T, st verity.Store) {
		const history, racing = 100, 200
		for i := 0; i < history; i++ {
			mustAppend(t, st, fmt.Sprintf("order-%d", i%7), verity.Any(), event("Changed", i))
		}
		done := make(chan struct{})
		errc := make(chan error, 1)
		go func() {
			defer close(done)
			for i := 0; i < racing; i++ {
				if _, err := st.Append(t.Context(), fmt.Sprintf("order-%d", i%5), verity.Any(), event("Changed", i)); err != nil {
					errc <- err
					return
				}
			}
		}()
		sub := subscribe(t, st, verity.SubscribeOptions{})
		var got []verity.RecordedEvent
		caughtUps := 0
		for len(got) < history+racing {
			msg := recv(t, sub)
			switch msg.Kind {
			case verity.MessageCaughtUp:
				caughtUps++
				if caughtUps > 1 {
					t.Fatalf("a second CaughtUp came after %d events", len(got))
				}
				if msg.Position < lastOf(got, 0) {
					t.Fatalf("CaughtUp at position %d after event %d", msg.Position, lastOf(got, 0))
				}
			case verity.MessageEvent:
				got = append(got, msg.Event)
				if msg.Event.Position != uint64(len(got)) {
					t.Fatalf("event %d delivered has position %d, want %d", len(got), msg.Event.Position, len(got))
				}
			}
		}
		waitFor(t, done, "the racing appender")
		select {
		case err := <-errc:
			t.Fatalf("racing append: %v", err)
		default:
		}
		if caughtUps == 0 {
			// The racing appends have stopped: CaughtUp must come now, and no event.
			if msg := recv(t, sub); msg.Kind != verity.MessageCaughtUp && msg.Kind != verity.MessageCheckpoint {
				t.Fatalf("got a %v message after the whole log, want CaughtUp", msg.Kind)
			}
		}
		requireSameRecorded(t, got, readAll(t, st, verity.Filter{}), "the delivered events")
	})

	// Matching events are of type Match in stream match-N; the others of type Skip in skip-N.
	// Each filter selects the matches by another field.
	checkpointFilters := []struct {
		field  string
		filter verity.Filter
	}{
		{"event types", verity.Filter{EventTypes: []string{"Match"}}},
		{"event type prefixes", verity.Filter{EventTypePrefixes: []string{"Mat"}}},
		{"an event type regexp", verity.Filter{EventTypeRegexp: `^Match$`}},
		{"categories", verity.Filter{Categories: []string{"match"}}},
		{"stream prefixes", verity.Filter{StreamPrefixes: []string{"match-"}}},
		{"a stream regexp", verity.Filter{StreamRegexp: `^match-`}},
	}
	for _, cf := range checkpointFilters {
		s.test(t, "a log subscription filtered by "+cf.field+" delivers only matches and checkpoints while it skips", func(t *testing.T, st verity.Store) {
			testCheckpoints(t, st, cf.filter)
		})
	}
	s.test(t, "a filtered log subscription from a position skips what is before it", func(t *testing.T, st verity.Store) {
		for i := 0; i < 6; i++ {
			mustAppend(t, st, fmt.Sprintf("order-%d", i), verity.Any(), event("OrderPlaced", i))
			mustAppend(t, st, fmt.Sprintf("customer-%d", i), verity.Any(), event("CustomerRegistered", i))
		}
		sub := subscribe(t, st, verity.SubscribeOptions{From: 6, Filter: verity.Filter{Categories: []string{"order"}}})
		hist, caughtUp := recvUntilCaughtUp(t, sub)
		requirePositions(t, hist, []uint64{7, 9, 11}, "the history")
		if caughtUp.Position != 12 {
			t.Fatalf("CaughtUp at position %d, want 12", caughtUp.Position)
		}
		mustAppend(t, st, "customer-1", verity.Any(), event("CustomerMoved", 0))
		mustAppend(t, st, "order-1", verity.Any(), event("OrderShipped", 0))
		requirePositions(t, recvEvents(t, sub, 1, 12), []uint64{14}, "the live events")
	})

	s.test(t, "concurrent appends to many streams reach a log subscriber once each in position order", func(t *testing.T, st verity.Store) {
		sub := subscribe(t, st, verity.SubscribeOptions{})
		if hist, _ := recvUntilCaughtUp(t, sub); len(hist) != 0 {
			t.Fatalf("a new store delivered %d events of history", len(hist))
		}
		written := appendConcurrently(t, st, 16, 20, func(g, i int) string { return fmt.Sprintf("order-%d", g) })
		got := recvEvents(t, sub, len(written), 0)
		requirePositions(t, got, seq(1, len(written)), "the delivered events")
		requireSameIDs(t, got, written)
	})

	s.test(t, "concurrent appends to one stream reach its subscriber once each in revision order", func(t *testing.T, st verity.Store) {
		sub := subscribe(t, st, verity.SubscribeOptions{Stream: "order-1"})
		recvUntilCaughtUp(t, sub)
		written := appendConcurrently(t, st, 8, 20, func(g, i int) string { return "order-1" })
		got := recvEvents(t, sub, len(written), 0)
		requireRevisions(t, got, seq(0, len(written)), "the delivered events")
		requireSameIDs(t, got, written)
	})

	s.test(t, "a subscriber that does not read never blocks appends and later gets every event", func(t *testing.T, st verity.Store) {
		sub := subscribe(t, st, verity.SubscribeOptions{})
		recvUntilCaughtUp(t, sub)
		// The subscriber now reads nothing while ~2 MiB of events are appended.
		const goroutines, appends, perAppend = 16, 10, 50
		done := make(chan struct{})
		errc := make(chan error, goroutines)
		var wg sync.WaitGroup
		for g := 0; g < goroutines; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < appends; i++ {
					evs := make([]verity.EventData, perAppend)
					for k := range evs {
						evs[k] = verity.EventData{ID: uuid.New(), Type: "Bulk", ContentType: verity.ContentTypeBinary, Data: make([]byte, 256)}
					}
					if _, err := st.Append(t.Context(), fmt.Sprintf("bulk-%d", g), verity.Any(), evs...); err != nil {
						errc <- err
						return
					}
				}
			}()
		}
		go func() { wg.Wait(); close(done) }()
		waitFor(t, done, "appending while a subscriber does not read")
		close(errc)
		for err := range errc {
			t.Fatalf("append while a subscriber does not read: %v", err)
		}
		n := goroutines * appends * perAppend
		got := recvEvents(t, sub, n, 0)
		requirePositions(t, got, seq(1, n), "the events the slow subscriber got")
	})

	s.test(t, "a multi-stream append reaches a log subscriber whole and in order", func(t *testing.T, st verity.Store) {
		sub := subscribe(t, st, verity.SubscribeOptions{})
		recvUntilCaughtUp(t, sub)
		a, b := events("OrderPlaced", 2), events("StockReserved", 2)
		mustAppendMulti(t, st,
			verity.StreamAppend{Stream: "order-1", Events: a},
			verity.StreamAppend{Stream: "stock-1", Events: b},
		)
		requireWritten(t, recvEvents(t, sub, 4, 0), append(a, b...), "the delivered events")
	})

	s.test(t, "closing a subscription ends a waiting Recv", func(t *testing.T, st verity.Store) {
		mustAppend(t, st, "order-1", verity.Any(), event("OrderPlaced", 0))
		sub := subscribe(t, st, verity.SubscribeOptions{})
		recvUntilCaughtUp(t, sub)
		errc := make(chan error, 1)
		go func() {
			ctx, cancel := recvCtx(t)
			defer cancel()
			_, err := sub.Recv(ctx)
			errc <- err
		}()
		if err := sub.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		select {
		case err := <-errc:
			if err == nil || errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Recv waiting while the subscription closed returned %v, want an error from Close", err)
			}
		case <-time.After(waitTimeout):
			t.Fatal("Recv did not return after Close")
		}
		ctx, cancel := recvCtx(t)
		defer cancel()
		if _, err := sub.Recv(ctx); err == nil || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Recv after Close returned %v, want an error at once", err)
		}
		if err := sub.Close(); err != nil {
			t.Fatalf("a second Close: %v", err)
		}
		// The store is unaffected.
		mustAppend(t, st, "order-1", verity.Any(), event("OrderShipped", 1))
	})

	s.test(t, "ending the subscription's context ends Recv with the context's error", func(t *testing.T, st verity.Store) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		sub, err := st.Subscribe(ctx, verity.SubscribeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		recvUntilCaughtUp(t, sub)
		cancel()
		rctx, rcancel := recvCtx(t)
		defer rcancel()
		_, err = sub.Recv(rctx)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Recv after the subscription's context was canceled returned %v, want context.Canceled", err)
		}
	})

	s.test(t, "ending a Recv's context ends that Recv only", func(t *testing.T, st verity.Store) {
		sub := subscribe(t, st, verity.SubscribeOptions{})
		recvUntilCaughtUp(t, sub)
		canceled, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := sub.Recv(canceled); !errors.Is(err, context.Canceled) {
			t.Fatalf("Recv with a canceled context returned %v, want context.Canceled", err)
		}
		short, cancel2 := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer cancel2()
		if _, err := sub.Recv(short); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Recv with an expiring context and nothing to deliver returned %v, want context.DeadlineExceeded", err)
		}
		e := event("OrderPlaced", 0)
		mustAppend(t, st, "order-1", verity.Any(), e)
		requireWritten(t, recvEvents(t, sub, 1, 0), []verity.EventData{e}, "the event after the ended Recvs")
	})

	invalid := []struct {
		name string
		opts verity.SubscribeOptions
	}{
		{"a filter on a stream subscription is invalid", verity.SubscribeOptions{Stream: "order-1", Filter: verity.Filter{EventTypes: []string{"OrderPlaced"}}}},
		{"a bad stream regexp in a log subscription is invalid", verity.SubscribeOptions{Filter: verity.Filter{StreamRegexp: "order-("}}},
		{"a bad event type regexp in a log subscription is invalid", verity.SubscribeOptions{Filter: verity.Filter{EventTypeRegexp: "[Order"}}},
	}
	for _, c := range invalid {
		s.test(t, c.name, func(t *testing.T, st verity.Store) {
			mustAppend(t, st, "order-1", verity.Any(), event("OrderPlaced", 0))
			requireKind(t, subscribeErr(t, st, c.opts), verity.Invalid, fmt.Sprintf("Subscribe(%+v)", c.opts))
		})
	}
}

// testCheckpoints checks a subscription through f, which must select exactly the events of
// type Match in streams match-N, with CheckpointEvery 2, through history and live.
func testCheckpoints(t *testing.T, st verity.Store, f verity.Filter) {
	const every = 2
	match := func(e verity.RecordedEvent) bool { return e.Type == "Match" }
	write := func(pattern string) {
		for i, c := range pattern {
			stream, typ := fmt.Sprintf("skip-%d", i%3), "Skip"
			if c == 'M' {
				stream, typ = fmt.Sprintf("match-%d", i%2), "Match"
			}
			mustAppend(t, st, stream, verity.Any(), event(typ, i))
		}
	}
	write("SMSSSSSMMSSSSSSS") // history: positions 1..16
	sub := subscribe(t, st, verity.SubscribeOptions{
		Filter:          f,
		CheckpointEvery: every,
	})
	var msgs []verity.SubscriptionMessage
	recv := func(t testing.TB, sub verity.Subscription) verity.SubscriptionMessage {
		t.Helper()
		ctx, cancel := recvCtx(t)
		defer cancel()
		msg, err := sub.Recv(ctx)
		if err != nil {
			t.Fatalf("Recv: %v; the messages so far: %s", err, fmtMessages(msgs))
		}
		return msg
	}
	for {
		msg := recv(t, sub)
		msgs = append(msgs, msg)
		if msg.Kind == verity.MessageCaughtUp {
			if msg.Position != 16 {
				t.Fatalf("CaughtUp at position %d, want 16, the end of the log", msg.Position)
			}
			break
		}
	}
	write("SSSSSMSSSSS") // live: positions 17..27
	for seen := false; ; {
		msg := recv(t, sub)
		msgs = append(msgs, msg)
		if msg.Kind == verity.MessageCaughtUp {
			t.Fatal("a second CaughtUp came while live")
		}
		seen = seen || msg.Kind == verity.MessageEvent && msg.Event.Position == 22
		if seen && msg.Kind == verity.MessageCheckpoint && msg.Position == 27 {
			break // caught up again at the end of the log
		}
	}
	p := &filterProgress{log: readAll(t, st, verity.Filter{}), match: match, every: every}
	var delivered []uint64
	for _, msg := range msgs {
		if err := p.check(msg); err != nil {
			t.Fatalf("%v; the messages: %s", err, fmtMessages(msgs))
		}
		if msg.Kind == verity.MessageEvent {
			delivered = append(delivered, msg.Event.Position)
		}
	}
	if want := []uint64{2, 8, 9, 22}; fmt.Sprint(delivered) != fmt.Sprint(want) {
		t.Fatalf("delivered positions %v, want %v", delivered, want)
	}
}

// appendConcurrently runs goroutines that each make n appends of one to three events to
// streamOf(g, i), with Any; it fails the test on any error and returns what was written.
func appendConcurrently(t testing.TB, st verity.Store, goroutines, n int, streamOf func(g, i int) string) []verity.EventData {
	t.Helper()
	var (
		mu      sync.Mutex
		written []verity.EventData
		wg      sync.WaitGroup
	)
	errc := make(chan error, goroutines)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				evs := events("Changed", 1+(g+i)%3)
				if _, err := st.Append(t.Context(), streamOf(g, i), verity.Any(), evs...); err != nil {
					errc <- fmt.Errorf("goroutine %d append %d: %w", g, i, err)
					return
				}
				mu.Lock()
				written = append(written, evs...)
				mu.Unlock()
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	waitFor(t, done, "concurrent appends")
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	return written
}

// requireSameIDs fails unless got holds exactly the ids of want, each once, in any order.
func requireSameIDs(t testing.TB, got []verity.RecordedEvent, want []verity.EventData) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d", len(got), len(want))
	}
	left := map[uuid.UUID]bool{}
	for _, e := range want {
		left[e.ID] = true
	}
	for _, e := range got {
		if !left[e.ID] {
			t.Fatalf("event %v at position %d was not written or came twice", e.ID, e.Position)
		}
		delete(left, e.ID)
	}
}

// tail returns the last n of evs.
func tail(evs []verity.RecordedEvent, n int) []verity.RecordedEvent { return evs[len(evs)-n:] }

// readStreamOrNone reads a stream, or returns nothing when it is NotFound.
func readStreamOrNone(t testing.TB, st verity.Store, stream string) []verity.RecordedEvent {
	t.Helper()
	if _, err := st.ReadStream(t.Context(), stream, verity.ReadStreamOptions{Limit: 1}); errors.Is(err, verity.ErrNotFound) {
		return nil
	}
	return readStream(t, st, stream)
}
