package kurrentdb

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/gossip"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/persistent"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/serverfeatures"
	streamsv1 "github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"
	streamsv2 "github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v2/streams/streams"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/auth"
)

// Access is what the front end needs from the server: who the caller is, and the store and
// the persistent subscriptions as that caller may see them. Its methods are called
// concurrently from any number of requests.
type Access interface {
	// Authenticate checks the value of the request's "authorization" metadata ("Basic ...",
	// "Bearer ..." or ""). Wrong credentials: a *verity.Error of kind Unauthenticated.
	Authenticate(ctx context.Context, authorization string) (auth.Principal, error)
	// Store returns the store as p may use it: calls p may not make fail with kind
	// PermissionDenied (or Unauthenticated for an anonymous caller) and change nothing.
	Store(p auth.Principal) verity.Store
	// Groups returns the persistent subscriptions (consumer groups) as p may use them, with
	// the same refusals as Store.
	Groups(p auth.Principal) verity.Groups
}

// Defaults of Options.
const (
	// DefaultVersion is the KurrentDB version reported to clients. 25.x makes the clients use
	// the v2 AppendSession for multi-stream appends and expect caught-up messages; it stays
	// below 26.1, from which clients expect AppendRecords, which Verity does not serve.
	DefaultVersion                       = "25.1.0"
	DefaultMaxSubscriptionsPerConnection = 64
	DefaultMaxReadBatch                  = 512
	DefaultMaxAppendSize                 = 4 << 20
	DefaultMaxAppendEvents               = 10_000
)

// Options shape a Service. The zero value of each field means its default.
type Options struct {
	// Version is the server version reported by ServerFeatures.GetSupportedMethods, as
	// "major.minor.patch". Clients enable features by it. Default DefaultVersion.
	Version string
	// Advertise is the host:port that Gossip.Read tells clients to connect to. Default: the
	// local address of the connection the gossip request came on.
	Advertise string
	// MaxSubscriptionsPerConnection bounds the live subscriptions of one client connection
	// (counted by peer address); one more fails with ResourceExhausted. Default 64.
	MaxSubscriptionsPerConnection int
	// MaxReadBatch is the most events read from the store, and so held in memory, at once by
	// one read request. Default 512.
	MaxReadBatch int
	// MaxAppendSize bounds, in bytes, what one append request may carry (types, data and
	// metadata of all its events) before it is refused with InvalidArgument; it bounds the
	// memory one request holds. The store applies its own limit as well. Default 4 MiB.
	MaxAppendSize int
	// MaxAppendEvents bounds the events one append request may carry. Default 10,000.
	MaxAppendEvents int
	// Logger receives the logs of failed requests. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock of timestamps sent to clients (caught-up, checkpoints, gossip).
	// Default time.Now.
	Now func() time.Time
}

// Validate reports the first field that is out of range, naming it.
func (o Options) Validate() error {
	switch {
	case o.MaxSubscriptionsPerConnection < 0:
		return fmt.Errorf("kurrentdb options: MaxSubscriptionsPerConnection %d is negative", o.MaxSubscriptionsPerConnection)
	case o.MaxReadBatch < 0:
		return fmt.Errorf("kurrentdb options: MaxReadBatch %d is negative", o.MaxReadBatch)
	case o.MaxAppendSize < 0:
		return fmt.Errorf("kurrentdb options: MaxAppendSize %d is negative", o.MaxAppendSize)
	case o.MaxAppendEvents < 0:
		return fmt.Errorf("kurrentdb options: MaxAppendEvents %d is negative", o.MaxAppendEvents)
	}
	if o.Version != "" {
		if _, err := parseVersion(o.Version); err != nil {
			return fmt.Errorf("kurrentdb options: Version: %w", err)
		}
	}
	if o.Advertise != "" {
		if _, _, err := splitHostPort(o.Advertise); err != nil {
			return fmt.Errorf("kurrentdb options: Advertise: %w", err)
		}
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.Version == "" {
		o.Version = DefaultVersion
	}
	if o.MaxSubscriptionsPerConnection <= 0 {
		o.MaxSubscriptionsPerConnection = DefaultMaxSubscriptionsPerConnection
	}
	if o.MaxReadBatch <= 0 {
		o.MaxReadBatch = DefaultMaxReadBatch
	}
	if o.MaxAppendSize <= 0 {
		o.MaxAppendSize = DefaultMaxAppendSize
	}
	if o.MaxAppendEvents <= 0 {
		o.MaxAppendEvents = DefaultMaxAppendEvents
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Service is the KurrentDB gRPC front end. It holds no goroutine of its own: every one it
// starts belongs to a request and ends with it. Safe for concurrent use.
type Service struct {
	access     Access
	opts       Options
	log        *slog.Logger
	instanceID uuid.UUID

	mu   sync.Mutex
	subs map[string]int // live subscriptions per peer address
}

// New returns a Service serving the stores access gives. Fields of opts that are zero (or
// out of range: check them first with Validate) take their defaults.
func New(access Access, opts Options) *Service {
	opts = opts.withDefaults()
	return &Service{
		access:     access,
		opts:       opts,
		log:        opts.Logger,
		instanceID: uuid.New(),
		subs:       map[string]int{},
	}
}

// Register registers Streams, the v2 StreamsService (AppendSession), PersistentSubscriptions,
// ServerFeatures and Gossip on gs. Call it before gs serves.
func (s *Service) Register(gs grpc.ServiceRegistrar) {
	streamsv1.RegisterStreamsServer(gs, &streamsServer{s: s})
	persistent.RegisterPersistentSubscriptionsServer(gs, &persistentServer{s: s})
	streamsv2.RegisterStreamsServiceServer(gs, &streamsV2Server{s: s})
	serverfeatures.RegisterServerFeaturesServer(gs, &featuresServer{s: s})
	gossip.RegisterGossipServer(gs, &gossipServer{s: s})
}

// storeFor authenticates the caller of ctx's request and returns the store as it may use it.
func (s *Service) storeFor(ctx context.Context) (verity.Store, error) {
	p, err := s.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	return s.access.Store(p), nil
}

// authenticate returns the caller of ctx's request, from its "authorization" metadata.
func (s *Service) authenticate(ctx context.Context) (auth.Principal, error) {
	var authorization string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("authorization"); len(v) > 0 {
			authorization = v[0]
		}
	}
	return s.access.Authenticate(ctx, authorization)
}

// acquireSubscription counts a live subscription against the caller's connection. The
// returned release must be called once the subscription ends.
func (s *Service) acquireSubscription(ctx context.Context) (release func(), err error) {
	key := ""
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		key = p.Addr.String()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.subs[key]; n >= s.opts.MaxSubscriptionsPerConnection {
		return nil, verity.Errorf(verity.ResourceExhausted, "subscribe",
			"connection %s already has %d live subscriptions, the limit; close one or open another connection", key, n)
	}
	s.subs[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.subs[key]--; s.subs[key] <= 0 {
				delete(s.subs, key)
			}
		})
	}, nil
}

// liveSubscriptions returns the number of live subscriptions of all connections.
func (s *Service) liveSubscriptions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.subs {
		n += c
	}
	return n
}
