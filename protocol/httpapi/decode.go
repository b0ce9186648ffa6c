package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/verity-dev/verity"
)

// The request decoders read bytes straight off the network: they accept exactly what
// docs/http-api.md describes, reject everything else with an Invalid error that names the
// bad value, and never touch the store. FuzzDecode* hold them to that.

// eventIn is an event as a writer sends it.
type eventIn struct {
	ID             string          `json:"id"`
	Type           string          `json:"type"`
	ContentType    string          `json:"contentType"`
	Data           json.RawMessage `json:"data"`
	DataBase64     *string         `json:"dataBase64"`
	Metadata       json.RawMessage `json:"metadata"`
	MetadataBase64 *string         `json:"metadataBase64"`
}

func (in *eventIn) isZero() bool {
	return in.ID == "" && in.Type == "" && in.ContentType == "" && in.Data == nil &&
		in.DataBase64 == nil && in.Metadata == nil && in.MetadataBase64 == nil
}

// appendBody is every shape of an append's body that is a JSON object: one event, or a
// batch under "events".
type appendBody struct {
	eventIn
	Events           *[]eventIn      `json:"events"`
	ExpectedRevision json.RawMessage `json:"expectedRevision"`
}

// appendRequest is a decoded append to one stream.
type appendRequest struct {
	Events []verity.EventData
	// Expected is the body's expected revision, nil when it has none.
	Expected *verity.ExpectedRevision
}

// decodeAppend decodes the body of POST /streams/{stream}: one event object, a JSON array
// of events, or {"expectedRevision"?: ..., "events": [...]}.
func decodeAppend(body []byte) (appendRequest, error) {
	const op = "append"
	var req appendRequest
	var ins []eventIn
	switch firstByte(body) {
	case '[':
		if err := decodeStrict(op, body, &ins); err != nil {
			return req, err
		}
	case '{':
		var b appendBody
		if err := decodeStrict(op, body, &b); err != nil {
			return req, err
		}
		if b.Events != nil {
			if !b.eventIn.isZero() {
				return req, verity.Errorf(verity.Invalid, op, `the body has "events" and also fields of a single event (such as "type"); send either one event object or {"events": [...]}`)
			}
			ins = *b.Events
		} else {
			ins = []eventIn{b.eventIn}
		}
		if b.ExpectedRevision != nil {
			exp, err := expectedFromJSON(op, "expectedRevision", b.ExpectedRevision)
			if err != nil {
				return req, err
			}
			req.Expected = &exp
		}
	case 0:
		return req, verity.Errorf(verity.Invalid, op, "the request body is empty; send an event object, a JSON array of events or {\"events\": [...]}")
	default:
		return req, verity.Errorf(verity.Invalid, op, "the request body must be an event object, a JSON array of events or {\"events\": [...]}, not %s", jsonKind(body))
	}
	if len(ins) == 0 {
		return req, verity.Errorf(verity.Invalid, op, "no events to append; send at least one")
	}
	events, err := toEvents(op, "", ins)
	if err != nil {
		return req, err
	}
	req.Events = events
	return req, nil
}

// multiBody is the body of POST /streams.
type multiBody struct {
	Appends []struct {
		Stream           string          `json:"stream"`
		ExpectedRevision json.RawMessage `json:"expectedRevision"`
		Events           []eventIn       `json:"events"`
	} `json:"appends"`
}

