package consolidator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/verity-dev/verity"
)

// A value is where a column's value comes from: the event's JSON data ($.a.b[0]), its
// metadata ($meta.a), a field of the event ($event.type) or a literal.
type value struct {
	src      string // as written, for messages
	kind     valueKind
	path     []step // data and metadata
	field    string // event field
	lit      any    // literal: string, int64, float64, bool or nil
	optional bool   // a missing JSON field is NULL rather than an error
}

type valueKind int

const (
	valueData valueKind = iota
	valueMeta
	valueEvent
	valueLiteral
)

// step is one step of a JSON path: a field or an array index.
type step struct {
	field string
	index int
	isIdx bool
}

// eventFields are the $event.x a value may name.
var eventFields = map[string]bool{
	"stream": true, "streamId": true, "category": true, "type": true, "id": true,
	"position": true, "revision": true, "time": true, "date": true,
}

// parseValue parses a value as YAML decoded it.
func parseValue(v any) (value, error) {
	switch v := v.(type) {
	case nil:
		return value{src: "null", kind: valueLiteral}, nil
	case bool:
		return value{src: strconv.FormatBool(v), kind: valueLiteral, lit: v}, nil
	case int:
		return value{src: strconv.Itoa(v), kind: valueLiteral, lit: int64(v)}, nil
	case int64:
		return value{src: strconv.FormatInt(v, 10), kind: valueLiteral, lit: v}, nil
	case uint64:
		if v > math.MaxInt64 {
			return value{}, fmt.Errorf("%d is too large for an integer", v)
		}
		return value{src: strconv.FormatUint(v, 10), kind: valueLiteral, lit: int64(v)}, nil
	case float64:
		return value{src: strconv.FormatFloat(v, 'g', -1, 64), kind: valueLiteral, lit: v}, nil
	case string:
		return parseValueString(v)
	}
	return value{}, fmt.Errorf("%v: want a JSON path ($.a.b), an event field ($event.type), metadata ($meta.a), a quoted string ('text'), a number or null", v)
}

func parseValueString(s string) (value, error) {
	val := value{src: s}
	switch {
	case len(s) >= 2 && s[0] == '\'' && s[len(s)-1] == '\'':
		val.kind, val.lit = valueLiteral, strings.ReplaceAll(s[1:len(s)-1], "''", "'")
		return val, nil
	case strings.HasPrefix(s, "$event."):
		val.kind, val.field = valueEvent, strings.TrimPrefix(s, "$event.")
		if !eventFields[val.field] {
			return value{}, fmt.Errorf("%q: unknown event field %q; want one of $event.stream, streamId, category, type, id, position, revision, time, date", s, val.field)
		}
		return val, nil
	case s == "$meta" || strings.HasPrefix(s, "$meta.") || strings.HasPrefix(s, "$meta["):
		val.kind = valueMeta
		return val, parsePath(&val, strings.TrimPrefix(s, "$meta"))
	case s == "$" || s == "$?" || strings.HasPrefix(s, "$.") || strings.HasPrefix(s, "$["):
		val.kind = valueData
		return val, parsePath(&val, strings.TrimPrefix(s, "$"))
	}
	return value{}, fmt.Errorf("%q: want a JSON path ($.a.b), an event field ($event.type), metadata ($meta.a), or a literal: quote a string as '%s'", s, s)
}

