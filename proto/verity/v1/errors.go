package verityv1

import (
	"context"
	"errors"

	"github.com/verity-dev/verity"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// kindCodes maps each error kind onto its own gRPC code, one to one, so that a status
// without details (from a proxy, say) still tells the kind:
//
//	internal           Internal
//	invalid            InvalidArgument
//	not_found          NotFound
//	conflict           Aborted            (a test-and-set failed: read again, then retry)
//	deleted            FailedPrecondition (the stream is tombstoned: retrying never helps)
//	unauthenticated    Unauthenticated
//	permission_denied  PermissionDenied
//	unavailable        Unavailable
//	resource_exhausted ResourceExhausted
//
// The context's errors travel as Canceled and DeadlineExceeded, which no kind uses.
var kindCodes = [...]codes.Code{
	verity.Internal:          codes.Internal,
	verity.Invalid:           codes.InvalidArgument,
	verity.NotFound:          codes.NotFound,
	verity.Conflict:          codes.Aborted,
	verity.Deleted:           codes.FailedPrecondition,
	verity.Unauthenticated:   codes.Unauthenticated,
	verity.PermissionDenied:  codes.PermissionDenied,
	verity.Unavailable:       codes.Unavailable,
	verity.ResourceExhausted: codes.ResourceExhausted,
}

// CodeOf returns the gRPC code of an error kind; a kind this package does not know is
// Internal.
func CodeOf(k verity.ErrorKind) codes.Code {
	if int(k) < len(kindCodes) {
		return kindCodes[k]
	}
	return codes.Internal
}

// KindOfCode returns the error kind of a gRPC code: the inverse of CodeOf. Codes no kind
// uses (Unknown, OutOfRange, Unimplemented, DataLoss, ...) are Internal.
func KindOfCode(c codes.Code) verity.ErrorKind {
	for k, kc := range kindCodes {
		if kc == c {
			return verity.ErrorKind(k)
		}
	}
	return verity.Internal
}

// Status turns an error a verity.Store returned into the status a server sends: the
// context's errors become Canceled or DeadlineExceeded; anything else gets the code of its
// kind (Internal for an error that is not a *verity.Error) and an Error detail from which
// ErrorFromStatus rebuilds it. A nil error is the OK status.
func Status(err error) *status.Status {
	switch {
	case err == nil:
		return status.New(codes.OK, "")
	case errors.Is(err, context.Canceled):
		return status.New(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.New(codes.DeadlineExceeded, err.Error())
	}
	detail := ErrorDetail(err)
	st := status.New(CodeOf(verity.ParseErrorKind(detail.GetKind())), err.Error())
	if withDetail, derr := st.WithDetails(detail); derr == nil {
		st = withDetail
	}
	return st
}

// ErrorDetail returns the Error detail that carries err: that of the *verity.Error in its
// chain, or, for an error that holds none, an internal error whose cause is err's text.
// The context's errors have no detail of their own: Status gives them a code instead. A
// nil error has a nil detail.
func ErrorDetail(err error) *Error {
	if err == nil {
		return nil
	}
	var ve *verity.Error
	if !errors.As(err, &ve) {
		ve = &verity.Error{Kind: verity.Internal, Err: err}
	}
	return ErrorToProto(ve)
}

// ErrorToProto returns the detail message carrying e. A kind this package does not know
// travels as internal.
func ErrorToProto(e *verity.Error) *Error {
	p := &Error{Kind: e.Kind.String(), Op: e.Op, Stream: e.Stream, Message: e.Message}
	if e.Expected != nil {
		p.Expected = ExpectedToProto(*e.Expected)
	}
	if e.Actual != nil {
		p.Actual = &StreamState{Exists: e.Actual.Exists, Revision: e.Actual.Revision}
	}
	if e.Err != nil {
		p.Cause = e.Err.Error()
	}
	return p
}

// ErrorFromProto rebuilds the *verity.Error an Error detail carries. An unknown kind name
// is Internal; a malformed expected revision is left out rather than guessed.
func ErrorFromProto(p *Error) *verity.Error {
	e := &verity.Error{Kind: verity.ParseErrorKind(p.GetKind()), Op: p.GetOp(), Stream: p.GetStream(), Message: p.GetMessage()}
	if p.GetExpected() != nil {
		if exp, err := ExpectedFromProto(p.GetExpected()); err == nil {
			e.Expected = &exp
		}
	}
	if a := p.GetActual(); a != nil {
		e.Actual = &verity.StreamState{Exists: a.GetExists(), Revision: a.GetRevision()}
	}
	if p.GetCause() != "" {
		e.Err = errors.New(p.GetCause())
	}
	return e
}

// ErrorFromStatus rebuilds the error a server's store returned from the error a gRPC call
// returned: a *verity.Error with every field the server's had (the cause only as text),
// or context.Canceled / context.DeadlineExceeded. A status without an Error detail (from
// the transport or a proxy) becomes a *verity.Error whose kind follows its code, and an
// error that is no status at all is Internal. A nil error stays nil.
func ErrorFromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return &verity.Error{Kind: verity.Internal, Err: err}
	}
	switch st.Code() {
	case codes.OK:
		return nil
	case codes.Canceled:
		return context.Canceled
	case codes.DeadlineExceeded:
		return context.DeadlineExceeded
	}
	for _, d := range st.Details() {
		if p, ok := d.(*Error); ok {
			return ErrorFromProto(p)
		}
	}
	return &verity.Error{Kind: KindOfCode(st.Code()), Message: st.Message()}
}
