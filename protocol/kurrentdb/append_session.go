package kurrentdb

import (
	"encoding/json"
	"errors"
	"io"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	streamerrors "github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v2/streams/errors"
	streamsv2 "github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v2/streams/streams"

	"github.com/verity-dev/verity"
)

// streamsV2Server serves the v2 StreamsService: AppendSession. AppendRecords is left
// unimplemented (and not advertised): its records interleave streams, which AppendMulti
// does not express.
type streamsV2Server struct {
	streamsv2.UnimplementedStreamsServiceServer
	s *Service
}

// Metadata keys KurrentDB adds to the metadata of records appended through the v2 protocol.
const (
	metaSchemaFormat = "$schema.format"
	metaSchemaName   = "$schema.name"
)

// schemaFormatNames are the values of metaSchemaFormat, as KurrentDB writes them.
var schemaFormatNames = map[streamsv2.SchemaFormat]string{
	streamsv2.SchemaFormat_SCHEMA_FORMAT_UNSPECIFIED: "Unspecified",
	streamsv2.SchemaFormat_SCHEMA_FORMAT_JSON:        "Json",
	streamsv2.SchemaFormat_SCHEMA_FORMAT_PROTOBUF:    "Protobuf",
	streamsv2.SchemaFormat_SCHEMA_FORMAT_AVRO:        "Avro",
	streamsv2.SchemaFormat_SCHEMA_FORMAT_BYTES:       "Bytes",
}

// errStreamInSession marks a stream named twice in one session.
type errStreamInSession struct{ stream string }

func (e errStreamInSession) Error() string {
	return "stream " + e.stream + " appears twice in the append session; send all its records in one request"
}

// receiveSession reads a whole append session, checked, within the configured bounds.
func (s *Service) receiveSession(recv func() (*streamsv2.AppendRequest, error)) ([]verity.StreamAppend, error) {
	const op = "append session"
	var appends []verity.StreamAppend
	seen := map[string]bool{}
	events, size := 0, 0
	for {
		req, err := recv()
		if errors.Is(err, io.EOF) {
			return appends, nil
		}
		if err != nil {
			return nil, err
		}
		name := req.GetStream()
		if name == "" {
			return nil, invalid(op, "an append request names no stream")
		}
		if seen[name] {
			return nil, errStreamInSession{name}
		}
		seen[name] = true
		expected, err := expectedFromInt64(op, name, req.ExpectedRevision)
		if err != nil {
			return nil, err
		}
		a := verity.StreamAppend{Stream: name, Expected: expected, Events: make([]verity.EventData, 0, len(req.GetRecords()))}
		for _, rec := range req.GetRecords() {
			if events++; events > s.opts.MaxAppendEvents {
				return nil, invalid(op, "an append session of more than %d events is over the limit", s.opts.MaxAppendEvents)
			}
			ev, err := eventFromRecord(op, name, rec)
			if err != nil {
				return nil, err
			}
			if size += eventSize(ev); size > s.opts.MaxAppendSize {
				return nil, invalid(op, "an append session of more than %d bytes is over the limit", s.opts.MaxAppendSize)
			}
			a.Events = append(a.Events, ev)
		}
		appends = append(appends, a)
	}
}

// expectedFromInt64 reads a v2 expected revision; absent means any.
func expectedFromInt64(op, stream string, v *int64) (verity.ExpectedRevision, error) {
	if v == nil {
		return verity.Any(), nil
	}
	switch n := *v; {
	case n >= 0:
		return verity.Exact(uint64(n)), nil
	case n == revNoStream:
		return verity.NoStream(), nil
	case n == revAny:
		return verity.Any(), nil
	case n == revStreamExists:
		return verity.StreamExists(), nil
	default:
		return verity.ExpectedRevision{}, invalid(op, "stream %q: expected revision %d is none of a revision ≥ 0, -1 (no stream), -2 (any), -4 (stream exists)", stream, n)
	}
}

// eventFromRecord turns a v2 record into an event. Its properties become the event's JSON
// metadata, with the schema's format and name, as KurrentDB stores them.
func eventFromRecord(op, stream string, rec *streamsv2.AppendRecord) (verity.EventData, error) {
	var ev verity.EventData
	if id := rec.GetRecordId(); id != "" {
		u, err := uuid.Parse(id)
		if err != nil {
			return ev, invalid(op, "stream %q: record id %q is not a UUID: %v", stream, id, err)
		}
		ev.ID = u
	}
	if rs := rec.GetStream(); rs != "" && rs != stream {
		return ev, invalid(op, "stream %q: a record names another stream, %q", stream, rs)
	}
	schema := rec.GetSchema()
	if schema.GetName() == "" {
		return ev, invalid(op, "stream %q: record %s has no schema name (its event type)", stream, ev.ID)
	}
	format, ok := schemaFormatNames[schema.GetFormat()]
	if !ok {
		return ev, invalid(op, "stream %q: record %s has unknown schema format %d", stream, ev.ID, schema.GetFormat())
	}
	ev.Type = schema.GetName()
	ev.ContentType = verity.ContentTypeBinary
	if schema.GetFormat() == streamsv2.SchemaFormat_SCHEMA_FORMAT_JSON {
		ev.ContentType = verity.ContentTypeJSON
	}
	ev.Data = rec.GetData()
	meta := make(map[string]any, len(rec.GetProperties())+2)
	for k, v := range rec.GetProperties() {
		meta[k] = v.AsInterface()
	}
	meta[metaSchemaFormat] = format
	meta[metaSchemaName] = ev.Type
	b, err := json.Marshal(meta)
	if err != nil {
		return ev, invalid(op, "stream %q: record %s: properties cannot be written as JSON: %v", stream, ev.ID, err)
	}
	ev.Metadata = b
	return ev, nil
}

// AppendSession appends what the session carries to its streams atomically: every
// stream's condition holds and all records commit together, or nothing is written.
func (x *streamsV2Server) AppendSession(stream streamsv2.StreamsService_AppendSessionServer) error {
	const op = "append session"
	ctx := stream.Context()
	st, err := x.s.storeFor(ctx)
	if err != nil {
		return x.s.rpcError(ctx, op, err)
	}
	appends, err := x.s.receiveSession(stream.Recv)
	var dup errStreamInSession
	switch {
	case errors.As(err, &dup):
		s, derr := status.New(codes.Aborted, dup.Error()).WithDetails(&streamerrors.StreamAlreadyInAppendSessionErrorDetails{Stream: dup.stream})
		if derr != nil {
			return status.Error(codes.Aborted, dup.Error())
		}
		return s.Err()
	case err != nil:
		return x.s.rpcError(ctx, op, err)
	case len(appends) == 0:
		return status.Error(codes.FailedPrecondition, "append session: the session carried no append requests")
	}
	results, err := st.AppendMulti(ctx, appends...)
	if err != nil {
		return x.s.v2Error(ctx, op, err)
	}
	resp := &streamsv2.AppendSessionResponse{Output: make([]*streamsv2.AppendResponse, len(results))}
	for i, r := range results {
		pos := int64(r.Position)
		resp.Output[i] = &streamsv2.AppendResponse{Stream: appends[i].Stream, StreamRevision: int64(r.Revision), Position: &pos}
		resp.Position = max(resp.Position, pos)
	}
	return stream.SendAndClose(resp)
}