// parsePath parses the path after $ or $meta: .a.b[0].c, with an optional trailing ?.
func parsePath(val *value, p string) error {
	if strings.HasSuffix(p, "?") {
		val.optional, p = true, strings.TrimSuffix(p, "?")
	}
	for p != "" {
		switch p[0] {
		case '.':
			p = p[1:]
			end := strings.IndexAny(p, ".[")
			if end < 0 {
				end = len(p)
			}
			if end == 0 {
				return fmt.Errorf("%q: empty field name in the path", val.src)
			}
			val.path = append(val.path, step{field: p[:end]})
			p = p[end:]
		case '[':
			end := strings.IndexByte(p, ']')
			if end < 0 {
				return fmt.Errorf("%q: unclosed [ in the path", val.src)
			}
			n, err := strconv.Atoi(p[1:end])
			if err != nil || n < 0 {
				return fmt.Errorf("%q: array index %q: want a number from 0", val.src, p[1:end])
			}
			val.path = append(val.path, step{index: n, isIdx: true})
			p = p[end+1:]
		default:
			return fmt.Errorf("%q: want .field or [index] in the path, at %q", val.src, p)
		}
	}
	return nil
}

// eventCtx is one event being applied, with its data and metadata decoded on first use.
type eventCtx struct {
	e          verity.RecordedEvent
	data, meta any
	dataOK     bool
	metaOK     bool
}

