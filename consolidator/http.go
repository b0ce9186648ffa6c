package consolidator

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/sdk/projection"
)

// Limits of GET /views/{name}/tables/{table}.
const (
	DefaultRowLimit = 100
	MaxRowLimit     = 1000
)

// Handler is the admin API:
//
//	GET    /views                               every projection's Status
//	GET    /views/{name}                        one projection's Status
//	POST   /views/{name}/rebuild[?wait=true]    start a Rebuild (202), or wait for it (200)
//	POST   /views/{name}/asof?position=P        BuildAsOf a position, or ?time=RFC3339
//	DELETE /views/{name}/asof/{suffix}          DropAsOf
//	GET    /views/{name}/tables/{table}?limit=N&after=CURSOR   rows as JSON, by key
//
// Errors answer {"error": {"kind": "not_found", "message": "..."}} with the kind's status.
// It has no authentication: serve it on loopback or behind one.
func (c *Consolidator) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /views", func(w http.ResponseWriter, r *http.Request) {
		sts, err := c.Statuses(r.Context())
		if sts == nil {
			sts = []Status{}
		}
		reply(w, http.StatusOK, map[string]any{"views": sts}, err)
	})
	mux.HandleFunc("GET /views/{name}", func(w http.ResponseWriter, r *http.Request) {
		st, err := c.Status(r.Context(), r.PathValue("name"))
		reply(w, http.StatusOK, st, err)
	})
	mux.HandleFunc("POST /views/{name}/rebuild", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if r.URL.Query().Get("wait") == "true" {
			if err := c.Rebuild(r.Context(), name); err != nil {
				reply(w, 0, nil, err)
				return
			}
			st, err := c.Status(r.Context(), name)
			reply(w, http.StatusOK, st, err)
			return
		}
		if err := c.RebuildInBackground(name); err != nil {
			reply(w, 0, nil, err)
			return
		}
		st, err := c.Status(r.Context(), name)
		reply(w, http.StatusAccepted, st, err)
	})
	mux.HandleFunc("POST /views/{name}/asof", func(w http.ResponseWriter, r *http.Request) {
		var at AsOf
		q := r.URL.Query()
		if s := q.Get("position"); s != "" {
			n, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				reply(w, 0, nil, verity.Errorf(verity.Invalid, op, "position %q: want a log position from 1", s))
				return
			}
			at.Position = n
		}
		if s := q.Get("time"); s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				reply(w, 0, nil, verity.Errorf(verity.Invalid, op, "time %q: want an RFC 3339 time such as 2025-01-31T09:00:00Z", s))
				return
			}
			at.Time = t
		}
		res, err := c.BuildAsOf(r.Context(), r.PathValue("name"), at)
		reply(w, http.StatusOK, res, err)
	})
	mux.HandleFunc("DELETE /views/{name}/asof/{suffix}", func(w http.ResponseWriter, r *http.Request) {
		err := c.DropAsOf(r.Context(), r.PathValue("name"), r.PathValue("suffix"))
		if err == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		reply(w, 0, nil, err)
	})
	mux.HandleFunc("GET /views/{name}/tables/{table}", func(w http.ResponseWriter, r *http.Request) {
		page, err := c.rows(r.Context(), r.PathValue("name"), r.PathValue("table"), r.URL.Query().Get("limit"), r.URL.Query().Get("after"))
		reply(w, http.StatusOK, page, err)
	})
	return mux
}

