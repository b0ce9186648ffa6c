package kurrentdb

import (
	"context"
	"errors"
	"log/slog"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	streamerrors "github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v2/streams/errors"

	"github.com/verity-dev/verity"
)

// Trailers KurrentDB clients read, and the ones Verity adds so that its own network client
// can recover the exact error kind.
const (
	trailerException       = "exception"
	trailerStreamName      = "stream-name"
	trailerExpectedVersion = "expected-version"
	trailerActualVersion   = "actual-version"
	// TrailerErrorKind carries the verity.ErrorKind name ("conflict", "deleted", ...) of a
	// failed request, for clients that speak Verity's error kinds.
	TrailerErrorKind = "verity-error-kind"
)

// grpcCode is the gRPC code of each error kind.
func grpcCode(k verity.ErrorKind) codes.Code {
	switch k {
	case verity.Invalid:
		return codes.InvalidArgument
	case verity.NotFound:
		return codes.NotFound
	case verity.Conflict, verity.Deleted:
		return codes.FailedPrecondition
	case verity.Unauthenticated:
		return codes.Unauthenticated
	case verity.PermissionDenied:
		return codes.PermissionDenied
	case verity.Unavailable:
		return codes.Unavailable
	case verity.ResourceExhausted:
		return codes.ResourceExhausted
	default:
		return codes.Internal
	}
}

// rpcError turns err into the status and trailers the KurrentDB v1 clients expect: a deleted
// stream as exception "stream-deleted" with its name, access denied as "access-denied", a
// wrong expected version as "wrong-expected-version" with both versions. It sets the
// trailers on ctx's call and logs what is the server's fault.
func (s *Service) rpcError(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := err.(interface{ GRPCStatus() *status.Status }); ok {
		return err // already a status, e.g. from the transport
	}
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, op+": "+err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, op+": "+err.Error())
	}
	kind := verity.KindOf(err)
	md := metadata.Pairs(TrailerErrorKind, kind.String())
	var ve *verity.Error
	errors.As(err, &ve)
	switch kind {
	case verity.Deleted:
		md.Append(trailerException, "stream-deleted")
		if ve != nil {
			md.Append(trailerStreamName, ve.Stream)
		}
	case verity.PermissionDenied:
		md.Append(trailerException, "access-denied")
	case verity.Conflict:
		md.Append(trailerException, "wrong-expected-version")
		if ve != nil && ve.Stream != "" {
			md.Append(trailerStreamName, ve.Stream)
		}
		if ve != nil && ve.Expected != nil {
			md.Append(trailerExpectedVersion, strconv.FormatInt(expectedToInt64(*ve.Expected), 10))
		}
		if ve != nil && ve.Actual != nil {
			md.Append(trailerActualVersion, strconv.FormatInt(stateToInt64(*ve.Actual), 10))
		}
	case verity.Internal:
		s.log.ErrorContext(ctx, "kurrentdb: request failed", slog.String("op", op), slog.Any("err", err))
	}
	_ = grpc.SetTrailer(ctx, md) // fails only when the call has ended; then no one listens
	return status.Error(grpcCode(kind), err.Error())
}

// v2Error turns err into the status of the v2 protocol: a wrong expected revision and a
// tombstoned stream as google.rpc.Status details the clients decode; anything else as in v1.
func (s *Service) v2Error(ctx context.Context, op string, err error) error {
	var ve *verity.Error
	if !errors.As(err, &ve) {
		return s.rpcError(ctx, op, err)
	}
	var detail protoadapt.MessageV1
	switch ve.Kind {
	case verity.Conflict:
		if ve.Expected == nil || ve.Actual == nil {
			return s.rpcError(ctx, op, err) // an idempotent retry that does not match
		}
		detail = &streamerrors.StreamRevisionConflictErrorDetails{
			Stream:           ve.Stream,
			ExpectedRevision: expectedToInt64(*ve.Expected),
			ActualRevision:   stateToInt64(*ve.Actual),
		}
	case verity.Deleted:
		detail = &streamerrors.StreamTombstonedErrorDetails{Stream: ve.Stream}
	default:
		return s.rpcError(ctx, op, err)
	}
	_ = grpc.SetTrailer(ctx, metadata.Pairs(TrailerErrorKind, ve.Kind.String()))
	st, derr := status.New(codes.FailedPrecondition, err.Error()).WithDetails(detail)
	if derr != nil {
		return s.rpcError(ctx, op, err)
	}
	return st.Err()
}

// invalid builds the Invalid error of a malformed request.
func invalid(op, format string, args ...any) error {
	return verity.Errorf(verity.Invalid, op, format, args...)
}

// Expected revisions as KurrentDB encodes them in a signed number.
const (
	revNoStream     = -1
	revAny          = -2
	revStreamExists = -4
)

func expectedToInt64(e verity.ExpectedRevision) int64 {
	switch {
	case e.IsNoStream():
		return revNoStream
	case e.IsStreamExists():
		return revStreamExists
	}
	if r, ok := e.Revision(); ok {
		return int64(r)
	}
	return revAny
}

func stateToInt64(s verity.StreamState) int64 {
	if !s.Exists {
		return revNoStream
	}
	return int64(s.Revision)
}
