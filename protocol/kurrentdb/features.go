package kurrentdb

import (
	"context"
	"net"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/gossip"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/serverfeatures"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/shared"
)

// featuresServer serves ServerFeatures, which clients call before anything else and without
// credentials.
type featuresServer struct {
	serverfeatures.UnimplementedServerFeaturesServer
	s *Service
}

const persistentService = "event_store.client.persistent_subscriptions.persistentsubscriptions"

// supportedMethods lists what Verity serves, in the lower-case names clients compare.
var supportedMethods = []*serverfeatures.SupportedMethod{
	{ServiceName: "event_store.client.streams.streams", MethodName: "read", Features: []string{"position", "events"}},
	{ServiceName: "event_store.client.streams.streams", MethodName: "append"},
	{ServiceName: "event_store.client.streams.streams", MethodName: "delete"},
	{ServiceName: "event_store.client.streams.streams", MethodName: "tombstone"},
	{ServiceName: "kurrentdb.protocol.v2.streams.streamsservice", MethodName: "appendsession"},
	{ServiceName: persistentService, MethodName: "create", Features: []string{"stream", "all"}},
	{ServiceName: persistentService, MethodName: "update", Features: []string{"stream", "all"}},
	{ServiceName: persistentService, MethodName: "delete", Features: []string{"stream", "all"}},
	{ServiceName: persistentService, MethodName: "read", Features: []string{"stream", "all"}},
	{ServiceName: persistentService, MethodName: "getinfo", Features: []string{"stream", "all"}},
	{ServiceName: persistentService, MethodName: "replayparked", Features: []string{"stream", "all"}},
	{ServiceName: persistentService, MethodName: "list", Features: []string{"stream", "all"}},
	{ServiceName: persistentService, MethodName: "restartsubsystem"},
	{ServiceName: "event_store.client.gossip.gossip", MethodName: "read"},
	{ServiceName: "event_store.client.server_features.serverfeatures", MethodName: "getsupportedmethods"},
}

// GetSupportedMethods reports the methods served and the version clients gate features on.
func (x *featuresServer) GetSupportedMethods(context.Context, *shared.Empty) (*serverfeatures.SupportedMethods, error) {
	return &serverfeatures.SupportedMethods{Methods: supportedMethods, EventStoreServerVersion: x.s.opts.Version}, nil
}

// gossipServer serves Gossip with one member: this server, alive and leader.
type gossipServer struct {
	gossip.UnimplementedGossipServer
	s *Service
}

// Read answers the cluster view of a single node.
func (x *gossipServer) Read(ctx context.Context, _ *shared.Empty) (*gossip.ClusterInfo, error) {
	addr := x.s.opts.Advertise
	if addr == "" {
		if p, ok := peer.FromContext(ctx); ok && p.LocalAddr != nil {
			addr = p.LocalAddr.String()
		}
	}
	host, port, err := splitHostPort(addr)
	if err != nil {
		return nil, status.Error(codes.Unavailable, "gossip: the server's address is unknown; set the advertised address")
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1" // a wildcard listener: the client reached us on loopback at least
	}
	return &gossip.ClusterInfo{Members: []*gossip.MemberInfo{{
		InstanceId:   uuidToProto(x.s.instanceID, false),
		TimeStamp:    ticks(x.s.opts.Now()),
		State:        gossip.MemberInfo_Leader,
		IsAlive:      true,
		HttpEndPoint: &gossip.EndPoint{Address: host, Port: port},
	}}}, nil
}
