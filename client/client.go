package client

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/verity-dev/verity"
	verityv1 "github.com/verity-dev/verity/proto/verity/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

var _ verity.Store = (*Client)(nil)

// Defaults of Options.
const (
	DefaultMaxMessageBytes   = 64 << 20
	DefaultMaxAppendSessions = 64
)

// Options configure a Client. The zero value connects in plaintext, anonymously.
type Options struct {
	// TLS configures TLS; nil means plaintext (only for a server started with --insecure,
	// or behind a TLS-terminating proxy). A target "https://host:port" with TLS nil uses
	// the system's roots.
	TLS *tls.Config
	// Username and Password are sent with every call as HTTP basic credentials. Default:
	// none.
	Username, Password string
	// Token is sent with every call as a bearer token, instead of Username and Password.
	// Default: none.
	Token string
	// MaxMessageBytes is the largest message the client accepts from the server, in
	// bytes; it must exceed the server's largest event. Default 64 MiB.
	MaxMessageBytes int
	// DialOptions are added to the client's own (transport credentials, message size),
	// after them. Default: none.
	DialOptions []grpc.DialOption
	// MaxAppendSessions is how many append sessions (see Client.Append) the client keeps
	// open at most, each one HTTP/2 stream of its connection: as many Append and
	// AppendMulti calls as this run at once over sessions, any more as unary calls.
	// Default 64; negative means none: every append is a unary call. Keep it well below
	// the server's limit of concurrent streams per connection (1000 for `verity serve`):
	// open sessions hold their streams while idle.
	MaxAppendSessions int
}

// Validate names the first option that is wrong.
func (o Options) Validate() error {
	switch {
	case o.Token != "" && (o.Username != "" || o.Password != ""):
		return verity.Errorf(verity.Invalid, "dial", "give either Token or Username and Password, not both")
	case o.Password != "" && o.Username == "":
		return verity.Errorf(verity.Invalid, "dial", "Password is set but Username is empty")
	case strings.Contains(o.Username, ":"):
		return verity.Errorf(verity.Invalid, "dial", "Username %q contains ':', which basic authentication cannot carry", o.Username)
	case o.MaxMessageBytes < 0:
		return verity.Errorf(verity.Invalid, "dial", "MaxMessageBytes must be ≥ 0 (0 means %d), got %d", DefaultMaxMessageBytes, o.MaxMessageBytes)
	}
	return nil
}

// Client is a verity.Store served by a Verity server. It is safe for concurrent use; one
// Client holds one connection, shared by all its calls and subscriptions.
type Client struct {
	conn          *grpc.ClientConn
	api           verityv1.StoreClient
	groups        verityv1.GroupsClient
	authorization string

	mu        sync.Mutex
	closed    bool
	subs      map[*subscription]struct{}
	consumers map[*consumer]struct{} // group consumers (groups.go)

	// Append sessions (session.go).
	maxSessions  int
	noSessions   atomic.Bool        // the server has no AppendSession
	sessCtx      context.Context    // every session's call runs in it: credentials; ended by Close
	sessCancel   context.CancelFunc // ends sessCtx
	sessMu       sync.Mutex
	idle         []*appendSession // open sessions nobody is using
	sessionsOpen int              // sessions open or being opened, idle or not
}

