package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/verity-dev/verity"
	verityv1 "github.com/verity-dev/verity/proto/verity/v1"
	"google.golang.org/grpc"
)

// AppendSession implements verity.v1.Store: many appends on one call, answered one at a
// time and in order, each by its id (see store.proto for the protocol).
//
// Why one at a time: a session then holds at most one request, and a client that stops
// reading responses blocks its own session's Send, which stops that session's reading
// (HTTP/2 flow control pushes back from there), so a stalled client cannot make the
// server buffer without bound. A client wanting concurrency opens several sessions, each
// bounded so; the server's limit on concurrent streams per connection bounds how many.
//
// The caller is authenticated once, when the session opens; every request then goes to
// the store that caller may use, which checks its access as for a unary Append.
func (s *Service) AppendSession(ss grpc.BidiStreamingServer[verityv1.AppendSessionRequest, verityv1.AppendSessionResponse]) error {
	const op = "append session"
	if s.isShutdown() {
		return toStatus(verity.Errorf(verity.Unavailable, op, "the server is shutting down; append elsewhere or later"))
	}
	st, err := s.store(ss.Context())
	if err != nil {
		return err
	}
	// The requests are served by a goroutine of their own so that this one can end the
	// session at Shutdown while that one waits in Recv: a handler blocked in Recv could
	// not return until the client sent again, and the server's graceful stop would wait
	// on a client that never does. The goroutine outlives this handler only until its Recv
	// or Send fails, which the end of the call makes it do at once.
	sess := &session{}
	done := make(chan error, 1)
	go func() { done <- s.serveSession(ss, st, sess) }()
	select {
	case err := <-done:
		return err
	case <-s.closing:
		// Wait for the request in hand, if any, to be answered, and let no other start.
		sess.mu.Lock()
		sess.closed = true
		sess.mu.Unlock()
		return toStatus(verity.Errorf(verity.Unavailable, op, "the server is shutting down; every request of this session sent before was answered; append elsewhere or later"))
	}
}

// session is the state an append session's handler shares with its serving goroutine.
type session struct {
	// mu is held while a request is being answered, so that Shutdown can wait for it.
	mu     sync.Mutex
	closed bool // set under mu by Shutdown: answer no more requests
}

// serveSession answers a session's requests until the client ends it (a nil error, the
// OK status), the call ends, or a request cannot be read.
func (s *Service) serveSession(ss grpc.BidiStreamingServer[verityv1.AppendSessionRequest, verityv1.AppendSessionResponse], st verity.Store, sess *session) error {
	ctx := ss.Context()
	for {
		req, err := ss.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			// grpc-go has already ended the call with the error's status (a request that
			// does not decode is Internal, one too large ResourceExhausted): whatever is
			// returned here is dropped.
			return err
		}
		sess.mu.Lock()
		if sess.closed {
			sess.mu.Unlock()
			return nil // the handler has returned; this request was never looked at
		}
		res := s.answer(ctx, st, req)
		if res == nil {
			sess.mu.Unlock()
			return toStatus(ctx.Err())
		}
		err = ss.Send(res)
		sess.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// answer makes the append req asks for and returns its response: the result, or the
// error as the unary call's status detail would carry it. It returns nil when the session's
// context ended under the append, which then ends the session.
func (s *Service) answer(ctx context.Context, st verity.Store, req *verityv1.AppendSessionRequest) *verityv1.AppendSessionResponse {
	out := &verityv1.AppendSessionResponse{Id: req.GetId()}
	op := "append"
	err := knownErr(req)
	if err == nil {
		switch r := req.GetRequest().(type) {
		case *verityv1.AppendSessionRequest_Append:
			var res *verityv1.AppendResponse
			if res, err = appendOne(ctx, st, r.Append); err == nil {
				out.Result = &verityv1.AppendSessionResponse_Append{Append: res}
			}
		case *verityv1.AppendSessionRequest_AppendMulti:
			op = "append multi"
			var res *verityv1.AppendMultiResponse
			if res, err = appendMulti(ctx, st, r.AppendMulti); err == nil {
				out.Result = &verityv1.AppendSessionResponse_AppendMulti{AppendMulti: res}
			}
		default:
			err = &verity.Error{Kind: verity.Invalid, Op: "decode request", Message: fmt.Sprintf("request %d holds neither append nor append_multi", req.GetId())}
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		s.logInternal(op, err)
		out.Result = &verityv1.AppendSessionResponse_Error{Error: verityv1.ErrorDetail(err)}
	}
	return out
}
