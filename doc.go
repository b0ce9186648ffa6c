// Package verity holds the vocabulary and the contract of the Verity event store: events,
// streams, positions, expected revisions, the Store interface and the error kinds.
//
// Every implementation — the embedded disk engine (package engine), the network client and
// each future backend — implements Store and passes the conformance suite in package
// storetest. Platform services and the SDK depend on this package only, never on an
// implementation's insides. This package imports nothing else of Verity's.
package verity
