package httpapi

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// ids returns the ids and kinds of events, as "kind:id".
func ids(evs []sseEvent) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.event + ":" + ev.id
	}
	return out
}

func TestSubscribeStream(t *testing.T) {
	e := newEnv(t, Options{})
	e.appendN("sub-1", "A", 3)

	s := e.subscribe("/subscribe/sub-1")
	got := s.nextN(4)
	if want := []string{"event:0", "event:1", "event:2", "caught-up:"}; !slices.Equal(ids(got), want) {
		t.Fatalf("catch-up %v, want %v", ids(got), want)
	}
	var ev eventOut
	if err := json.Unmarshal([]byte(got[1].data), &ev); err != nil || ev.Stream != "sub-1" || ev.Revision != 1 || ev.Type != "A" || string(ev.Data) != `{"n":1}` {
		t.Fatalf("event data %q decodes to %+v (%v)", got[1].data, ev, err)
	}
	e.appendN("sub-1", "B", 2)
	e.appendN("other-1", "B", 1) // not on this stream
	e.appendN("sub-1", "C", 1)
	live := s.nextN(3)
	if want := []string{"event:3", "event:4", "event:5"}; !slices.Equal(ids(live), want) {
		t.Fatalf("live %v, want %v", ids(live), want)
	}
	if !strings.Contains(live[2].data, `"type":"C"`) {
		t.Fatalf("last live event %q, want type C", live[2].data)
	}
	if len(s.comments) == 0 || s.comments[0] != "subscribed" {
		t.Fatalf("comments %v, want the opening comment first", s.comments)
	}

	tests := []struct {
		name    string
		path    string
		headers []string
		want    []string
	}{
		{"Last-Event-ID resumes after that event", "/subscribe/sub-1", []string{"Last-Event-ID", "3"}, []string{"event:4", "event:5", "caught-up:"}},
		{"Last-Event-ID wins over from", "/subscribe/sub-1?from=0", []string{"Last-Event-ID", "4"}, []string{"event:5", "caught-up:"}},
		{"from starts at a revision", "/subscribe/sub-1?from=4", nil, []string{"event:4", "event:5", "caught-up:"}},
		{"from=end starts live", "/subscribe/sub-1?from=end", nil, []string{"caught-up:"}},
		{"a stream not yet written catches up at once", "/subscribe/sub-new", nil, []string{"caught-up:"}},
		{"Accept: text/event-stream on the read URL subscribes", "/streams/sub-1?from=5", []string{"Accept", "text/event-stream"}, []string{"event:5", "caught-up:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			s := e.subscribe(tt.path, tt.headers...)
			if got := ids(s.nextN(len(tt.want))); !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			s.close()
		})
	}
}

func TestSubscribeAll(t *testing.T) {
	e := newEnv(t, Options{})
	e.appendN("order-1", "Placed", 2)   // 1, 2
	e.appendN("customer-1", "Added", 3) // 3, 4, 5
	e.appendN("order-2", "Placed", 1)   // 6

	t.Run("the whole log with positions as ids", func(t *testing.T) {
		e := e.with(t)
		s := e.subscribe("/subscribe/$all")
		want := []string{"event:1", "event:2", "event:3", "event:4", "event:5", "event:6", "caught-up:6"}
		if got := ids(s.nextN(7)); !slices.Equal(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
		s.close()
	})
	t.Run("a filter with checkpoints", func(t *testing.T) {
		e := e.with(t)
		s := e.subscribe("/subscribe/$all?category=order&checkpointEvery=2")
		got := s.nextN(4)
		// Events 3 and 4 are skipped, so a checkpoint at 4 follows; event 5 is skipped too and
		// the caught-up at 6 covers it.
		want := []string{"event:1", "event:2", "checkpoint:4", "event:6"}
		if !slices.Equal(ids(got), want) {
			t.Fatalf("got %v, want %v", ids(got), want)
		}
		if got[2].data != `{"position":4}` {
			t.Fatalf("checkpoint data %q", got[2].data)
		}
		for next := s.next(); next.event != "caught-up"; next = s.next() {
			if next.event != "checkpoint" {
				t.Fatalf("before caught-up: %+v", next)
			}
		}
		e.appendN("customer-2", "Added", 1) // 7
		e.appendN("order-3", "Placed", 1)   // 8
		for next := s.next(); next.event != "event"; next = s.next() {
			if next.event != "checkpoint" {
				t.Fatalf("live: %+v, want checkpoints then the event", next)
			}
		}
		s.close()
	})
	t.Run("Last-Event-ID resumes a filtered subscription after a checkpoint", func(t *testing.T) {
		e := e.with(t)
		s := e.subscribe("/subscribe/$all?eventType=Placed", "Last-Event-ID", "4")
		if got := s.next(); got.event != "event" || got.id != "6" {
			t.Fatalf("first %+v, want event 6", got)
		}
		s.close()
	})
	t.Run("fromTime starts at the first event at or after it", func(t *testing.T) {
		e := e.with(t)
		e.clock.Advance(time.Hour)
		e.appendN("late-1", "Late", 1) // 9
		s := e.subscribe("/subscribe/$all?fromTime=" + e.clock.Now().Format(time.RFC3339Nano))
		if got := ids(s.nextN(2)); !slices.Equal(got, []string{"event:9", "caught-up:9"}) {
			t.Fatalf("got %v", got)
		}
		s.close()
	})
}

func TestSubscribeBadRequests(t *testing.T) {
	e := newEnv(t, Options{})
	tests := []struct {
		name, path string
		headers    []string
		status     int
		msg        string
	}{
		{"a bad Last-Event-ID", "/subscribe/s", []string{"Last-Event-ID", "abc"}, 400, `Last-Event-ID "abc"`},
		{"a Last-Event-ID at the very end", "/subscribe/s", []string{"Last-Event-ID", "18446744073709551615"}, 400, "Last-Event-ID"},
		{"a filter on a stream", "/subscribe/s?category=x", nil, 400, "applies to $all only"},
		{"fromTime on a stream", "/subscribe/s?fromTime=2030-01-01T00:00:00Z", nil, 400, "applies to $all only"},
		{"a bad regex", "/subscribe/$all?eventTypeRegex=%5B", nil, 400, "regular expression"},
		{"a bad checkpointEvery", "/subscribe/$all?checkpointEvery=0", nil, 400, "checkpointEvery"},
		{"from and fromTime", "/subscribe/$all?from=1&fromTime=2030-01-01T00:00:00Z", nil, 400, "not both"},
		{"a bad stream name", "/subscribe/a%01b", nil, 400, "control character"},
		{"wrong credentials", "/subscribe/s", []string{"Authorization", "Bearer wrong"}, 401, "wrong user name"},
		{"a denied caller", "/subscribe/s", []string{"Authorization", nobodyAuth}, 403, "may not"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			r := e.do("GET", tt.path, "", tt.headers...)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if got := r.errorOf(t); !strings.Contains(got.Message, tt.msg) {
				t.Fatalf("error %+v does not say %q", got, tt.msg)
			}
		})
	}
	if r := e.do("HEAD", "/subscribe/s", ""); r.status != 200 || r.header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("HEAD: status %d, headers %v", r.status, r.header)
	}
	if r := e.do("HEAD", "/subscribe/s?from=x", ""); r.status != 400 {
		t.Fatalf("HEAD with a bad from: status %d, want 400", r.status)
	}
	if n := e.store.open.Load(); n != 0 {
		t.Fatalf("%d subscriptions left open by refused and HEAD requests", n)
	}
}