// reply writes v as JSON with status, or err's JSON with its kind's status.
func reply(w http.ResponseWriter, status int, v any, err error) {
	if err != nil {
		kind := verity.Internal
		var ve *verity.Error
		msg := err.Error()
		switch {
		case errors.As(err, &ve):
			kind = ve.Kind
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			kind = verity.Unavailable
		}
		status, v = kind.HTTPStatus(), map[string]any{"error": map[string]string{"kind": kind.String(), "message": msg}}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// Page is a page of a table's rows.
type Page struct {
	Table string           `json:"table"`
	Rows  []map[string]any `json:"rows"`
	// Next, when set, is the after= of the next page.
	Next string `json:"next,omitempty"`
}

// cursor is after=: base64url of its JSON. Key is the last row's key (tables with a
// declared key); Offset counts the rows already returned (Go-declared tables).
type cursor struct {
	Key    []any `json:"key,omitempty"`
	Offset int   `json:"offset,omitempty"`
}

// rows reads a page of a projection's table, or of an as-of build's copy of it.
func (c *Consolidator) rows(ctx context.Context, name, table, limitS, afterS string) (Page, error) {
	v, err := c.view(name)
	if err != nil {
		return Page{}, err
	}
	limit := DefaultRowLimit
	if limitS != "" {
		n, err := strconv.Atoi(limitS)
		if err != nil || n < 1 || n > MaxRowLimit {
			return Page{}, verity.Errorf(verity.Invalid, op, "limit %q: want 1 to %d", limitS, MaxRowLimit)
		}
		limit = n
	}
	var info *tableInfo
	for i := range v.tables {
		if v.tables[i].name == table {
			info = &v.tables[i]
		}
	}
	if info == nil {
		// An as-of copy: only names the projection itself reports are queried.
		asofs, err := v.proj.AsOfs(ctx)
		if err != nil {
			return Page{}, err
		}
		for _, a := range asofs {
			for base, copyName := range a.Tables {
				if copyName == table {
					i := slices.IndexFunc(v.tables, func(t tableInfo) bool { return t.name == base })
					info = &tableInfo{name: copyName, key: v.tables[i].key, types: v.tables[i].types}
				}
			}
		}
	}
	if info == nil {
		return Page{}, verity.Errorf(verity.NotFound, op, "projection %q has no table %q", name, table)
	}
	var cur cursor
	if afterS != "" {
		b, err := base64.RawURLEncoding.DecodeString(afterS)
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		if err == nil {
			err = d.Decode(&cur)
		}
		if err != nil || (info.key != nil && len(cur.Key) != len(info.key)) || cur.Offset < 0 {
			return Page{}, verity.Errorf(verity.Invalid, op, "after %q: not a cursor of this table; use the next of the previous page", afterS)
		}
	}
	var stmt string
	var args []any
	if info.key != nil {
		var keys, params []string
		for i, k := range info.key {
			keys = append(keys, quote(k))
			params = append(params, fmt.Sprintf("$%d", i+1))
			if cur.Key != nil {
				a, err := convert(cur.Key[i], info.types[k], c.dialect)
				if err != nil {
					return Page{}, verity.Errorf(verity.Invalid, op, "after %q: %v", afterS, err)
				}
				args = append(args, a)
			}
		}
		where := ""
		if cur.Key != nil {
			where = fmt.Sprintf(" WHERE (%s) > (%s)", strings.Join(keys, ", "), strings.Join(params, ", "))
			if len(keys) == 1 {
				where = fmt.Sprintf(" WHERE %s > $1", keys[0])
			}
		}
		stmt = fmt.Sprintf("SELECT * FROM %s%s ORDER BY %s LIMIT %d", info.name, where, strings.Join(keys, ", "), limit+1)
	} else {
		stmt = fmt.Sprintf("SELECT * FROM %s ORDER BY 1 LIMIT %d OFFSET %d", info.name, limit+1, cur.Offset)
	}
	rows, err := c.target.Query(ctx, stmt, args...)
	if err != nil {
		return Page{}, &verity.Error{Kind: verity.Unavailable, Op: op, Message: "read table " + info.name, Err: err}
	}
	defer rows.Close()
	cols, err := columnsOf(rows)
	if err != nil {
		return Page{}, err
	}
	page := Page{Table: info.name, Rows: []map[string]any{}}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return Page{}, &verity.Error{Kind: verity.Unavailable, Op: op, Message: "read table " + info.name, Err: err}
		}
		row := map[string]any{}
		for i, col := range cols {
			row[col] = jsonValue(vals[i], info.types[col])
		}
		page.Rows = append(page.Rows, row)
	}
	if err := rows.Close(); err != nil {
		return Page{}, &verity.Error{Kind: verity.Unavailable, Op: op, Message: "read table " + info.name, Err: err}
	}
	if len(page.Rows) > limit {
		page.Rows = page.Rows[:limit]
		next := cursor{Offset: cur.Offset + limit}
		if info.key != nil {
			last := page.Rows[limit-1]
			next = cursor{}
			for _, k := range info.key {
				next.Key = append(next.Key, last[k])
			}
		}
		b, _ := json.Marshal(next)
		page.Next = base64.RawURLEncoding.EncodeToString(b)
	}
	return page, nil
}

// columnsOf returns the names of rows' columns on either target.
func columnsOf(rows projection.Rows) ([]string, error) {
	switch r := rows.(type) {
	case interface{ Columns() ([]string, error) }:
		return r.Columns()
	case interface {
		FieldDescriptions() []pgconn.FieldDescription
	}:
		var out []string
		for _, f := range r.FieldDescriptions() {
			out = append(out, f.Name)
		}
		return out, nil
	}
	return nil, verity.Errorf(verity.Internal, op, "rows of type %T have no column names", rows)
}

// jsonValue is a column's value as JSON shows it best.
func jsonValue(v any, t colType) any {
	switch v := v.(type) {
	case []byte:
		if t == typeJSON && json.Valid(v) {
			return json.RawMessage(v)
		}
		return string(v)
	case string:
		if t == typeJSON && json.Valid([]byte(v)) {
			return json.RawMessage(v)
		}
		if t == typeBoolean {
			return v == "1" || v == "true"
		}
	case int64:
		if t == typeBoolean {
			return v != 0
		}
	}
	return v
}
