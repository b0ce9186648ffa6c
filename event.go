package verity

import (
	"math"
	"strings"
	"time"

	"github.com/google/uuid"
)

// ContentTypeJSON is the default content type of event data and the one whose data the
// store checks for well-formedness.
const ContentTypeJSON = "application/json"

// ContentTypeBinary marks opaque event data.
const ContentTypeBinary = "application/octet-stream"

// AllStream is the name under which the whole log is read and subscribed to.
const AllStream = "$all"

// Event types the store writes itself.
const (
	// EventTypeMetadata is the type of the events of a metadata stream ("$$" + stream).
	EventTypeMetadata = "$metadata"
	// EventTypeStreamDeleted is the type of the tombstone written by TombstoneStream.
	EventTypeStreamDeleted = "$streamDeleted"
)

// TombstoneRevision is the revision at which a tombstone is recorded; no event can follow it.
const TombstoneRevision = uint64(math.MaxInt64)

// EventData is an event as a writer proposes it.
type EventData struct {
	// ID identifies the event and is its idempotency key: an append retried with the same
	// ids returns the original result. The zero UUID asks the store to pick a random one.
	ID uuid.UUID
	// Type names what happened, e.g. "OrderPlaced". Required.
	Type string
	// ContentType of Data; empty means ContentTypeJSON. JSON data must be well formed.
	ContentType string
	// Data is the event's payload.
	Data []byte
	// Metadata is optional JSON: correlation id, causation id, who, trace context.
	Metadata []byte
}

// RecordedEvent is an event as the log holds it.
type RecordedEvent struct {
	ID          uuid.UUID
	Type        string
	ContentType string
	Data        []byte
	Metadata    []byte

	// Stream is the stream the event belongs to.
	Stream string
	// Revision is the event's place in its stream, counting from 0.
	Revision uint64
	// Position is the event's place in the log ($all): gapless, counting from 1.
	Position uint64
	// Created is the commit time assigned by the store; it never decreases along the log.
	Created time.Time
}

// Category returns the part of a stream name before its first '-', or "" when it has none:
// "order-42" is in category "order".
func Category(stream string) string {
	i := strings.IndexByte(stream, '-')
	if i <= 0 {
		return ""
	}
	return stream[:i]
}

// IsSystemStream reports whether a stream name is reserved for the system ("$" prefix).
func IsSystemStream(stream string) bool { return strings.HasPrefix(stream, "$") }

// MetadataStreamOf returns the name of the stream that holds a stream's metadata.
func MetadataStreamOf(stream string) string { return "$$" + stream }

// IsMetadataStream reports whether stream holds another stream's metadata, and whose.
func IsMetadataStream(stream string) (of string, ok bool) {
	if strings.HasPrefix(stream, "$$") && len(stream) > 2 {
		return stream[2:], true
	}
	return "", false
}
