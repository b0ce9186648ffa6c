package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/verity-dev/verity"
)

const readAbout = `
Print the events of STREAM in revision order, or of the whole log in position order when
STREAM is omitted or "$all". The filter flags select events of the log and cannot be used
with a stream.

Each event is printed on one line:
  POSITION STREAM@REVISION TYPE TIME DATA
where JSON data is printed compact, text data quoted and binary data as base64:... With --json
each event is a JSON object on its own line, with every field of the event; its data and
metadata are inlined when JSON, base64 strings otherwise.
` + storeAbout + `

Examples:
  verity read --data ./verity-data order-1
  verity read --server http://127.0.0.1:2113 order-1
  verity read --backwards --limit 10
  verity read --category order --type OrderPlaced,OrderShipped --json
`

func runRead(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := newFlagSet("read", "verity read [flags] [STREAM]", readAbout)
	stores := addStoreFlags(fs)
	backwards := fs.Bool("backwards", false, "read from the newest event to the oldest")
	var from fromFlag
	fs.Var(&from, "from", "where to start, inclusive: `start|end|N`, N being a revision (stream)\nor a position ($all) (default start, or end with --backwards)")
	limit := fs.Int("limit", 0, "print at most `N` events; 0 means all")
	asJSON := fs.Bool("json", false, "print each event as a JSON object on its own line")
	filters := addFilterFlags(fs)
	pos, err := fs.parse(args, stdout)
	if err != nil {
		return err
	}
	stream, err := streamArg("read", pos)
	if err != nil {
		return err
	}
	if *limit < 0 {
		return usagef("read", "--limit %d is negative", *limit)
	}
	filter, err := filters.check("read", stream, from)
	if err != nil {
		return err
	}

	st, err := stores.open(false, stderr)
	if err != nil {
		return err
	}
	defer func() { err = st.finish(err) }()

	w := bufio.NewWriter(stdout)
	defer func() { err = errors.Join(err, w.Flush()) }()
	p := newEventPrinter(w, *asJSON)
	dir := verity.Forwards
	if *backwards {
		dir = verity.Backwards
	}
	if stream != "" {
		return readStream(ctx, st, stream, dir, from, *limit, p.print)
	}
	return readAll(ctx, st, dir, from, filters.since.t, filter, *limit, p.print)
}

// streamArg returns the optional STREAM argument of read and tail; "" stands for $all.
func streamArg(cmd string, pos []string) (string, error) {
	switch {
	case len(pos) > 1:
		return "", usagef(cmd, "too many arguments: want at most one STREAM, got %q", pos)
	case len(pos) == 0 || pos[0] == verity.AllStream:
		return "", nil
	}
	return pos[0], nil
}

// readStream pages through a stream, passing at most limit events (0: all) to emit.
func readStream(ctx context.Context, st verity.Store, stream string, dir verity.Direction, from fromFlag, limit int, emit func(verity.RecordedEvent) error) error {
	opts := verity.ReadStreamOptions{Direction: dir}
	switch {
	case from.end || (!from.set && dir == verity.Backwards):
		opts.FromEnd = true
	case from.set && !from.start:
		opts.From = from.n
	}
	for n, first := 0, true; limit == 0 || n < limit; first = false {
		opts.Limit = pageSize(limit, n)
		events, err := st.ReadStream(ctx, stream, opts)
		if err != nil {
			if !first && errors.Is(err, verity.ErrNotFound) {
				return nil // deleted while we read
			}
			return err
		}
		for _, e := range events {
			if err := emit(e); err != nil {
				return err
			}
		}
		n += len(events)
		if len(events) < opts.Limit {
			return nil
		}
		last := events[len(events)-1].Revision
		opts.FromEnd = false
		if dir == verity.Forwards {
			opts.From = last + 1
		} else if last == 0 {
			return nil
		} else {
			opts.From = last - 1
		}
	}
	return nil
}

// readAll pages through the log, passing at most limit events (0: all) that pass filter to
// emit. A non-zero since overrides from.
func readAll(ctx context.Context, st verity.Store, dir verity.Direction, from fromFlag, since time.Time, filter verity.Filter, limit int, emit func(verity.RecordedEvent) error) error {
	opts := verity.ReadAllOptions{Direction: dir, Filter: filter, FromTime: since}
	switch {
	case !since.IsZero():
	case from.end || (!from.set && dir == verity.Backwards):
		opts.FromEnd = true
	case from.set && !from.start:
		opts.From = from.n
	}
	for n := 0; limit == 0 || n < limit; {
		opts.Limit = pageSize(limit, n)
		events, err := st.ReadAll(ctx, opts)
		if err != nil {
			return err
		}
		// Only an empty page means the end: a filtered read may return fewer events than
		// asked for before it.
		if len(events) == 0 {
			return nil
		}
		for _, e := range events {
			if err := emit(e); err != nil {
				return err
			}
		}
		n += len(events)
		last := events[len(events)-1].Position
		opts.FromEnd, opts.FromTime = false, time.Time{}
		if dir == verity.Forwards {
			opts.From = last + 1
		} else if last <= 1 {
			return nil
		} else {
			opts.From = last - 1
		}
	}
	return nil
}

// pageSize is the limit of the next read when n of limit events (0: no limit) were read.
func pageSize(limit, n int) int {
	if limit == 0 || limit-n > verity.DefaultReadLimit {
		return verity.DefaultReadLimit
	}
	return limit - n
}

// filterFlags are the flags that select events of the log, shared by read and tail.
type filterFlags struct {
	categories, types, typePrefixes, streamPrefixes listFlag
	streamRegexp, typeRegexp                        string
	excludeSystem                                   bool
	since                                           timeFlag
}

