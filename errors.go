package verity

import (
	"errors"
	"fmt"
	"net/http"
)

// ErrorKind classifies every error Verity returns. Kinds map one-to-one onto gRPC codes and
// HTTP statuses and survive a round trip through the network client. New kinds are only
// ever added at the end; an error of unknown kind is Internal at the API boundary.
type ErrorKind uint8

const (
	// Internal: a bug or an unexpected failure; nothing the caller did.
	Internal ErrorKind = iota
	// Invalid: the request is malformed or over a limit; nothing was changed.
	Invalid
	// NotFound: the stream (or other named thing) does not exist.
	NotFound
	// Conflict: the expected revision did not hold, or an idempotent retry did not match
	// the original append.
	Conflict
	// Deleted: the stream was tombstoned and can never be written or read again.
	Deleted
	// Unauthenticated: no or wrong credentials.
	Unauthenticated
	// PermissionDenied: the caller may not do this.
	PermissionDenied
	// Unavailable: the store is closed, failed, or not ready; the request may be retried
	// elsewhere or later.
	Unavailable
	// ResourceExhausted: a quota or limit of concurrent work was reached; retry later.
	ResourceExhausted
)

var kindNames = [...]string{
	Internal:          "internal",
	Invalid:           "invalid",
	NotFound:          "not_found",
	Conflict:          "conflict",
	Deleted:           "deleted",
	Unauthenticated:   "unauthenticated",
	PermissionDenied:  "permission_denied",
	Unavailable:       "unavailable",
	ResourceExhausted: "resource_exhausted",
}

func (k ErrorKind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return kindNames[Internal]
}

// HTTPStatus is the HTTP status that answers an error of kind k: one per kind, an unknown
// kind being Internal (500).
func (k ErrorKind) HTTPStatus() int {
	switch k {
	case Invalid:
		return http.StatusBadRequest
	case NotFound:
		return http.StatusNotFound
	case Conflict:
		return http.StatusConflict
	case Deleted:
		return http.StatusGone
	case Unauthenticated:
		return http.StatusUnauthorized
	case PermissionDenied:
		return http.StatusForbidden
	case Unavailable:
		return http.StatusServiceUnavailable
	case ResourceExhausted:
		return http.StatusTooManyRequests
	}
	return http.StatusInternalServerError
}

// ParseErrorKind turns a kind's name back into the kind; unknown names are Internal.
func ParseErrorKind(s string) ErrorKind {
	for k, name := range kindNames {
		if name == s {
			return ErrorKind(k)
		}
	}
	return Internal
}

// Error is the one error type of Verity.
type Error struct {
	Kind ErrorKind
	// Op is the operation that failed, e.g. "append".
	Op string
	// Stream is the stream concerned, if any.
	Stream string
	// Message says what was wrong, with the offending value.
	Message string
	// Expected and Actual are set on a Conflict caused by a wrong expected revision.
	Expected *ExpectedRevision
	Actual   *StreamState
	// Err is the underlying cause, if any.
	Err error
}

func (e *Error) Error() string {
	msg := e.Op
	if e.Stream != "" {
		msg = appendSep(msg, fmt.Sprintf("stream %q", e.Stream))
	}
	if e.Message != "" {
		msg = appendSep(msg, e.Message)
	}
	if e.Err != nil {
		msg = appendSep(msg, e.Err.Error())
	}
	if msg == "" {
		return e.Kind.String()
	}
	return msg
}

func appendSep(a, b string) string {
	if a == "" {
		return b
	}
	return a + ": " + b
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, verity.ErrConflict) (and the other Err* sentinels) match any
// Error of that kind.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Op == "" && t.Message == "" && t.Stream == "" && t.Err == nil && t.Kind == e.Kind
}

// Sentinels for errors.Is: errors.Is(err, ErrNotFound) is true for every NotFound error.
var (
	ErrInternal          = &Error{Kind: Internal}
	ErrInvalid           = &Error{Kind: Invalid}
	ErrNotFound          = &Error{Kind: NotFound}
	ErrConflict          = &Error{Kind: Conflict}
	ErrDeleted           = &Error{Kind: Deleted}
	ErrUnauthenticated   = &Error{Kind: Unauthenticated}
	ErrPermissionDenied  = &Error{Kind: PermissionDenied}
	ErrUnavailable       = &Error{Kind: Unavailable}
	ErrResourceExhausted = &Error{Kind: ResourceExhausted}
)

// Errorf builds an Error of a kind with a formatted message.
func Errorf(kind ErrorKind, op, format string, args ...any) *Error {
	return &Error{Kind: kind, Op: op, Message: fmt.Sprintf(format, args...)}
}

// KindOf returns the kind of err: that of the first *Error in its chain, Internal for any
// other non-nil error.
func KindOf(err error) ErrorKind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// WrongRevision builds the Conflict error of an expected revision that did not hold.
func WrongRevision(op, stream string, expected ExpectedRevision, actual StreamState) *Error {
	return &Error{
		Kind: Conflict, Op: op, Stream: stream,
		Message:  fmt.Sprintf("expected revision %s, actual %s", expected, actual),
		Expected: &expected, Actual: &actual,
	}
}
