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
	"mime"
	"os"

	"github.com/google/uuid"

	"github.com/verity-dev/verity"
)

const appendAbout = `
Append events to STREAM, all or nothing; the command returns once they are durable.

Without --batch it appends one event whose data is DATA, or stdin when DATA is omitted or "-".
With --batch it reads JSON lines from stdin, one event per line, and appends them as one
atomic append:
  {"type": "OrderPlaced", "data": {"total": 42}, "metadata": {"user": "ann"}, "id": "UUID"}
"id" and "metadata" are optional. A line may set "contentType"; when it is not JSON, "data" is
a base64 string. The lines 'verity read --json' prints are valid input.

Retrying an append with the same event ids (--id, or "id" per line) writes nothing new and
prints the original result.
` + storeAbout + `

Examples:
  verity append --data ./verity-data --type OrderPlaced order-1 '{"total":42}'
  verity append --server http://127.0.0.1:2113 --type OrderPlaced order-1 '{"total":42}'
  echo '{"total":42}' | verity append --type OrderPlaced --expected no-stream order-2
  printf '%s\n' '{"type":"A","data":{}}' '{"type":"B","data":{}}' | verity append --batch order-3
`

// runAppend is `verity append`; it reads event data from the process's stdin.
func runAppend(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return appendCommand(ctx, args, os.Stdin, stdout, stderr)
}

func appendCommand(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) (err error) {
	fs := newFlagSet("append", "verity append [flags] STREAM [DATA]", appendAbout)
	stores := addStoreFlags(fs)
	var expected expectedFlag
	fs.Var(&expected, "expected", "append only if the stream is in this state: any, no-stream, exists,\nor at revision N (its last event's); otherwise fail with a conflict (`COND`)")
	eventType := fs.String("type", "", "the event's `TYPE`, e.g. OrderPlaced; required unless --batch,\nwhere it is the type of lines that have none")
	id := fs.String("id", "", "the event's `UUID`, its idempotency key (default a random one; not with --batch)")
	metadata := fs.String("metadata", "", "the event's metadata, a `JSON` object; with --batch, that of lines that have none")
	contentType := fs.String("content-type", verity.ContentTypeJSON, "the `MIME` type of the data; JSON data must be well formed")
	batch := fs.Bool("batch", false, "read one event per line from stdin as JSON and append them atomically")
	asJSON := fs.Bool("json", false, "print the result as a JSON object")
	pos, err := fs.parse(args, stdout)
	if err != nil {
		return err
	}

	if len(pos) == 0 {
		return usagef("append", "missing STREAM")
	}
	stream := pos[0]
	if *metadata != "" && !json.Valid([]byte(*metadata)) {
		return usagef("append", "--metadata %q is not valid JSON", *metadata)
	}
	var events []verity.EventData
	if *batch {
		switch {
		case len(pos) > 1:
			return usagef("append", "--batch reads the events from stdin: unexpected argument %q", pos[1])
		case *id != "":
			return usagef("append", "--id cannot be used with --batch: give each line its own \"id\"")
		}
		events, err = readBatch(stdin, *eventType, *contentType, []byte(*metadata))
		if err != nil {
			return err
		}
	} else {
		if len(pos) > 2 {
			return usagef("append", "too many arguments: want STREAM [DATA], got %d arguments", len(pos))
		}
		if *eventType == "" {
			return usagef("append", "missing --type: every event needs a type, e.g. --type OrderPlaced")
		}
		e := verity.EventData{Type: *eventType, ContentType: *contentType}
		if *id != "" {
			if e.ID, err = uuid.Parse(*id); err != nil {
				return usagef("append", "--id %q is not a UUID", *id)
			}
		}
		if *metadata != "" {
			e.Metadata = []byte(*metadata)
		}
		if len(pos) == 2 && pos[1] != "-" {
			e.Data = []byte(pos[1])
		} else if e.Data, err = io.ReadAll(stdin); err != nil {
			return fmt.Errorf("reading the event's data from stdin: %w", err)
		}
		if isJSON(e.ContentType) {
			// A trailing newline from echo is no part of the JSON value.
			e.Data = bytes.TrimSpace(e.Data)
		}
		events = []verity.EventData{e}
	}

	st, err := stores.open(true, stderr)
	if err != nil {
		return err
	}
	defer func() { err = st.finish(err) }()

	res, err := st.Append(ctx, stream, expected.v, events...)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(appendResultJSON{
			Stream: stream, Events: len(events), Revision: res.Revision, Position: res.Position,
		})
	}
	_, err = fmt.Fprintf(stdout, "appended %s to %s: revision %d, position %d\n",
		plural(len(events), "event"), stream, res.Revision, res.Position)
	return err
}

type appendResultJSON struct {
	Stream   string `json:"stream"`
	Events   int    `json:"events"`
	Revision uint64 `json:"revision"`
	Position uint64 `json:"position"`
}

// batchLine is one line of `verity append --batch`; its field names are those of `verity
// read --json`, so that read's output can be appended again.
type batchLine struct {
	ID          string          `json:"id"`
	Type        string          `json:"type"`
	ContentType string          `json:"contentType"`
	Data        json.RawMessage `json:"data"`
	Metadata    json.RawMessage `json:"metadata"`
}

// maxBatchLine bounds one line of --batch input; the engine refuses far smaller events.
const maxBatchLine = 64 << 20

// readBatch reads the events of --batch, one JSON object per line; blank lines are skipped.
func readBatch(r io.Reader, defaultType, defaultContentType string, defaultMetadata []byte) ([]verity.EventData, error) {
	var events []verity.EventData
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxBatchLine)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var l batchLine
		if err := json.Unmarshal(line, &l); err != nil {
			return nil, fmt.Errorf("stdin line %d: not a JSON object: %v", n, err)
		}
		e := verity.EventData{Type: l.Type, ContentType: l.ContentType}
		if e.Type == "" {
			e.Type = defaultType
		}
		if e.Type == "" {
			return nil, fmt.Errorf("stdin line %d: missing \"type\" (or give a default with --type)", n)
		}
		if e.ContentType == "" {
			e.ContentType = defaultContentType
		}
		if l.ID != "" {
			id, err := uuid.Parse(l.ID)
			if err != nil {
				return nil, fmt.Errorf("stdin line %d: \"id\" %q is not a UUID", n, l.ID)
			}
			e.ID = id
		}
		if isJSON(e.ContentType) {
			e.Data = append([]byte(nil), l.Data...)
		} else {
			var s string
			if err := json.Unmarshal(l.Data, &s); err != nil {
				return nil, fmt.Errorf("stdin line %d: \"data\" of content type %q must be a base64 string", n, e.ContentType)
			}
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return nil, fmt.Errorf("stdin line %d: \"data\" is not valid base64: %v", n, err)
			}
			e.Data = b
		}
		switch {
		case len(l.Metadata) > 0 && string(l.Metadata) != "null":
			e.Metadata = append([]byte(nil), l.Metadata...)
		case len(defaultMetadata) > 0:
			e.Metadata = defaultMetadata
		}
		events = append(events, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading events from stdin: %w", err)
	}
	if len(events) == 0 {
		return nil, errors.New("--batch: no events on stdin (want one JSON object per line)")
	}
	return events, nil
}

// isJSON reports whether a content type is JSON (empty means JSON).
func isJSON(contentType string) bool {
	if contentType == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == verity.ContentTypeJSON
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