func addFilterFlags(fs *flagSet) *filterFlags {
	f := &filterFlags{}
	fs.Var(&f.categories, "category", "only events of streams in this `CATEGORY` (the stream name before its\nfirst '-'); repeatable or comma-separated")
	fs.Var(&f.types, "type", "only events of this `TYPE`; repeatable or comma-separated")
	fs.Var(&f.typePrefixes, "type-prefix", "only events whose type starts with `PREFIX`; repeatable or comma-separated")
	fs.Var(&f.streamPrefixes, "stream-prefix", "only events of streams whose name starts with `PREFIX`; repeatable or\ncomma-separated")
	fs.StringVar(&f.streamRegexp, "stream-regexp", "", "only events of streams whose name matches `RE` (RE2 syntax)")
	fs.StringVar(&f.typeRegexp, "type-regexp", "", "only events whose type matches `RE` (RE2 syntax)")
	fs.BoolVar(&f.excludeSystem, "exclude-system", false, "leave out system events (type starting with '$')")
	fs.Var(&f.since, "since", "start at the first event committed at or after `TIME` (RFC 3339, e.g.\n2025-01-31T09:00:00Z)")
	return f
}

func (f *filterFlags) filter() verity.Filter {
	return verity.Filter{
		StreamPrefixes:      f.streamPrefixes,
		Categories:          f.categories,
		StreamRegexp:        f.streamRegexp,
		EventTypes:          f.types,
		EventTypePrefixes:   f.typePrefixes,
		EventTypeRegexp:     f.typeRegexp,
		ExcludeSystemEvents: f.excludeSystem,
	}
}

// check returns the filter the flags ask for, or a usage error when they are used with a
// stream, --since is combined with --from, or a regular expression does not compile.
func (f *filterFlags) check(cmd, stream string, from fromFlag) (verity.Filter, error) {
	filter := f.filter()
	if stream != "" && (!filter.IsZero() || !f.since.t.IsZero()) {
		return filter, usagef(cmd, "the filter flags and --since apply to $all only, not to stream %q", stream)
	}
	if !f.since.t.IsZero() && from.set {
		return filter, usagef(cmd, "--since and --from cannot be used together")
	}
	if _, err := filter.Compile(); err != nil {
		return filter, &usageError{cmd: cmd, err: err}
	}
	return filter, nil
}

// timeFormat is how events' commit times are printed: UTC, fixed width.
const timeFormat = "2006-01-02T15:04:05.000000Z07:00"

// eventPrinter prints events as text lines or JSON lines.
type eventPrinter struct {
	w   io.Writer
	enc *json.Encoder // nil for text
}

func newEventPrinter(w io.Writer, asJSON bool) *eventPrinter {
	p := &eventPrinter{w: w}
	if asJSON {
		p.enc = json.NewEncoder(w)
		p.enc.SetEscapeHTML(false)
	}
	return p
}

func (p *eventPrinter) print(e verity.RecordedEvent) error {
	if p.enc != nil {
		return p.enc.Encode(toEventJSON(e))
	}
	_, err := fmt.Fprintf(p.w, "%d %s@%d %s %s %s\n", e.Position, e.Stream, e.Revision, e.Type,
		e.Created.UTC().Format(timeFormat), dataText(e))
	return err
}

// dataText renders event data on one line: compact JSON, a quoted string for text, or
// base64:... for anything else.
func dataText(e verity.RecordedEvent) string {
	if isJSON(e.ContentType) {
		var b bytes.Buffer
		if json.Compact(&b, e.Data) == nil {
			return b.String()
		}
	}
	if utf8.Valid(e.Data) && isPrintable(e.Data) {
		return strconv.Quote(string(e.Data))
	}
	return "base64:" + base64.StdEncoding.EncodeToString(e.Data)
}

func isPrintable(b []byte) bool {
	for _, r := range string(b) {
		if !unicode.IsPrint(r) && !unicode.IsSpace(r) {
			return false
		}
	}
	return true
}

// eventJSON is an event as `verity read --json` prints it; `verity append --batch` reads
// the same field names.
type eventJSON struct {
	Position    uint64          `json:"position"`
	Stream      string          `json:"stream"`
	Revision    uint64          `json:"revision"`
	ID          uuid.UUID       `json:"id"`
	Type        string          `json:"type"`
	ContentType string          `json:"contentType"`
	Created     time.Time       `json:"created"`
	Data        json.RawMessage `json:"data"`
	Metadata    json.RawMessage `json:"metadata"`
}

func toEventJSON(e verity.RecordedEvent) eventJSON {
	ct := e.ContentType
	if ct == "" {
		ct = verity.ContentTypeJSON
	}
	j := eventJSON{
		Position: e.Position, Stream: e.Stream, Revision: e.Revision, ID: e.ID, Type: e.Type,
		ContentType: ct, Created: e.Created.UTC(), Metadata: json.RawMessage("null"),
	}
	if isJSON(ct) && json.Valid(e.Data) {
		j.Data = e.Data
	} else {
		j.Data = base64JSON(e.Data)
	}
	if len(e.Metadata) > 0 {
		if json.Valid(e.Metadata) {
			j.Metadata = e.Metadata
		} else {
			j.Metadata = base64JSON(e.Metadata)
		}
	}
	return j
}

// base64JSON returns b as a JSON string holding its standard base64 encoding.
func base64JSON(b []byte) json.RawMessage {
	return json.RawMessage(strconv.Quote(base64.StdEncoding.EncodeToString(b)))
}
