package grpcapi_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/auth"
	"github.com/verity-dev/verity/engine"
	verityv1 "github.com/verity-dev/verity/proto/verity/v1"
	"github.com/verity-dev/verity/protocol/grpcapi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// sessionServer is a Service over access on 127.0.0.1, with a raw client of it.
type sessionServer struct {
	svc  *grpcapi.Service
	srv  *grpc.Server
	api  verityv1.StoreClient
	done chan struct{}
}

func newSessionServer(t *testing.T, access grpcapi.Access) *sessionServer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &sessionServer{svc: grpcapi.New(access, grpcapi.Options{}), srv: grpc.NewServer(), done: make(chan struct{})}
	s.svc.Register(s.srv)
	go func() { defer close(s.done); _ = s.srv.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	s.api = verityv1.NewStoreClient(conn)
	t.Cleanup(func() {
		conn.Close()
		s.srv.Stop()
		<-s.done
	})
	return s
}

func openSessionEngine(t *testing.T) *engine.Engine {
	t.Helper()
	e, err := engine.Open(engine.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func appendReq(id uint64, stream string, exp *verityv1.ExpectedRevision, evs ...*verityv1.EventData) *verityv1.AppendSessionRequest {
	return &verityv1.AppendSessionRequest{Id: id, Request: &verityv1.AppendSessionRequest_Append{
		Append: &verityv1.AppendRequest{Stream: stream, Expected: exp, Events: evs}}}
}

func exact(n uint64) *verityv1.ExpectedRevision {
	return &verityv1.ExpectedRevision{Kind: verityv1.ExpectedKind_EXPECTED_KIND_EXACT, Revision: n}
}

// next is the expected revision of a stream's append number i, from 0.
func next(i uint64) *verityv1.ExpectedRevision {
	if i == 0 {
		return &verityv1.ExpectedRevision{Kind: verityv1.ExpectedKind_EXPECTED_KIND_NO_STREAM}
	}
	return exact(i - 1)
}

func TestAppendSessionAnswersEachRequestByItsID(t *testing.T) {
	e := openSessionEngine(t)
	s := newSessionServer(t, adminAccess{e})
	sess, err := s.api.AppendSession(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer sess.CloseSend()

	roundTrip := func(t *testing.T, req *verityv1.AppendSessionRequest) *verityv1.AppendSessionResponse {
		t.Helper()
		if err := sess.Send(req); err != nil {
			t.Fatalf("send request %d: %v", req.GetId(), err)
		}
		res, err := sess.Recv()
		if err != nil {
			t.Fatalf("receive the answer to request %d: %v", req.GetId(), err)
		}
		if res.GetId() != req.GetId() {
			t.Fatalf("the answer to request %d has id %d", req.GetId(), res.GetId())
		}
		return res
	}
	wantError := func(t *testing.T, res *verityv1.AppendSessionResponse, kind verity.ErrorKind) *verity.Error {
		t.Helper()
		p := res.GetError()
		if p == nil {
			t.Fatalf("answer %d: %v, want an error of kind %v", res.GetId(), res, kind)
		}
		ve := verityv1.ErrorFromProto(p)
		if ve.Kind != kind {
			t.Fatalf("answer %d: %v, want kind %v", res.GetId(), ve, kind)
		}
		return ve
	}

	t.Run("an append gets its revision and position", func(t *testing.T) {
		res := roundTrip(t, appendReq(7, "order-1", nil, goodEvent(), goodEvent()))
		if a := res.GetAppend(); a == nil || a.GetRevision() != 1 || a.GetPosition() != 2 {
			t.Fatalf("answer %v, want revision 1 at position 2", res)
		}
	})
	t.Run("a wrong expected revision is a Conflict carrying the expected and the actual", func(t *testing.T) {
		ve := wantError(t, roundTrip(t, appendReq(8, "order-1", exact(5), goodEvent())), verity.Conflict)
		if ve.Expected == nil || *ve.Expected != verity.Exact(5) || ve.Actual == nil || ve.Actual.Revision != 1 || ve.Stream != "order-1" {
			t.Fatalf("conflict %#v lacks expected 5 and actual 1 of order-1", ve)
		}
	})
	t.Run("a bad event id is Invalid and the session goes on", func(t *testing.T) {
		wantError(t, roundTrip(t, appendReq(9, "order-1", nil, &verityv1.EventData{Id: []byte{1, 2, 3}, Type: "T", Data: []byte(`{}`)})), verity.Invalid)
	})
	t.Run("a field the server does not know is Invalid", func(t *testing.T) {
		req := withUnknown(appendReq(10, "order-1", nil, goodEvent()), 77).(*verityv1.AppendSessionRequest)
		wantError(t, roundTrip(t, req), verity.Invalid)
	})
	t.Run("a request holding no append is Invalid", func(t *testing.T) {
		wantError(t, roundTrip(t, &verityv1.AppendSessionRequest{Id: 11}), verity.Invalid)
	})
	t.Run("a multi-stream append gets one result per stream", func(t *testing.T) {
		res := roundTrip(t, &verityv1.AppendSessionRequest{Id: 12, Request: &verityv1.AppendSessionRequest_AppendMulti{AppendMulti: &verityv1.AppendMultiRequest{
			Appends: []*verityv1.StreamAppend{
				{Stream: "order-1", Expected: exact(1), Events: []*verityv1.EventData{goodEvent()}},
				{Stream: "order-2", Events: []*verityv1.EventData{goodEvent()}},
			}}}})
		rs := res.GetAppendMulti().GetResults()
		if len(rs) != 2 || rs[0].GetRevision() != 2 || rs[1].GetRevision() != 0 {
			t.Fatalf("answer %v, want revisions 2 and 0", res)
		}
	})
	t.Run("the refused requests changed nothing", func(t *testing.T) {
		evs, err := e.ReadStream(t.Context(), "order-1", verity.ReadStreamOptions{})
		if err != nil || len(evs) != 3 {
			t.Fatalf("order-1 holds %d events (%v), want the 3 of the accepted appends", len(evs), err)
		}
	})
}

// gateStore counts its appends and can hold them until released.
type gateStore struct {
	verity.Store
	entered chan struct{} // receives once per Append entered, when non-nil
	release chan struct{} // Append waits for it when non-nil
	calls   atomic.Int64
	running atomic.Int64
	maxRun  atomic.Int64
}

func (g *gateStore) Append(ctx context.Context, stream string, exp verity.ExpectedRevision, evs ...verity.EventData) (verity.AppendResult, error) {
	g.calls.Add(1)
	n := g.running.Add(1)
	defer g.running.Add(-1)
	for m := g.maxRun.Load(); n > m && !g.maxRun.CompareAndSwap(m, n); m = g.maxRun.Load() {
	}
	if g.entered != nil {
		g.entered <- struct{}{}
	}
	if g.release != nil {
		select {
		case <-g.release:
		case <-ctx.Done():
			return verity.AppendResult{}, ctx.Err()
		}
	}
	return g.Store.Append(ctx, stream, exp, evs...)
}

func TestAppendSessionHandlesOneRequestAtATimeInOrder(t *testing.T) {
	g := &gateStore{Store: openSessionEngine(t)}
	s := newSessionServer(t, adminAccess{g})
	sess, err := s.api.AppendSession(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// All the requests go out before any answer is read: the server must still make them
	// one at a time, in order.
	const n = 50
	sent := make(chan error, 1)
	go func() {
		for i := range uint64(n) {
			if err := sess.Send(appendReq(100+i, "order-1", next(i), goodEvent())); err != nil {
				sent <- err
				return
			}
		}
		sent <- sess.CloseSend()
	}()
	for i := range uint64(n) {
		res, err := sess.Recv()
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		if res.GetId() != 100+i || res.GetAppend().GetRevision() != i {
			t.Fatalf("answer %d: %v, want id %d with revision %d", i, res, 100+i, i)
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if _, err := sess.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the client's last request the session ends with %v, want the OK status", err)
	}
	if m := g.maxRun.Load(); m != 1 {
		t.Fatalf("the session ran %d appends at once, want 1", m)
	}
}

// denyAccess refuses every caller.
type denyAccess struct{ adminAccess }

func (denyAccess) Authenticate(context.Context, string) (auth.Principal, error) {
	return auth.Principal{}, verity.Errorf(verity.Unauthenticated, "authenticate", "wrong password for user %q", "ann")
}

func TestAppendSessionWithWrongCredentialsIsUnauthenticated(t *testing.T) {
	g := &gateStore{Store: openSessionEngine(t)}
	s := newSessionServer(t, denyAccess{adminAccess{g}})
	sess, err := s.api.AppendSession(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	_ = sess.Send(appendReq(1, "order-1", nil, goodEvent())) // may see the end already
	_, err = sess.Recv()
	requireCode(t, err, codes.Unauthenticated, "a session with wrong credentials")
	if n := g.calls.Load(); n != 0 {
		t.Fatalf("the store saw %d appends from a caller it refused", n)
	}
}

func TestShutdownEndsAppendSessionsOnceAnswered(t *testing.T) {
	g := &gateStore{Store: openSessionEngine(t), entered: make(chan struct{}, 1), release: make(chan struct{})}
	s := newSessionServer(t, adminAccess{g})
	busy, err := s.api.AppendSession(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	idle, err := s.api.AppendSession(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := busy.Send(appendReq(1, "order-1", nil, goodEvent())); err != nil {
		t.Fatal(err)
	}
	<-g.entered
	s.svc.Shutdown()
	s.svc.Shutdown() // idempotent

	t.Run("an idle session ends with Unavailable", func(t *testing.T) {
		_, err := idle.Recv()
		requireCode(t, err, codes.Unavailable, "an idle session at shutdown")
	})
	t.Run("a busy session answers its request first", func(t *testing.T) {
		close(g.release)
		res, err := busy.Recv()
		if err != nil || res.GetId() != 1 || res.GetAppend() == nil {
			t.Fatalf("the request in hand at shutdown: %v, %v; want its result", res, err)
		}
		_, err = busy.Recv()
		requireCode(t, err, codes.Unavailable, "a busy session after its answer")
	})
	t.Run("a new session is refused", func(t *testing.T) {
		sess, err := s.api.AppendSession(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		_, err = sess.Recv()
		requireCode(t, err, codes.Unavailable, "a session opened after shutdown")
	})
	t.Run("a graceful stop does not wait for sessions", func(t *testing.T) {
		stopped := make(chan struct{})
		go func() { s.srv.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(10 * time.Second):
			s.srv.Stop()
			<-stopped
			t.Fatal("GracefulStop still waits 10s after Shutdown")
		}
	})
}

func TestAppendSessionCancelledByItsClientCancelsItsAppend(t *testing.T) {
	g := &gateStore{Store: openSessionEngine(t), entered: make(chan struct{}, 2), release: make(chan struct{})}
	s := newSessionServer(t, adminAccess{g})
	ctx, cancel := context.WithCancel(t.Context())
	sess, err := s.api.AppendSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.Send(appendReq(1, "order-1", nil, goodEvent())); err != nil {
		t.Fatal(err)
	}
	<-g.entered
	cancel()
	if _, err := sess.Recv(); status.Code(err) != codes.Canceled {
		t.Fatalf("a cancelled session: %v, want Canceled", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for g.running.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the append of a cancelled session still runs after 10s")
		}
		time.Sleep(time.Millisecond)
	}
	// The next session works: nothing of the first was left behind.
	close(g.release)
	sess2, err := s.api.AppendSession(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer sess2.CloseSend()
	if err := sess2.Send(appendReq(2, "order-2", nil, goodEvent())); err != nil {
		t.Fatal(err)
	}
	if res, err := sess2.Recv(); err != nil || res.GetAppend() == nil {
		t.Fatalf("an append on a new session: %v, %v", res, err)
	}
}
