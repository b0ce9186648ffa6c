package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/engine"
	verityv1 "github.com/verity-dev/verity/proto/verity/v1"
)

// A prototype, for measurement only, of appends over long-lived bidirectional gRPC streams
// instead of one unary call each: every writer's append is one message each way on a
// stream it reuses, so a call's headers, trailers, stream set-up and handler goroutine are
// paid once per stream instead of once per append. It uses Verity's own AppendRequest and
// AppendResponse messages on a service of its own (no access checks), served by grpc-go's
// own transport. It tells how far a streaming append in protocol/grpcapi would take the
// network figure; `verity bench` does not use it.

const streamAppendMethod = "/verity.bench.v1.Appends/Append"

var streamAppendDesc = grpc.ServiceDesc{
	ServiceName: "verity.bench.v1.Appends",
	HandlerType: (*any)(nil),
	Streams: []grpc.StreamDesc{{
		StreamName:    "Append",
		ServerStreams: true,
		ClientStreams: true,
		Handler: func(srv any, ss grpc.ServerStream) error {
			store := srv.(verity.Store)
			for {
				req := new(verityv1.AppendRequest)
				if err := ss.RecvMsg(req); err != nil {
					return nil // the client ended the stream
				}
				exp, err := verityv1.ExpectedFromProto(req.GetExpected())
				if err != nil {
					return err
				}
				evs, err := verityv1.EventsFromProto(req.GetEvents())
				if err != nil {
					return err
				}
				res, err := store.Append(ss.Context(), req.GetStream(), exp, evs...)
				if err != nil {
					return fmt.Errorf("append to %s: %w", req.GetStream(), err)
				}
				if err := ss.SendMsg(&verityv1.AppendResponse{Revision: res.Revision, Position: res.Position}); err != nil {
					return err
				}
			}
		},
	}},
}

// streamAppender appends through a pool of streams on one connection: each Append takes
// an idle stream (or opens one), sends, receives, and puts the stream back.
type streamAppender struct {
	conn *grpc.ClientConn
	ctx  context.Context // the streams' own: they outlive any one Append
	stop context.CancelFunc

	mu   sync.Mutex
	idle []grpc.ClientStream
	all  []grpc.ClientStream
}

func (s *streamAppender) Append(ctx context.Context, stream string, expected uint64, events [][]byte) (uint64, error) {
	s.mu.Lock()
	var cs grpc.ClientStream
	if n := len(s.idle); n > 0 {
		cs, s.idle = s.idle[n-1], s.idle[:n-1]
	}
	s.mu.Unlock()
	if cs == nil {
		var err error
		cs, err = s.conn.NewStream(s.ctx, &streamAppendDesc.Streams[0], streamAppendMethod)
		if err != nil {
			return 0, err
		}
		s.mu.Lock()
		s.all = append(s.all, cs)
		s.mu.Unlock()
	}
	pevs := make([]*verityv1.EventData, len(events))
	for i, e := range verityEvents(events) {
		pevs[i] = verityv1.EventDataToProto(e)
	}
	req := &verityv1.AppendRequest{Stream: stream, Expected: verityv1.ExpectedToProto(verityExpected(expected)), Events: pevs}
	if err := cs.SendMsg(req); err != nil {
		return 0, err
	}
	res := new(verityv1.AppendResponse)
	if err := cs.RecvMsg(res); err != nil {
		return 0, err
	}
	s.mu.Lock()
	s.idle = append(s.idle, cs)
	s.mu.Unlock()
	return res.GetRevision() + 1, nil
}

func (s *streamAppender) close() error {
	s.mu.Lock()
	all := s.all
	s.all, s.idle = nil, nil
	s.mu.Unlock()
	for _, cs := range all {
		cs.CloseSend()
	}
	s.stop()
	return s.conn.Close()
}

// streamSystem is the prototype as a system; only Append is measured.
type streamSystem struct {
	system // nil: only Append and Close are called
	app    *streamAppender
	close  func() error
}

func (s *streamSystem) Append(ctx context.Context, stream string, expected uint64, events [][]byte) (uint64, error) {
	return s.app.Append(ctx, stream, expected, events)
}

func (s *streamSystem) Close() error { return s.close() }

func openStreamPrototype(b *testing.B, cs *commitStats) system {
	e, err := engine.Open(engine.Config{Dir: b.TempDir(), Logger: quiet, OnCommit: cs.record})
	if err != nil {
		b.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.Close()
		b.Fatal(err)
	}
	gs := grpc.NewServer()
	gs.RegisterService(&streamAppendDesc, verity.Store(e))
	served := make(chan error, 1)
	go func() { served <- gs.Serve(lis) }()
	stopServer := func() error {
		gs.Stop()
		return errors.Join(<-served, e.Close())
	}
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		stopServer()
		b.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	app := &streamAppender{conn: conn, ctx: ctx, stop: stop}
	return &streamSystem{app: app, close: func() error { return errors.Join(app.close(), stopServer()) }}
}