func decodeJSON(b []byte) (any, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, nil
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// errMissing says a JSON path leads nowhere.
type errMissing struct{ msg string }

func (e errMissing) Error() string { return e.msg }

// eval returns the value for ec's event: a string, json.Number, int64, float64, bool,
// time.Time, nil, or a decoded JSON object or array.
func (v value) eval(ec *eventCtx) (any, error) {
	switch v.kind {
	case valueLiteral:
		return v.lit, nil
	case valueEvent:
		e := ec.e
		switch v.field {
		case "stream":
			return e.Stream, nil
		case "streamId":
			_, id, _ := strings.Cut(e.Stream, "-")
			return id, nil
		case "category":
			return verity.Category(e.Stream), nil
		case "type":
			return e.Type, nil
		case "id":
			return e.ID.String(), nil
		case "position":
			return int64(e.Position), nil
		case "revision":
			return int64(e.Revision), nil
		case "time":
			return e.Created.UTC(), nil
		case "date":
			return e.Created.UTC().Format(time.DateOnly), nil
		}
		return nil, fmt.Errorf("unknown event field %q", v.field)
	}
	var root any
	what := "data"
	if v.kind == valueData {
		if !ec.dataOK {
			d, err := decodeJSON(ec.e.Data)
			if err != nil {
				return nil, fmt.Errorf("%s: the event's data is not JSON: %v", v.src, err)
			}
			ec.data, ec.dataOK = d, true
		}
		root = ec.data
	} else {
		what = "metadata"
		if !ec.metaOK {
			d, err := decodeJSON(ec.e.Metadata)
			if err != nil {
				return nil, fmt.Errorf("%s: the event's metadata is not JSON: %v", v.src, err)
			}
			ec.meta, ec.metaOK = d, true
		}
		root = ec.meta
	}
	cur := root
	for i, s := range v.path {
		var ok bool
		if s.isIdx {
			var arr []any
			if arr, ok = cur.([]any); ok && s.index < len(arr) {
				cur = arr[s.index]
			} else {
				ok = false
			}
		} else {
			var obj map[string]any
			if obj, ok = cur.(map[string]any); ok {
				cur, ok = obj[s.field]
			}
		}
		if !ok {
			if v.optional {
				return nil, nil
			}
			return nil, errMissing{fmt.Sprintf("%s: the %s has no %s; mark the value optional (%s?) to store NULL instead", v.src, what, pathString(v.path[:i+1]), strings.TrimSuffix(v.src, "?"))}
		}
	}
	return cur, nil
}

func pathString(p []step) string {
	var b strings.Builder
	b.WriteString("$")
	for _, s := range p {
		if s.isIdx {
			fmt.Fprintf(&b, "[%d]", s.index)
		} else {
			b.WriteString("." + s.field)
		}
	}
	return b.String()
}

// colType is a column's declared type.
type colType string

const (
	typeText      colType = "text"
	typeInteger   colType = "integer"
	typeReal      colType = "real"
	typeBoolean   colType = "boolean"
	typeTimestamp colType = "timestamp"
	typeJSON      colType = "json"
)

// sqlType is the column type's SQL on each dialect: both accept the same statements.
func (t colType) sqlType(d dialect) string {
	switch t {
	case typeInteger:
		return "BIGINT"
	case typeReal:
		return "DOUBLE PRECISION"
	case typeBoolean:
		return "BOOLEAN"
	case typeTimestamp:
		if d == dialectPostgres {
			return "TIMESTAMPTZ"
		}
		return "TEXT" // RFC 3339 in UTC with fixed nanoseconds: sorts as text
	case typeJSON:
		if d == dialectPostgres {
			return "JSONB"
		}
		return "TEXT"
	}
	return "TEXT"
}

var colTypes = map[string]colType{
	"text": typeText, "integer": typeInteger, "real": typeReal,
	"boolean": typeBoolean, "timestamp": typeTimestamp, "json": typeJSON,
}

// sqliteTime is how a timestamp is stored on SQLite: fixed width, so that text order is
// time order. Timestamps keep microseconds on both targets (PostgreSQL's precision), so
// that a view reads the same on either.
const sqliteTime = "2006-01-02T15:04:05.000000Z"

// convert turns an evaluated value into the argument for a column of type t.
func convert(v any, t colType, d dialect) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch t {
	case typeText:
		switch v := v.(type) {
		case string:
			return v, nil
		case json.Number:
			return v.String(), nil
		case int64:
			return strconv.FormatInt(v, 10), nil
		case float64:
			return strconv.FormatFloat(v, 'g', -1, 64), nil
		case bool:
			return strconv.FormatBool(v), nil
		case time.Time:
			return v.UTC().Format(time.RFC3339Nano), nil
		}
		b, err := json.Marshal(v)
		return string(b), err
	case typeInteger:
		switch v := v.(type) {
		case int64:
			return v, nil
		case json.Number:
			if n, err := v.Int64(); err == nil {
				return n, nil
			}
			if f, err := v.Float64(); err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<63 {
				return int64(f), nil
			}
		case float64:
			if v == math.Trunc(v) && math.Abs(v) < 1<<63 {
				return int64(v), nil
			}
		case string:
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				return n, nil
			}
		}
		return nil, fmt.Errorf("%s is not an integer", show(v))
	case typeReal:
		switch v := v.(type) {
		case float64:
			return v, nil
		case int64:
			return float64(v), nil
		case json.Number:
			if f, err := v.Float64(); err == nil {
				return f, nil
			}
		case string:
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				return f, nil
			}
		}
		return nil, fmt.Errorf("%s is not a number", show(v))
	case typeBoolean:
		switch v := v.(type) {
		case bool:
			return v, nil
		case string:
			if b, err := strconv.ParseBool(v); err == nil {
				return b, nil
			}
		}
		return nil, fmt.Errorf("%s is not a boolean", show(v))
	case typeTimestamp:
		var tm time.Time
		switch v := v.(type) {
		case time.Time:
			tm = v
		case string:
			var err error
			if tm, err = time.Parse(time.RFC3339Nano, v); err != nil {
				return nil, fmt.Errorf("%s is not an RFC 3339 time", show(v))
			}
		default:
			return nil, fmt.Errorf("%s is not an RFC 3339 time", show(v))
		}
		tm = tm.UTC().Truncate(time.Microsecond)
		if d == dialectPostgres {
			return tm, nil
		}
		return tm.Format(sqliteTime), nil
	case typeJSON:
		if tm, ok := v.(time.Time); ok {
			v = tm.UTC().Format(time.RFC3339Nano)
		}
		b, err := json.Marshal(v)
		return string(b), err
	}
	return nil, fmt.Errorf("unknown column type %q", t)
}

// show quotes a value for a message.
func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil || len(b) > 80 {
		return fmt.Sprintf("%.80v", v)
	}
	return string(b)
}
