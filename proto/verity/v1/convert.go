package verityv1

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/verity-dev/verity"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The conversions between messages and the root package's types. Those that read a
// message (…FromProto) check what protobuf itself cannot (enum values it does not know,
// UUID lengths, times out of range) and return an error naming the field and the bad
// value; the caller decides the error's kind (Invalid on a server, Internal on a client).

// ExpectedToProto returns the message of an expected revision.
func ExpectedToProto(e verity.ExpectedRevision) *ExpectedRevision {
	switch {
	case e.IsNoStream():
		return &ExpectedRevision{Kind: ExpectedKind_EXPECTED_KIND_NO_STREAM}
	case e.IsStreamExists():
		return &ExpectedRevision{Kind: ExpectedKind_EXPECTED_KIND_STREAM_EXISTS}
	}
	if rev, ok := e.Revision(); ok {
		return &ExpectedRevision{Kind: ExpectedKind_EXPECTED_KIND_EXACT, Revision: rev}
	}
	return &ExpectedRevision{Kind: ExpectedKind_EXPECTED_KIND_ANY}
}

// ExpectedFromProto reads an expected revision; a missing one is Any.
func ExpectedFromProto(p *ExpectedRevision) (verity.ExpectedRevision, error) {
	switch p.GetKind() {
	case ExpectedKind_EXPECTED_KIND_ANY:
		return verity.Any(), nil
	case ExpectedKind_EXPECTED_KIND_NO_STREAM:
		return verity.NoStream(), nil
	case ExpectedKind_EXPECTED_KIND_STREAM_EXISTS:
		return verity.StreamExists(), nil
	case ExpectedKind_EXPECTED_KIND_EXACT:
		return verity.Exact(p.GetRevision()), nil
	}
	return verity.ExpectedRevision{}, fmt.Errorf("expected revision kind %d is unknown (0 any, 1 no stream, 2 stream exists, 3 exact)", int32(p.GetKind()))
}

// DirectionToProto returns the message value of a direction.
func DirectionToProto(d verity.Direction) Direction {
	if d == verity.Backwards {
		return Direction_DIRECTION_BACKWARDS
	}
	return Direction_DIRECTION_FORWARDS
}

// DirectionFromProto reads a direction.
func DirectionFromProto(d Direction) (verity.Direction, error) {
	switch d {
	case Direction_DIRECTION_FORWARDS:
		return verity.Forwards, nil
	case Direction_DIRECTION_BACKWARDS:
		return verity.Backwards, nil
	}
	return 0, fmt.Errorf("direction %d is unknown (0 forwards, 1 backwards)", int32(d))
}

