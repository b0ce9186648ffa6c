package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/verity-dev/verity/engine"
	"github.com/verity-dev/verity/eventindex"
	"github.com/verity-dev/verity/storetest"
)

// consoleEnv is an env whose API has the console-support sources: the engine as Log, an
// event index over it, and stats that count their calls.
type consoleEnv struct {
	*env
	engine *engine.Engine
	index  *eventindex.Index
	stats  atomic.Int64 // calls of the Stats function
}

func newConsoleEnv(t testing.TB, opts Options) *consoleEnv {
	t.Helper()
	clock := storetest.NewFakeClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	e, err := engine.Open(engine.Config{Dir: t.TempDir(), Now: clock.Now, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("engine.Open: %v", err)
	}
	t.Cleanup(func() { _ = e.Close() })
	x, err := eventindex.Open(e, eventindex.Config{Path: filepath.Join(t.TempDir(), "events.sqlite"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("eventindex.Open: %v", err)
	}
	t.Cleanup(func() { _ = x.Close() }) // runs before the engine's Close
	ce := &consoleEnv{engine: e, index: x}
	store := &countingStore{Store: e}
	opts.Logger = slog.New(slog.DiscardHandler)
	opts.Log = e
	opts.Events = x
	opts.Stats = func(ctx context.Context) (Stats, error) {
		n := ce.stats.Add(1)
		st := e.Stats()
		return Stats{Time: clock.Now().Format(time.RFC3339Nano), LastPosition: st.LastPosition, Appends: uint64(n),
			Health: map[string]string{"store": "ok"}}, nil
	}
	srv := httptest.NewServer(New(&fakeAccess{store: store}, opts))
	t.Cleanup(srv.Close)
	ce.env = &env{t: t, srv: srv, store: store, clock: clock}
	return ce
}

// waitIndexed waits until the event index holds the whole log.
func (ce *consoleEnv) waitIndexed() {
	ce.t.Helper()
	last := ce.engine.Stats().LastPosition
	waitFor(ce.t, "the event index to catch up", func() bool {
		st, err := ce.index.Status(context.Background())
		return err == nil && st.Position >= last
	})
}

type searchAnswer struct {
	Streams []struct {
		Name         string `json:"name"`
		LastPosition uint64 `json:"lastPosition"`
		LastRevision uint64 `json:"lastRevision"`
		LastType     string `json:"lastType"`
		LastTime     string `json:"lastTime"`
	} `json:"streams"`
	Next *string `json:"next"`
}

func (a searchAnswer) names() []string {
	out := []string{}
	for _, s := range a.Streams {
		out = append(out, s.Name)
	}
	return out
}

// search answers a search that must succeed.
func (e *env) search(query string, headers ...string) searchAnswer {
	e.t.Helper()
	var a searchAnswer
	e.must(http.StatusOK, &a, "GET", "/streams?"+query, "", headers...)
	if a.Next == nil {
		e.t.Fatalf("search %q: no next in the answer", query)
	}
	return a
}

// searchAll follows a search's pages to the end and returns every stream listed.
func (e *env) searchAll(query string, headers ...string) []string {
	e.t.Helper()
	var all []string
	before := ""
	for range 1000 {
		q := query
		if before != "" {
			q += "&before=" + before
		}
		a := e.search(q, headers...)
		all = append(all, a.names()...)
		if *a.Next == "" {
			return all
		}
		before = *a.Next
	}
	e.t.Fatalf("search %q did not end", query)
	return nil
}

func TestStreamSearch(t *testing.T) {
	ce := newConsoleEnv(t, Options{})
	e := ce.env
	e.appendN("order-1", "OrderPlaced", 1)
	e.appendN("order-2", "OrderPlaced", 2)
	e.appendN("customer-1", "CustomerRegistered", 1)
	e.appendN("secret-1", "Classified", 1)
	e.appendN("order-1", "OrderShipped", 1)
	e.appendN("orders-9", "Other", 1)
	e.appendN("gone-1", "Gone", 1)
	e.must(http.StatusOK, nil, "DELETE", "/streams/gone-1", "")
	e.must(http.StatusOK, nil, "PUT", "/streams/customer-1/metadata", `{"owner":"crm"}`)

	t.Run("every stream comes once, most recently written first, with its last event", func(t *testing.T) {
		e := e.with(t)
		a := e.search("")
		want := []string{"orders-9", "order-1", "secret-1", "customer-1", "order-2"}
		if diff := cmp.Diff(want, a.names()); diff != "" {
			t.Fatalf("streams (-want +got):\n%s", diff)
		}
		if *a.Next != "" {
			t.Errorf("next = %q, want \"\" (the start was reached)", *a.Next)
		}
		o := a.Streams[1]
		if o.LastRevision != 1 || o.LastType != "OrderShipped" || o.LastPosition != 6 || o.LastTime == "" {
			t.Errorf("order-1 = %+v, want its last event: revision 1, OrderShipped, position 6", o)
		}
	})
	for _, tt := range []struct {
		name, query string
		want        []string
	}{
		{"a prefix naming a category uses it", "prefix=order-", []string{"order-1", "order-2"}},
		{"a bare prefix matches names", "prefix=order", []string{"orders-9", "order-1", "order-2"}},
		{"a category selects its streams only", "category=order", []string{"order-1", "order-2"}},
		{"a category and a prefix must both match", "category=order&prefix=order-2", []string{"order-2"}},
		{"system streams come only when asked", "system=true&prefix=$", []string{"$$customer-1", "$$gone-1"}},
		{"nothing matches", "prefix=zzz", []string{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, e.with(t).search(tt.query).names()); diff != "" {
				t.Errorf("search %q (-want +got):\n%s", tt.query, diff)
			}
		})
	}
	t.Run("pages of one stream list each stream once", func(t *testing.T) {
		e := e.with(t)
		a := e.search("limit=2")
		if len(a.Streams) != 2 || *a.Next == "" {
			t.Fatalf("first page %v next %q, want 2 streams and a next", a.names(), *a.Next)
		}
		got := e.searchAll("limit=1")
		want := []string{"orders-9", "order-1", "secret-1", "customer-1", "order-2"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("paged search (-want +got):\n%s", diff)
		}
	})
	t.Run("a restricted user sees only the streams they may read", func(t *testing.T) {
		e := e.with(t)
		got := e.searchAll("limit=2", "Authorization", readerAuth)
		want := []string{"orders-9", "order-1", "customer-1", "order-2"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("reader's search (-want +got):\n%s", diff)
		}
		if got := e.search("system=true&prefix=$", "Authorization", readerAuth).names(); len(got) != 0 {
			t.Errorf("reader sees system streams %v", got)
		}
	})
	t.Run("an anonymous caller who may read nothing is asked to log in", func(t *testing.T) {
		// denyStore refuses with PermissionDenied, so "nobody" just finds nothing.
		if got := e.with(t).search("", "Authorization", nobodyAuth).names(); len(got) != 0 {
			t.Errorf("nobody sees %v", got)
		}
	})
	t.Run("bad parameters are refused", func(t *testing.T) {
		for _, q := range []string{"limit=0", "limit=501", "before=x", "before=0", "system=maybe", "prefx=a"} {
			r := e.with(t).do("GET", "/streams?"+q, "")
			if r.status != http.StatusBadRequest {
				t.Errorf("search %q: status %d, want 400; %s", q, r.status, r.body)
			}
		}
	})
}

func TestStreamSearchStopsAtItsScanBudget(t *testing.T) {
	ce := newConsoleEnv(t, Options{SearchScanBudget: 3})
	e := ce.env
	for i := range 5 {
		e.appendN(fmt.Sprintf("s-%d", i), "E", 2) // positions 2i+1, 2i+2
	}
	a := e.search("")
	// 3 events read: s-4 twice and s-3 once.
	if diff := cmp.Diff([]string{"s-4", "s-3"}, a.names()); diff != "" || *a.Next != "8" {
		t.Fatalf("first page %v next %q, want s-4, s-3 and next 8 (-want +got):\n%s", a.names(), *a.Next, diff)
	}
	got := e.searchAll("")
	if diff := cmp.Diff([]string{"s-4", "s-3", "s-2", "s-1", "s-0"}, got); diff != "" {
		t.Errorf("paged search (-want +got):\n%s", diff)
	}
}

func TestStreamSearchWithoutTheLogReadsThroughTheCallersStore(t *testing.T) {
	e := newEnv(t, Options{})
	e.appendN("order-1", "E", 1)
	e.appendN("secret-1", "E", 1)
	if got := e.search("").names(); !cmp.Equal(got, []string{"secret-1", "order-1"}) {
		t.Errorf("admin sees %v", got)
	}
	r := e.do("GET", "/streams", "", "Authorization", readerAuth)
	if r.status != http.StatusForbidden {
		t.Errorf("reader without a filter: status %d, want 403", r.status)
	}
	if got := e.search("prefix=order", "Authorization", readerAuth).names(); !cmp.Equal(got, []string{"order-1"}) {
		t.Errorf("reader with a prefix sees %v", got)
	}
}

// chainEvent is an event of the console endpoints as a client decodes it.
type chainEvent struct {
	ID            string          `json:"id"`
	Stream        string          `json:"stream"`
	Type          string          `json:"type"`
	Position      uint64          `json:"position"`
	Metadata      json.RawMessage `json:"metadata"`
	CausationID   string          `json:"causationId"`
	CorrelationID string          `json:"correlationId"`
}

type chainAnswer struct {
	Event       chainEvent   `json:"event"`
	Causes      []chainEvent `json:"causes"`
	Effects     []chainEvent `json:"effects"`
	Correlation []chainEvent `json:"correlation"`
}

func streamsOf(evs []chainEvent) []string {
	out := []string{}
	for _, e := range evs {
		out = append(out, e.Stream)
	}
	return out
}

// appendLinked appends one event with an id and links, returning the id.
func (e *env) appendLinked(stream, typ, causation, correlation string) string {
	e.t.Helper()
	id := uuid.NewString()
	md := map[string]string{}
	if causation != "" {
		md["$causationId"] = causation
	}
	if correlation != "" {
		md["$correlationId"] = correlation
	}
	mdj, _ := json.Marshal(md)
	e.must(http.StatusCreated, nil, "POST", "/streams/"+stream, fmt.Sprintf(`{"id":%q,"type":%q,"data":{},"metadata":%s}`, id, typ, mdj))
	return id
}

func TestEventLookupAndCausationChain(t *testing.T) {
	ce := newConsoleEnv(t, Options{})
	e := ce.env
	// root (order-1) -> payment (payment-1), classified (secret-1); classified -> stock
	// (stock-1); payment -> shipped (order-1). All correlated by root's id.
	root := e.appendLinked("order-1", "OrderPlaced", "", "")
	payment := e.appendLinked("payment-1", "PaymentTaken", root, root)
	classified := e.appendLinked("secret-1", "Classified", root, root)
	stock := e.appendLinked("stock-1", "StockReserved", classified, root)
	shipped := e.appendLinked("order-1", "OrderShipped", payment, root)
	e.appendLinked("other-1", "Unrelated", "", "elsewhere")
	ce.waitIndexed()

	t.Run("an event is found by its id, with its links", func(t *testing.T) {
		e := e.with(t)
		var ev chainEvent
		e.must(http.StatusOK, &ev, "GET", "/events/"+stock, "")
		if ev.ID != stock || ev.Stream != "stock-1" || ev.Type != "StockReserved" || ev.CausationID != classified || ev.CorrelationID != root || len(ev.Metadata) == 0 {
			t.Errorf("event = %+v", ev)
		}
	})
	t.Run("an unknown id, and one the caller may not read, are 404 alike", func(t *testing.T) {
		e := e.with(t)
		e.must(http.StatusNotFound, nil, "GET", "/events/"+uuid.NewString(), "")
		e.must(http.StatusNotFound, nil, "GET", "/events/not-a-uuid", "")
		e.must(http.StatusNotFound, nil, "GET", "/events/"+classified, "", "Authorization", readerAuth)
		e.must(http.StatusNotFound, nil, "GET", "/events/"+classified+"/chain", "", "Authorization", readerAuth)
		e.must(http.StatusOK, nil, "GET", "/events/"+classified, "")
	})
	t.Run("the chain holds causes up to the root and effects breadth first", func(t *testing.T) {
		e := e.with(t)
		var c chainAnswer
		e.must(http.StatusOK, &c, "GET", "/events/"+root+"/chain", "")
		if c.Event.ID != root || len(c.Causes) != 0 {
			t.Errorf("event %s causes %v, want root and none", c.Event.ID, streamsOf(c.Causes))
		}
		if diff := cmp.Diff([]string{"payment-1", "secret-1", "order-1", "stock-1"}, streamsOf(c.Effects)); diff != "" {
			t.Errorf("effects (-want +got):\n%s", diff)
		}
		if c.Effects[2].ID != shipped || c.Effects[2].CausationID != payment {
			t.Errorf("third effect = %+v, want shipped caused by payment", c.Effects[2])
		}
		if diff := cmp.Diff([]string{"order-1", "stock-1", "secret-1", "payment-1"}, streamsOf(c.Correlation)); diff != "" {
			t.Errorf("correlation, newest first without the event (-want +got):\n%s", diff)
		}
		e.must(http.StatusOK, &c, "GET", "/events/"+stock+"/chain", "")
		if diff := cmp.Diff([]string{"secret-1", "order-1"}, streamsOf(c.Causes)); diff != "" {
			t.Errorf("causes of stock (-want +got):\n%s", diff)
		}
	})
	t.Run("a restricted user's chain leaves out what they may not read, and follows past it", func(t *testing.T) {
		e := e.with(t)
		var c chainAnswer
		e.must(http.StatusOK, &c, "GET", "/events/"+root+"/chain", "", "Authorization", readerAuth)
		if diff := cmp.Diff([]string{"payment-1", "order-1", "stock-1"}, streamsOf(c.Effects)); diff != "" {
			t.Errorf("effects (-want +got):\n%s", diff)
		}
		if c.Effects[2].CausationID != classified {
			t.Errorf("stock's causationId = %q, want the hidden event's id", c.Effects[2].CausationID)
		}
		if diff := cmp.Diff([]string{"order-1", "stock-1", "payment-1"}, streamsOf(c.Correlation)); diff != "" {
			t.Errorf("correlation (-want +got):\n%s", diff)
		}
		e.must(http.StatusOK, &c, "GET", "/events/"+stock+"/chain", "", "Authorization", readerAuth)
		if diff := cmp.Diff([]string{"order-1"}, streamsOf(c.Causes)); diff != "" {
			t.Errorf("causes of stock (-want +got):\n%s", diff)
		}
	})
	t.Run("the chain's limit bounds each list", func(t *testing.T) {
		e := e.with(t)
		var c chainAnswer
		e.must(http.StatusOK, &c, "GET", "/events/"+root+"/chain?limit=1", "")
		if len(c.Effects) != 1 || len(c.Correlation) != 1 {
			t.Errorf("limit 1 gave %d effects, %d correlated", len(c.Effects), len(c.Correlation))
		}
		e.must(http.StatusBadRequest, nil, "GET", "/events/"+root+"/chain?limit=0", "")
	})
	t.Run("a correlation pages newest first and hides what the caller may not read", func(t *testing.T) {
		e := e.with(t)
		var all []string
		before := ""
		for range 10 {
			var a struct {
				CorrelationID string       `json:"correlationId"`
				Events        []chainEvent `json:"events"`
				Next          string       `json:"next"`
			}
			path := "/correlations/" + url.PathEscape(root) + "?limit=2"
			if before != "" {
				path += "&before=" + before
			}
			e.must(http.StatusOK, &a, "GET", path, "", "Authorization", readerAuth)
			if a.CorrelationID != root {
				t.Fatalf("correlationId = %q", a.CorrelationID)
			}
			all = append(all, streamsOf(a.Events)...)
			if a.Next == "" {
				break
			}
			before = a.Next
		}
		if diff := cmp.Diff([]string{"order-1", "stock-1", "payment-1", "order-1"}, all); diff != "" {
			t.Errorf("reader's correlation (-want +got):\n%s", diff)
		}
	})
}

func TestEventEndpointsWithoutAnIndexAreUnavailable(t *testing.T) {
	e := newEnv(t, Options{})
	for _, path := range []string{"/events/" + uuid.NewString(), "/events/x/chain", "/correlations/x"} {
		e.must(http.StatusServiceUnavailable, nil, "GET", path, "")
	}
}

func TestStats(t *testing.T) {
	ce := newConsoleEnv(t, Options{StatsInterval: 5 * time.Millisecond})
	e := ce.env
	e.t = t
	e.appendN("order-1", "E", 3)
	t.Run("admins and $ops see the figures", func(t *testing.T) {
		e := e.with(t)
		for _, who := range []string{adminAuth, watchAuth} {
			var s Stats
			e.must(http.StatusOK, &s, "GET", "/stats", "", "Authorization", who)
			if s.LastPosition != 3 || s.Health["store"] != "ok" {
				t.Errorf("stats = %+v", s)
			}
		}
	})
	t.Run("others are refused, and the anonymous told to log in", func(t *testing.T) {
		e := e.with(t)
		e.must(http.StatusForbidden, nil, "GET", "/stats", "", "Authorization", readerAuth)
		e.must(http.StatusUnauthorized, nil, "GET", "/stats", "", "Authorization", anonAuth)
		e.must(http.StatusUnauthorized, nil, "GET", "/stats/stream", "", "Authorization", anonAuth)
	})
	t.Run("the stream sends the figures over and over", func(t *testing.T) {
		e := e.with(t)
		s := e.subscribe("/stats/stream")
		before := ce.stats.Load()
		var last Stats
		for i := range 3 {
			ev := s.next()
			if ev.event != "stats" {
				t.Fatalf("message %d is %q, want stats", i, ev.event)
			}
			if err := json.Unmarshal([]byte(ev.data), &last); err != nil {
				t.Fatalf("stats data %q: %v", ev.data, err)
			}
		}
		if last.LastPosition != 3 || ce.stats.Load() < before+2 {
			t.Errorf("last stats %+v after %d calls", last, ce.stats.Load()-before)
		}
	})
	t.Run("the stream counts against the client's live subscriptions", func(t *testing.T) {
		ce := newConsoleEnv(t, Options{MaxSubscriptionsPerClient: 1})
		ce.env.with(t).subscribe("/stats/stream")
		ce.env.with(t).must(http.StatusTooManyRequests, nil, "GET", "/stats/stream", "")
	})
	t.Run("a server without stats answers 503", func(t *testing.T) {
		e := newEnv(t, Options{})
		e.must(http.StatusServiceUnavailable, nil, "GET", "/stats", "")
	})
}
