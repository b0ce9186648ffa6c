// Package grpcapi serves Verity's own gRPC service, verity.v1.Store (proto/verity/v1), over
// any verity.Store: each call authenticates its caller from the "authorization" metadata,
// takes the store that caller may use from an Access, and maps the contract's errors onto
// gRPC statuses that the Go client (package client) turns back into the same errors.
//
// Requests are checked at the edge: a malformed message, a field this server does not know,
// an unknown enum value or a UUID of the wrong length is InvalidArgument and never reaches
// the store. Reads are streamed in bounded batches, and each connection may hold a bounded
// number of subscriptions. Appends may also come over append sessions (session.go), one
// long-lived call carrying many appends, each answered in turn, so that a session never
// holds more than one request.
//
// The same Service serves verity.v1.Groups (groups.go) over the consumer groups an Access
// gives: management calls one for one, and each consumer as one JoinGroup call whose acks
// and nacks are answered by id once the group has taken them in.
package grpcapi
