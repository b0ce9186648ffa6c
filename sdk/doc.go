// Package sdk is the toolkit for writing event-sourced services on Verity.
//
// A Registry maps Go types to event type names, encodes values into verity.EventData and
// decodes recorded events back, upcasting old versions on the way. A Decider is the pure
// core of an entity (Decide a command into events, Evolve the state by an event); a
// CommandHandler runs it against a stream with optimistic concurrency, retries on
// conflicts, idempotent command ids and optional snapshots. A GroupRunner handles the
// events of a persistent subscription (consumer group) with ack, retry and parking; a
// process manager is such a handler that issues commands with ReactingTo, so that
// correlation and causation ids flow through a workflow and a redelivered event does not
// double its effects. A SubscriptionRunner handles a plain catch-up subscription.
//
// Everything takes the root contract (verity.Store, verity.Groups), so it runs alike over
// the embedded engine and over the network client. Package sdktest has given/when/then
// helpers for deciders; package projection keeps SQL views of the log.
package sdk
