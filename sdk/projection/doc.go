// Package projection keeps materialized views: SQL tables derived from the log by a handler
// that runs inside a SQL transaction, the projection's checkpoint (the log position up to
// which it has applied the log) being written in the same transaction. Each event takes
// effect exactly once, whatever the crashes: a batch and its checkpoint commit together or
// not at all, and a restart resumes after the last committed checkpoint.
//
// A Projection names its tables and their DDL, and a HandlerFunc that applies one event
// through a Tx (Exec, Query, QueryRow), or a BatchHandlerFunc that applies a whole batch
// (and can so write a row that many events change once per batch). A Projector follows a verity.Store (the whole log
// through a verity.Filter, or one stream), catching up and then staying live, many events
// per transaction. Rebuild replays the log into a new generation of the tables and swaps
// it in atomically. Status reports the checkpoint, the lag and the last error.
//
// The SQL databases are Targets: package sqlite (pure Go, the default) and package
// postgres (pgx, with each batch's statements pipelined). The package depends only on the
// root contract verity.Store. docs/projections.md shows how to write one.
package projection