// decodeMultiAppend decodes the body of POST /streams: {"appends": [{"stream": ...,
// "expectedRevision"?: ..., "events": [...]}, ...]}. An entry may have no events: it is
// then a condition on that stream's revision only.
func decodeMultiAppend(body []byte) ([]verity.StreamAppend, error) {
	const op = "append"
	if c := firstByte(body); c != '{' {
		if c == 0 {
			return nil, verity.Errorf(verity.Invalid, op, `the request body is empty; send {"appends": [{"stream": ..., "events": [...]}]}`)
		}
		return nil, verity.Errorf(verity.Invalid, op, `the request body must be an object {"appends": [...]}, not %s`, jsonKind(body))
	}
	var b multiBody
	if err := decodeStrict(op, body, &b); err != nil {
		return nil, err
	}
	if len(b.Appends) == 0 {
		return nil, verity.Errorf(verity.Invalid, op, `"appends" is missing or empty; list at least one {"stream": ..., "events": [...]}`)
	}
	out := make([]verity.StreamAppend, len(b.Appends))
	seen := make(map[string]int, len(b.Appends))
	for i, a := range b.Appends {
		where := fmt.Sprintf("appends[%d]", i)
		if a.Stream == "" {
			return nil, verity.Errorf(verity.Invalid, op, `%s: "stream" is missing or empty`, where)
		}
		if j, dup := seen[a.Stream]; dup {
			return nil, &verity.Error{Kind: verity.Invalid, Op: op, Stream: a.Stream,
				Message: fmt.Sprintf("%s names the same stream as appends[%d]; put all of a stream's events in one entry", where, j)}
		}
		seen[a.Stream] = i
		out[i].Stream = a.Stream
		if a.ExpectedRevision != nil {
			exp, err := expectedFromJSON(op, where+".expectedRevision", a.ExpectedRevision)
			if err != nil {
				return nil, err
			}
			out[i].Expected = exp
		}
		events, err := toEvents(op, where+": ", a.Events)
		if err != nil {
			if e, ok := err.(*verity.Error); ok {
				e.Stream = a.Stream
			}
			return nil, err
		}
		out[i].Events = events
	}
	return out, nil
}

// toEvents checks and converts events as sent; where prefixes error messages.
func toEvents(op, where string, ins []eventIn) ([]verity.EventData, error) {
	out := make([]verity.EventData, len(ins))
	for i := range ins {
		ev, err := ins[i].toEventData()
		if err != nil {
			return nil, verity.Errorf(verity.Invalid, op, "%sevent %d: %s", where, i, err)
		}
		out[i] = ev
	}
	return out, nil
}

func (in *eventIn) toEventData() (verity.EventData, error) {
	var ev verity.EventData
	if in.Type == "" {
		return ev, errors.New(`"type" is missing or empty; name what happened, e.g. "OrderPlaced"`)
	}
	ev.Type = in.Type
	ev.ContentType = in.ContentType
	if in.ID != "" {
		id, err := uuid.Parse(in.ID)
		if err != nil {
			return ev, fmt.Errorf("id %q is not a UUID (e.g. %q); leave it out to have one chosen", in.ID, "0b3f2c1e-8d2a-4c6e-9f51-3a7d2e4b5c60")
		}
		ev.ID = id
	}
	data, hasData := rawValue(in.Data)
	switch {
	case hasData && in.DataBase64 != nil:
		return ev, errors.New(`has both "data" and "dataBase64"; send one`)
	case hasData:
		if !isJSONContentType(in.ContentType) {
			return ev, fmt.Errorf(`"data" holds JSON but contentType is %q; send the bytes base64-encoded in "dataBase64" instead`, in.ContentType)
		}
		ev.Data = data
	case in.DataBase64 != nil:
		b, err := base64.StdEncoding.DecodeString(*in.DataBase64)
		if err != nil {
			return ev, fmt.Errorf(`"dataBase64" is not standard padded base64: %v`, err)
		}
		ev.Data = b
	}
	meta, hasMeta := rawValue(in.Metadata)
	switch {
	case hasMeta && in.MetadataBase64 != nil:
		return ev, errors.New(`has both "metadata" and "metadataBase64"; send one`)
	case hasMeta:
		ev.Metadata = meta
	case in.MetadataBase64 != nil:
		b, err := base64.StdEncoding.DecodeString(*in.MetadataBase64)
		if err != nil {
			return ev, fmt.Errorf(`"metadataBase64" is not standard padded base64: %v`, err)
		}
		ev.Metadata = b
	}
	return ev, nil
}

// rawValue returns a JSON value as sent, treating an absent value and null alike.
func rawValue(m json.RawMessage) ([]byte, bool) {
	if m == nil || bytes.Equal(bytes.TrimSpace(m), []byte("null")) {
		return nil, false
	}
	return []byte(m), true
}

