package verity

import (
	"context"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Groups manages persistent subscriptions (consumer groups): the server keeps each group's
// checkpoint in the log and shares the group's events among its competing consumers, with
// ack, nack, retry, parking of poison events and replay of parked ones. The embedded
// implementation is package persistent; the network client and the server's protocols
// expose the same contract. All methods may be called concurrently.
//
// A group is named by its source and its name: the source is a stream, or the whole log
// (AllStream, or "" which means the same) read through the group's Filter. The same group
// name may be used on different sources.
type Groups interface {
	// CreateGroup creates a group and starts it. Errors: Conflict (a group of that name
	// already exists on that source), Invalid (bad name or settings, a filter on a stream
	// group), Unavailable.
	CreateGroup(ctx context.Context, spec GroupSpec) error

	// UpdateGroup replaces a group's settings (its source, name and filter stay). Its
	// consumers are disconnected, their unacknowledged events to be redelivered once they
	// rejoin; the checkpoint is kept. Errors: NotFound, Invalid, Unavailable.
	UpdateGroup(ctx context.Context, spec GroupSpec) error

	// DeleteGroup deletes a group, its checkpoint and parked events; its consumers'
	// Recv returns NotFound. Errors: NotFound, Unavailable.
	DeleteGroup(ctx context.Context, stream, group string) error

	// GetGroup describes one group: settings, consumers, checkpoint, lag, parked count.
	// Errors: NotFound.
	GetGroup(ctx context.Context, stream, group string) (GroupInfo, error)

	// ListGroups describes the groups on one source: a stream, AllStream for the groups on
	// the log, or "" for every group. Groups are ordered by source, then name.
	ListGroups(ctx context.Context, stream string) ([]GroupInfo, error)

	// ReplayParked puts a group's parked events back in line, oldest first, to be delivered
	// before new ones; opts.Limit bounds how many (zero: all of them). The events stay in
	// the parked stream's history; they are simply not parked any more. Errors: NotFound.
	ReplayParked(ctx context.Context, stream, group string, opts ReplayParkedOptions) error

	// JoinGroup connects a new consumer to a group. Events then arrive through the
	// consumer's Recv, at most opts.MaxInFlight unacknowledged at a time. Errors: NotFound
	// (no such group), ResourceExhausted (the group's MaxConsumers reached), Unavailable.
	JoinGroup(ctx context.Context, stream, group string, opts JoinOptions) (GroupConsumer, error)

	// RestartGroups stops every group and starts it again from its last checkpoint, as a
	// server restart would: consumers are disconnected and unacknowledged events are
	// redelivered.
	RestartGroups(ctx context.Context) error
}

// GroupConsumer is one competing consumer of a group. Recv must not be called concurrently
// with itself; Ack, Nack and Close may be called from any goroutine.
type GroupConsumer interface {
	// Recv blocks until the group delivers an event to this consumer, ctx ends, or the
	// consumer is disconnected. Then it returns the context's error, NotFound (group
	// deleted), Unavailable (group updated or restarted, server closing: join again) or
	// Conflict (the consumer nacked with NackStop or was closed).
	Recv(ctx context.Context) (GroupMessage, error)

	// Ack confirms events as handled, by id: they are never delivered to this group again
	// (but see the checkpoint: delivery is at least once across a restart). Ids that are
	// not in flight for this consumer (already acked, timed out and given to another) are
	// ignored. Ack returns once the ack is on its way to the group, not once applied: what
	// the consumer does next (another Ack, Nack, Close) and every later call on the Groups
	// that made it (GetGroup, UpdateGroup, ...) see it applied.
	Ack(ctx context.Context, ids ...uuid.UUID) error

	// Nack reports events as not handled, with what to do with them. The reason is kept
	// with parked events.
	Nack(ctx context.Context, action NackAction, reason string, ids ...uuid.UUID) error

	// Close disconnects the consumer; its unacknowledged events go to other consumers. It
	// is idempotent.
	Close() error
}

// GroupMessage is an event delivered to a consumer of a group.
type GroupMessage struct {
	Event RecordedEvent
	// RetryCount is how many times the event was delivered to this group before.
	RetryCount int
}

// NackAction says what to do with an event a consumer could not handle.
type NackAction uint8

const (
	// NackPark moves the event to the group's parked stream at once.
	NackPark NackAction = iota + 1
	// NackRetry delivers the event again (to any consumer) and counts a retry; past the
	// group's MaxRetryCount the event is parked.
	NackRetry
	// NackSkip treats the event as handled without handling it.
	NackSkip
	// NackStop disconnects the consumer; its unacknowledged events go to others.
	NackStop
)

var nackNames = [...]string{NackPark: "park", NackRetry: "retry", NackSkip: "skip", NackStop: "stop"}

func (a NackAction) String() string {
	if a >= NackPark && a <= NackStop {
		return nackNames[a]
	}
	return "unknown"
}

// ParseNackAction reads "park", "retry", "skip" or "stop", ignoring case.
func ParseNackAction(s string) (NackAction, error) {
	for a := NackPark; a <= NackStop; a++ {
		if strings.EqualFold(s, nackNames[a]) {
			return a, nil
		}
	}
	return 0, Errorf(Invalid, "nack", "unknown nack action %q (want park, retry, skip or stop)", s)
}

// ConsumerStrategy says how a group shares its events among its consumers.
type ConsumerStrategy uint8

const (
	// RoundRobin gives each event to the next consumer with room.
	RoundRobin ConsumerStrategy = iota
	// DispatchToSingle gives every event to one consumer while it has room, the others
	// standing by.
	DispatchToSingle
	// Pinned gives all events of one stream to the same consumer while it stays connected,
	// so each stream's events are handled in order while the group scales out.
	Pinned
	// PinnedByCorrelation pins by the "$correlationId" (or "correlationId") of the event's
	// metadata, falling back to the stream.
	PinnedByCorrelation
)

var strategyNames = [...]string{
	RoundRobin:          "RoundRobin",
	DispatchToSingle:    "DispatchToSingle",
	Pinned:              "Pinned",
	PinnedByCorrelation: "PinnedByCorrelation",
}

// String returns the strategy's name as KurrentDB spells it, e.g. "RoundRobin".
func (s ConsumerStrategy) String() string {
	if int(s) < len(strategyNames) {
		return strategyNames[s]
	}
	return "unknown"
}

// ParseConsumerStrategy reads a strategy's name ("RoundRobin", "round-robin",
// "dispatch_to_single", ...), ignoring case, '-' and '_'.
func ParseConsumerStrategy(s string) (ConsumerStrategy, error) {
	norm := strings.NewReplacer("-", "", "_", "").Replace(strings.ToLower(s))
	for i, name := range strategyNames {
		if norm == strings.ToLower(name) {
			return ConsumerStrategy(i), nil
		}
	}
	return 0, Errorf(Invalid, "group", "unknown consumer strategy %q (want RoundRobin, DispatchToSingle, Pinned or PinnedByCorrelation)", s)
}

// QuarantineMode says whether a parked event holds back the later events of its stream.
type QuarantineMode uint8

const (
	// QuarantineDefault is QuarantineOrdered for the pinned strategies and QuarantineOff
	// for the others.
	QuarantineDefault QuarantineMode = iota
	// QuarantineOrdered: once an event of a stream is parked, later events of that stream
	// are held (not delivered) until the parked ones are replayed and handled, or skipped;
	// every other stream keeps flowing.
	QuarantineOrdered
	// QuarantineOff: a parked event holds nothing back.
	QuarantineOff
)

var quarantineNames = [...]string{QuarantineDefault: "default", QuarantineOrdered: "ordered", QuarantineOff: "off"}

func (q QuarantineMode) String() string {
	if int(q) < len(quarantineNames) {
		return quarantineNames[q]
	}
	return "unknown"
}

// ParseQuarantineMode reads "default", "ordered" or "off", ignoring case.
func ParseQuarantineMode(s string) (QuarantineMode, error) {
	for i, name := range quarantineNames {
		if strings.EqualFold(s, name) {
			return QuarantineMode(i), nil
		}
	}
	return 0, Errorf(Invalid, "group", "unknown quarantine mode %q (want default, ordered or off)", s)
}

// Defaults of GroupSettings, as KurrentDB has them.
const (
	DefaultMessageTimeout       = 30 * time.Second
	DefaultMaxRetryCount        = 10
	DefaultLiveBufferSize       = 500
	DefaultReadBatchSize        = 20
	DefaultHistoryBufferSize    = 500
	DefaultCheckpointAfter      = 2 * time.Second
	DefaultCheckpointLowerBound = 10
	DefaultCheckpointUpperBound = 1000
	DefaultMaxInFlight          = 10
)

// GroupSettings shape a group. The zero value of every field means its default; where zero
// is a meaningful setting of its own, a negative value asks for it.
type GroupSettings struct {
	// From is the first revision (stream group) or position (log group) to deliver when the
	// group has no checkpoint yet. Ignored when FromEnd is set.
	From uint64
	// FromEnd starts the group after the source's last event at creation.
	FromEnd bool
	// ResolveLinks is kept for KurrentDB clients; Verity writes no link events to resolve.
	ResolveLinks bool
	// Strategy shares events among consumers; default RoundRobin.
	Strategy ConsumerStrategy
	// MessageTimeout: an event not acknowledged this long after delivery is delivered
	// again and counts a retry. Default DefaultMessageTimeout; negative: never.
	MessageTimeout time.Duration
	// MaxRetryCount: an event delivered this many times more after its first delivery
	// without an ack is parked. Default DefaultMaxRetryCount; negative: park at the first
	// failure.
	MaxRetryCount int
	// LiveBufferSize, ReadBatchSize and HistoryBufferSize size the group's buffers
	// (events); defaults DefaultLiveBufferSize, DefaultReadBatchSize,
	// DefaultHistoryBufferSize.
	LiveBufferSize    int
	ReadBatchSize     int
	HistoryBufferSize int
	// CheckpointAfter: the checkpoint is written at most this long after an ack moved it
	// (default DefaultCheckpointAfter), once at least CheckpointLowerBound events were
	// acknowledged since the last one (default DefaultCheckpointLowerBound; negative: 0),
	// and always after CheckpointUpperBound (default DefaultCheckpointUpperBound). A log
	// group's checkpoint moved only past events its filter leaves out is written once
	// CheckpointAfter (at least 100 ms) has passed since it moved.
	CheckpointAfter      time.Duration
	CheckpointLowerBound int
	CheckpointUpperBound int
	// MaxConsumers is the most consumers connected at once; zero means no limit.
	MaxConsumers int
	// ExtraStatistics is kept for KurrentDB clients.
	ExtraStatistics bool
	// Quarantine: whether a parked event holds back the later events of its stream.
	Quarantine QuarantineMode
}

// GroupSpec names a group and gives its settings.
type GroupSpec struct {
	// Stream is the group's source: a stream, or AllStream ("" means the same) for the log.
	Stream string
	// Group is the group's name: 1 to 256 characters, no control characters.
	Group string
	// Filter selects the log's events for a log group; it must be zero for a stream group.
	Filter   Filter
	Settings GroupSettings
}

// ReplayParkedOptions shape a replay of parked events.
type ReplayParkedOptions struct {
	// Limit is the most parked events put back in line; zero means all of them.
	Limit int
}

// JoinOptions shape a consumer.
type JoinOptions struct {
	// MaxInFlight is the most events delivered to this consumer and not yet acked or
	// nacked: back-pressure. Zero means DefaultMaxInFlight.
	MaxInFlight int
	// Name describes the consumer in GroupInfo (a host, a process); optional.
	Name string
}

// GroupStatus says what a group is doing.
type GroupStatus string

const (
	// GroupLive: the group has delivered the source's history and follows new events.
	GroupLive GroupStatus = "Live"
	// GroupCatchingUp: the group is delivering history.
	GroupCatchingUp GroupStatus = "CatchingUp"
	// GroupIdle: no consumer is connected.
	GroupIdle GroupStatus = "Idle"
)

// GroupInfo describes a group.
type GroupInfo struct {
	Stream   string // the source; AllStream for a log group
	Group    string
	Filter   Filter
	Settings GroupSettings // with every default filled in
	Status   GroupStatus

	// Checkpointed says whether a checkpoint was written; Checkpoint is then the last
	// revision (stream group) or position (log group) up to which every event was handled.
	Checkpointed bool
	Checkpoint   uint64
	// LastKnown is the revision or position of the source's last event the group has seen.
	LastKnown uint64
	// Lag is how many of the source's events are past the checkpoint (for a log group, an
	// upper bound: events the filter leaves out count too).
	Lag uint64

	InFlight  int // delivered, not yet acked or nacked
	Waiting   int // read and waiting for a consumer with room (retries included)
	Parked    int // parked and not replayed
	Delivered uint64
	Acked     uint64
	Nacked    uint64
	TimedOut  uint64

	Consumers []ConsumerInfo
}

// ConsumerInfo describes one consumer of a group.
type ConsumerInfo struct {
	ID          string // unique within the group
	Name        string // as given to JoinGroup
	MaxInFlight int
	InFlight    int
	Delivered   uint64
	Acked       uint64
	Nacked      uint64
	Connected   time.Time
}

// ParkedStreamOf and CheckpointStreamOf name the system streams where a group keeps its
// parked events and its checkpoints, as KurrentDB names them.
func ParkedStreamOf(stream, group string) string {
	return "$persistentsubscription-" + groupSource(stream) + "::" + group + "-parked"
}

// CheckpointStreamOf: see ParkedStreamOf.
func CheckpointStreamOf(stream, group string) string {
	return "$persistentsubscription-" + groupSource(stream) + "::" + group + "-checkpoint"
}

func groupSource(stream string) string {
	if stream == "" {
		return AllStream
	}
	return stream
}
