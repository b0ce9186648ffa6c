package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/verity-dev/verity"
	verityv1 "github.com/verity-dev/verity/proto/verity/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Appends go over append sessions (verity.v1.Store/AppendSession): long-lived calls that
// each carry one append at a time, a request and its response, so that an append costs one
// message each way instead of a whole unary call (headers, trailers, stream set-up).
//
// The client keeps a pool of them on its one connection. An Append takes an idle session,
// or opens one if fewer than Options.MaxAppendSessions are open, and puts it back once
// answered; an Append finding the pool at its bound makes a unary call instead, so that
// appends never queue behind each other and never take more streams than the bound. A
// session is used by one Append at a time, so no caller waits on another's response, and
// one whose caller's context ends is cancelled and dropped: nobody else was using it.
//
// A server without AppendSession (Unimplemented) makes the client use unary calls from then
// on.

type appendSession struct {
	stream grpc.BidiStreamingClient[verityv1.AppendSessionRequest, verityv1.AppendSessionResponse]
	cancel context.CancelFunc // ends the session's call
	nextID uint64
}

// takeSession returns an idle session, or a new one not yet opened (fresh), or nil when
// the pool is at its bound, disabled, or the client is closed.
func (c *Client) takeSession() (s *appendSession, fresh bool) {
	if c.maxSessions <= 0 || c.noSessions.Load() {
		return nil, false
	}
	c.sessMu.Lock()
	defer c.sessMu.Unlock()
	if n := len(c.idle); n > 0 {
		s, c.idle = c.idle[n-1], c.idle[:n-1]
		return s, false
	}
	if c.sessionsOpen >= c.maxSessions || c.sessCtx.Err() != nil {
		return nil, false
	}
	c.sessionsOpen++
	return &appendSession{}, true
}

// putSession returns a session that answered to the pool.
func (c *Client) putSession(s *appendSession) {
	c.sessMu.Lock()
	defer c.sessMu.Unlock()
	if c.sessCtx.Err() != nil { // closed meanwhile: its call has already been ended
		c.sessionsOpen--
		return
	}
	c.idle = append(c.idle, s)
}

// dropSession ends a session that failed or whose caller left.
func (c *Client) dropSession(s *appendSession) {
	if s.cancel != nil {
		s.cancel()
	}
	c.sessMu.Lock()
	c.sessionsOpen--
	c.sessMu.Unlock()
}

// closeSessions ends every session; the calls in flight on them fail, which Client.fail
// reports as Unavailable since the client is closed.
func (c *Client) closeSessions() {
	c.sessMu.Lock()
	c.sessionsOpen -= len(c.idle)
	c.idle = nil
	c.sessMu.Unlock()
	c.sessCancel()
}

// errNoSession tells sessionCall's caller to make a unary call instead.
var errNoSession = errors.New("no append session")

// sessionCall sends req on an append session and returns its response, or errNoSession
// when the append must go as a unary call. Its other errors are the contract's.
//
// A request that a session did not take (the session had ended before, while idle in the
// pool: the server restarted, say) is sent again on another; one that the session took
// and did not answer may or may not have been appended, and fails with Unavailable.
func (c *Client) sessionCall(ctx context.Context, op string, req *verityv1.AppendSessionRequest) (*verityv1.AppendSessionResponse, error) {
	for {
		s, fresh := c.takeSession()
		if s == nil {
			return nil, errNoSession
		}
		res, sent, err := c.roundTrip(ctx, s, req)
		if err == nil {
			c.putSession(s)
			return res, nil
		}
		c.dropSession(s)
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		if fresh && status.Code(err) == codes.Unimplemented {
			c.noSessions.Store(true) // a server older than AppendSession
			return nil, errNoSession
		}
		if !fresh && (!sent || notTaken(err)) {
			continue
		}
		return nil, c.sessionFail(ctx, op, err, sent)
	}
}

// notTaken reports whether err ended a session with an error of the server's own (an
// Error detail), not a broken transport: the server ends a session so only before it
// takes the next request (Shutdown, wrong credentials, a request it cannot read), never
// with one taken and unanswered.
func notTaken(err error) bool {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.Unavailable {
		return false
	}
	for _, d := range st.Details() {
		if _, ok := d.(*verityv1.Error); ok {
			return true
		}
	}
	return false
}

// roundTrip sends req on s, opening s first if it is fresh, and receives its response.
// sent tells whether the session took the request. The caller's context ending cancels
// the session's call, which no other caller shares.
func (c *Client) roundTrip(ctx context.Context, s *appendSession, req *verityv1.AppendSessionRequest) (res *verityv1.AppendSessionResponse, sent bool, err error) {
	if s.stream == nil {
		sctx, cancel := context.WithCancel(c.sessCtx)
		s.cancel = cancel
		stop := context.AfterFunc(ctx, cancel)
		s.stream, err = c.api.AppendSession(sctx)
		if !stop() {
			return nil, false, context.Canceled // sessionCall returns ctx's own error
		}
		if err != nil {
			return nil, false, err
		}
	}
	stop := context.AfterFunc(ctx, s.cancel)
	defer func() {
		if !stop() && err == nil {
			err = context.Canceled // the call was cancelled: s may not be reused
		}
	}()
	s.nextID++
	req.Id = s.nextID
	if err := s.stream.Send(req); err != nil {
		if errors.Is(err, io.EOF) {
			// The call had ended before the request was sent: its status tells why.
			_, err = s.stream.Recv()
		}
		return nil, false, err
	}
	res, err = s.stream.Recv()
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = status.Error(codes.Unavailable, "the server ended the append session without an answer")
		}
		return nil, true, err
	}
	if res.GetId() != req.Id {
		return nil, true, badResponse("append", fmt.Errorf("the answer to request %d has id %d", req.Id, res.GetId()))
	}
	return res, true, nil
}

// sessionFail turns the error that ended a session into the contract's: the context's own
// error, the server's error when it sent one, Unavailable when the client was closed or
// the session broke.
func (c *Client) sessionFail(ctx context.Context, op string, err error, sent bool) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	if _, ok := errors.AsType[*verity.Error](err); ok {
		return err
	}
	st, ok := status.FromError(err)
	if ok {
		for _, d := range st.Details() {
			if p, ok := d.(*verityv1.Error); ok {
				return verityv1.ErrorFromProto(p)
			}
		}
		if st.Code() == codes.ResourceExhausted && strings.Contains(st.Message(), "larger than max") {
			return verity.Errorf(verity.Invalid, op, "the request is larger than the server accepts: %s", st.Message())
		}
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	switch {
	case closed:
		return verity.Errorf(verity.Unavailable, op, "the client was closed")
	case !sent:
		return verity.Errorf(verity.Unavailable, op, "cannot reach the server: %s; nothing was appended", status.Convert(err).Message())
	}
	return verity.Errorf(verity.Unavailable, op, "the connection broke before the server answered (%s): the append may or may not have been made; retrying it with the same event ids is safe", status.Convert(err).Message())
}
