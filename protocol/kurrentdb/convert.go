package kurrentdb

import (
	"encoding/binary"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/shared"
	streamsv1 "github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"

	"github.com/verity-dev/verity"
)

// System metadata keys of the v1 protocol's events.
const (
	metaType        = "type"
	metaContentType = "content-type"
	metaCreated     = "created"
)

// uuidFromProto reads an event id; a missing one is the zero UUID (the store picks one).
func uuidFromProto(op string, id *shared.UUID) (uuid.UUID, error) {
	switch v := id.GetValue().(type) {
	case nil:
		return uuid.UUID{}, nil
	case *shared.UUID_Structured_:
		var u uuid.UUID
		binary.BigEndian.PutUint64(u[:8], uint64(v.Structured.GetMostSignificantBits()))
		binary.BigEndian.PutUint64(u[8:], uint64(v.Structured.GetLeastSignificantBits()))
		return u, nil
	case *shared.UUID_String_:
		u, err := uuid.Parse(v.String_)
		if err != nil {
			return uuid.UUID{}, invalid(op, "event id %q is not a UUID: %v", v.String_, err)
		}
		return u, nil
	}
	return uuid.UUID{}, invalid(op, "event id of unknown form")
}

// uuidToProto writes an id in the form the reader asked for.
func uuidToProto(u uuid.UUID, asString bool) *shared.UUID {
	if asString {
		return &shared.UUID{Value: &shared.UUID_String_{String_: u.String()}}
	}
	return &shared.UUID{Value: &shared.UUID_Structured_{Structured: &shared.UUID_Structured{
		MostSignificantBits:  int64(binary.BigEndian.Uint64(u[:8])),
		LeastSignificantBits: int64(binary.BigEndian.Uint64(u[8:])),
	}}}
}

// streamName reads a stream identifier, which must name a stream.
func streamName(op string, id *shared.StreamIdentifier) (string, error) {
	name := string(id.GetStreamName())
	if name == "" {
		return "", invalid(op, "the request names no stream (empty stream identifier)")
	}
	return name, nil
}

func streamIdentifier(name string) *shared.StreamIdentifier {
	return &shared.StreamIdentifier{StreamName: []byte(name)}
}

// eventFromProposed turns a v1 proposed message into the event the store appends. Its
// system metadata must name the type; a missing content type means binary data.
func eventFromProposed(op string, pm *streamsv1.AppendReq_ProposedMessage) (verity.EventData, error) {
	id, err := uuidFromProto(op, pm.GetId())
	if err != nil {
		return verity.EventData{}, err
	}
	typ := pm.GetMetadata()[metaType]
	if typ == "" {
		return verity.EventData{}, invalid(op, "event %s has no type (system metadata key %q)", id, metaType)
	}
	ct := pm.GetMetadata()[metaContentType]
	if ct == "" {
		ct = verity.ContentTypeBinary
	}
	return verity.EventData{
		ID:          id,
		Type:        typ,
		ContentType: ct,
		Data:        pm.GetData(),
		Metadata:    pm.GetCustomMetadata(),
	}, nil
}

// eventSize is what an event costs a request's memory, near enough.
func eventSize(e verity.EventData) int {
	return len(e.Type) + len(e.ContentType) + len(e.Data) + len(e.Metadata) + 16
}

// ticks is a time as KurrentDB sends it: .NET ticks (100 ns) since the Unix epoch.
func ticks(t time.Time) int64 { return t.UnixNano() / 100 }

// systemMetadata is the metadata map KurrentDB sends with a recorded event: its type,
// content type and creation time in ticks.
func systemMetadata(ev verity.RecordedEvent) map[string]string {
	ct := ev.ContentType
	if ct == "" {
		ct = verity.ContentTypeJSON
	}
	return map[string]string{
		metaType:        ev.Type,
		metaContentType: ct,
		metaCreated:     strconv.FormatInt(ticks(ev.Created), 10),
	}
}

// recordedToProto turns a stored event into a v1 read message.
func recordedToProto(ev verity.RecordedEvent, stringIDs bool) *streamsv1.ReadResp {
	return &streamsv1.ReadResp{Content: &streamsv1.ReadResp_Event{Event: &streamsv1.ReadResp_ReadEvent{
		Event: &streamsv1.ReadResp_ReadEvent_RecordedEvent{
			Id:               uuidToProto(ev.ID, stringIDs),
			StreamIdentifier: streamIdentifier(ev.Stream),
			StreamRevision:   ev.Revision,
			PreparePosition:  ev.Position,
			CommitPosition:   ev.Position,
			Metadata:         systemMetadata(ev),
			CustomMetadata:   ev.Metadata,
			Data:             ev.Data,
		},
		Position: &streamsv1.ReadResp_ReadEvent_CommitPosition{CommitPosition: ev.Position},
	}}}
}

// parseVersion checks a version as the clients parse it: the first three dot-separated
// parts are whole numbers, each possibly followed by a "-suffix".
func parseVersion(v string) ([3]int, error) {
	var out [3]int
	parts := strings.Split(v, ".")
	if len(parts) < 3 {
		return out, fmt.Errorf("version %q is not major.minor.patch", v)
	}
	for i, p := range parts[:3] {
		if j := strings.IndexByte(p, '-'); j >= 0 {
			p = p[:j]
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return out, fmt.Errorf("version %q: part %q is not a whole number", v, p)
		}
		out[i] = n
	}
	return out, nil
}

// splitHostPort splits an advertised address.
func splitHostPort(addr string) (string, uint32, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("address %q is not host:port: %w", addr, err)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("address %q: port %q is not a number from 0 to 65535", addr, port)
	}
	return host, uint32(n), nil
}