func TestSubscriptionLimitAndCleanup(t *testing.T) {
	e := newEnv(t, Options{MaxSubscriptionsPerClient: 2})
	a := e.subscribe("/subscribe/x")
	b := e.subscribe("/subscribe/$all")
	a.next()
	b.next()
	r := e.do("GET", "/subscribe/y", "")
	if r.status != http.StatusTooManyRequests || r.errorOf(t).Kind != "resource_exhausted" || r.header.Get("Retry-After") == "" {
		t.Fatalf("third subscription: status %d body %s headers %v, want 429 resource_exhausted with Retry-After", r.status, r.body, r.header)
	}
	if !strings.Contains(r.errorOf(t).Message, "2 live subscriptions") {
		t.Fatalf("message %q does not name the limit", r.errorOf(t).Message)
	}
	// Another principal from the same address is another client.
	if got := e.subscribe("/subscribe/y", "Authorization", opsAuth).next(); got.event != "caught-up" {
		t.Fatalf("another principal's subscription got %+v", got)
	}

	if n := e.store.open.Load(); n != 3 {
		t.Fatalf("%d subscriptions open on the store, want 3", n)
	}
	a.close()
	waitFor(t, "the closed client's subscription to be released", func() bool { return e.store.open.Load() == 2 })
	d := e.subscribe("/subscribe/z")
	if got := d.next(); got.event != "caught-up" {
		t.Fatalf("after a close, a new subscription got %+v", got)
	}
}

func TestHeartbeat(t *testing.T) {
	e := newEnv(t, Options{SSEHeartbeat: 5 * time.Millisecond})
	s := e.subscribe("/subscribe/quiet")
	if got := s.next(); got.event != "caught-up" {
		t.Fatalf("got %+v, want caught-up", got)
	}
	for !slices.Contains(s.comments, "heartbeat") {
		line, err := s.rd.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended before a heartbeat: %v", err)
		}
		if strings.HasPrefix(line, ":") {
			s.comments = append(s.comments, strings.TrimSpace(line[1:]))
		} else if line != "\n" {
			t.Fatalf("an idle stream sent %q", line)
		}
	}
}

func TestStoreClosingEndsStreamWithError(t *testing.T) {
	e := newEnv(t, Options{})
	s := e.subscribe("/subscribe/$all")
	if got := s.next(); got.event != "caught-up" {
		t.Fatalf("got %+v, want caught-up", got)
	}
	if err := e.store.Store.Close(); err != nil {
		t.Fatalf("close store: %v", err)
	}
	got := s.next()
	if got.event != "error" || !strings.Contains(got.data, `"kind":"unavailable"`) {
		t.Fatalf("got %+v, want an unavailable error event", got)
	}
	if _, err := s.rd.ReadString('\n'); err == nil {
		t.Fatal("the stream went on after its error event")
	}
	waitFor(t, "the subscription to be closed", func() bool { return e.store.open.Load() == 0 })
}

func TestStalledClientIsDropped(t *testing.T) {
	e := newEnv(t, Options{SSEWriteTimeout: 100 * time.Millisecond})
	// More history than the socket buffers between server and client can hold.
	big := `{"type":"Big","data":"` + strings.Repeat("x", 256<<10) + `"}`
	batch := "[" + strings.Repeat(big+",", 7) + big + "]"
	for range 12 {
		e.must(http.StatusCreated, nil, "POST", "/streams/big-1", batch)
	}
	conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /subscribe/big-1 HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatalf("write request: %v", err)
	}
	// The client never reads: the server's writes stall, time out, and the subscription goes.
	waitFor(t, "the subscription to open", func() bool { return e.store.open.Load() == 1 })
	waitFor(t, "the stalled client's subscription to be dropped", func() bool { return e.store.open.Load() == 0 })
}
