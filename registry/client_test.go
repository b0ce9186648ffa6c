package registry_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/registry"
)

// switchable serves whichever registry API is current; with none it answers 503, as a
// proxy in front of a restarting registry would.
type switchable struct {
	mu sync.Mutex
	h  http.Handler
}

func (s *switchable) set(h http.Handler) {
	s.mu.Lock()
	s.h = h
	s.mu.Unlock()
}

func (s *switchable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	h := s.h
	s.mu.Unlock()
	if h == nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"error":{"kind":"unavailable","message":"registry restarting"}}`))
		return
	}
	h.ServeHTTP(w, r)
}

func handler(r *registry.Registry) http.Handler {
	return registry.NewHandler(r, registry.HandlerOptions{Logger: quiet})
}

// listen serves h on addr ("127.0.0.1:0" for a fresh port) until stop is called or the test
// ends, and returns the address. Listening again on an address just freed can fail for a
// moment; it retries for a while.
func listen(t testing.TB, addr string, h http.Handler) (string, func()) {
	t.Helper()
	var ln net.Listener
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ln, err = net.Listen("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	srv := &http.Server{Handler: h}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			srv.Close()
			<-done
		})
	}
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

func TestAClientWatchSeesASnapshotThenChanges(t *testing.T) {
	r := open(t, openStore(t), newClock())
	register(t, r, "orders", "o1", "127.0.0.1:8081")
	c := newClient(t, serve(t, r, registry.HandlerOptions{}), registry.ClientOptions{})
	w, err := c.Watch(t.Context(), "orders")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if ch := next(t, w); ch.Kind != registry.ChangeSnapshot || !slices.Equal(ids(ch.Instances), []string{"o1"}) {
		t.Fatalf("first change = %+v, want a snapshot of o1", ch)
	}
	if err := r.SetHealth(t.Context(), "o1", registry.Unhealthy, "slow"); err != nil {
		t.Fatal(err)
	}
	if ch := next(t, w); ch.Kind != registry.ChangeHealthChanged || ch.Instance.ID != "o1" || ch.Reason != "slow" {
		t.Fatalf("second change = %+v, want o1's health", ch)
	}
	if err := r.Deregister(t.Context(), "o1"); err != nil {
		t.Fatal(err)
	}
	if ch := next(t, w); ch.Kind != registry.ChangeRemoved || ch.Reason != registry.RemovedDeregistered {
		t.Fatalf("third change = %+v, want o1 removed", ch)
	}
	w.Close()
	_, err = w.Next(t.Context())
	wantKind(t, err, verity.Unavailable)
}

func TestAClientWatchEndsWithItsContext(t *testing.T) {
	r := open(t, openStore(t), newClock())
	c := newClient(t, serve(t, r, registry.HandlerOptions{}), registry.ClientOptions{})
	ctx, cancel := context.WithCancel(t.Context())
	w, err := c.Watch(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	next(t, w) // the snapshot
	cancel()
	if _, err := w.Next(t.Context()); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next after the watch's context ended = %v, want context.Canceled", err)
	}
	w.Close()
}

func TestAClientWatchReconnectsAndStartsAgainWithASnapshot(t *testing.T) {
	store, clock := openStore(t), newClock()
	r1 := open(t, store, clock)
	register(t, r1, "orders", "o1", "127.0.0.1:8081")
	sw := &switchable{}
	sw.set(handler(r1))
	addr, _ := listen(t, "127.0.0.1:0", sw)
	c := newClient(t, addr, registry.ClientOptions{})
	w, err := c.Watch(t.Context(), "orders")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	next(t, w)

	// The registry restarts: the stream ends with an unavailable error, the client retries
	// through 503s until a new registry answers.
	sw.set(nil)
	r1.Close()
	r2 := open(t, store, clock)
	register(t, r2, "orders", "o2", "127.0.0.1:8082")
	sw.set(handler(r2))
	if ch := next(t, w); ch.Kind != registry.ChangeSnapshot || !slices.Equal(ids(ch.Instances), []string{"o1", "o2"}) {
		t.Fatalf("after the restart: %+v, want a snapshot of o1 and o2", ch)
	}
	register(t, r2, "orders", "o3", "127.0.0.1:8083")
	if ch := next(t, w); ch.Kind != registry.ChangeRegistered || ch.Instance.ID != "o3" {
		t.Fatalf("then %+v, want o3 registered", ch)
	}
}

func TestAClientWatchReconnectsAfterTheConnectionWentQuiet(t *testing.T) {
	r := open(t, openStore(t), newClock())
	register(t, r, "orders", "o1", "127.0.0.1:8081")
	// The server's heartbeat is far slower than the client's patience: the client must
	// give up on the silent stream and connect again, starting with a snapshot.
	base := serve(t, r, registry.HandlerOptions{SSEHeartbeat: time.Hour})
	c := newClient(t, base, registry.ClientOptions{WatchIdleTimeout: 50 * time.Millisecond})
	w, err := c.Watch(t.Context(), "orders")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := range 3 {
		if ch := next(t, w); ch.Kind != registry.ChangeSnapshot {
			t.Fatalf("change %d = %+v, want a snapshot of each connection", i, ch)
		}
	}
}

func TestAResolverPicksOverTheClient(t *testing.T) {
	r := open(t, openStore(t), newClock())
	register(t, r, "orders", "o1", "127.0.0.1:8081")
	register(t, r, "orders", "o2", "127.0.0.1:8082")
	c := newClient(t, serve(t, r, registry.HandlerOptions{}), registry.ClientOptions{})
	res := registry.NewResolver(c, registry.RoundRobin)
	defer res.Close()
	seen := map[string]int{}
	for range 4 {
		in, done, err := res.Pick(t.Context(), "orders")
		if err != nil {
			t.Fatal(err)
		}
		done()
		seen[in.ID]++
	}
	if seen["o1"] != 2 || seen["o2"] != 2 {
		t.Fatalf("picks = %v, want two of each", seen)
	}
	if err := r.SetHealth(t.Context(), "o1", registry.Unhealthy, ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the resolver to drop o1", func() bool {
		got, err := res.Instances(t.Context(), "orders")
		return err == nil && slices.Equal(ids(got), []string{"o2"})
	})
}

func TestKeepRegisteredOverTheClientRegistersAgainAfterLosingItsLease(t *testing.T) {
	store, clock := openStore(t), newClock()
	r := open(t, store, clock)
	c := newClient(t, serve(t, r, registry.HandlerOptions{}), registry.ClientOptions{})
	stop := keep(t, c, registry.Instance{Service: "orders", ID: "o1", Address: "127.0.0.1:8081"})
	eventually(t, "o1 registered", func() bool { return len(lookup(t, r, "orders")) == 1 })

	// The instance misses its TTL (a long pause): the registry removes it, and the next
	// heartbeat's 404 makes the client register again.
	clock.Advance(ttl + time.Second)
	if n, err := r.Sweep(t.Context()); err != nil || n != 1 {
		t.Fatalf("sweep = %d, %v; want o1 removed", n, err)
	}
	eventually(t, "o1 registered again", func() bool { return len(history(t, store)) >= 3 })
	h := history(t, store)
	if h[1].Type != registry.EventInstanceRemoved || h[1].Reason != registry.RemovedExpired || h[2].Type != registry.EventInstanceRegistered || h[2].ID != "o1" {
		t.Fatalf("history = %+v, want o1 registered, expired, registered", h)
	}
	if err := stop(); err != nil {
		t.Fatalf("KeepRegistered returned %v", err)
	}
	if got := lookup(t, r, "orders"); len(got) != 0 {
		t.Fatalf("after stop, orders = %v, want none (deregistered)", got)
	}
}

func TestKeepRegisteredOverTheClientRidesOutARegistryServerRestart(t *testing.T) {
	clock := newClock()
	r1 := open(t, openStore(t), clock)
	addr, stopServer := listen(t, "127.0.0.1:0", handler(r1))
	c := newClient(t, addr, registry.ClientOptions{Timeout: time.Second})
	keep(t, c, registry.Instance{Service: "orders", Address: "127.0.0.1:8081"}) // id generated
	eventually(t, "a registration", func() bool { return len(lookup(t, r1, "orders")) == 1 })
	id := lookup(t, r1, "orders")[0]

	// The server goes away with its state (a new store): the client's heartbeats fail to
	// connect, then are answered 404 by the new server, and the instance registers again
	// under its id.
	stopServer()
	r1.Close()
	r2 := open(t, openStore(t), clock)
	listen(t, addr, handler(r2))
	eventually(t, "a registration with the new server", func() bool { return len(lookup(t, r2, "orders")) == 1 })
	if got := lookup(t, r2, "orders"); !slices.Equal(got, []string{id}) {
		t.Fatalf("orders = %v, want [%s]", got, id)
	}
}
