// Package kurrentdb serves the KurrentDB (EventStoreDB) gRPC protocol on top of a
// verity.Store, so that the official KurrentDB clients (.NET, Java, Node.js, Python, Go, Rust)
// work against Verity unchanged.
//
// It implements Streams (Append, Read with subscriptions and filters, Delete, Tombstone),
// the v2 StreamsService.AppendSession (atomic multi-stream append), ServerFeatures and a
// single-member Gossip, using the generated code of the official Go client module. Stream
// metadata travels, as in KurrentDB, through the "$$<stream>" streams: an append of a
// "$metadata" event there becomes SetStreamMetadata, a read there comes from
// GetStreamMetadata.
//
// The package knows nothing of listeners, TLS or users: the server registers a Service on its
// grpc.Server and hands it an Access that authenticates callers and gives each the store as
// that caller may use it. Errors of the store travel as the clients expect them: a wrong
// expected version in the append response with the actual revision, a deleted stream as the
// "stream-deleted" trailer, a missing stream as a StreamNotFound message, and the v2 errors
// as google.rpc.Status details.
package kurrentdb
