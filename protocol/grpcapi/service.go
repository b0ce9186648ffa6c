package grpcapi

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/auth"
	verityv1 "github.com/verity-dev/verity/proto/verity/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Access decides who a caller is and what they may do. Its methods are called
// concurrently from every request.
type Access interface {
	// Authenticate returns the principal of a request from the value of its
	// "authorization" metadata ("" when there is none). Wrong credentials are
	// Unauthenticated.
	Authenticate(ctx context.Context, authorization string) (auth.Principal, error)
	// Store returns the store p may use: its calls fail with PermissionDenied for what p
	// may not do.
	Store(p auth.Principal) verity.Store
	// Groups returns the consumer groups p may use, as Store does the store; nil when the
	// server has none (every Groups call is then Unavailable).
	Groups(p auth.Principal) verity.Groups
}

// Defaults of Options.
const (
	DefaultMaxSubscriptionsPerConnection = 64
	DefaultReadPageSize                  = 512
	DefaultReadBatchBytes                = 1 << 20
)

// Options tune a Service. The zero value means every default.
type Options struct {
	// MaxSubscriptionsPerConnection is how many subscriptions and group consumers one
	// client connection may hold at once; one more is ResourceExhausted. Default 64.
	MaxSubscriptionsPerConnection int
	// ReadPageSize is how many events a read takes from the store at a time, which bounds
	// what one read holds in memory. Default 512 events.
	ReadPageSize int
	// ReadBatchBytes is the size, in bytes of event payload, past which a read sends what
	// it has gathered as one message. An event larger than this goes alone. Default 1 MiB.
	ReadBatchBytes int
	// Logger receives a record of every Internal error, at level Error. Default: discard.
	Logger *slog.Logger
}

// Validate names the first field that is out of range.
func (o Options) Validate() error {
	switch {
	case o.MaxSubscriptionsPerConnection < 0:
		return verity.Errorf(verity.Invalid, "grpcapi options", "MaxSubscriptionsPerConnection must be ≥ 0 (0 means %d), got %d", DefaultMaxSubscriptionsPerConnection, o.MaxSubscriptionsPerConnection)
	case o.ReadPageSize < 0:
		return verity.Errorf(verity.Invalid, "grpcapi options", "ReadPageSize must be ≥ 0 (0 means %d), got %d", DefaultReadPageSize, o.ReadPageSize)
	case o.ReadBatchBytes < 0:
		return verity.Errorf(verity.Invalid, "grpcapi options", "ReadBatchBytes must be ≥ 0 (0 means %d), got %d", DefaultReadBatchBytes, o.ReadBatchBytes)
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.MaxSubscriptionsPerConnection <= 0 {
		o.MaxSubscriptionsPerConnection = DefaultMaxSubscriptionsPerConnection
	}
	if o.ReadPageSize <= 0 {
		o.ReadPageSize = DefaultReadPageSize
	}
	if o.ReadBatchBytes <= 0 {
		o.ReadBatchBytes = DefaultReadBatchBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Service implements verity.v1.Store and verity.v1.Groups. It is safe for concurrent use.
type Service struct {
	verityv1.UnimplementedStoreServer
	verityv1.UnimplementedGroupsServer
	access Access
	opts   Options

	mu       sync.Mutex
	subs     map[string]int              // live subscriptions per connection
	cancels  map[*int]context.CancelFunc // ends each live subscription at Shutdown
	shutdown bool
	closing  chan struct{} // closed by Shutdown: ends every append session
}

// New returns a service answering with the stores access gives. Options out of range (see
// Validate) are taken as their defaults.
func New(access Access, opts Options) *Service {
	return &Service{
		access:  access,
		opts:    opts.withDefaults(),
		subs:    map[string]int{},
		cancels: map[*int]context.CancelFunc{},
		closing: make(chan struct{}),
	}
}

// Register adds both services to gs. Their handlers differ from the generated ones in
// one thing: a request that does not decode, or that carries fields this server does not
// know, is InvalidArgument (gRPC itself says Internal).
func (s *Service) Register(gs *grpc.Server) {
	s.register(gs, verityv1.Store_ServiceDesc)
	s.register(gs, verityv1.Groups_ServiceDesc)
}

func (s *Service) register(gs *grpc.Server, desc grpc.ServiceDesc) {
	desc.Methods = append([]grpc.MethodDesc(nil), desc.Methods...)
	for i := range desc.Methods {
		h := desc.Methods[i].Handler
		desc.Methods[i].Handler = func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
			return h(srv, ctx, checkedDecoder(dec), ic)
		}
	}
	desc.Streams = append([]grpc.StreamDesc(nil), desc.Streams...)
	for i := range desc.Streams {
		if name := desc.Streams[i].StreamName; name == "AppendSession" || name == "JoinGroup" {
			continue // they check each request themselves, to answer a bad one by its id
		}
		h := desc.Streams[i].Handler
		desc.Streams[i].Handler = func(srv any, stream grpc.ServerStream) error {
			return h(srv, checkedStream{stream})
		}
	}
	gs.RegisterService(&desc, s)
}

// Shutdown ends every live subscription and group consumer with Unavailable and refuses
// new ones, so that a
// graceful stop of the grpc.Server does not wait for subscribers that never leave. It ends
// every append session likewise, each once it has answered the request it is handling (a
// session whose client stopped reading holds its end until the grpc.Server's hard stop).
// Other calls are unaffected. It is idempotent; call it before grpc.Server.GracefulStop.
func (s *Service) Shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.shutdown {
		close(s.closing)
	}
	s.shutdown = true
	for _, cancel := range s.cancels {
		cancel()
	}
}

// checkedDecoder decodes a unary request, then refuses unknown fields.
func checkedDecoder(dec func(any) error) func(any) error {
	return func(m any) error {
		if err := dec(m); err != nil {
			return badRequest(err)
		}
		return checkKnown(m)
	}
}

// checkedStream does for the request of a streaming call what checkedDecoder does.
type checkedStream struct{ grpc.ServerStream }

func (c checkedStream) RecvMsg(m any) error {
	if err := c.ServerStream.RecvMsg(m); err != nil {
		return badRequest(err)
	}
	return checkKnown(m)
}

// badRequest turns gRPC's Internal for a request that did not decode into InvalidArgument.
func badRequest(err error) error {
	if st, ok := status.FromError(err); ok && st.Code() == codes.Internal {
		return toStatus(&verity.Error{Kind: verity.Invalid, Op: "decode request", Message: st.Message()})
	}
	return err
}

// checkKnown refuses a request holding fields this server does not know: a newer client's
// field silently dropped (a filter condition, say) would change what the call means.
func checkKnown(m any) error {
	if err := knownErr(m); err != nil {
		return toStatus(err)
	}
	return nil
}

// knownErr is checkKnown's error, as the contract's error rather than a status.
func knownErr(m any) error {
	pm, ok := m.(proto.Message)
	if !ok {
		return nil
	}
	if path := unknownField(pm.ProtoReflect(), string(pm.ProtoReflect().Descriptor().Name())); path != "" {
		return &verity.Error{Kind: verity.Invalid, Op: "decode request", Message: "the request holds fields this server does not know, in " + path + "; upgrade the server or leave them out"}
	}
	return nil
}

// toStatus is the status error of err, for a handler to return.
func toStatus(err error) error {
	return verityv1.Status(err).Err()
}

// fail returns the status of a store's error, logging Internal ones (see logInternal).
func (s *Service) fail(op string, err error) error {
	s.logInternal(op, err)
	return toStatus(err)
}

// logInternal logs err if it is Internal: such errors are bugs or failures an operator
// needs to see, which the caller cannot fix.
func (s *Service) logInternal(op string, err error) {
	if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) && verity.KindOf(err) == verity.Internal {
		s.opts.Logger.Error("grpcapi: internal error", "op", op, "err", err)
	}
}