// TimeToProto returns the message of a time; the zero time (unset) is nil.
func TimeToProto(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// TimeFromProto reads a time; nil is the zero time. The time is in UTC.
func TimeFromProto(field string, p *timestamppb.Timestamp) (time.Time, error) {
	if p == nil {
		return time.Time{}, nil
	}
	if err := p.CheckValid(); err != nil {
		return time.Time{}, fmt.Errorf("%s: %v", field, err)
	}
	return p.AsTime(), nil
}

// EventDataToProto returns the message of an event to append.
func EventDataToProto(e verity.EventData) *EventData {
	p := &EventData{Type: e.Type, ContentType: e.ContentType, Data: e.Data, Metadata: e.Metadata}
	if e.ID != (uuid.UUID{}) {
		p.Id = e.ID[:]
	}
	return p
}

// EventDataFromProto reads an event to append. The id must be 16 bytes or empty (the store
// then picks one).
func EventDataFromProto(p *EventData) (verity.EventData, error) {
	e := verity.EventData{Type: p.GetType(), ContentType: p.GetContentType(), Data: p.GetData(), Metadata: p.GetMetadata()}
	switch len(p.GetId()) {
	case 0:
	case 16:
		copy(e.ID[:], p.GetId())
	default:
		return verity.EventData{}, fmt.Errorf("event id must be 16 bytes (a UUID) or empty, got %d bytes", len(p.GetId()))
	}
	return e, nil
}

// EventsFromProto reads the events of an append; the error names the event by its index.
func EventsFromProto(ps []*EventData) ([]verity.EventData, error) {
	out := make([]verity.EventData, len(ps))
	for i, p := range ps {
		e, err := EventDataFromProto(p)
		if err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
		out[i] = e
	}
	return out, nil
}

// RecordedEventToProto returns the message of a recorded event.
func RecordedEventToProto(e *verity.RecordedEvent) *RecordedEvent {
	return &RecordedEvent{
		Id: e.ID[:], Type: e.Type, ContentType: e.ContentType, Data: e.Data, Metadata: e.Metadata,
		Stream: e.Stream, Revision: e.Revision, Position: e.Position, Created: timestamppb.New(e.Created),
	}
}

// RecordedEventFromProto reads a recorded event. Data and Metadata are never nil, as the
// embedded engine returns them, so that a remote read is indistinguishable from a local one.
func RecordedEventFromProto(p *RecordedEvent) (verity.RecordedEvent, error) {
	e := verity.RecordedEvent{
		Type: p.GetType(), ContentType: p.GetContentType(), Data: p.GetData(), Metadata: p.GetMetadata(),
		Stream: p.GetStream(), Revision: p.GetRevision(), Position: p.GetPosition(),
	}
	if len(p.GetId()) != 16 {
		return verity.RecordedEvent{}, fmt.Errorf("recorded event id must be 16 bytes, got %d", len(p.GetId()))
	}
	copy(e.ID[:], p.GetId())
	if p.GetCreated() == nil {
		return verity.RecordedEvent{}, fmt.Errorf("recorded event at position %d has no created time", p.GetPosition())
	}
	created, err := TimeFromProto("created", p.GetCreated())
	if err != nil {
		return verity.RecordedEvent{}, err
	}
	e.Created = created
	if e.Data == nil {
		e.Data = []byte{}
	}
	if e.Metadata == nil {
		e.Metadata = []byte{}
	}
	return e, nil
}

// FilterToProto returns the message of a filter; the zero filter is nil.
func FilterToProto(f verity.Filter) *Filter {
	if f.IsZero() {
		return nil
	}
	return &Filter{
		StreamPrefixes: f.StreamPrefixes, Categories: f.Categories, StreamRegexp: f.StreamRegexp,
		EventTypes: f.EventTypes, EventTypePrefixes: f.EventTypePrefixes, EventTypeRegexp: f.EventTypeRegexp,
		ExcludeSystemEvents: f.ExcludeSystemEvents,
	}
}

// FilterFromProto reads a filter; nil is the zero filter. Regular expressions are checked
// by the store that compiles them.
func FilterFromProto(p *Filter) verity.Filter {
	return verity.Filter{
		StreamPrefixes: p.GetStreamPrefixes(), Categories: p.GetCategories(), StreamRegexp: p.GetStreamRegexp(),
		EventTypes: p.GetEventTypes(), EventTypePrefixes: p.GetEventTypePrefixes(), EventTypeRegexp: p.GetEventTypeRegexp(),
		ExcludeSystemEvents: p.GetExcludeSystemEvents(),
	}
}

// MetadataToProto returns the message of stream metadata.
func MetadataToProto(m verity.StreamMetadata) *StreamMetadata {
	p := &StreamMetadata{MaxCount: m.MaxCount, TruncateBefore: m.TruncateBefore}
	if m.MaxAge != 0 {
		p.MaxAge = durationpb.New(m.MaxAge)
	}
	if a := m.ACL; a != nil {
		p.Acl = &StreamACL{Read: a.Read, Write: a.Write, Delete: a.Delete, MetaRead: a.MetaRead, MetaWrite: a.MetaWrite}
	}
	if len(m.Custom) > 0 {
		p.Custom = make(map[string][]byte, len(m.Custom))
		for k, v := range m.Custom {
			p.Custom[k] = v
		}
	}
	return p
}

// MetadataFromProto reads stream metadata (nil is none): max age must be a valid duration ≥ 0 and each
// custom value well-formed JSON.
func MetadataFromProto(p *StreamMetadata) (verity.StreamMetadata, error) {
	m := verity.StreamMetadata{MaxCount: p.GetMaxCount()}
	if p != nil && p.TruncateBefore != nil {
		tb := p.GetTruncateBefore()
		m.TruncateBefore = &tb
	}
	if d := p.GetMaxAge(); d != nil {
		if err := d.CheckValid(); err != nil {
			return verity.StreamMetadata{}, fmt.Errorf("metadata max age: %v", err)
		}
		if m.MaxAge = d.AsDuration(); m.MaxAge < 0 {
			return verity.StreamMetadata{}, fmt.Errorf("metadata max age must be ≥ 0, got %v", m.MaxAge)
		}
	}
	if a := p.GetAcl(); a != nil {
		m.ACL = &verity.StreamACL{Read: a.GetRead(), Write: a.GetWrite(), Delete: a.GetDelete(), MetaRead: a.GetMetaRead(), MetaWrite: a.GetMetaWrite()}
	}
	for k, v := range p.GetCustom() {
		if !json.Valid(v) {
			return verity.StreamMetadata{}, fmt.Errorf("metadata custom key %q: value is not well-formed JSON: %q", k, clip(v))
		}
		if m.Custom == nil {
			m.Custom = make(map[string]json.RawMessage, len(p.GetCustom()))
		}
		m.Custom[k] = json.RawMessage(v)
	}
	return m, nil
}

// clip shortens a value quoted in an error message.
func clip(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}