// Dial returns a client of the server at target: "host:port", "http://host:port"
// (plaintext) or "https://host:port" (TLS), or any gRPC target ("dns:///host:port"). It
// does not wait for the connection: the first call makes it, and fails with Unavailable if
// the server cannot be reached. Bad options are Invalid.
func Dial(target string, opts Options) (*Client, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	tlsConf := opts.TLS
	switch {
	case strings.HasPrefix(target, "https://"):
		target = strings.TrimSuffix(strings.TrimPrefix(target, "https://"), "/")
		if tlsConf == nil {
			tlsConf = &tls.Config{MinVersion: tls.VersionTLS12}
		}
	case strings.HasPrefix(target, "http://"):
		target = strings.TrimSuffix(strings.TrimPrefix(target, "http://"), "/")
		if tlsConf != nil {
			return nil, verity.Errorf(verity.Invalid, "dial", "target %q is plaintext (http://) but a TLS configuration is given; use https://", target)
		}
	}
	if target == "" {
		return nil, verity.Errorf(verity.Invalid, "dial", "empty target; want host:port")
	}
	creds := insecure.NewCredentials()
	if tlsConf != nil {
		creds = credentials.NewTLS(tlsConf)
	}
	maxMsg := opts.MaxMessageBytes
	if maxMsg == 0 {
		maxMsg = DefaultMaxMessageBytes
	}
	dialOpts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsg)),
	}, opts.DialOptions...)
	conn, err := grpc.NewClient(target, dialOpts...)
	if err != nil {
		return nil, verity.Errorf(verity.Invalid, "dial", "target %q: %v", target, err)
	}
	c := &Client{
		conn: conn, api: verityv1.NewStoreClient(conn), groups: verityv1.NewGroupsClient(conn),
		subs: map[*subscription]struct{}{}, consumers: map[*consumer]struct{}{},
	}
	switch {
	case opts.Token != "":
		c.authorization = "Bearer " + opts.Token
	case opts.Username != "":
		c.authorization = "Basic " + base64.StdEncoding.EncodeToString([]byte(opts.Username+":"+opts.Password))
	}
	c.maxSessions = opts.MaxAppendSessions
	if c.maxSessions == 0 {
		c.maxSessions = DefaultMaxAppendSessions
	}
	c.sessCtx, c.sessCancel = context.WithCancel(context.Background())
	if c.authorization != "" {
		c.sessCtx = metadata.AppendToOutgoingContext(c.sessCtx, "authorization", c.authorization)
	}
	return c, nil
}

// Close ends every subscription and group consumer (their Recv returns Unavailable),
// closes the connection (calls in flight fail with Unavailable) and waits for the client's
// goroutines. Every later call is Unavailable. A second Close does nothing.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	subs := make([]*subscription, 0, len(c.subs))
	for s := range c.subs {
		subs = append(subs, s)
	}
	consumers := make([]*consumer, 0, len(c.consumers))
	for gc := range c.consumers {
		consumers = append(consumers, gc)
	}
	c.mu.Unlock()
	for _, s := range subs {
		s.end(verity.Errorf(verity.Unavailable, "subscribe", "the client was closed"))
	}
	for _, gc := range consumers {
		gc.stop(verity.Errorf(verity.Unavailable, "group consumer", "the client was closed"), false)
	}
	c.closeSessions()
	if err := c.conn.Close(); err != nil && status.Code(err) != codes.Canceled {
		return verity.Errorf(verity.Internal, "close", "%v", err)
	}
	return nil
}

// begin checks that a call may start and returns the context it runs in, carrying the
// credentials.
func (c *Client) begin(ctx context.Context, op string) (context.Context, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, verity.Errorf(verity.Unavailable, op, "the client was closed")
	}
	if c.authorization != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", c.authorization)
	}
	return ctx, nil
}

// fail turns the error of a gRPC call into the contract's: the context's own error when
// it ended, Unavailable when the connection was closed under the call, otherwise the error
// the server's store returned.
func (c *Client) fail(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	code := status.Code(err)
	if code == codes.Canceled || code == codes.DeadlineExceeded {
		// Not our context: the connection went away (Close) or the server gave up.
		c.mu.Lock()
		closed := c.closed
		c.mu.Unlock()
		msg := "the call was cut short: " + status.Convert(err).Message()
		if closed {
			msg = "the client was closed"
		}
		return verity.Errorf(verity.Unavailable, op, "%s", msg)
	}
	if code == codes.ResourceExhausted && strings.Contains(status.Convert(err).Message(), "larger than max") {
		// gRPC's own limit on the request's size, hit before the service saw the request:
		// the contract calls a request over a size limit Invalid.
		return verity.Errorf(verity.Invalid, op, "the request is larger than the server accepts: %s", status.Convert(err).Message())
	}
	return verityv1.ErrorFromStatus(err)
}

// badResponse is the error of a response the client cannot read: a server bug or a
// server of another version.
func badResponse(op string, err error) error {
	return &verity.Error{Kind: verity.Internal, Op: op, Message: "the server's response is malformed", Err: err}
}