// invalid is the status of an Invalid request field.
func invalid(op, stream string, err error) error {
	return toStatus(invalidErr(op, stream, err))
}

// invalidErr is the Invalid error of a request field.
func invalidErr(op, stream string, err error) error {
	return &verity.Error{Kind: verity.Invalid, Op: op, Stream: stream, Message: err.Error()}
}

// store authenticates the caller of ctx and returns the store they may use.
func (s *Service) store(ctx context.Context) (verity.Store, error) {
	p, err := s.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	return s.access.Store(p), nil
}

// authenticate returns the principal of the caller of ctx.
func (s *Service) authenticate(ctx context.Context) (auth.Principal, error) {
	var authz string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("authorization"); len(v) > 0 {
			authz = v[0]
		}
	}
	p, err := s.access.Authenticate(ctx, authz)
	if err != nil {
		if _, ok := errors.AsType[*verity.Error](err); !ok {
			err = &verity.Error{Kind: verity.Unauthenticated, Op: "authenticate", Err: err}
		}
		return auth.Principal{}, toStatus(err)
	}
	return p, nil
}

// connKey names the connection a call came on, for the per-connection subscription limit.
func connKey(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	key := p.Addr.Network() + ":" + p.Addr.String()
	if p.LocalAddr != nil {
		key += "->" + p.LocalAddr.String()
	}
	return key
}

// acquireSubscription counts a subscription against its connection's limit and returns
// the context it runs in (ended by Shutdown) and the function that releases it.
func (s *Service) acquireSubscription(ctx context.Context, op string) (context.Context, func(), error) {
	key := connKey(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return nil, nil, toStatus(verity.Errorf(verity.Unavailable, op, "the server is shutting down"))
	}
	if n := s.subs[key]; n >= s.opts.MaxSubscriptionsPerConnection {
		return nil, nil, toStatus(verity.Errorf(verity.ResourceExhausted, op,
			"this connection already holds %d subscriptions and group consumers, the most allowed; close one or open another connection", n))
	}
	s.subs[key]++
	ctx, cancel := context.WithCancel(ctx)
	token := new(int)
	s.cancels[token] = cancel
	return ctx, func() {
		cancel()
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.cancels, token)
		if s.subs[key]--; s.subs[key] <= 0 {
			delete(s.subs, key)
		}
	}, nil
}

func (s *Service) isShutdown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shutdown
}
