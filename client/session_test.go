package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/auth"
	"github.com/verity-dev/verity/client"
	verityv1 "github.com/verity-dev/verity/proto/verity/v1"
	"github.com/verity-dev/verity/protocol/grpcapi"
	"google.golang.org/grpc"
)

// countingAccess lets everyone in as admin and counts the authentications: one per unary
// call, one per append session.
type countingAccess struct {
	store verity.Store
	auths atomic.Int64
}

func (a *countingAccess) Authenticate(context.Context, string) (auth.Principal, error) {
	a.auths.Add(1)
	return auth.Principal{Name: "admin", Roles: []string{auth.RoleAdmins}}, nil
}

func (a *countingAccess) Store(auth.Principal) verity.Store   { return a.store }
func (a *countingAccess) Groups(auth.Principal) verity.Groups { return nil }

// gateStore holds the appends to streams starting with "slow-" until released, and counts
// every append it is asked for.
type gateStore struct {
	verity.Store
	entered chan string   // receives each held append's stream
	release chan struct{} // closed to let the held appends go on
	calls   atomic.Int64
}

func newGateStore(s verity.Store) *gateStore {
	return &gateStore{Store: s, entered: make(chan string, 16), release: make(chan struct{})}
}

func (g *gateStore) Append(ctx context.Context, stream string, exp verity.ExpectedRevision, evs ...verity.EventData) (verity.AppendResult, error) {
	g.calls.Add(1)
	if strings.HasPrefix(stream, "slow-") {
		g.entered <- stream
		select {
		case <-g.release:
		case <-ctx.Done():
			return verity.AppendResult{}, ctx.Err()
		}
	}
	return g.Store.Append(ctx, stream, exp, evs...)
}

// next is the expected revision of a stream's append number i, from 0.
func next(i int) verity.ExpectedRevision {
	if i == 0 {
		return verity.NoStream()
	}
	return verity.Exact(uint64(i) - 1)
}

func event(n int) verity.EventData {
	return verity.EventData{ID: uuid.New(), Type: "Changed", Data: fmt.Appendf(nil, `{"n":%d}`, n)}
}

func TestAppendsReuseSessions(t *testing.T) {
	cases := []struct {
		name      string
		sessions  int
		wantAuths int64
	}{
		{"appends one after another all go over one session, authenticated once", 0, 1},
		{"with sessions turned off every append is a unary call, authenticated each", -1, 20},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := openEngine(t)
			access := &countingAccess{store: e}
			s := serveStore(t, e, "", access, grpcapi.Options{}, client.Options{MaxAppendSessions: c.sessions})
			for i := range 10 {
				res, err := s.Append(t.Context(), "order-1", next(i), event(i))
				if err != nil || res.Revision != uint64(i) {
					t.Fatalf("append %d: %+v, %v", i, res, err)
				}
				mres, err := s.AppendMulti(t.Context(), verity.StreamAppend{Stream: "order-2", Expected: next(i), Events: []verity.EventData{event(i)}})
				if err != nil || len(mres) != 1 || mres[0].Revision != uint64(i) {
					t.Fatalf("multi-stream append %d: %+v, %v", i, mres, err)
				}
			}
			if n := access.auths.Load(); n != c.wantAuths {
				t.Fatalf("the server authenticated %d times, want %d", n, c.wantAuths)
			}
		})
	}
}