// Append implements verity.Store. It goes over an append session when one is free (see
// Options.MaxAppendSessions), else as a unary call; both give the same results and errors.
//
// A connection that breaks after the request left fails it with Unavailable: the append
// may or may not have been made. Retrying it with the same event ids is safe, since an
// append repeating ids already written writes nothing new and returns the first result;
// events without ids get fresh ones from the server on every try, so give them ids when
// you may retry.
func (c *Client) Append(ctx context.Context, stream string, expected verity.ExpectedRevision, events ...verity.EventData) (verity.AppendResult, error) {
	const op = "append"
	cctx, err := c.begin(ctx, op)
	if err != nil {
		return verity.AppendResult{}, err
	}
	req := &verityv1.AppendRequest{Stream: stream, Expected: verityv1.ExpectedToProto(expected), Events: eventsToProto(events)}
	sres, err := c.sessionCall(ctx, op, &verityv1.AppendSessionRequest{Request: &verityv1.AppendSessionRequest_Append{Append: req}})
	var res *verityv1.AppendResponse
	switch {
	case err == nil:
		switch r := sres.GetResult().(type) {
		case *verityv1.AppendSessionResponse_Append:
			res = r.Append
		case *verityv1.AppendSessionResponse_Error:
			return verity.AppendResult{}, verityv1.ErrorFromProto(r.Error)
		default:
			return verity.AppendResult{}, badResponse(op, errors.New("the answer to an append holds no append result"))
		}
	case errors.Is(err, errNoSession):
		if res, err = c.api.Append(cctx, req); err != nil {
			return verity.AppendResult{}, c.fail(ctx, op, err)
		}
	default:
		return verity.AppendResult{}, err
	}
	return verity.AppendResult{Revision: res.GetRevision(), Position: res.GetPosition()}, nil
}

func eventsToProto(evs []verity.EventData) []*verityv1.EventData {
	out := make([]*verityv1.EventData, len(evs))
	for i, e := range evs {
		out[i] = verityv1.EventDataToProto(e)
	}
	return out
}

// AppendMulti implements verity.Store. It goes over an append session as Append does, with
// the same guarantee when the connection breaks.
func (c *Client) AppendMulti(ctx context.Context, appends ...verity.StreamAppend) ([]verity.AppendResult, error) {
	const op = "append multi"
	cctx, err := c.begin(ctx, op)
	if err != nil {
		return nil, err
	}
	req := &verityv1.AppendMultiRequest{Appends: make([]*verityv1.StreamAppend, len(appends))}
	for i, a := range appends {
		req.Appends[i] = &verityv1.StreamAppend{Stream: a.Stream, Expected: verityv1.ExpectedToProto(a.Expected), Events: eventsToProto(a.Events)}
	}
	sres, err := c.sessionCall(ctx, op, &verityv1.AppendSessionRequest{Request: &verityv1.AppendSessionRequest_AppendMulti{AppendMulti: req}})
	var res *verityv1.AppendMultiResponse
	switch {
	case err == nil:
		switch r := sres.GetResult().(type) {
		case *verityv1.AppendSessionResponse_AppendMulti:
			res = r.AppendMulti
		case *verityv1.AppendSessionResponse_Error:
			return nil, verityv1.ErrorFromProto(r.Error)
		default:
			return nil, badResponse(op, errors.New("the answer to a multi-stream append holds no append results"))
		}
	case errors.Is(err, errNoSession):
		if res, err = c.api.AppendMulti(cctx, req); err != nil {
			return nil, c.fail(ctx, op, err)
		}
	default:
		return nil, err
	}
	if len(res.GetResults()) != len(appends) {
		return nil, badResponse(op, errors.New("the number of results differs from the number of appends"))
	}
	out := make([]verity.AppendResult, len(appends))
	for i, r := range res.GetResults() {
		out[i] = verity.AppendResult{Revision: r.GetRevision(), Position: r.GetPosition()}
	}
	return out, nil
}

// ReadStream implements verity.Store.
func (c *Client) ReadStream(ctx context.Context, stream string, opts verity.ReadStreamOptions) ([]verity.RecordedEvent, error) {
	const op = "read stream"
	cctx, err := c.begin(ctx, op)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithCancel(cctx)
	defer cancel()
	rs, err := c.api.ReadStream(cctx, &verityv1.ReadStreamRequest{
		Stream: stream, Direction: verityv1.DirectionToProto(opts.Direction), From: opts.From, FromEnd: opts.FromEnd, Limit: int64(opts.Limit),
	})
	if err != nil {
		return nil, c.fail(ctx, op, err)
	}
	return c.collect(ctx, op, rs, opts.Limit)
}

