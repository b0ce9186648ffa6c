package eventindex

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/sdk/projection"
	"github.com/verity-dev/verity/sdk/projection/sqlite"
)

// tables are the index's: events in log order; streams, one row per stream name seen; and
// summary, one row with the count of streams and the anchors that tie the file to its log
// (see staleReason).
var tables = []projection.Table{
	{
		Name: "events",
		// position is the rowid: the table is kept in log order, and the other indexes
		// lead to it.
		Create: []string{
			`CREATE TABLE IF NOT EXISTS {events} (
				position       INTEGER PRIMARY KEY,
				id             TEXT NOT NULL,
				stream         TEXT NOT NULL,
				revision       INTEGER NOT NULL,
				causation_id   TEXT,
				correlation_id TEXT
			)`,
			`CREATE INDEX IF NOT EXISTS {events}_by_id ON {events} (id)`,
			`CREATE INDEX IF NOT EXISTS {events}_by_causation ON {events} (causation_id) WHERE causation_id IS NOT NULL`,
			`CREATE INDEX IF NOT EXISTS {events}_by_correlation ON {events} (correlation_id, position) WHERE correlation_id IS NOT NULL`,
		},
	},
	{
		Name: "streams",
		// Keyed by name without a rowid: the name is the only key, and a second b-tree
		// for it would double the table's size.
		Create: []string{
			`CREATE TABLE IF NOT EXISTS {streams} (
				name           TEXT PRIMARY KEY,
				first_position INTEGER NOT NULL,
				last_position  INTEGER NOT NULL
			) WITHOUT ROWID`,
		},
	},
	{
		Name: "summary",
		Create: []string{
			`CREATE TABLE IF NOT EXISTS {summary} (
				id             INTEGER PRIMARY KEY CHECK (id = 1),
				streams        INTEGER NOT NULL,
				first_position INTEGER,
				first_id       TEXT,
				last_position  INTEGER,
				last_id        TEXT
			)`,
			`INSERT INTO {summary} (id, streams) VALUES (1, 0) ON CONFLICT (id) DO NOTHING`,
		},
	},
}

// schemaVersion is the layout of the index file, kept in SQLite's user_version. A file of
// another version (an older release's) is rebuilt from the log rather than migrated: the
// index is a cache of the log (invariant 4).
const schemaVersion = 2

// openChecked opens the index file, first deleting it (with its -wal and -shm files) when
// it does not fit the store (see staleReason), so that the index is rebuilt from the log.
func openChecked(store verity.Store, cfg Config) (*sqlite.Target, error) {
	target, err := sqlite.Open(cfg.Path, sqlite.Options{})
	if err != nil {
		return nil, err
	}
	why, err := staleReason(context.Background(), store, target.DB())
	if err != nil {
		target.Close()
		return nil, err
	}
	if why == "" {
		return target, nil
	}
	cfg.Logger.Warn("event index: deleting the index file to rebuild it from the log", "path", cfg.Path, "why", why)
	if err := target.Close(); err != nil {
		return nil, &verity.Error{Kind: verity.Internal, Op: "event index", Message: fmt.Sprintf("close %q", cfg.Path), Err: err}
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(cfg.Path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, &verity.Error{Kind: verity.Internal, Op: "event index", Message: "delete the index file to rebuild it", Err: err}
		}
	}
	return sqlite.Open(cfg.Path, sqlite.Options{})
}

// staleReason says why the index file does not fit store, or "" when it does (or is new).
// A file fits when its layout is this release's and it was made from this log. The engine
// offers no store id, so the file remembers the id of the first and of the last event it
// indexed (the summary's anchors) and the log must still hold the same ids at those
// positions. An anchor the log no longer shows (its stream deleted, or hidden by its
// metadata) proves nothing, except that a log showing no event at all at or after the
// first anchor is not the one the index was made from, or has lost its end: either way
// the index holds events the log does not.
func staleReason(ctx context.Context, store verity.Store, db *sql.DB) (string, error) {
	const op = "event index"
	var version, tablesIn int
	if err := db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		return "", &verity.Error{Kind: verity.Internal, Op: op, Message: "read the index file's version", Err: err}
	}
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table'`).Scan(&tablesIn); err != nil {
		return "", &verity.Error{Kind: verity.Internal, Op: op, Message: "read the index file's tables", Err: err}
	}
	switch {
	case tablesIn == 0:
		return "", nil // a new file
	case version != schemaVersion:
		return fmt.Sprintf("the file's layout is version %d, this release's is %d", version, schemaVersion), nil
	}
	var firstPos, lastPos sql.NullInt64
	var firstID, lastID sql.NullString
	err := db.QueryRowContext(ctx, `SELECT first_position, first_id, last_position, last_id FROM summary WHERE id = 1`).
		Scan(&firstPos, &firstID, &lastPos, &lastID)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", nil // set up, nothing indexed yet
	case err != nil:
		return "", &verity.Error{Kind: verity.Internal, Op: op, Message: "read the index's anchors", Err: err}
	case !firstPos.Valid:
		return "", nil
	}
	at := func(pos int64) (verity.RecordedEvent, bool, error) {
		evs, err := store.ReadAll(ctx, verity.ReadAllOptions{From: uint64(pos), Limit: 1})
		if err != nil || len(evs) == 0 {
			return verity.RecordedEvent{}, false, err
		}
		return evs[0], true, nil
	}
	e, ok, err := at(firstPos.Int64)
	switch {
	case err != nil:
		return "", err
	case !ok:
		return fmt.Sprintf("the index holds events from position %d on, and the log none", firstPos.Int64), nil
	case e.Position == uint64(firstPos.Int64) && e.ID.String() != firstID.String:
		return fmt.Sprintf("the event at position %d is %s in the log but %s in the index: the index was made from another log", e.Position, e.ID, firstID.String), nil
	}
	if !lastPos.Valid || lastPos.Int64 == firstPos.Int64 {
		return "", nil
	}
	e, ok, err = at(lastPos.Int64)
	switch {
	case err != nil:
		return "", err
	case ok && e.Position == uint64(lastPos.Int64) && e.ID.String() != lastID.String:
		return fmt.Sprintf("the event at position %d is %s in the log but %s in the index: the index was made from another log", e.Position, e.ID, lastID.String), nil
	}
	return "", nil
}

// setSchemaVersion marks the file with this release's layout, once its tables exist.
func setSchemaVersion(target *sqlite.Target) error {
	ctx := context.Background()
	var version int
	if err := target.DB().QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		return &verity.Error{Kind: verity.Internal, Op: "event index", Message: "read the index file's version", Err: err}
	}
	if version == schemaVersion {
		return nil
	}
	tx, err := target.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if err := tx.Exec(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, schemaVersion)); err != nil {
		return &verity.Error{Kind: verity.Internal, Op: "event index", Message: "set the index file's version", Err: err}
	}
	return tx.Commit(ctx)
}
