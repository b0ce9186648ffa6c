package persistent

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/google/uuid"
	"github.com/verity-dev/verity"
)

// ConfigStream is the system stream that holds every group's definition: one event per
// create, update and delete, folded when a Manager starts.
const ConfigStream = "$persistentSubscriptionConfig"

// Event types the package writes.
const (
	EventTypeGroupCreated  = "$groupCreated"
	EventTypeGroupUpdated  = "$groupUpdated"
	EventTypeGroupDeleted  = "$groupDeleted"
	EventTypeCheckpoint    = "$SubscriptionCheckpoint"
	EventTypeParked        = "$parked"
	EventTypeReplayParked  = "$replayParked"
	checkpointStreamMaxCnt = 5
)

// definition is a group as the config stream records it. Incarnation tells a group from
// an older one of the same name that was deleted: checkpoints and parked records of
// another incarnation are ignored.
type definition struct {
	Stream      string               `json:"stream"`
	Group       string               `json:"group"`
	Filter      verity.Filter        `json:"filter"`
	Settings    verity.GroupSettings `json:"settings"`
	Incarnation uuid.UUID            `json:"incarnation"`
}

type groupKey struct{ source, name string }

func (d definition) key() groupKey { return groupKey{d.Stream, d.Group} }

// checkpointRecord is the data of a checkpoint event.
type checkpointRecord struct {
	Incarnation  uuid.UUID `json:"incarnation"`
	Checkpointed bool      `json:"checkpointed"`
	Checkpoint   uint64    `json:"checkpoint"`
	// ParkedCursor: every parked record at or below this revision of the parked stream
	// was replayed and handled. -1: none.
	ParkedCursor int64 `json:"parkedCursor"`
}

// parkedRecord is the data of a $parked event: enough to read the original back.
type parkedRecord struct {
	Incarnation uuid.UUID `json:"incarnation"`
	Stream      string    `json:"stream"`
	Revision    uint64    `json:"revision"`
	Position    uint64    `json:"position"`
	EventID     uuid.UUID `json:"eventId"`
	EventType   string    `json:"eventType"`
	Reason      string    `json:"reason"`
	RetryCount  int       `json:"retryCount"`
	Held        bool      `json:"held,omitempty"`
}

// replayRecord is the data of a $replayParked event: every parked record at or below UpTo
// is put back in line.
type replayRecord struct {
	Incarnation uuid.UUID `json:"incarnation"`
	UpTo        uint64    `json:"upTo"`
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only plain structs are marshalled
	}
	return b
}

// isInternalStream reports whether a stream is one this package writes; log groups leave
// them out so a group never delivers its own checkpoints.
func isInternalStream(stream string) bool {
	if of, ok := verity.IsMetadataStream(stream); ok {
		stream = of
	}
	return stream == ConfigStream || strings.HasPrefix(stream, "$persistentsubscription-")
}

// readStreamAll reads a whole stream from a revision, page by page, calling fn for each
// event. A stream that does not exist is empty.
func readStreamAll(ctx context.Context, st verity.Store, stream string, from uint64, fn func(verity.RecordedEvent) error) error {
	for {
		evs, err := st.ReadStream(ctx, stream, verity.ReadStreamOptions{From: from, Limit: 1024})
		if errors.Is(err, verity.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, ev := range evs {
			if err := fn(ev); err != nil {
				return err
			}
			from = ev.Revision + 1
		}
		if len(evs) < 1024 {
			return nil
		}
	}
}

// loadDefinitions folds the config stream into the live groups.
func loadDefinitions(ctx context.Context, st verity.Store) (map[groupKey]definition, error) {
	defs := map[groupKey]definition{}
	err := readStreamAll(ctx, st, ConfigStream, 0, func(ev verity.RecordedEvent) error {
		var d definition
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			return verity.Errorf(verity.Internal, "load groups", "%s revision %d: %v", ConfigStream, ev.Revision, err)
		}
		switch ev.Type {
		case EventTypeGroupCreated, EventTypeGroupUpdated:
			defs[d.key()] = d
		case EventTypeGroupDeleted:
			delete(defs, d.key())
		}
		return nil
	})
	return defs, err
}
