package client_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/client"
	"github.com/verity-dev/verity/engine"
	"github.com/verity-dev/verity/persistent"
	"github.com/verity-dev/verity/persistent/grouptest"
	verityv1 "github.com/verity-dev/verity/proto/verity/v1"
	"github.com/verity-dev/verity/protocol/grpcapi"
	"google.golang.org/grpc"
)

// serveGroups opens the engine in dir and consumer groups over it, serves both on a fresh
// port and dials them.
func serveGroups(t testing.TB, dir string) *served {
	t.Helper()
	e, err := engine.Open(engine.Config{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("engine.Open(%s): %v", dir, err)
	}
	m, err := persistent.New(e, persistent.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		e.Close()
		t.Fatalf("persistent.New: %v", err)
	}
	return serveStore(t, e, dir, &adminAccess{store: e, groups: m}, grpcapi.Options{}, client.Options{})
}

// TestGroupsConformance runs the Groups conformance suite against the client, talking
// over 127.0.0.1 to a grpcapi.Service in front of a persistent.Manager and an engine:
// consumer groups work the same over the network as embedded.
func TestGroupsConformance(t *testing.T) {
	var mu sync.Mutex
	last := map[testing.TB]*served{}
	open := func(t testing.TB, dir string) (verity.Groups, verity.Store) {
		s := serveGroups(t, dir)
		mu.Lock()
		last[t] = s
		mu.Unlock()
		return s, s
	}
	grouptest.Run(t, grouptest.Harness{
		New: func(t testing.TB) (verity.Groups, verity.Store) { return open(t, t.TempDir()) },
		Reopen: func(t testing.TB) (verity.Groups, verity.Store) {
			mu.Lock()
			old := last[t]
			mu.Unlock()
			_ = old.Close()
			return open(t, old.dir)
		},
	})
}

func TestGroupConsumerEnds(t *testing.T) {
	s := serveGroups(t, t.TempDir())
	ctx := t.Context()
	if err := s.CreateGroup(ctx, verity.GroupSpec{Stream: "order-1", Group: "g"}); err != nil {
		t.Fatal(err)
	}
	t.Run("Close makes Recv, Ack and Nack Conflict", func(t *testing.T) {
		c, err := s.JoinGroup(ctx, "order-1", "g", verity.JoinOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Recv(ctx); !errors.Is(err, verity.ErrConflict) {
			t.Fatalf("Recv after Close: %v, want Conflict", err)
		}
		if err := c.Ack(ctx, uuid.New()); !errors.Is(err, verity.ErrConflict) {
			t.Fatalf("Ack after Close: %v, want Conflict", err)
		}
		if err := c.Nack(ctx, verity.NackRetry, "", uuid.New()); !errors.Is(err, verity.ErrConflict) {
			t.Fatalf("Nack after Close: %v, want Conflict", err)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		info, err := s.GetGroup(ctx, "order-1", "g")
		if err != nil || len(info.Consumers) != 0 {
			t.Fatalf("after Close the group has consumers %+v (%v)", info.Consumers, err)
		}
	})
	t.Run("a canceled join returns the context's error", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.JoinGroup(cctx, "order-1", "g", verity.JoinOptions{}); !errors.Is(err, context.Canceled) {
			t.Fatalf("JoinGroup with a canceled context: %v", err)
		}
	})
	t.Run("the client's Close makes Recv Unavailable", func(t *testing.T) {
		c2, err := client.Dial(s.addr, client.Options{})
		if err != nil {
			t.Fatal(err)
		}
		c, err := c2.JoinGroup(ctx, "order-1", "g", verity.JoinOptions{})
		if err != nil {
			t.Fatal(err)
		}
		recvErr := make(chan error, 1)
		go func() {
			_, err := c.Recv(ctx)
			recvErr <- err
		}()
		if err := c2.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-recvErr; !errors.Is(err, verity.ErrUnavailable) {
			t.Fatalf("Recv at the client's Close: %v, want Unavailable", err)
		}
		if _, err := c2.ListGroups(ctx, ""); !errors.Is(err, verity.ErrUnavailable) {
			t.Fatalf("ListGroups after Close: %v, want Unavailable", err)
		}
	})
}

// TestConcurrentAcksAllLand acks from many goroutines at once, which the consumer sends
// in batches, and checks that every ack was taken in by the time a GetGroup made after
// the Acks returned answers (Ack does not wait for the server; GetGroup waits for its
// answers to the acks sent before it).
func TestConcurrentAcksAllLand(t *testing.T) {
	s := serveGroups(t, t.TempDir())
	ctx := t.Context()
	const n = 200
	evs := make([]verity.EventData, n)
	for i := range evs {
		evs[i] = verity.EventData{Type: "Happened", Data: []byte(`{}`)}
	}
	if _, err := s.Append(ctx, "order-1", verity.Any(), evs...); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateGroup(ctx, verity.GroupSpec{Stream: "order-1", Group: "g"}); err != nil {
		t.Fatal(err)
	}
	c, err := s.JoinGroup(ctx, "order-1", "g", verity.JoinOptions{MaxInFlight: n})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		m, err := c.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { errs <- c.Ack(ctx, m.Event.ID) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Ack: %v", err)
		}
	}
	info, err := s.GetGroup(ctx, "order-1", "g")
	if err != nil || info.Acked != n || info.InFlight != 0 {
		t.Fatalf("after %d acks returned the group shows acked %d, in flight %d (%v)", n, info.Acked, info.InFlight, err)
	}
}

// TestAcksBeforeCloseLandBeforeTheConsumerLeaves: Ack returns without waiting for the
// server, but a Close after it reaches the server after it, so that once Close has
// returned every ack is in and nothing goes back to the group.
func TestAcksBeforeCloseLandBeforeTheConsumerLeaves(t *testing.T) {
	s := serveGroups(t, t.TempDir())
	ctx := t.Context()
	const n = 100
	evs := make([]verity.EventData, n)
	for i := range evs {
		evs[i] = verity.EventData{Type: "Happened", Data: []byte(`{}`)}
	}
	if _, err := s.Append(ctx, "order-1", verity.Any(), evs...); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateGroup(ctx, verity.GroupSpec{Stream: "order-1", Group: "g"}); err != nil {
		t.Fatal(err)
	}
	c, err := s.JoinGroup(ctx, "order-1", "g", verity.JoinOptions{MaxInFlight: 10})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		m, err := c.Recv(ctx)
		if err != nil {
			t.Fatalf("recv %d: %v", i, err)
		}
		if err := c.Ack(ctx, m.Event.ID); err != nil {
			t.Fatalf("ack %d: %v", i, err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	info, err := s.GetGroup(ctx, "order-1", "g")
	if err != nil || info.Acked != n || info.InFlight != 0 || info.Waiting != 0 || info.Delivered != n {
		t.Fatalf("after %d acks and Close the group shows acked %d, in flight %d, waiting %d, delivered %d (%v); want every ack in",
			n, info.Acked, info.InFlight, info.Waiting, info.Delivered, err)
	}
	if err := c.Ack(ctx, uuid.New()); !errors.Is(err, verity.ErrConflict) {
		t.Errorf("Ack after Close: %v, want Conflict", err)
	}
}

// TestGroupsOfAServerWithoutThemAreUnavailable: a server that serves only the Store
// service (an older Verity) answers the Groups calls Unimplemented, which the client
// reports as Unavailable.
func TestGroupsOfAServerWithoutThemAreUnavailable(t *testing.T) {
	e, err := engine.Open(engine.Config{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	s := serveStoreOnly(t, e)
	if _, err := s.ListGroups(t.Context(), ""); !errors.Is(err, verity.ErrUnavailable) {
		t.Fatalf("ListGroups: %v, want Unavailable", err)
	}
	if _, err := s.JoinGroup(t.Context(), "order-1", "g", verity.JoinOptions{}); !errors.Is(err, verity.ErrUnavailable) {
		t.Fatalf("JoinGroup: %v, want Unavailable", err)
	}
}

// serveStoreOnly serves e through the Store service alone and dials it.
func serveStoreOnly(t *testing.T, e *engine.Engine) *client.Client {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	verityv1.RegisterStoreServer(srv, grpcapi.New(&adminAccess{store: e}, grpcapi.Options{}))
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	c, err := client.Dial(lis.Addr().String(), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		srv.Stop()
		<-done
		e.Close()
	})
	return c
}
