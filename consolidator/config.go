package consolidator

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/verity-dev/verity"
)

// FileConfig is a consolidator's YAML file: where the read models go and the
// projections that fill them. docs/consolidator.md is its reference.
type FileConfig struct {
	// Target is the database: sqlite:PATH or postgres://... (see Config.DSN). A command
	// line flag may override it.
	Target string `yaml:"target"`
	// Projections are the declarative projections, each with its tables.
	Projections []ProjectionConfig `yaml:"projections"`
}

// ProjectionConfig is one declarative projection.
type ProjectionConfig struct {
	// Name identifies the projection (and keys its checkpoint): 1 to 48 of a-z, 0-9 and _,
	// starting with a letter.
	Name string `yaml:"name"`
	// Categories, StreamPrefixes and EventTypes select the events (all that are set must
	// match; within one, any entry). EventTypes defaults to the keys of On.
	Categories     []string `yaml:"categories"`
	StreamPrefixes []string `yaml:"stream_prefixes"`
	EventTypes     []string `yaml:"event_types"`
	// BatchSize is the most events per transaction; 0 is the projection package's default.
	BatchSize int `yaml:"batch_size"`
	// InvalidEvents says what to do with an event the mapping cannot apply (a required
	// field missing, a value of the wrong type): "stop" (the default: the projection
	// fails on it and retries with backoff, its Status naming the event, until the mapping
	// or the event is fixed) or "skip" (the event is left out of the tables, counted in
	// Status.Skipped and logged; the projection goes on). Skipping suits events anyone
	// may write to the selected streams; the tables then hold the fold of the well-formed
	// events.
	InvalidEvents string `yaml:"invalid_events"`
	// Tables are the tables the projection owns.
	Tables []TableConfig `yaml:"tables"`
	// On maps an event type to the actions that apply it, in order.
	On map[string][]ActionConfig `yaml:"on"`
}

// TableConfig is one table of a declarative projection.
type TableConfig struct {
	Name string `yaml:"name"`
	// Key is the primary key's columns.
	Key []string `yaml:"key"`
	// Columns maps each column to its type: text, integer, real, boolean, timestamp or
	// json. The table's columns come in the file's order.
	Columns Columns `yaml:"columns"`
	// Indexes are secondary indexes, each a list of columns.
	Indexes [][]string `yaml:"indexes"`
}

// Column is one column of a table.
type Column struct {
	Name string
	Type string
}

// Columns are a table's columns in the order the file gives them.
type Columns []Column

// UnmarshalYAML reads a mapping of column name to type, keeping its order.
func (c *Columns) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: columns: want a mapping of column name to type", n.Line)
	}
	*c = nil
	for i := 0; i+1 < len(n.Content); i += 2 {
		var name, typ string
		if err := n.Content[i].Decode(&name); err != nil {
			return err
		}
		if err := n.Content[i+1].Decode(&typ); err != nil {
			return fmt.Errorf("line %d: columns.%s: want a type name: %v", n.Content[i+1].Line, name, err)
		}
		*c = append(*c, Column{Name: name, Type: typ})
	}
	return nil
}

// ActionConfig is one action on an event: exactly one of Upsert, Update and Delete names
// its table.
type ActionConfig struct {
	// Upsert inserts the row whose key Set gives, or updates it: Set's columns are
	// replaced, Add's are added to (from 0 for a new row).
	Upsert string `yaml:"upsert"`
	// Update changes the rows that Where matches: Set's columns are replaced, Add's
	// added to. No row matching is no error.
	Update string `yaml:"update"`
	// Delete deletes the rows that Where matches.
	Delete string `yaml:"delete"`
	// Where, Set and Add map columns to values: $.path into the event's data (with ? at
	// the end when it may be missing: NULL then), $event.field, $meta.path, or a literal
	// ('quoted text', a number, true, false, null).
	Where map[string]any `yaml:"where"`
	Set   map[string]any `yaml:"set"`
	Add   map[string]any `yaml:"add"`
}

// ParseConfig parses and checks a YAML file's content. Errors are Invalid and name the
// field.
func ParseConfig(b []byte) (*FileConfig, error) {
	d := yaml.NewDecoder(bytes.NewReader(b))
	d.KnownFields(true)
	var fc FileConfig
	if err := d.Decode(&fc); err != nil && !errors.Is(err, io.EOF) {
		return nil, verity.Errorf(verity.Invalid, op, "config: %v", err)
	}
	if err := fc.Validate(); err != nil {
		return nil, err
	}
	return &fc, nil
}

