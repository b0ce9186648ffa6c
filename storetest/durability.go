package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/verity-dev/verity"
)

func testDurability(t *testing.T, s *suite) {
	s.test(t, "acknowledged events survive a reopen with every field intact", func(t *testing.T, st verity.Store) {
		s.needReopen(t)
		mustAppend(t, st, "order-1", verity.NoStream(), events("OrderPlaced", 3)...)
		mustAppendMulti(t, st,
			verity.StreamAppend{Stream: "order-2", Events: events("OrderPlaced", 2)},
			verity.StreamAppend{Stream: "order-1", Expected: verity.Exact(2), Events: events("OrderShipped", 1)},
		)
		mustAppend(t, st, "blob-1", verity.Any(), verity.EventData{Type: "Blob", ContentType: verity.ContentTypeBinary, Data: make([]byte, 64<<10), Metadata: []byte(`{"k":1}`)})
		want := readAll(t, st, verity.Filter{})
		st = s.reopen(t, st)
		requireSameRecorded(t, readAll(t, st, verity.Filter{}), want, "the log after the reopen")
		requireSameRecorded(t, readStream(t, st, "order-1"), ofStream(want, "order-1"), "order-1 after the reopen")
	})

	s.test(t, "positions and revisions continue after a reopen", func(t *testing.T, st verity.Store) {
		s.needReopen(t)
		mustAppend(t, st, "order-1", verity.NoStream(), events("OrderPlaced", 3)...)
		mustAppend(t, st, "order-2", verity.NoStream(), events("OrderPlaced", 1)...)
		st = s.reopen(t, st)
		res := mustAppend(t, st, "order-1", verity.Exact(2), event("OrderShipped", 0))
		if res != (verity.AppendResult{Revision: 3, Position: 5}) {
			t.Fatalf("the first append after the reopen = %+v, want revision 3 position 5", res)
		}
		_, err := st.Append(t.Context(), "order-2", verity.NoStream(), event("OrderPlaced", 1))
		requireWrongRevision(t, err, "order-2", verity.NoStream(), verity.StreamState{Exists: true, Revision: 0}, "Append(no stream) after the reopen")
		requireGaplessLog(t, readAll(t, st, verity.Filter{}), 5, "the log")
	})

	s.test(t, "repeated reopens lose nothing", func(t *testing.T, st verity.Store) {
		s.needReopen(t)
		var want []verity.EventData
		for i := 0; i < 4; i++ {
			evs := events("OrderChanged", 1+i)
			mustAppend(t, st, "order-1", verity.Any(), evs...)
			want = append(want, evs...)
			st = s.reopen(t, st)
			requireWritten(t, readStream(t, st, "order-1"), want, fmt.Sprintf("the stream after reopen %d", i+1))
		}
		requireGaplessLog(t, readAll(t, st, verity.Filter{}), len(want), "the log")
	})

	s.test(t, "an append retried after a reopen returns the original result and writes nothing", func(t *testing.T, st verity.Store) {
		s.needReopen(t)
		evs := events("OrderPlaced", 2)
		orig := mustAppend(t, st, "order-1", verity.NoStream(), evs...)
		mustAppend(t, st, "order-1", verity.Any(), event("OrderShipped", 0))
		want := readAll(t, st, verity.Filter{})
		st = s.reopen(t, st)
		res, err := st.Append(t.Context(), "order-1", verity.NoStream(), evs...)
		if err != nil {
			t.Fatalf("retry after the reopen: %v", err)
		}
		if res != orig {
			t.Fatalf("retry after the reopen = %+v, want the original %+v", res, orig)
		}
		requireSameRecorded(t, readAll(t, st, verity.Filter{}), want, "the log after the retry")
	})

	s.test(t, "metadata survives a reopen and still hides events", func(t *testing.T, st verity.Store) {
		s.needReopen(t)
		mustAppend(t, st, "order-1", verity.NoStream(), events("OrderChanged", 5)...)
		meta := verity.StreamMetadata{MaxCount: 2, ACL: &verity.StreamACL{Read: []string{"ann"}}}
		mustSetMetadata(t, st, "order-1", verity.NoStream(), meta)
		st = s.reopen(t, st)
		got, err := st.GetStreamMetadata(t.Context(), "order-1")
		if err != nil {
			t.Fatal(err)
		}
		requireMetadata(t, got.Metadata, meta, "metadata after the reopen")
		requireVisible(t, st, "order-1", []uint64{3, 4})
		mustSetMetadata(t, st, "order-1", verity.Exact(0), verity.StreamMetadata{MaxCount: 1})
	})

	s.test(t, "a soft-deleted stream stays deleted after a reopen and its revisions continue", func(t *testing.T, st verity.Store) {
		s.needReopen(t)
		mustAppend(t, st, "order-1", verity.NoStream(), events("OrderChanged", 3)...)
		if _, err := st.DeleteStream(t.Context(), "order-1", verity.Any()); err != nil {
			t.Fatal(err)
		}
		st = s.reopen(t, st)
		requireStreamNotFound(t, st, "order-1")
		res := mustAppend(t, st, "order-1", verity.NoStream(), event("OrderChanged", 3))
		if res.Revision != 3 {
			t.Fatalf("append after the delete and reopen = %+v, want revision 3", res)
		}
		requireVisible(t, st, "order-1", []uint64{3})
	})

	s.test(t, "a tombstoned stream stays deleted after a reopen", func(t *testing.T, st verity.Store) {
		s.needReopen(t)
		mustAppend(t, st, "order-1", verity.NoStream(), events("OrderChanged", 3)...)
		if _, err := st.TombstoneStream(t.Context(), "order-1", verity.Any()); err != nil {
			t.Fatal(err)
		}
		st = s.reopen(t, st)
		requireStreamErr(t, st, "order-1", verity.Deleted)
		_, err := st.Append(t.Context(), "order-1", verity.Any(), event("OrderChanged", 3))
		requireKind(t, err, verity.Deleted, "Append after the tombstone and reopen")
	})

	s.test(t, "a subscription on a reopened store replays the whole log", func(t *testing.T, st verity.Store) {
		s.needReopen(t)
		for i := 0; i < 5; i++ {
			mustAppend(t, st, fmt.Sprintf("order-%d", i%2), verity.Any(), event("OrderChanged", i))
		}
		want := readAll(t, st, verity.Filter{})
		st = s.reopen(t, st)
		sub := subscribe(t, st, verity.SubscribeOptions{})
		hist, _ := recvUntilCaughtUp(t, sub)
		requireSameRecorded(t, hist, want, "the replayed history")
		mustAppend(t, st, "order-0", verity.Any(), event("OrderChanged", 5))
		requirePositions(t, recvEvents(t, sub, 1, 5), []uint64{6}, "the live event")
	})

	s.test(t, "appends racing Close are durable when acknowledged and fail with Unavailable otherwise", func(t *testing.T, st verity.Store) {
		mustAppend(t, st, "order-0", verity.Any(), event("OrderChanged", 0))
		var (
			mu    sync.Mutex
			acked []verity.EventData
			wg    sync.WaitGroup
		)
		errs := make(chan error, 8)
		started := make(chan struct{}, 8)
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					e := event("OrderChanged", i)
					_, err := st.Append(t.Context(), fmt.Sprintf("order-%d", g), verity.Any(), e)
					if i == 0 {
						started <- struct{}{}
					}
					if err != nil {
						if !errors.Is(err, verity.ErrUnavailable) {
							errs <- fmt.Errorf("an append racing Close failed with %v, want Unavailable", err)
						}
						return
					}
					mu.Lock()
					acked = append(acked, e)
					mu.Unlock()
				}
			}()
		}
		for g := 0; g < 8; g++ {
			<-started
		}
		closed := make(chan error, 1)
		go func() { closed <- st.Close() }()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		waitFor(t, done, "appends racing Close")
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		select {
		case err := <-closed:
			if err != nil {
				t.Fatalf("Close: %v", err)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("Close did not return within %v of the appends ending", waitTimeout)
		}
		if !s.h.Features.Reopen {
			return
		}
		st = s.reopen(t, st)
		log := readAll(t, st, verity.Filter{})
		requireGaplessLog(t, log, len(log), "the log after the reopen")
		found := map[string]bool{}
		for _, e := range log {
			found[e.ID.String()] = true
		}
		for _, e := range acked {
			if !found[e.ID.String()] {
				t.Fatalf("acknowledged event %v is missing after the reopen", e.ID)
			}
		}
	})
}
