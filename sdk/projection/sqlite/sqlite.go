// Package sqlite is the default target of projections: a SQLite database file, through the
// pure-Go modernc.org/sqlite (no C compiler needed). It opens the file in WAL mode, so
// that readers query the view while a projection writes it, and keeps one connection for
// writing, with every statement prepared once and reused; a handler's Exec goes to the
// driver's prepared statement directly, past database/sql.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"net/url"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/sdk/projection"
)

// Options shape a Target. The zero value of every field means its default.
type Options struct {
	// BusyTimeout is how long a statement waits for a lock another connection (another
	// process) holds. Default 5s.
	BusyTimeout time.Duration
	// SyncFull makes every commit wait for the disk (synchronous=FULL). By default
	// (synchronous=NORMAL, safe in WAL mode) a commit survives the process being killed,
	// and a power loss may lose the last commits but never corrupts the file nor splits
	// a batch from its checkpoint: the projection then applies those events again,
	// still exactly once.
	SyncFull bool
	// ReadConns is the most connections DB keeps for readers. Default 4.
	ReadConns int
}

// Target is a SQLite database that projections write to. It is safe for concurrent use.
type Target struct {
	db *sql.DB

	// writer holds a token from Begin to Commit or Rollback, and during Close: one write
	// transaction at a time, on conn. A channel rather than a mutex, so that Begin can
	// give up when its context ends. It guards the fields below.
	writer chan struct{}
	conn   *sql.Conn
	stmts  map[string]*sql.Stmt
	// raw holds Exec's statements prepared on conn's driver connection: Exec calls the
	// driver directly, past database/sql's per-call locking, argument checks and result
	// allocation, when its arguments are of the plain types the driver binds as they are
	// (see driverArgs); the profile showed that layer at a tenth of a projection's time.
	raw  map[string]driver.StmtExecContext
	args []driver.NamedValue // Exec's arguments, reused
}

var _ projection.Target = (*Target)(nil)

// Open opens (creating it if need be) the database file at path.
func Open(path string, opts Options) (*Target, error) {
	if path == "" {
		return nil, verity.Errorf(verity.Invalid, "sqlite", "empty database path")
	}
	if opts.BusyTimeout == 0 {
		opts.BusyTimeout = 5 * time.Second
	}
	if opts.ReadConns == 0 {
		opts.ReadConns = 4
	}
	sync := "NORMAL"
	if opts.SyncFull {
		sync = "FULL"
	}
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous("+sync+")")
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", opts.BusyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(ON)")
	q.Add("_pragma", "cache_size(-65536)") // 64 MiB per connection
	q.Add("_pragma", "temp_store(MEMORY)")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, verity.Errorf(verity.Invalid, "sqlite", "open %q: %v", path, err)
	}
	db.SetMaxOpenConns(opts.ReadConns + 1)
	db.SetMaxIdleConns(opts.ReadConns + 1)
	db.SetConnMaxIdleTime(0)
	t := &Target{db: db, writer: make(chan struct{}, 1), stmts: map[string]*sql.Stmt{}, raw: map[string]driver.StmtExecContext{}}
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, &verity.Error{Kind: verity.Unavailable, Op: "sqlite", Message: fmt.Sprintf("open %q", path), Err: err}
	}
	return t, nil
}

// DB is the database, for readers of the views. Leave the writing to projections: a
// write outside them waits for theirs (BusyTimeout) and may make them wait.
func (t *Target) DB() *sql.DB { return t.db }

// Close closes the database; no transaction may be open.
func (t *Target) Close() error {
	t.writer <- struct{}{}
	defer func() { <-t.writer }()
	for _, s := range t.stmts {
		s.Close()
	}
	t.stmts = nil
	if t.conn != nil {
		t.closeRaw()
		t.conn.Close()
		t.conn = nil
	}
	return t.db.Close()
}

// Query implements projection.Target on a reader connection.
func (t *Target) Query(ctx context.Context, stmt string, args ...any) (projection.Rows, error) {
	return t.db.QueryContext(ctx, stmt, args...)
}

