package eventindex

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/sdk/projection"
	"github.com/verity-dev/verity/sdk/projection/sqlite"
)

// Metadata keys the index reads, as sdk.Metadata writes them. The same names without the
// "$" are read too when the "$" ones are absent: hand-written events (the HTTP API's own
// examples) often use them.
const (
	CorrelationIDKey = "$correlationId"
	CausationIDKey   = "$causationId"
)

// Config shapes an Index. The zero value of every field but Path means its default.
type Config struct {
	// Path is the SQLite file; it is created, with its -wal and -shm files beside it, if
	// missing. Required.
	Path string
	// BatchSize is the most events indexed in one transaction. Default 1,000.
	BatchSize int
	// RetryDelay is how long the index waits, after following the log failed, before it
	// follows it again from its checkpoint. Default 1s.
	RetryDelay time.Duration
	// Logger receives the failures of following the log. Default slog.Default().
	Logger *slog.Logger
}

// DefaultRetryDelay is Config.RetryDelay's default.
const DefaultRetryDelay = time.Second

// Validate names the first field that is wrong.
func (c Config) Validate() error {
	const op = "event index config"
	switch {
	case c.Path == "":
		return verity.Errorf(verity.Invalid, op, "Path is empty; give the SQLite file's path")
	case c.BatchSize < 0 || c.BatchSize > projection.MaxBatchSize:
		return verity.Errorf(verity.Invalid, op, "BatchSize %d: want 0 (the default) to %d", c.BatchSize, projection.MaxBatchSize)
	case c.RetryDelay < 0:
		return verity.Errorf(verity.Invalid, op, "RetryDelay %v is negative", c.RetryDelay)
	}
	return nil
}

// Ref is where an event is, as the index knows it, with the ids its metadata links it by.
type Ref struct {
	ID       string // the event's id, a UUID in canonical form
	Position uint64
	Stream   string
	Revision uint64
	// CausationID and CorrelationID are the metadata's, "" when it has none. A value that
	// is a UUID is kept in canonical (lower case) form, so that it matches event ids.
	CausationID   string
	CorrelationID string
}

// Status is where the index stands.
type Status struct {
	// Position is the log position up to which every event is indexed.
	Position uint64
	// LagEvents is the log's head position minus Position.
	LagEvents uint64
	// CaughtUp says the index has caught up with the log since it opened.
	CaughtUp bool
	// LastError is the last failure of following the log, cleared once it catches up
	// again; the index retries after Config.RetryDelay.
	LastError error
	// Streams counts the streams the index has seen an event of, up to StreamsPosition.
	// A stream deleted after it was indexed stays counted (the index sees no deletion);
	// one whose events were already hidden when the index read them (a rebuild after
	// the deletion) is not. System streams ($name) count; metadata streams ($$name) do
	// not: they belong to the stream they describe.
	Streams uint64
	// StreamsPosition is the position of the last event Streams counts, 0 before the
	// first. It is read together with Streams (the count and it are written in the
	// transaction of each batch); Position is read apart, so they may differ by a batch.
	StreamsPosition uint64
}

// projectionName keys the index's checkpoint in the file.
const projectionName = "event_index"

// Index follows a store's log into a SQLite file and answers lookups from it. Its methods
// may be called concurrently; Close stops the goroutine that follows the log.
type Index struct {
	target *sqlite.Target
	proj   *projection.Projector
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// Open opens (or creates) the index file and starts following store's whole log from the
// file's checkpoint, in a goroutine that Close stops. A file of an older layout, or made
// from another log (data files replaced), is deleted first and so rebuilt from the log's
// start; telling costs a read or two of the store. It returns at once: lookups answer
// from what is indexed so far (Status tells how far that is). store should be the
// unguarded store: the index holds every event's place, and callers decide who may see
// which event when they fetch it.
func Open(store verity.Store, cfg Config) (*Index, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.RetryDelay == 0 {
		cfg.RetryDelay = DefaultRetryDelay
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	target, err := openChecked(store, cfg)
	if err != nil {
		return nil, err
	}
	proj, err := projection.New(store, target, projection.Projection{
		Name:        projectionName,
		Tables:      tables,
		HandleBatch: handleBatch,
	}, projection.Config{BatchSize: cfg.BatchSize})
	if err != nil {
		target.Close()
		return nil, err
	}
	if err := proj.Setup(context.Background()); err != nil {
		target.Close()
		return nil, err
	}
	if err := setSchemaVersion(target); err != nil {
		target.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	x := &Index{target: target, proj: proj, log: cfg.Logger, cancel: cancel, done: make(chan struct{})}
	go x.follow(ctx, cfg.RetryDelay)
	return x, nil
}

// follow runs the projection until ctx ends, starting it again after a failure: the store
// may be briefly unavailable, and the index must not stay behind for good.
func (x *Index) follow(ctx context.Context, retry time.Duration) {
	defer close(x.done)
	for {
		err := x.proj.Run(ctx)
		if ctx.Err() != nil {
			return
		}
		x.log.Error("event index: following the log failed; retrying", "err", err, "after", retry)
		t := time.NewTimer(retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// handleBatch indexes a batch of events: a row per event, a row per stream first seen
// (and the last position of each stream it holds), and the summary's count and anchors,
// all in the batch's transaction, so the count always matches the checkpoint.
func handleBatch(ctx context.Context, tx projection.Tx, events []verity.RecordedEvent) error {
	// seen holds the batch's streams in the order they first appear, with their first
	// and last positions in the batch.
	type span struct{ first, last uint64 }
	seen := map[string]*span{}
	var order []string
	for _, e := range events {
		caus, corr := linksOf(e.Metadata)
		if err := tx.Exec(ctx, `INSERT INTO {events} (position, id, stream, revision, causation_id, correlation_id)
			VALUES ($1, $2, $3, $4, $5, $6)`,
			int64(e.Position), e.ID.String(), e.Stream, int64(e.Revision), nullable(caus), nullable(corr)); err != nil {
			return err
		}
		if _, ok := verity.IsMetadataStream(e.Stream); ok {
			continue // a stream's metadata belongs to that stream, not to a stream of its own
		}
		if sp := seen[e.Stream]; sp != nil {
			sp.last = e.Position
		} else {
			seen[e.Stream] = &span{e.Position, e.Position}
			order = append(order, e.Stream)
		}
	}
	var added int64
	for _, name := range order {
		sp := seen[name]
		// A stream is new when the row's first position is the one proposed: an
		// existing row keeps its own, which is below this batch.
		var first int64
		if err := tx.QueryRow(ctx, `INSERT INTO {streams} (name, first_position, last_position) VALUES ($1, $2, $3)
			ON CONFLICT (name) DO UPDATE SET last_position = excluded.last_position
			RETURNING first_position`, name, int64(sp.first), int64(sp.last)).Scan(&first); err != nil {
			return err
		}
		if uint64(first) == sp.first {
			added++
		}
	}
	head, tail := events[0], events[len(events)-1]
	return tx.Exec(ctx, `UPDATE {summary} SET streams = streams + $1,
			first_position = COALESCE(first_position, $2), first_id = COALESCE(first_id, $3),
			last_position = $4, last_id = $5
		WHERE id = 1`,
		added, int64(head.Position), head.ID.String(), int64(tail.Position), tail.ID.String())
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// linksOf reads the causation and correlation ids of an event's metadata. Metadata that is
// not a JSON object, or ids that are not strings, count as none: the index describes the
// log as it is and never refuses an event.
func linksOf(md []byte) (causation, correlation string) {
	// Most events have no links; skip the JSON decoding for them.
	if len(md) == 0 || !strings.Contains(string(md), "ationId") {
		return "", ""
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(md, &obj) != nil {
		return "", ""
	}
	str := func(keys ...string) string {
		for _, k := range keys {
			var s string
			if v, ok := obj[k]; ok && json.Unmarshal(v, &s) == nil && s != "" {
				return Canonical(s)
			}
		}
		return ""
	}
	return str(CausationIDKey, "causationId"), str(CorrelationIDKey, "correlationId")
}

// Canonical returns id in the form the index keeps it: a UUID in canonical lower-case
// form, anything else as it is.
func Canonical(id string) string {
	if u, err := uuid.Parse(id); err == nil {
		return u.String()
	}
	return id
}

const refColumns = `id, position, stream, revision, COALESCE(causation_id, ''), COALESCE(correlation_id, '')`

// The lookups, each served by one index in the order it answers, so that a request reads
// only the rows it returns (TestHotQueriesReadOnlyWhatTheyReturn checks their plans).
// position is the rowid, which every index holds after its columns: "WHERE col = ?
// ORDER BY position" walks the index without a sort.
const (
	lookupQuery   = `SELECT ` + refColumns + ` FROM events WHERE id = $1 ORDER BY position LIMIT $2`
	causedByQuery = `SELECT ` + refColumns + ` FROM events WHERE causation_id = $1 ORDER BY position LIMIT $2`
	// correlatedQuery and correlationRootQuery are two queries, merged in Go, rather than
	// one with "correlation_id = $1 OR id = $1": SQLite answers that OR by reading every
	// event of the correlation and sorting them, for each page.
	correlatedQuery = `SELECT ` + refColumns + ` FROM events
		WHERE correlation_id = $1 AND position < $2 ORDER BY position DESC LIMIT $3`
	// The root carries the correlation's id as its own id; one that also carries it as its
	// correlation id is found by correlatedQuery already.
	correlationRootQuery = `SELECT ` + refColumns + ` FROM events
		WHERE id = $1 AND position < $2 AND correlation_id IS NOT $1 ORDER BY position DESC LIMIT $3`
)

// Lookup returns the place of the event with this id (the first one, should two streams
// hold events with the same id). Errors: NotFound when no indexed event has it.
func (x *Index) Lookup(ctx context.Context, id string) (Ref, error) {
	refs, err := x.query(ctx, lookupQuery, Canonical(id), 1)
	if err != nil {
		return Ref{}, err
	}
	if len(refs) == 0 {
		return Ref{}, verity.Errorf(verity.NotFound, "event index", "no event with id %q", id)
	}
	return refs[0], nil
}

// CausedBy returns up to limit events whose causation id is id, in log order.
func (x *Index) CausedBy(ctx context.Context, id string, limit int) ([]Ref, error) {
	return x.query(ctx, causedByQuery, Canonical(id), max(limit, 0))
}

// Correlated returns up to limit events of correlation id, newest first, at positions
// below before (0: no bound): those whose correlation id is id, and the event whose id is
// id, if any, since a workflow's first event usually carries no correlation id of its own
// (sdk.CausedBy correlates its effects by its id).
func (x *Index) Correlated(ctx context.Context, id string, before uint64, limit int) ([]Ref, error) {
	bound := int64(1<<63 - 1)
	if before > 0 && before < 1<<63 {
		bound = int64(before)
	}
	id, limit = Canonical(id), max(limit, 0)
	corr, err := x.query(ctx, correlatedQuery, id, bound, limit)
	if err != nil {
		return nil, err
	}
	roots, err := x.query(ctx, correlationRootQuery, id, bound, limit)
	if err != nil {
		return nil, err
	}
	if len(roots) == 0 {
		return corr, nil
	}
	// Both are newest first: merge them, and keep the newest limit.
	out := make([]Ref, 0, min(len(corr)+len(roots), limit))
	for len(out) < limit && (len(corr) > 0 || len(roots) > 0) {
		if len(roots) == 0 || len(corr) > 0 && corr[0].Position > roots[0].Position {
			out, corr = append(out, corr[0]), corr[1:]
		} else {
			out, roots = append(out, roots[0]), roots[1:]
		}
	}
	return out, nil
}

func (x *Index) query(ctx context.Context, stmt string, args ...any) ([]Ref, error) {
	rows, err := x.target.Query(ctx, stmt, args...)
	if err != nil {
		return nil, x.wrap(err)
	}
	defer rows.Close()
	var out []Ref
	for rows.Next() {
		var r Ref
		var pos, rev int64
		if err := rows.Scan(&r.ID, &pos, &r.Stream, &rev, &r.CausationID, &r.CorrelationID); err != nil {
			return nil, x.wrap(err)
		}
		r.Position, r.Revision = uint64(pos), uint64(rev)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, x.wrap(err)
	}
	return out, nil
}

func (x *Index) wrap(err error) error {
	var e *verity.Error
	if errors.As(err, &e) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if errors.Is(err, sql.ErrConnDone) {
		return verity.Errorf(verity.Unavailable, "event index", "the index is closed")
	}
	return &verity.Error{Kind: verity.Internal, Op: "event index", Message: "query the index", Err: err}
}

// Status reports how far the index has got.
func (x *Index) Status(ctx context.Context) (Status, error) {
	st, err := x.proj.Status(ctx)
	if err != nil {
		return Status{}, err
	}
	out := Status{Position: st.Position, LagEvents: st.LagEvents, CaughtUp: st.CaughtUp, LastError: st.LastError}
	var streams, at int64
	rows, err := x.target.Query(ctx, `SELECT streams, COALESCE(last_position, 0) FROM summary WHERE id = 1`)
	if err != nil {
		return Status{}, x.wrap(err)
	}
	defer rows.Close()
	if rows.Next() {
		if err := rows.Scan(&streams, &at); err != nil {
			return Status{}, x.wrap(err)
		}
	}
	if err := rows.Err(); err != nil {
		return Status{}, x.wrap(err)
	}
	out.Streams, out.StreamsPosition = uint64(streams), uint64(at)
	return out, nil
}

// Close stops following the log and closes the file. It is idempotent.
func (x *Index) Close() error {
	x.closeOnce.Do(func() {
		x.cancel()
		<-x.done
		x.closeErr = x.target.Close()
	})
	return x.closeErr
}
