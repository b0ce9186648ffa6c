// Package engine is Verity's embedded event store: the log on local disk.
//
// The log is a sequence of segment files holding checksummed, hash-chained event entries.
// One writer goroutine takes every queued append, assigns positions and revisions, encodes
// and writes them with one write and one fsync (group commit), and only then makes them
// visible and acknowledges them. Indexes by stream, category, event type and event id are caches of the
// log: an in-memory table for recent events, flushed to immutable on-disk runs, merged in
// the background, and rebuilt from the log when missing or damaged.
//
// The engine implements verity.Store and depends only on the root package.
package engine