// isJSONContentType reports whether event data of content type ct is JSON: empty (the
// default), application/json, or any type with a +json suffix.
func isJSONContentType(ct string) bool {
	if ct == "" {
		return true
	}
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == verity.ContentTypeJSON || strings.HasSuffix(mt, "+json")
}

// maxAgeSeconds is the longest $maxAge a time.Duration holds.
const maxAgeSeconds = uint64(math.MaxInt64 / int64(time.Second))

// decodeMetadata decodes the body of PUT /streams/{stream}/metadata: a KurrentDB stream
// metadata object. Unlike KurrentDB, a "$" key it does not know is rejected: a misspelt
// "$maxcount" would otherwise be silently ignored.
func decodeMetadata(body []byte) (verity.StreamMetadata, error) {
	const op = "set metadata"
	var meta verity.StreamMetadata
	if c := firstByte(body); c != '{' {
		if c == 0 {
			return meta, verity.Errorf(verity.Invalid, op, `the request body is empty; send a metadata object such as {"$maxCount": 100}`)
		}
		return meta, verity.Errorf(verity.Invalid, op, `the request body must be a metadata object such as {"$maxCount": 100}, not %s`, jsonKind(body))
	}
	var raw map[string]json.RawMessage
	if err := decodeStrict(op, body, &raw); err != nil {
		return meta, err
	}
	for k, v := range raw {
		if !strings.HasPrefix(k, "$") {
			continue
		}
		switch k {
		case "$maxAge":
			// The root decoder multiplies by time.Second without checking, so a huge value
			// would wrap around into a short (or negative) age.
			var secs uint64
			if json.Unmarshal(v, &secs) == nil && secs > maxAgeSeconds {
				return meta, verity.Errorf(verity.Invalid, op, `"$maxAge" %d is over the most, %d seconds`, secs, maxAgeSeconds)
			}
		case "$maxCount", "$tb":
		case "$acl":
			var acl map[string]json.RawMessage
			if err := json.Unmarshal(v, &acl); err != nil || acl == nil {
				return meta, verity.Errorf(verity.Invalid, op, `"$acl" must be an object such as {"$r": ["reader"], "$w": "writer"}, not %s`, jsonKind(v))
			}
			for ak := range acl {
				switch ak {
				case "$r", "$w", "$d", "$mr", "$mw":
				default:
					return meta, verity.Errorf(verity.Invalid, op, `"$acl" has unknown key %q; the keys are $r, $w, $d, $mr and $mw`, ak)
				}
			}
		default:
			return meta, verity.Errorf(verity.Invalid, op, `unknown metadata key %q; the system keys are $maxAge, $maxCount, $tb and $acl, and custom keys must not start with "$"`, k)
		}
	}
	if err := json.Unmarshal(body, &meta); err != nil {
		return verity.StreamMetadata{}, verity.Errorf(verity.Invalid, op, "%v", err)
	}
	return meta, nil
}

// parseExpected parses an expected revision as written in the Expected-Revision header or
// a query: any, no-stream, stream-exists or a revision number.
func parseExpected(op, what, s string) (verity.ExpectedRevision, error) {
	switch s {
	case "any":
		return verity.Any(), nil
	case "no-stream":
		return verity.NoStream(), nil
	case "stream-exists":
		return verity.StreamExists(), nil
	}
	rev, err := strconv.ParseUint(s, 10, 64)
	if err != nil || rev > verity.TombstoneRevision {
		return verity.ExpectedRevision{}, verity.Errorf(verity.Invalid, op, "%s %q: want any, no-stream, stream-exists or a revision number", what, s)
	}
	return verity.Exact(rev), nil
}

// expectedFromJSON parses an expected revision given in a body: one of the strings
// parseExpected takes, or a JSON number.
func expectedFromJSON(op, what string, raw json.RawMessage) (verity.ExpectedRevision, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return verity.ExpectedRevision{}, verity.Errorf(verity.Invalid, op, "%s: %v", what, err)
		}
		return parseExpected(op, what, s)
	}
	return parseExpected(op, what, string(raw))
}