// ReadAll implements verity.Store.
func (c *Client) ReadAll(ctx context.Context, opts verity.ReadAllOptions) ([]verity.RecordedEvent, error) {
	const op = "read all"
	cctx, err := c.begin(ctx, op)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithCancel(cctx)
	defer cancel()
	rs, err := c.api.ReadAll(cctx, &verityv1.ReadAllRequest{
		Direction: verityv1.DirectionToProto(opts.Direction), From: opts.From, FromEnd: opts.FromEnd,
		FromTime: verityv1.TimeToProto(opts.FromTime), Limit: int64(opts.Limit), Filter: verityv1.FilterToProto(opts.Filter),
	})
	if err != nil {
		return nil, c.fail(ctx, op, err)
	}
	return c.collect(ctx, op, rs, opts.Limit)
}

// collect gathers a read's batches. Like the engine it returns nil, not an empty slice,
// when there is no event.
func (c *Client) collect(ctx context.Context, op string, rs grpc.ServerStreamingClient[verityv1.ReadResponse], limit int) ([]verity.RecordedEvent, error) {
	if limit <= 0 {
		limit = verity.DefaultReadLimit
	}
	var out []verity.RecordedEvent
	for {
		msg, err := rs.Recv()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, c.fail(ctx, op, err)
		}
		if len(out)+len(msg.GetEvents()) > limit {
			return nil, badResponse(op, errors.New("more events than the limit"))
		}
		if out == nil {
			out = make([]verity.RecordedEvent, 0, min(limit, 4*len(msg.GetEvents())))
		}
		for _, p := range msg.GetEvents() {
			e, err := verityv1.RecordedEventFromProto(p)
			if err != nil {
				return nil, badResponse(op, err)
			}
			out = append(out, e)
		}
	}
}

// GetStreamMetadata implements verity.Store.
func (c *Client) GetStreamMetadata(ctx context.Context, stream string) (verity.StreamMetadataResult, error) {
	const op = "get metadata"
	cctx, err := c.begin(ctx, op)
	if err != nil {
		return verity.StreamMetadataResult{}, err
	}
	res, err := c.api.GetStreamMetadata(cctx, &verityv1.GetStreamMetadataRequest{Stream: stream})
	if err != nil {
		return verity.StreamMetadataResult{}, c.fail(ctx, op, err)
	}
	meta, err := verityv1.MetadataFromProto(res.GetMetadata())
	if err != nil {
		return verity.StreamMetadataResult{}, badResponse(op, err)
	}
	return verity.StreamMetadataResult{Stream: res.GetStream(), Metadata: meta, Revision: res.GetRevision()}, nil
}

// SetStreamMetadata implements verity.Store.
func (c *Client) SetStreamMetadata(ctx context.Context, stream string, expected verity.ExpectedRevision, meta verity.StreamMetadata) (verity.AppendResult, error) {
	const op = "set metadata"
	cctx, err := c.begin(ctx, op)
	if err != nil {
		return verity.AppendResult{}, err
	}
	res, err := c.api.SetStreamMetadata(cctx, &verityv1.SetStreamMetadataRequest{
		Stream: stream, Expected: verityv1.ExpectedToProto(expected), Metadata: verityv1.MetadataToProto(meta),
	})
	if err != nil {
		return verity.AppendResult{}, c.fail(ctx, op, err)
	}
	return verity.AppendResult{Revision: res.GetRevision(), Position: res.GetPosition()}, nil
}

// DeleteStream implements verity.Store.
func (c *Client) DeleteStream(ctx context.Context, stream string, expected verity.ExpectedRevision) (verity.DeleteResult, error) {
	return c.delete(ctx, "delete", stream, expected, c.api.DeleteStream)
}

// TombstoneStream implements verity.Store.
func (c *Client) TombstoneStream(ctx context.Context, stream string, expected verity.ExpectedRevision) (verity.DeleteResult, error) {
	return c.delete(ctx, "tombstone", stream, expected, c.api.TombstoneStream)
}

func (c *Client) delete(ctx context.Context, op, stream string, expected verity.ExpectedRevision,
	call func(context.Context, *verityv1.DeleteStreamRequest, ...grpc.CallOption) (*verityv1.DeleteResponse, error)) (verity.DeleteResult, error) {
	cctx, err := c.begin(ctx, op)
	if err != nil {
		return verity.DeleteResult{}, err
	}
	res, err := call(cctx, &verityv1.DeleteStreamRequest{Stream: stream, Expected: verityv1.ExpectedToProto(expected)})
	if err != nil {
		return verity.DeleteResult{}, c.fail(ctx, op, err)
	}
	return verity.DeleteResult{Position: res.GetPosition()}, nil
}
