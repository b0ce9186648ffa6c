package projection

import (
	"context"
	"fmt"
)

// Target is a SQL database projections write to; packages sqlite and postgres implement
// it. Statements use $1, $2, ... for arguments and the SQL both targets share (CREATE
// TABLE IF NOT EXISTS, INSERT ... ON CONFLICT ... DO UPDATE, UPDATE ... RETURNING, ALTER
// TABLE ... RENAME TO, DROP TABLE IF EXISTS). All methods may be called concurrently.
type Target interface {
	// Begin starts a read-write transaction. A target may let only one run at a time
	// (SQLite has one writer): Begin then waits for the other to end or ctx to end.
	Begin(ctx context.Context) (TargetTx, error)
	// Query runs a read-only query outside any transaction, on its own connection.
	Query(ctx context.Context, sql string, args ...any) (Rows, error)
}

// BatchSizer is optionally implemented by a Target whose best batch size for a per-event
// Handle differs from DefaultBatchSize; a Projector uses it when Config.BatchSize is 0.
type BatchSizer interface {
	DefaultBatchSize() int
}

// TargetTx is a transaction of a Target.
type TargetTx interface {
	Tx
	// Commit makes every statement of the transaction durable together, or returns an
	// error and none of them is. An error of a pipelined Exec is a *StatementError.
	Commit(ctx context.Context) error
	// Rollback discards the transaction; after Commit it does nothing.
	Rollback(ctx context.Context) error
}

// StatementError is the error of a statement that a target pipelined (ran later than its
// Exec returned): Statement counts the transaction's Exec calls from 0, so that the
// projection reports the error against the event that made the statement.
type StatementError struct {
	Statement int
	Err       error
}

func (e *StatementError) Error() string { return fmt.Sprintf("statement %d: %v", e.Statement, e.Err) }
func (e *StatementError) Unwrap() error { return e.Err }
