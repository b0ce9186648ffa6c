package service

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"

	"github.com/verity-dev/verity"
)

// MaxBody bounds a request body.
const MaxBody = 1 << 20

// WriteJSON answers v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// ErrorBody is the JSON body of an error answer.
type ErrorBody struct {
	Error string `json:"error"`
	Kind  string `json:"kind"`
}

// WriteError answers err with the HTTP status of its kind. An error of no known kind is
// Internal: it is logged and its text is not shown.
func WriteError(w http.ResponseWriter, log *slog.Logger, err error) {
	kind := verity.KindOf(err)
	msg := err.Error()
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		kind, msg = verity.Unavailable, "request cancelled or timed out"
	case kind == verity.Internal:
		log.Error("request failed", "err", err)
		msg = "internal error"
	}
	WriteJSON(w, kind.HTTPStatus(), ErrorBody{Error: msg, Kind: kind.String()})
}

// ReadJSON decodes a request's JSON body into v, refusing unknown fields, trailing data
// and bodies over MaxBody, with an Invalid error that says what was wrong.
func ReadJSON(r *http.Request, op string, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, MaxBody+1))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return verity.Errorf(verity.Invalid, op, "request body: %v", err)
	}
	if dec.More() {
		return verity.Errorf(verity.Invalid, op, "request body: more than one JSON value")
	}
	return nil
}

// Healthz answers the health check: 200 while healthy() is nil, else 503 with its error.
func Healthz(healthy func() error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if healthy != nil {
			if err := healthy(); err != nil {
				WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unhealthy", "error": err.Error()})
				return
			}
		}
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}
}
