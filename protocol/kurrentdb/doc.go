// Package kurrentdb serves the KurrentDB (EventStoreDB) gRPC protocol on top of a
// verity.Store, so that the official KurrentDB clients (.NET, Java, Node.js, Python, Go, Rust)
// work against Verity unchanged.
//
// It implements Streams (Append, Read with subscriptions and filters, Delete, Tombstone),
// the v2 StreamsService.AppendSession (atomic multi-stream append), PersistentSubscriptions
// (consumer groups on a stream or on $all, over a verity.Groups), ServerFeatures and a
// single-member Gossip, using the generated code of the official Go client module. Stream
// metadata travels, as in KurrentDB, through the "$$<stream>" streams: an append of a
// "$metadata" event there becomes SetStreamMetadata, a read there comes from
// GetStreamMetadata.
//
// The package knows nothing of listeners, TLS or users: the server registers a Service on its
// grpc.Server and hands it an Access that authenticates callers and gives each the store and
// the groups as that caller may use them. Errors travel as the clients expect them: a wrong
// expected version in the append response with the actual revision, a deleted stream as the
// "stream-deleted" trailer, a missing stream as a StreamNotFound message, and the v2 errors
// as google.rpc.Status details, a missing or existing group as NotFound or AlreadyExists with
// KurrentDB's "persistent-subscription-*" trailers.
package kurrentdb
