// Package httpjson writes JSON answers the way every Verity HTTP API does: compact, one
// line, not HTML-escaped, and encoded in memory first so that a value that cannot be
// encoded is a clean 500 rather than half an answer.
package httpjson

import (
	"bytes"
	"encoding/json"
	"net/http"
)

// Write answers with v as JSON and status.
func Write(w http.ResponseWriter, status int, v any) {
	b, err := Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"kind":"internal","message":"internal error: the response could not be encoded"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// Marshal encodes v as compact JSON on one line, without escaping &, < and > as
// encoding/json does by default: the answers are not HTML, and "\u0026" in a next URL reads
// badly in a terminal.
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
