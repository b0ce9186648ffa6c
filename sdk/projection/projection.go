package projection

import (
	"context"
	"regexp"
	"time"

	"github.com/verity-dev/verity"
)

// HandlerFunc applies one event to the view through tx. It runs inside the transaction
// that also records the checkpoint, together with the other events of its batch, and must
// make all its effects through tx: anything else it does (a call to another service, a
// file written) may be repeated after a crash. Events arrive one at a time, in log order.
// An error rolls the batch back and stops the projection (see Projector.Run).
type HandlerFunc func(ctx context.Context, tx Tx, e verity.RecordedEvent) error

// BatchHandlerFunc applies a batch of events, in log order, to the view through tx: the
// alternative to a HandlerFunc for a handler that gains from seeing the batch, e.g. to
// add up a batch's changes to a row (a total per day, a count per category) and write the
// row once instead of once per event. It runs in the transaction that also records the
// checkpoint and must make all its effects through tx; events (never empty) is valid only
// during the call. An error rolls the batch back and stops the projection, reported
// against the batch (see Projector.Run).
type BatchHandlerFunc func(ctx context.Context, tx Tx, events []verity.RecordedEvent) error

// Tx is a handler's window on the view: one SQL transaction. Statements use $1, $2, ...
// for arguments on every target, and {table} for each table the projection declares:
// {balances} becomes the name of the generation being written (balances itself, or a
// rebuild's balances__g2). A Tx is used by one goroutine at a time.
type Tx interface {
	// Exec runs a statement that returns no rows. On PostgreSQL statements are pipelined:
	// the error of a bad statement may be returned by a later Query or QueryRow of the
	// batch, or when the batch commits; the projection still reports it against the event
	// whose handler ran the statement.
	Exec(ctx context.Context, sql string, args ...any) error
	// Query runs a query. It sees every earlier write of the transaction, those of
	// earlier events of the same batch included. The rows must be closed before the next
	// call on tx.
	Query(ctx context.Context, sql string, args ...any) (Rows, error)
	// QueryRow runs a query expected to return one row; its Scan returns an error that
	// errors.Is(err, sql.ErrNoRows) matches when there is none, on every target.
	QueryRow(ctx context.Context, sql string, args ...any) Row
}

// Rows is the result of a query. *sql.Rows implements it.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}

// Row is the result of QueryRow.
type Row interface {
	Scan(dest ...any) error
}

// Projection describes a materialized view.
type Projection struct {
	// Name identifies the projection and keys its checkpoint: 1 to 48 characters of
	// a-z, 0-9 and _, starting with a letter.
	Name string
	// Tables are the tables the projection writes and owns. Rebuild builds a new
	// generation of all of them and swaps it in.
	Tables []Table
	// Handle applies one event. Exactly one of Handle and HandleBatch is required.
	Handle HandlerFunc
	// HandleBatch applies a batch of events (up to Config.BatchSize).
	HandleBatch BatchHandlerFunc
}

// Table is one table of a projection.
type Table struct {
	// Name is the table's name as readers see it: 1 to 48 characters of a-z, 0-9 and _,
	// starting with a letter, and no "__" (the suffix of a rebuild's generation).
	Name string
	// Create holds the statements that create the table and its indexes, run in order in
	// one transaction. {name} stands for the table's name in the generation being
	// created; name indexes after it, e.g.
	//	CREATE INDEX {balances}_by_total ON {balances} (total)
	// so that each generation's index names are distinct.
	Create []string
}

// Config shapes a Projector. The zero value of every field means its default.
type Config struct {
	// Stream, when set, is the one stream projected, from its first revision. Empty
	// projects the whole log, through Filter.
	Stream string
	// Filter selects the log's events to project (with Stream empty); the zero Filter
	// selects every event. The checkpoint also moves past events the filter leaves out.
	Filter verity.Filter
	// BatchSize is the most events applied in one transaction. Default 1,000, or, for a
	// per-event Handle, the target's choice if it has one (see BatchSizer: 250 on
	// PostgreSQL).
	BatchSize int
	// MaxWait is the longest a batch waits for more events, counted from its first
	// event, before it commits with fewer than BatchSize. Default 10ms. A batch also
	// commits at once when the projection catches up with the log.
	MaxWait time.Duration
	// Now is the clock of Status's lag in time. Default time.Now.
	Now func() time.Time
}

// Defaults.
const (
	DefaultBatchSize = 1000
	DefaultMaxWait   = 10 * time.Millisecond
	// MaxBatchSize bounds BatchSize.
	MaxBatchSize = 100_000
)

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,47}$`)

func (c Config) withDefaults() Config {
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.MaxWait == 0 {
		c.MaxWait = DefaultMaxWait
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate names the first field out of range.
func (c Config) Validate() error {
	const op = "projection"
	switch {
	case c.BatchSize < 0 || c.BatchSize > MaxBatchSize:
		return verity.Errorf(verity.Invalid, op, "batch size %d out of range [1, %d]", c.BatchSize, MaxBatchSize)
	case c.MaxWait < 0:
		return verity.Errorf(verity.Invalid, op, "max wait %v is negative", c.MaxWait)
	case c.Stream != "" && !c.Filter.IsZero():
		return verity.Errorf(verity.Invalid, op, "stream %q: a filter applies to the whole log only", c.Stream)
	case c.Stream == verity.AllStream:
		return verity.Errorf(verity.Invalid, op, "stream %q: leave Stream empty to project the whole log", c.Stream)
	}
	if _, err := c.Filter.Compile(); err != nil {
		return err
	}
	return nil
}

// Validate checks the projection's names and that it has a handler.
func (p Projection) Validate() error {
	const op = "projection"
	if !nameRE.MatchString(p.Name) {
		return verity.Errorf(verity.Invalid, op, "name %q: want 1 to 48 of a-z, 0-9 and _, starting with a letter", p.Name)
	}
	if (p.Handle == nil) == (p.HandleBatch == nil) {
		return verity.Errorf(verity.Invalid, op, "projection %q: want exactly one of Handle and HandleBatch", p.Name)
	}
	seen := map[string]bool{}
	for _, t := range p.Tables {
		if !nameRE.MatchString(t.Name) || containsDoubleUnderscore(t.Name) {
			return verity.Errorf(verity.Invalid, op, "projection %q: table name %q: want 1 to 48 of a-z, 0-9 and _, starting with a letter, without __", p.Name, t.Name)
		}
		if t.Name == checkpointTable {
			return verity.Errorf(verity.Invalid, op, "projection %q: table name %q is the checkpoint table's", p.Name, t.Name)
		}
		if seen[t.Name] {
			return verity.Errorf(verity.Invalid, op, "projection %q: table %q declared twice", p.Name, t.Name)
		}
		seen[t.Name] = true
		if len(t.Create) == 0 {
			return verity.Errorf(verity.Invalid, op, "projection %q: table %q has no Create statements", p.Name, t.Name)
		}
	}
	return nil
}

func containsDoubleUnderscore(s string) bool {
	for i := 1; i < len(s); i++ {
		if s[i] == '_' && s[i-1] == '_' {
			return true
		}
	}
	return false
}