// Begin implements projection.Target: BEGIN IMMEDIATE on the writer connection, which it
// holds until Commit or Rollback. It waits for the transaction that holds it to end, or
// for ctx to end.
func (t *Target) Begin(ctx context.Context) (projection.TargetTx, error) {
	select {
	case t.writer <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if t.stmts == nil {
		<-t.writer
		return nil, verity.Errorf(verity.Unavailable, "sqlite", "target closed")
	}
	if t.conn == nil {
		c, err := t.db.Conn(ctx)
		if err != nil {
			<-t.writer
			return nil, err
		}
		t.conn = c
	}
	tx := &tx{t: t}
	if err := tx.exec(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.dropConn()
		<-t.writer
		return nil, err
	}
	return tx, nil
}

// dropConn forgets the writer connection after a failure that may have left it in a
// transaction; the next Begin takes a fresh one.
func (t *Target) dropConn() {
	for k, s := range t.stmts {
		s.Close()
		delete(t.stmts, k)
	}
	if t.conn != nil {
		t.closeRaw()
		_ = t.conn.Raw(func(any) error { return driver.ErrBadConn })
		t.conn.Close()
		t.conn = nil
	}
}

// closeRaw closes the driver statements of Exec's fast path; the driver connection is
// only touched inside conn.Raw.
func (t *Target) closeRaw() {
	if len(t.raw) == 0 {
		return
	}
	_ = t.conn.Raw(func(any) error {
		for k, s := range t.raw {
			s.(driver.Stmt).Close()
			delete(t.raw, k)
		}
		return nil
	})
}

// driverArgs converts args to t.args as database/sql would for this driver (which has no
// argument checker of its own: driver.DefaultParameterConverter), for the plain types
// only; false sends Exec through database/sql.
func (t *Target) driverArgs(args []any) bool {
	nv := t.args[:0]
	for i, a := range args {
		var v driver.Value
		switch a := a.(type) {
		case nil:
		case int64:
			v = a
		case int:
			v = int64(a)
		case int32:
			v = int64(a)
		case string:
			v = a
		case []byte:
			v = a
		case float64:
			v = a
		case bool:
			v = a
		case time.Time:
			v = a
		default:
			return false
		}
		nv = append(nv, driver.NamedValue{Ordinal: i + 1, Value: v})
	}
	t.args = nv
	return true
}

// execRaw runs s on the driver connection, preparing it the first time.
func (t *Target) execRaw(s string) error {
	return t.conn.Raw(func(dc any) error {
		st, ok := t.raw[s]
		if !ok {
			ds, err := dc.(driver.ConnPrepareContext).PrepareContext(noCancel, s)
			if err != nil {
				return err
			}
			if st, ok = ds.(driver.StmtExecContext); !ok {
				ds.Close()
				return fmt.Errorf("sqlite: driver statement %T has no ExecContext", ds)
			}
			t.raw[s] = st
		}
		_, err := st.ExecContext(noCancel, t.args)
		clear(t.args) // let go of the arguments' memory
		return err
	})
}

// stmt returns the prepared statement of s on the writer connection.
func (t *Target) stmt(ctx context.Context, s string) (*sql.Stmt, error) {
	if st, ok := t.stmts[s]; ok {
		return st, nil
	}
	st, err := t.conn.PrepareContext(ctx, s)
	if err != nil {
		return nil, err
	}
	t.stmts[s] = st
	return st, nil
}

// tx holds t.writer's token from Begin to Commit or Rollback.
type tx struct {
	t    *Target
	done bool
}

// noCancel is the context statements run with: the driver watches a cancellable context
// with a goroutine per statement, which costs more than the statement. A transaction's
// statements are short; ctx is checked before each.
var noCancel = context.Background()

func (x *tx) exec(ctx context.Context, s string, args ...any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	st, err := x.t.stmt(noCancel, s)
	if err != nil {
		return err
	}
	_, err = st.ExecContext(noCancel, args...)
	return err
}

func (x *tx) Exec(ctx context.Context, s string, args ...any) error {
	if x.done {
		return verity.Errorf(verity.Invalid, "sqlite", "transaction already ended")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if x.t.driverArgs(args) {
		return x.t.execRaw(s)
	}
	return x.exec(ctx, s, args...)
}

func (x *tx) Query(ctx context.Context, s string, args ...any) (projection.Rows, error) {
	if x.done {
		return nil, verity.Errorf(verity.Invalid, "sqlite", "transaction already ended")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	st, err := x.t.stmt(noCancel, s)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(noCancel, args...)
}

func (x *tx) QueryRow(ctx context.Context, s string, args ...any) projection.Row {
	if x.done {
		return errRow{verity.Errorf(verity.Invalid, "sqlite", "transaction already ended")}
	}
	if err := ctx.Err(); err != nil {
		return errRow{err}
	}
	st, err := x.t.stmt(noCancel, s)
	if err != nil {
		return errRow{err}
	}
	return st.QueryRowContext(noCancel, args...)
}

func (x *tx) Commit(ctx context.Context) error {
	if x.done {
		return verity.Errorf(verity.Invalid, "sqlite", "transaction already ended")
	}
	x.done = true
	defer func() { <-x.t.writer }()
	if err := x.exec(noCancel, "COMMIT"); err != nil {
		// SQLite may or may not have rolled back: start afresh.
		x.t.dropConn()
		return err
	}
	return nil
}

func (x *tx) Rollback(ctx context.Context) error {
	if x.done {
		return nil
	}
	x.done = true
	defer func() { <-x.t.writer }()
	if err := x.exec(noCancel, "ROLLBACK"); err != nil {
		x.t.dropConn()
		return err
	}
	return nil
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }
