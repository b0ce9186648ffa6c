package consolidator

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/sdk/projection"
)

// dialect is the SQL flavour of a target, for the column types that differ.
type dialect int

const (
	dialectSQLite dialect = iota
	dialectPostgres
)

// Compile turns a declarative projection into a projection and the configuration of its
// source, for a target of dialect postgres (true) or SQLite (false).
func (pc ProjectionConfig) Compile(postgres bool) (projection.Projection, projection.Config, error) {
	d := dialectSQLite
	if postgres {
		d = dialectPostgres
	}
	c, err := pc.compile(d)
	if err != nil {
		return projection.Projection{}, projection.Config{}, verity.Errorf(verity.Invalid, op, "projection%v", err)
	}
	return c.projection(), projection.Config{Filter: c.filter, BatchSize: c.batch}, nil
}

func (c *compiled) projection() projection.Projection {
	p := projection.Projection{Name: c.name, HandleBatch: c.handleBatch}
	for _, t := range c.tables {
		p.Tables = append(p.Tables, projection.Table{Name: t.name, Create: t.createSQL(c.dialect)})
	}
	return p
}

// pendingRow is a batch's merged upserts of one row of a table that only upserts touch.
type pendingRow struct {
	set  map[string]any // column -> last value set
	add  map[string]any // column -> sum (int64 or float64)
	cols []string       // set's columns in first-set order
}

// pendingTable holds a batch's merged upserts of one table, in first-seen order of keys.
type pendingTable struct {
	rows map[string]*pendingRow
	keys []string
}

// handleBatch applies a batch: actions on tables that other actions also update or delete
// from run as statements in event order; upserts of a table that only upserts touch are
// merged per row (later sets win, adds add up) and written once at the end, which gives
// the same rows (a row's upserts commute with nothing else) for one statement per row.
func (c *compiled) handleBatch(ctx context.Context, tx projection.Tx, events []verity.RecordedEvent) error {
	pending := map[*tableSpec]*pendingTable{}
	for _, e := range events {
		ec := &eventCtx{e: e}
		if c.skipInvalid {
			if err := c.check(ec); err != nil {
				c.skips.add(e, err)
				continue
			}
		}
		for _, a := range c.on[e.Type] {
			if err := c.apply(ctx, tx, ec, a, pending); err != nil {
				return err
			}
		}
	}
	for _, t := range c.tables {
		pt := pending[t]
		if pt == nil {
			continue
		}
		for _, k := range pt.keys {
			if err := c.writeRow(ctx, tx, t, pt.rows[k]); err != nil {
				return err
			}
		}
	}
	return nil
}

// check evaluates every value of every action of ec's event without applying any, so that
// an event that cannot be applied is skipped whole, never in part.
func (c *compiled) check(ec *eventCtx) error {
	var buf []any
	for _, a := range c.on[ec.e.Type] {
		for _, l := range []struct {
			what string
			cvs  []colValue
		}{{"set", a.set}, {"add", a.add}, {"where", a.where}} {
			var err error
			if buf, err = c.args(ec, a, l.what, l.cvs, buf[:0]); err != nil {
				return err
			}
		}
	}
	return nil
}

// skipLog counts the events a projection with invalid_events: skip left out, and keeps
// the last one's description. A rolled-back batch may count an event twice; the count
// says how often events were skipped, the log which.
type skipLog struct {
	mu   sync.Mutex
	n    uint64
	last string
	at   time.Time
	log  *slog.Logger
}

func (s *skipLog) add(e verity.RecordedEvent, err error) {
	s.mu.Lock()
	s.n++
	s.last, s.at = err.Error(), time.Now()
	log := s.log
	s.mu.Unlock()
	if log != nil {
		log.Warn("consolidator: skipped an event the mapping cannot apply", "stream", e.Stream, "position", e.Position, "type", e.Type, "error", err)
	}
}

func (s *skipLog) get() (uint64, string, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n, s.last, s.at
}

// eventErr names the event, the action and the value that failed.
func eventErr(ec *eventCtx, a *action, cv colValue, what string, err error) error {
	e := ec.e
	return verity.Errorf(verity.Invalid, op, "event %s of type %s at position %d (stream %s): %s.%s.%s: %v",
		e.ID, e.Type, e.Position, e.Stream, a.src, what, cv.col, err)
}

// args evaluates cvs for ec's event.
func (c *compiled) args(ec *eventCtx, a *action, what string, cvs []colValue, out []any) ([]any, error) {
	for _, cv := range cvs {
		v, err := cv.v.eval(ec)
		if err != nil {
			return nil, eventErr(ec, a, cv, what, err)
		}
		if v, err = convert(v, cv.typ, c.dialect); err != nil {
			return nil, eventErr(ec, a, cv, what, fmt.Errorf("%s: %v for a %s column", cv.v.src, err, cv.typ))
		}
		if what == "add" && v == nil {
			v = zero(cv.typ) // a missing optional value adds nothing
		}
		out = append(out, v)
	}
	return out, nil
}

func zero(t colType) any {
	if t == typeReal {
		return float64(0)
	}
	return int64(0)
}

func (c *compiled) apply(ctx context.Context, tx projection.Tx, ec *eventCtx, a *action, pending map[*tableSpec]*pendingTable) error {
	switch a.kind {
	case actUpdate:
		args, err := c.args(ec, a, "set", a.set, nil)
		if err != nil {
			return err
		}
		if args, err = c.args(ec, a, "add", a.add, args); err != nil {
			return err
		}
		if args, err = c.args(ec, a, "where", a.where, args); err != nil {
			return err
		}
		return tx.Exec(ctx, a.stmt, args...)
	case actDelete:
		args, err := c.args(ec, a, "where", a.where, nil)
		if err != nil {
			return err
		}
		return tx.Exec(ctx, a.stmt, args...)
	}
	set, err := c.args(ec, a, "set", a.set, nil)
	if err != nil {
		return err
	}
	add, err := c.args(ec, a, "add", a.add, nil)
	if err != nil {
		return err
	}
	t := a.table
	row := &pendingRow{set: map[string]any{}, add: map[string]any{}}
	for i, cv := range a.set {
		row.set[cv.col] = set[i]
		row.cols = append(row.cols, cv.col)
	}
	for i, cv := range a.add {
		row.add[cv.col] = add[i]
	}
	if !t.upsertsOnly {
		return c.writeRow(ctx, tx, t, row)
	}
	// Merge into the batch's row of the same key.
	keyVals := make([]any, len(t.key))
	for i, k := range t.key {
		if row.set[k] == nil {
			cv := a.set[0]
			for _, s := range a.set {
				if s.col == k {
					cv = s
				}
			}
			return eventErr(ec, a, cv, "set", fmt.Errorf("the key column is NULL"))
		}
		keyVals[i] = row.set[k]
	}
	kb, _ := json.Marshal(keyVals)
	pt := pending[t]
	if pt == nil {
		pt = &pendingTable{rows: map[string]*pendingRow{}}
		pending[t] = pt
	}
	old := pt.rows[string(kb)]
	if old == nil {
		pt.rows[string(kb)] = row
		pt.keys = append(pt.keys, string(kb))
		return nil
	}
	for _, col := range row.cols {
		if _, ok := old.set[col]; !ok {
			old.cols = append(old.cols, col)
		}
		old.set[col] = row.set[col]
	}
	for col, v := range row.add {
		switch s := old.add[col].(type) {
		case int64:
			old.add[col] = s + v.(int64)
		case float64:
			old.add[col] = s + v.(float64)
		default:
			old.add[col] = v
		}
	}
	return nil
}

// writeRow upserts one row: set's columns replaced, add's added to.
func (c *compiled) writeRow(ctx context.Context, tx projection.Tx, t *tableSpec, row *pendingRow) error {
	var cols, vals, updates, keys []string
	var args []any
	for _, col := range row.cols {
		args = append(args, row.set[col])
		cols, vals = append(cols, quote(col)), append(vals, fmt.Sprintf("$%d", len(args)))
		if !isKey(t, col) {
			updates = append(updates, fmt.Sprintf("%s = excluded.%s", quote(col), quote(col)))
		}
	}
	for _, col := range sortedKeys(row.add) {
		args = append(args, row.add[col])
		cols, vals = append(cols, quote(col)), append(vals, fmt.Sprintf("$%d", len(args)))
		updates = append(updates, fmt.Sprintf("%s = COALESCE({%s}.%s, 0) + excluded.%s", quote(col), t.name, quote(col), quote(col)))
	}
	for _, k := range t.key {
		keys = append(keys, quote(k))
	}
	conflict := "DO NOTHING"
	if len(updates) > 0 {
		conflict = "DO UPDATE SET " + strings.Join(updates, ", ")
	}
	stmt := fmt.Sprintf("INSERT INTO {%s} (%s) VALUES (%s) ON CONFLICT (%s) %s",
		t.name, strings.Join(cols, ", "), strings.Join(vals, ", "), strings.Join(keys, ", "), conflict)
	return tx.Exec(ctx, stmt, args...)
}

func isKey(t *tableSpec, col string) bool {
	for _, k := range t.key {
		if k == col {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }
