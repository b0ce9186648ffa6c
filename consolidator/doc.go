// Package consolidator runs projections into SQL read models: tables in SQLite (the
// default) or PostgreSQL that follow the log, each with its checkpoint in the same
// database (package sdk/projection does the exactly-once work). Projections are declared
// in Go (Add) or in a YAML file that maps event types to upserts, updates and deletes of
// table rows with values taken from the event (LoadConfig, ParseConfig, AddConfig).
//
// A Consolidator runs every projection in a goroutine of its own, restarting it with
// backoff after an error and keeping the error in its Status; it reports each one's
// position and lag (also as Prometheus metrics), rebuilds one from the log while the old
// tables keep serving, and builds a projection's tables as of a log position or a time
// into tables of their own (BuildAsOf). Handler serves all of that over HTTP, with the
// tables' rows as JSON. docs/consolidator.md is the user's guide.
package consolidator