func TestConcurrentAppendsBeyondTheSessionsGoAsUnaryCalls(t *testing.T) {
	e := openEngine(t)
	s := serveStore(t, e, "", &adminAccess{store: e}, grpcapi.Options{}, client.Options{MaxAppendSessions: 3})
	const writers, each = 24, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			stream := fmt.Sprintf("order-%d", w)
			for i := range each {
				res, err := s.Append(t.Context(), stream, next(i), event(i))
				if err == nil && res.Revision != uint64(i) {
					err = fmt.Errorf("revision %d, want %d", res.Revision, i)
				}
				if err != nil {
					errs <- fmt.Errorf("%s append %d: %w", stream, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	evs, err := s.ReadAll(t.Context(), verity.ReadAllOptions{Limit: writers * each * 2})
	if err != nil || len(evs) != writers*each {
		t.Fatalf("the log holds %d events (%v), want %d", len(evs), err, writers*each)
	}
}

func TestACancelledAppendEndsAloneAndAtOnce(t *testing.T) {
	e := openEngine(t)
	g := newGateStore(e)
	s := serveStore(t, e, "", &adminAccess{store: g}, grpcapi.Options{}, client.Options{})

	ctx, cancel := context.WithCancel(t.Context())
	slow := make(chan error, 1)
	go func() {
		_, err := s.Append(ctx, "slow-1", verity.Any(), event(0))
		slow <- err
	}()
	<-g.entered
	// Another caller's appends go on while the first is held, and after it is cancelled.
	if _, err := s.Append(t.Context(), "order-1", verity.NoStream(), event(1)); err != nil {
		t.Fatalf("an append beside a held one: %v", err)
	}
	cancel()
	select {
	case err := <-slow:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("the cancelled append: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the cancelled append has not returned after 10s")
	}
	for i := range 5 {
		if _, err := s.Append(t.Context(), "order-1", verity.Exact(uint64(i)), event(2+i)); err != nil {
			t.Fatalf("append %d after the cancelled one: %v", i, err)
		}
	}
	close(g.release)
}

func TestACallWhoseContextEndedSendsNothing(t *testing.T) {
	e := openEngine(t)
	g := newGateStore(e)
	s := serveStore(t, e, "", &adminAccess{store: g}, grpcapi.Options{}, client.Options{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Append(ctx, "order-1", verity.Any(), event(0)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append with an ended context: %v, want context.Canceled", err)
	}
	if _, err := s.AppendMulti(ctx, verity.StreamAppend{Stream: "order-1", Events: []verity.EventData{event(1)}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("AppendMulti with an ended context: %v, want context.Canceled", err)
	}
	if _, err := s.Append(t.Context(), "order-2", verity.Any(), event(2)); err != nil {
		t.Fatal(err)
	}
	if n := g.calls.Load(); n != 1 {
		t.Fatalf("the store was asked for %d appends, want only the last", n)
	}
}

func TestAnAppendInFlightWhenTheConnectionBreaksIsUnavailable(t *testing.T) {
	e := openEngine(t)
	g := newGateStore(e)
	s := serveStore(t, e, "", &adminAccess{store: g}, grpcapi.Options{}, client.Options{})
	slow := make(chan error, 1)
	go func() {
		_, err := s.Append(t.Context(), "slow-1", verity.Any(), event(0))
		slow <- err
	}()
	<-g.entered
	s.srv.Stop()
	err := <-slow
	if !errors.Is(err, verity.ErrUnavailable) || !strings.Contains(err.Error(), "may or may not") {
		t.Fatalf("an append cut off by the connection: %v, want Unavailable saying it may or may not have been made", err)
	}
}

// restartable serves a store with one gRPC server after another, each on a fresh port,
// and gives a client that always dials the current one.
type restartable struct {
	t     *testing.T
	store verity.Store
	addr  atomic.Value // string
	srv   *grpc.Server
	svc   *grpcapi.Service
	done  chan struct{}
}

func (r *restartable) start() {
	r.t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		r.t.Fatal(err)
	}
	r.addr.Store(lis.Addr().String())
	r.srv = grpc.NewServer()
	r.svc = grpcapi.New(&adminAccess{store: r.store}, grpcapi.Options{})
	r.svc.Register(r.srv)
	r.done = make(chan struct{})
	go func(srv *grpc.Server, done chan struct{}) { defer close(done); _ = srv.Serve(lis) }(r.srv, r.done)
}

// shutdown stops the current server as `verity serve` does: the service first, then a
// graceful stop, which must not wait for the client's idle sessions.
func (r *restartable) shutdown() {
	r.svc.Shutdown()
	r.srv.GracefulStop()
	<-r.done
}

func TestIdleSessionsEndedByAServerRestartAreReplaced(t *testing.T) {
	e := openEngine(t)
	t.Cleanup(func() { e.Close() })
	r := &restartable{t: t, store: e}
	r.start()
	c, err := client.Dial("passthrough:///verity.test:1", client.Options{DialOptions: []grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", r.addr.Load().(string))
		}),
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); r.srv.Stop(); <-r.done })
	// Two sessions left idle in the pool.
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			if _, err := c.Append(t.Context(), fmt.Sprintf("order-%d", i), verity.NoStream(), event(i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	r.shutdown()
	r.start()
	for i := range 2 {
		res, err := c.Append(t.Context(), fmt.Sprintf("order-%d", i), verity.Exact(0), event(10+i))
		if err != nil || res.Revision != 1 {
			t.Fatalf("append %d after the restart: %+v, %v; want revision 1", i, res, err)
		}
	}
}

func TestAServerWithoutSessionsGetsUnaryAppends(t *testing.T) {
	e := openEngine(t)
	t.Cleanup(func() { e.Close() })
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The service as a server older than AppendSession offers it.
	desc := verityv1.Store_ServiceDesc
	desc.Streams = nil
	for _, sd := range verityv1.Store_ServiceDesc.Streams {
		if sd.StreamName != "AppendSession" {
			desc.Streams = append(desc.Streams, sd)
		}
	}
	srv := grpc.NewServer()
	srv.RegisterService(&desc, grpcapi.New(&adminAccess{store: e}, grpcapi.Options{}))
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	c, err := client.Dial(lis.Addr().String(), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 3 {
		if res, err := c.Append(t.Context(), "order-1", next(i), event(i)); err != nil || res.Revision != uint64(i) {
			t.Fatalf("append %d: %+v, %v", i, res, err)
		}
	}
	if _, err := c.AppendMulti(t.Context(), verity.StreamAppend{Stream: "order-1", Expected: verity.Exact(2), Events: []verity.EventData{event(3)}}); err != nil {
		t.Fatal(err)
	}
}
