package kurrentdb

import (
	"context"
	"crypto/sha1"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/verity-dev/verity"
)

// parseKurrentMetadata reads the JSON of a "$metadata" event as KurrentDB clients write it.
func parseKurrentMetadata(data []byte) (verity.StreamMetadata, error) {
	var m verity.StreamMetadata
	if len(data) == 0 {
		return m, nil
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return verity.StreamMetadata{}, err
	}
	return m, nil
}

// kurrentMetadataJSON writes metadata as KurrentDB does, which is what its clients parse:
// an access list with one role gives it as a string, several as an array (the Go client
// rejects a one-element array), max age in whole seconds.
func kurrentMetadataJSON(m verity.StreamMetadata) ([]byte, error) {
	obj := make(map[string]any, len(m.Custom)+4)
	for k, v := range m.Custom {
		obj[k] = v
	}
	if m.MaxAge > 0 {
		obj["$maxAge"] = int64(m.MaxAge / time.Second)
	}
	if m.MaxCount > 0 {
		obj["$maxCount"] = m.MaxCount
	}
	if m.TruncateBefore != nil {
		obj["$tb"] = *m.TruncateBefore
	}
	if a := m.ACL; a != nil {
		acl := map[string]any{}
		for key, roles := range map[string][]string{"$r": a.Read, "$w": a.Write, "$d": a.Delete, "$mr": a.MetaRead, "$mw": a.MetaWrite} {
			switch len(roles) {
			case 0:
			case 1:
				acl[key] = roles[0]
			default:
				acl[key] = roles
			}
		}
		obj["$acl"] = acl
	}
	return json.Marshal(obj)
}

// metadataNamespace makes the ids of metadata events the store does not expose stable.
var metadataNamespace = uuid.MustParse("6f1f3c1e-5d2a-4b7e-9a43-2a5f0e8c7d10")

// readMetadataEvent answers a read of "$$<of>": the stream's current metadata, from
// GetStreamMetadata, as the one "$metadata" event KurrentDB would keep there (metadata
// streams keep only their last event). It returns NotFound when none was ever set.
func readMetadataEvent(ctx context.Context, st verity.Store, of string, now time.Time) (verity.RecordedEvent, error) {
	res, err := st.GetStreamMetadata(ctx, of)
	if err != nil {
		return verity.RecordedEvent{}, err
	}
	data, err := kurrentMetadataJSON(res.Metadata)
	if err != nil {
		return verity.RecordedEvent{}, verity.Errorf(verity.Internal, "read stream metadata", "stream %q: %v", of, err)
	}
	metaStream := verity.MetadataStreamOf(of)
	ev := verity.RecordedEvent{
		ID:          uuid.NewHash(sha1.New(), metadataNamespace, fmt.Appendf(nil, "%s@%d", metaStream, res.Revision), 5),
		Type:        verity.EventTypeMetadata,
		ContentType: verity.ContentTypeJSON,
		Data:        data,
		Stream:      metaStream,
		Revision:    res.Revision,
		Created:     now,
	}
	// The metadata event itself, when the caller may read it, gives the true id, position
	// and time; the data stays the canonical form above.
	raw, err := st.ReadStream(ctx, metaStream, verity.ReadStreamOptions{Direction: verity.Backwards, FromEnd: true, Limit: 1})
	if err == nil && len(raw) == 1 && raw[0].Revision == res.Revision {
		ev.ID, ev.Position, ev.Created = raw[0].ID, raw[0].Position, raw[0].Created
	} else if err != nil && errors.Is(err, context.Canceled) {
		return verity.RecordedEvent{}, err
	}
	return ev, nil
}
