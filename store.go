package verity

import (
	"context"
	"time"
)

// Store is the contract every Verity implementation keeps: the embedded engine, the network
// client and every backend. All methods may be called concurrently from any number of
// goroutines. Every error returned is an *Error, or the context's error when ctx ends first:
// a call whose context has already ended fails at once and changes nothing. Package
// storetest pins the contract down.
type Store interface {
	// Append adds events to the end of one stream if expected holds, all or nothing. It
	// returns only once the events are durable. Retrying an append whose event ids were all
	// committed to this stream, in this order, returns the original result and writes
	// nothing; a retry that overlaps the original only in part is a Conflict.
	// Errors: Conflict (wrong expected revision, with Actual set; partial retry), Deleted
	// (tombstoned), Invalid (bad name, empty type, malformed JSON, over a size limit, too
	// many events), Unavailable (closed or failed).
	Append(ctx context.Context, stream string, expected ExpectedRevision, events ...EventData) (AppendResult, error)

	// AppendMulti appends to several streams atomically: either every append's condition
	// holds and all events commit together, durably, or nothing is written. Results are in
	// the order of appends. A stream may appear only once. Errors as for Append; the first
	// failing condition is reported.
	AppendMulti(ctx context.Context, appends ...StreamAppend) ([]AppendResult, error)

	// ReadStream reads one stream's visible events in revision order (forwards or
	// backwards), at most opts.Limit of them. Events hidden by the stream's metadata (max
	// age, max count, truncate before) are not returned.
	// Errors: NotFound (no visible events: never written, soft deleted or wholly truncated
	// away), Deleted (tombstoned), Invalid.
	ReadStream(ctx context.Context, stream string, opts ReadStreamOptions) ([]RecordedEvent, error)

	// ReadAll reads the log in position order (forwards or backwards), at most opts.Limit
	// events that pass opts.Filter. Events of deleted streams and events hidden by their
	// stream's metadata are not returned. An empty result means the end was reached.
	ReadAll(ctx context.Context, opts ReadAllOptions) ([]RecordedEvent, error)

	// Subscribe delivers a stream's events, or the filtered log's, from a starting point:
	// first the history (catch-up), then a CaughtUp message, then new events as they are
	// committed, with no gap, no duplicate and no reordering. A subscriber that reads slowly
	// never blocks appends: it falls back to reading from disk. The subscription ends when
	// ctx ends or Close is called.
	Subscribe(ctx context.Context, opts SubscribeOptions) (Subscription, error)

	// GetStreamMetadata returns a stream's metadata and the revision of the metadata stream
	// it was read from (NotFound when none was ever set).
	GetStreamMetadata(ctx context.Context, stream string) (StreamMetadataResult, error)

	// SetStreamMetadata replaces a stream's metadata; expected applies to the metadata
	// stream's revision. Reads honour the new metadata as soon as it returns.
	SetStreamMetadata(ctx context.Context, stream string, expected ExpectedRevision, meta StreamMetadata) (AppendResult, error)

	// DeleteStream soft-deletes a stream: reads answer NotFound, the space is reclaimed by
	// scavenging, and the stream may be written again, its revisions continuing.
	DeleteStream(ctx context.Context, stream string, expected ExpectedRevision) (DeleteResult, error)

	// TombstoneStream deletes a stream for good: every later read or write of it is Deleted.
	TombstoneStream(ctx context.Context, stream string, expected ExpectedRevision) (DeleteResult, error)

	// Close releases the store. In-flight calls finish or fail with Unavailable; every
	// later call fails with Unavailable. Close waits for every goroutine the store started.
	Close() error
}

// StreamAppend is one stream's part of an AppendMulti.
type StreamAppend struct {
	Stream   string
	Expected ExpectedRevision
	Events   []EventData
}

// AppendResult says where an append landed.
type AppendResult struct {
	// Revision is the stream's revision after the append (that of its last event).
	Revision uint64
	// Position is the log position of the append's last event (0 for an empty append).
	Position uint64
}

// DeleteResult says where a delete was recorded in the log.
type DeleteResult struct {
	Position uint64
}

// Direction of a read.
type Direction uint8

const (
	Forwards Direction = iota
	Backwards
)

func (d Direction) String() string {
	if d == Backwards {
		return "backwards"
	}
	return "forwards"
}

// DefaultReadLimit is the number of events a read returns when its Limit is zero.
const DefaultReadLimit = 4096

// ReadStreamOptions shape a stream read. The zero value reads forwards from the start.
type ReadStreamOptions struct {
	Direction Direction
	// From is the first revision to read (inclusive). Ignored when FromEnd is set.
	From uint64
	// FromEnd starts at the stream's last event (meant for backwards reads; a forwards
	// read from the end returns nothing).
	FromEnd bool
	// Limit is the most events returned; zero means DefaultReadLimit.
	Limit int
}

// ReadAllOptions shape a read of the log. The zero value reads forwards from the start.
type ReadAllOptions struct {
	Direction Direction
	// From is the first position to read (inclusive); 0 means the start. Ignored when
	// FromEnd or FromTime is set.
	From uint64
	// FromEnd starts at the last event (meant for backwards reads).
	FromEnd bool
	// FromTime, when set, starts at the first event committed at or after it (forwards) or
	// the last event committed at or before it (backwards).
	FromTime time.Time
	// Limit is the most events returned; zero means DefaultReadLimit.
	Limit int
	// Filter selects events; the zero Filter selects all.
	Filter Filter
}

// SubscribeOptions shape a subscription. The zero value subscribes to the whole log from
// its start.
type SubscribeOptions struct {
	// Stream to follow; empty (or AllStream) follows the whole log, through Filter.
	Stream string
	// From is the first revision (stream) or position (log) to deliver, inclusive.
	From uint64
	// FromEnd delivers only events committed after the subscription starts.
	FromEnd bool
	// FromTime, when set (log only), starts at the first event committed at or after it.
	FromTime time.Time
	// Filter selects events of the log; it must be empty for a stream subscription.
	Filter Filter
	// CheckpointEvery: a filtered log subscription sends a Checkpoint message after at
	// most this many skipped events (and whenever it has caught up); zero means 1000.
	CheckpointEvery int
}

// MessageKind tells what a SubscriptionMessage carries.
type MessageKind uint8

const (
	// MessageEvent carries an event.
	MessageEvent MessageKind = iota + 1
	// MessageCaughtUp says the history was delivered; what follows is live.
	MessageCaughtUp
	// MessageCheckpoint says every event up to Position was considered, so a consumer can
	// resume from Position+1 without having been sent a matching event.
	MessageCheckpoint
)

func (k MessageKind) String() string {
	switch k {
	case MessageEvent:
		return "event"
	case MessageCaughtUp:
		return "caught-up"
	case MessageCheckpoint:
		return "checkpoint"
	}
	return "unknown"
}

// SubscriptionMessage is what a subscription delivers.
type SubscriptionMessage struct {
	Kind MessageKind
	// Event is set for MessageEvent.
	Event RecordedEvent
	// Position is set for MessageCheckpoint and MessageCaughtUp: the log position up to
	// which everything was considered.
	Position uint64
}

// Subscription delivers messages in order. Recv and Close may be called from different
// goroutines; Recv must not be called concurrently with itself.
type Subscription interface {
	// Recv blocks until the next message, ctx ends, or the subscription ends; then it
	// returns Unavailable (store closed) or the context's error.
	Recv(ctx context.Context) (SubscriptionMessage, error)
	// Close ends the subscription and releases what it holds. It is idempotent.
	Close() error
}
