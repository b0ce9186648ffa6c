package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/internal/httpjson"
)

// StatusOf returns the HTTP status that answers an error of kind k (see
// verity.ErrorKind.HTTPStatus).
func StatusOf(k verity.ErrorKind) int { return k.HTTPStatus() }

// errorBody is the JSON of every error response: {"error": {...}}.
type errorBody struct {
	Error errorJSON `json:"error"`
}

type errorJSON struct {
	// Kind is the verity.ErrorKind's name: "invalid", "conflict", ...
	Kind    string `json:"kind"`
	Message string `json:"message"`
	Op      string `json:"op,omitempty"`
	Stream  string `json:"stream,omitempty"`
	// Expected and Actual are set on a wrong expected revision: "any", "no-stream",
	// "stream-exists" or a number; Actual is "no-stream" or a number.
	Expected any `json:"expected,omitempty"`
	Actual   any `json:"actual,omitempty"`
}

// errorJSONOf describes err for a client. Internal errors are described only as such: their
// detail goes to the log, not to a caller who can do nothing about it.
func errorJSONOf(err error) errorJSON {
	var e *verity.Error
	if !errors.As(err, &e) {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return errorJSON{Kind: verity.Unavailable.String(), Message: "the request ended before it was answered: " + err.Error()}
		}
		return errorJSON{Kind: verity.Internal.String(), Message: "internal error; the server log has the details"}
	}
	// An unknown kind's name is "internal", so this also covers kinds newer than this code.
	if verity.ParseErrorKind(e.Kind.String()) == verity.Internal {
		return errorJSON{Kind: verity.Internal.String(), Message: "internal error; the server log has the details"}
	}
	out := errorJSON{Kind: e.Kind.String(), Message: e.Error(), Op: e.Op, Stream: e.Stream}
	if e.Expected != nil {
		out.Expected = expectedJSON(*e.Expected)
	}
	if e.Actual != nil {
		if e.Actual.Exists {
			out.Actual = e.Actual.Revision
		} else {
			out.Actual = "no-stream"
		}
	}
	return out
}

// expectedJSON writes an expected revision as the API reads it.
func expectedJSON(e verity.ExpectedRevision) any {
	if rev, ok := e.Revision(); ok {
		return rev
	}
	switch {
	case e.IsNoStream():
		return "no-stream"
	case e.IsStreamExists():
		return "stream-exists"
	}
	return "any"
}

// writeError answers a request with err as JSON and the status of its kind.
func (h *handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		writeHTTPError(w, http.StatusRequestEntityTooLarge, verity.Invalid.String(),
			"request body is over the limit of "+strconv.FormatInt(tooBig.Limit, 10)+" bytes; send fewer or smaller events per request")
		return
	}
	var unsupported *mediaTypeError
	if errors.As(err, &unsupported) {
		writeHTTPError(w, http.StatusUnsupportedMediaType, verity.Invalid.String(), unsupported.Error())
		return
	}
	body := errorJSONOf(err)
	kind := verity.ParseErrorKind(body.Kind)
	status := StatusOf(kind)
	if kind == verity.Internal {
		h.log.ErrorContext(r.Context(), "http api: internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	switch kind {
	case verity.Unauthenticated:
		w.Header().Set("WWW-Authenticate", `Basic realm="verity"`)
	case verity.ResourceExhausted, verity.Unavailable:
		w.Header().Set("Retry-After", "1")
	}
	httpjson.Write(w, status, errorBody{Error: body})
}

// writeHTTPError answers with an error that has no verity.Error behind it (405, 413, 415).
func writeHTTPError(w http.ResponseWriter, status int, kind, message string) {
	httpjson.Write(w, status, errorBody{Error: errorJSON{Kind: kind, Message: message}})
}