// LoadConfig reads and parses the YAML file at path.
func LoadConfig(path string) (*FileConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, verity.Errorf(verity.Invalid, op, "config: %v", err)
	}
	fc, err := ParseConfig(b)
	if err != nil {
		var ve *verity.Error
		if errors.As(err, &ve) {
			ve.Message = path + ": " + ve.Message
		}
		return nil, err
	}
	return fc, nil
}

// Validate checks every projection, naming the first bad field.
func (fc *FileConfig) Validate() error {
	seen := map[string]bool{}
	tables := map[string]string{}
	for i, pc := range fc.Projections {
		if _, err := pc.compile(dialectSQLite); err != nil {
			return verity.Errorf(verity.Invalid, op, "config: projections[%d]%v", i, err)
		}
		if seen[pc.Name] {
			return verity.Errorf(verity.Invalid, op, "config: projections[%d].name: %q is used twice", i, pc.Name)
		}
		seen[pc.Name] = true
		for j, t := range pc.Tables {
			if other, ok := tables[t.Name]; ok {
				return verity.Errorf(verity.Invalid, op, "config: projections[%d] (%s).tables[%d].name: table %q is also projection %s's", i, pc.Name, j, t.Name, other)
			}
			tables[t.Name] = pc.Name
		}
	}
	return nil
}

var identRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,47}$`)

// reserved are SQL words a table name may not be: the projection package writes table
// names unquoted (columns are always quoted).
var reserved = map[string]bool{
	"all": true, "and": true, "as": true, "by": true, "check": true, "column": true, "create": true,
	"default": true, "delete": true, "distinct": true, "drop": true, "from": true, "group": true,
	"having": true, "in": true, "index": true, "insert": true, "into": true, "is": true,
	"join": true, "limit": true, "not": true, "null": true, "on": true, "or": true, "order": true,
	"primary": true, "references": true, "select": true, "set": true, "table": true, "to": true,
	"union": true, "unique": true, "update": true, "user": true, "values": true, "where": true,
	"with": true,
}

// compiled is a declarative projection ready to run.
type compiled struct {
	name    string
	filter  verity.Filter
	batch   int
	tables  []*tableSpec
	byName  map[string]*tableSpec
	on      map[string][]*action
	dialect dialect
	// skipInvalid: invalid_events is "skip"; skips counts and describes the skipped.
	skipInvalid bool
	skips       *skipLog
}

type tableSpec struct {
	name    string
	key     []string
	cols    []Column
	types   map[string]colType
	indexes [][]string
	// upsertsOnly says every action on the table is an upsert: a batch's upserts of one
	// row can then be merged and written once.
	upsertsOnly bool
}

type actionKind int

const (
	actUpsert actionKind = iota
	actUpdate
	actDelete
)

type colValue struct {
	col string
	typ colType
	v   value
}

type action struct {
	kind            actionKind
	table           *tableSpec
	where, set, add []colValue
	src             string // on.TYPE[i], for messages
	stmt            string // update and delete; upserts are built per batch
}

func (pc ProjectionConfig) compile(d dialect) (*compiled, error) {
	c := &compiled{name: pc.Name, batch: pc.BatchSize, byName: map[string]*tableSpec{}, on: map[string][]*action{}, dialect: d, skips: &skipLog{}}
	if !identRE.MatchString(pc.Name) {
		return nil, fmt.Errorf(".name: %q: want 1 to 48 of a-z, 0-9 and _, starting with a letter", pc.Name)
	}
	at := func(f string, a ...any) error {
		return fmt.Errorf(" (%s).%s", pc.Name, fmt.Sprintf(f, a...))
	}
	switch pc.InvalidEvents {
	case "", "stop":
	case "skip":
		c.skipInvalid = true
	default:
		return nil, at("invalid_events: %q: want stop or skip", pc.InvalidEvents)
	}
	if pc.BatchSize < 0 {
		return nil, at("batch_size: %d is negative", pc.BatchSize)
	}
	if len(pc.Tables) == 0 {
		return nil, at("tables: none declared")
	}
	if len(pc.On) == 0 {
		return nil, at("on: no event types to apply")
	}
	for i, tc := range pc.Tables {
		t, err := compileTable(tc)
		if err != nil {
			return nil, at("tables[%d].%v", i, err)
		}
		if c.byName[t.name] != nil {
			return nil, at("tables[%d].name: %q declared twice", i, t.name)
		}
		t.upsertsOnly = true
		c.byName[t.name], c.tables = t, append(c.tables, t)
	}
	types := make([]string, 0, len(pc.On))
	for typ := range pc.On {
		types = append(types, typ)
	}
	slices.Sort(types)
	for _, typ := range types {
		if typ == "" {
			return nil, at("on: an empty event type")
		}
		if len(pc.EventTypes) > 0 && !slices.Contains(pc.EventTypes, typ) {
			return nil, at("on.%s: not among event_types %v, so no such event would arrive", typ, pc.EventTypes)
		}
		for i, ac := range pc.On[typ] {
			a, err := c.compileAction(ac, fmt.Sprintf("on.%s[%d]", typ, i))
			if err != nil {
				return nil, at("on.%s[%d]%v", typ, i, err)
			}
			if a.kind != actUpsert {
				a.table.upsertsOnly = false
			}
			c.on[typ] = append(c.on[typ], a)
		}
	}
	c.filter = verity.Filter{Categories: pc.Categories, StreamPrefixes: pc.StreamPrefixes, EventTypes: pc.EventTypes}
	if len(c.filter.EventTypes) == 0 {
		c.filter.EventTypes = types
	}
	for i, s := range pc.Categories {
		if s == "" || strings.Contains(s, "-") {
			return nil, at("categories[%d]: %q: want a stream name's part before its first '-'", i, s)
		}
	}
	if _, err := c.filter.Compile(); err != nil {
		return nil, at("filter: %v", err)
	}
	return c, nil
}

func compileTable(tc TableConfig) (*tableSpec, error) {
	if !identRE.MatchString(tc.Name) || strings.Contains(tc.Name, "__") || reserved[tc.Name] || strings.HasPrefix(tc.Name, "verity_") {
		return nil, fmt.Errorf("name: %q: want 1 to 48 of a-z, 0-9 and _, starting with a letter, without __, not an SQL keyword nor verity_...", tc.Name)
	}
	t := &tableSpec{name: tc.Name, cols: tc.Columns, types: map[string]colType{}}
	if len(tc.Columns) == 0 {
		return nil, fmt.Errorf("columns: none declared for table %s", tc.Name)
	}
	for _, c := range tc.Columns {
		if !identRE.MatchString(c.Name) {
			return nil, fmt.Errorf("columns.%s: want 1 to 48 of a-z, 0-9 and _, starting with a letter", c.Name)
		}
		if _, dup := t.types[c.Name]; dup {
			return nil, fmt.Errorf("columns.%s: declared twice", c.Name)
		}
		ct, ok := colTypes[c.Type]
		if !ok {
			return nil, fmt.Errorf("columns.%s: type %q: want text, integer, real, boolean, timestamp or json", c.Name, c.Type)
		}
		t.types[c.Name] = ct
	}
	if len(tc.Key) == 0 {
		return nil, fmt.Errorf("key: table %s needs a key (its primary key's columns)", tc.Name)
	}
	for _, k := range tc.Key {
		if _, ok := t.types[k]; !ok {
			return nil, fmt.Errorf("key: %q is not a column of table %s", k, tc.Name)
		}
		if slices.Contains(t.key, k) {
			return nil, fmt.Errorf("key: %q given twice", k)
		}
		t.key = append(t.key, k)
	}
	for i, ix := range tc.Indexes {
		if len(ix) == 0 {
			return nil, fmt.Errorf("indexes[%d]: no columns", i)
		}
		for _, col := range ix {
			if _, ok := t.types[col]; !ok {
				return nil, fmt.Errorf("indexes[%d]: %q is not a column of table %s", i, col, tc.Name)
			}
		}
		t.indexes = append(t.indexes, ix)
	}
	return t, nil
}

func (c *compiled) compileAction(ac ActionConfig, src string) (*action, error) {
	a := &action{src: src}
	n := 0
	name := ""
	for _, x := range []struct {
		name string
		kind actionKind
	}{{ac.Upsert, actUpsert}, {ac.Update, actUpdate}, {ac.Delete, actDelete}} {
		if x.name != "" {
			n++
			a.kind, name = x.kind, x.name
		}
	}
	if n != 1 {
		return nil, fmt.Errorf(": want exactly one of upsert, update and delete, naming a table")
	}
	verb := [...]string{"upsert", "update", "delete"}[a.kind]
	if a.table = c.byName[name]; a.table == nil {
		return nil, fmt.Errorf(".%s: %q is not a table of this projection", verb, name)
	}
	t := a.table
	var err error
	if a.where, err = colValues(t, "where", ac.Where); err != nil {
		return nil, err
	}
	if a.set, err = colValues(t, "set", ac.Set); err != nil {
		return nil, err
	}
	if a.add, err = colValues(t, "add", ac.Add); err != nil {
		return nil, err
	}
	for _, cv := range a.add {
		if cv.typ != typeInteger && cv.typ != typeReal {
			return nil, fmt.Errorf(".add.%s: column is %s; add needs an integer or real column", cv.col, cv.typ)
		}
		if slices.ContainsFunc(a.set, func(s colValue) bool { return s.col == cv.col }) {
			return nil, fmt.Errorf(".add.%s: also in set", cv.col)
		}
	}
	switch a.kind {
	case actUpsert:
		if len(a.where) > 0 {
			return nil, fmt.Errorf(".where: an upsert finds its row by the key in set, not by where")
		}
		for _, k := range t.key {
			if !slices.ContainsFunc(a.set, func(s colValue) bool { return s.col == k }) {
				return nil, fmt.Errorf(".set: the key column %q of table %s is missing", k, t.name)
			}
		}
		for _, cv := range a.add {
			if slices.Contains(t.key, cv.col) {
				return nil, fmt.Errorf(".add.%s: a key column cannot be added to", cv.col)
			}
		}
	case actUpdate:
		if len(a.where) == 0 {
			return nil, fmt.Errorf(".where: an update needs where (e.g. the key's columns)")
		}
		if len(a.set)+len(a.add) == 0 {
			return nil, fmt.Errorf(": an update needs set or add")
		}
		a.stmt = updateSQL(t, a)
	case actDelete:
		if len(a.where) == 0 {
			return nil, fmt.Errorf(".where: a delete needs where (e.g. the key's columns)")
		}
		if len(a.set)+len(a.add) > 0 {
			return nil, fmt.Errorf(": a delete takes only where")
		}
		a.stmt = fmt.Sprintf("DELETE FROM {%s} WHERE %s", t.name, whereSQL(a.where, 1))
	}
	return a, nil
}

func colValues(t *tableSpec, what string, m map[string]any) ([]colValue, error) {
	var out []colValue
	for col, raw := range m {
		typ, ok := t.types[col]
		if !ok {
			return nil, fmt.Errorf(".%s.%s: not a column of table %s", what, col, t.name)
		}
		v, err := parseValue(raw)
		if err != nil {
			return nil, fmt.Errorf(".%s.%s: %v", what, col, err)
		}
		if v.kind == valueLiteral {
			if _, err := convert(v.lit, typ, dialectSQLite); err != nil {
				return nil, fmt.Errorf(".%s.%s: %v for a %s column", what, col, err, typ)
			}
		}
		out = append(out, colValue{col: col, typ: typ, v: v})
	}
	// Maps have no order; statements should be the same every run.
	slices.SortFunc(out, func(a, b colValue) int { return strings.Compare(a.col, b.col) })
	return out, nil
}

func quote(col string) string { return `"` + col + `"` }

func whereSQL(where []colValue, from int) string {
	var parts []string
	for i, cv := range where {
		parts = append(parts, fmt.Sprintf("%s = $%d", quote(cv.col), from+i))
	}
	return strings.Join(parts, " AND ")
}

func updateSQL(t *tableSpec, a *action) string {
	var sets []string
	n := 1
	for _, cv := range a.set {
		sets = append(sets, fmt.Sprintf("%s = $%d", quote(cv.col), n))
		n++
	}
	for _, cv := range a.add {
		sets = append(sets, fmt.Sprintf("%s = COALESCE(%s, 0) + $%d", quote(cv.col), quote(cv.col), n))
		n++
	}
	return fmt.Sprintf("UPDATE {%s} SET %s WHERE %s", t.name, strings.Join(sets, ", "), whereSQL(a.where, n))
}

// createSQL is the table's DDL on dialect d.
func (t *tableSpec) createSQL(d dialect) []string {
	var cols []string
	for _, c := range t.cols {
		def := quote(c.Name) + " " + t.types[c.Name].sqlType(d)
		if slices.Contains(t.key, c.Name) {
			def += " NOT NULL"
		}
		cols = append(cols, def)
	}
	var key []string
	for _, k := range t.key {
		key = append(key, quote(k))
	}
	cols = append(cols, "PRIMARY KEY ("+strings.Join(key, ", ")+")")
	out := []string{fmt.Sprintf("CREATE TABLE {%s} (%s)", t.name, strings.Join(cols, ", "))}
	for i, ix := range t.indexes {
		var q []string
		for _, c := range ix {
			q = append(q, quote(c))
		}
		// Short index names: PostgreSQL cuts identifiers at 63 bytes, and an as-of build's
		// table names are long already.
		out = append(out, fmt.Sprintf("CREATE INDEX {%s}_i%d ON {%s} (%s)", t.name, i+1, t.name, strings.Join(q, ", ")))
	}
	return out
}