// expectedOf combines the Expected-Revision header with the body's expected revision: either
// may be given, both only if they agree; neither means any.
func expectedOf(op, stream string, r *http.Request, body *verity.ExpectedRevision) (verity.ExpectedRevision, error) {
	h := r.Header.Values("Expected-Revision")
	if len(h) > 1 {
		return verity.ExpectedRevision{}, &verity.Error{Kind: verity.Invalid, Op: op, Stream: stream, Message: "more than one Expected-Revision header; send one"}
	}
	if len(h) == 0 {
		if body != nil {
			return *body, nil
		}
		return verity.Any(), nil
	}
	exp, err := parseExpected(op, "Expected-Revision header", strings.TrimSpace(h[0]))
	if err != nil {
		err.(*verity.Error).Stream = stream
		return exp, err
	}
	if body != nil && *body != exp {
		return exp, &verity.Error{Kind: verity.Invalid, Op: op, Stream: stream,
			Message: fmt.Sprintf("the Expected-Revision header (%s) and the body's expectedRevision (%s) disagree; send one", exp, *body)}
	}
	return exp, nil
}

// decodeStrict decodes one JSON value into v, rejecting unknown fields and anything after
// the value. A body over the size limit comes back as the reader's *http.MaxBytesError.
func decodeStrict(op string, body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return verity.Errorf(verity.Invalid, op, "%s", describeJSONError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return verity.Errorf(verity.Invalid, op, "the request body has more after its JSON value (at byte %d); send exactly one JSON value", dec.InputOffset())
	}
	return nil
}

func describeJSONError(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("the request body is not valid JSON: %v (at byte %d)", syntax, syntax.Offset)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return fmt.Sprintf("the request body is a JSON %s where %s was expected", typ.Value, typ.Type)
		}
		// An event's fields are promoted from an embedded struct whose name is no business
		// of the client's.
		field := strings.NewReplacer("eventIn.", "", "settingsJSON.", "").Replace(typ.Field)
		return fmt.Sprintf("field %q is a JSON %s; want %s", field, typ.Value, jsonTypeName(typ.Type.String()))
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "the request body ends in the middle of its JSON value"
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if strings.HasPrefix(msg, "unknown field ") {
		return msg + " in the request body; check its spelling against docs/http-api.md"
	}
	return "the request body: " + msg
}

// jsonTypeName names a Go type as a JSON type for messages.
func jsonTypeName(goType string) string {
	switch {
	case goType == "string" || goType == "*string":
		return "a string"
	case strings.HasPrefix(goType, "[]") || strings.HasPrefix(goType, "*[]"):
		return "an array"
	case strings.HasPrefix(goType, "int") || strings.HasPrefix(goType, "uint"):
		return "a number"
	}
	return "an object"
}

// firstByte returns the first byte of body that is not JSON white space, or 0.
func firstByte(body []byte) byte {
	b := bytes.TrimLeft(body, " \t\r\n")
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// jsonKind names what kind of JSON value body starts, for messages.
func jsonKind(body []byte) string {
	switch c := firstByte(body); {
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	case c == '"':
		return "a string"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	case c == '-' || (c >= '0' && c <= '9'):
		return "a number"
	}
	return "something that is not JSON"
}

// mediaTypeError is a request body of a type the API does not read (415).
type mediaTypeError struct{ got string }

func (e *mediaTypeError) Error() string {
	return fmt.Sprintf("Content-Type %q is not supported; send JSON with Content-Type: application/json (curl: --json, or -H 'Content-Type: application/json')", e.got)
}

// readBody checks that a request body is JSON and reads it whole, at most max bytes. A
// missing Content-Type is taken as JSON.
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, &mediaTypeError{got: ct}
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, err
		}
		return nil, verity.Errorf(verity.Invalid, "read request", "the request body could not be read: %v", err)
	}
	return body, nil
}
