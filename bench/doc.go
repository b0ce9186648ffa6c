// Package bench is the benchmark behind `verity bench`: it runs the same workloads
// (append, replay, read-stream, e2e, scale) against the embedded engine and against two
// peers, a minimal group-commit file log ("ownlog", the ceiling of the disk) and NATS
// JetStream embedded in-process ("nats"), and reports one result per line. Two more
// workloads measure what is built on the store: groups (consumer groups: ack round trip
// and four competing consumers, against NATS JetStream pull consumers) and projection
// (SQL views in SQLite and PostgreSQL, against a naive one-transaction-per-event
// projection); their result lines name the target or strategy measured.
//
// Every system is reached through the small interface system, defined here for the
// workloads' needs only; the engine is driven through the verity.Store contract, and so is
// "verity-server": a `verity serve` process of its own reached over gRPC by the Go client
// (package client), so that the two differ by the network path alone.
package bench
