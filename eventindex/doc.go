// Package eventindex keeps an index of the log for finding events by id and following
// causation and correlation: event id -> (position, stream, revision), and correlation
// and causation ids (the "$correlationId" and "$causationId" of each event's metadata, see
// sdk.Metadata) -> positions; and the streams seen, with their count, for the console's
// overview (GET /stats). The web console's event detail and causation chain read it
// through the HTTP API (protocol/httpapi), which fetches the events themselves through the
// caller's guarded store, so the index never decides who sees what.
//
// The index is a projection (sdk/projection) into a SQLite file: it follows the whole log
// with a catch-up subscription, one transaction per batch with its checkpoint, so a crash
// loses nothing and a restart resumes after the checkpoint. It is derivable from the log
// (invariant 4): deleting the file rebuilds it from the start, and so does Open itself
// when the file is of an older layout or was made from another log (it remembers the ids
// of the first and last events it indexed and checks them against the log).
package eventindex
