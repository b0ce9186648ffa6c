package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/verity-dev/verity"
)

// eventOut is a recorded event as the API writes it. Data and metadata that are JSON are
// embedded as JSON; anything else is base64 in the *Base64 field. Both are left out when
// empty.
type eventOut struct {
	ID             string          `json:"id"`
	Stream         string          `json:"stream"`
	Type           string          `json:"type"`
	Revision       uint64          `json:"revision"`
	Position       uint64          `json:"position"`
	Created        string          `json:"created"`
	ContentType    string          `json:"contentType"`
	Data           json.RawMessage `json:"data,omitempty"`
	DataBase64     string          `json:"dataBase64,omitempty"`
	Metadata       json.RawMessage `json:"metadata,omitempty"`
	MetadataBase64 string          `json:"metadataBase64,omitempty"`
}

func encodeEvent(e verity.RecordedEvent) eventOut {
	out := eventOut{
		ID:          e.ID.String(),
		Stream:      e.Stream,
		Type:        e.Type,
		Revision:    e.Revision,
		Position:    e.Position,
		Created:     e.Created.UTC().Format(time.RFC3339Nano),
		ContentType: e.ContentType,
	}
	if out.ContentType == "" {
		out.ContentType = verity.ContentTypeJSON
	}
	// The validity check matters: a content type claiming JSON is only checked by the store
	// for exactly application/json, and embedding bytes that are not JSON would break the
	// whole response.
	if len(e.Data) > 0 {
		if isJSONContentType(out.ContentType) && json.Valid(e.Data) {
			out.Data = e.Data
		} else {
			out.DataBase64 = base64.StdEncoding.EncodeToString(e.Data)
		}
	}
	if len(e.Metadata) > 0 {
		if json.Valid(e.Metadata) {
			out.Metadata = e.Metadata
		} else {
			out.MetadataBase64 = base64.StdEncoding.EncodeToString(e.Metadata)
		}
	}
	return out
}

func encodeEvents(events []verity.RecordedEvent) []eventOut {
	out := make([]eventOut, len(events))
	for i, e := range events {
		out[i] = encodeEvent(e)
	}
	return out
}

// readPage is the answer to a read.
type readPage struct {
	Events []eventOut `json:"events"`
	// End is true when the read returned fewer events than its limit: it reached the end
	// of the stream (or log) in its direction.
	End bool `json:"end"`
	// Next is the URL of the following page: for a forwards read it is always set, and
	// once End is true it is where to poll for new events; for a backwards read it is left
	// out when the start was reached.
	Next string `json:"next,omitempty"`
}

// appendResultOut answers an append.
type appendResultOut struct {
	Stream   string `json:"stream,omitempty"`
	Revision uint64 `json:"revision"`
	Position uint64 `json:"position"`
}

// deleteResultOut answers a delete or a tombstone.
type deleteResultOut struct {
	Position uint64 `json:"position"`
}

// metadataOut answers GET /streams/{stream}/metadata.
type metadataOut struct {
	Stream string `json:"stream"`
	// Revision is that of the metadata stream's last event: the expected revision of the
	// next update.
	Revision uint64                `json:"revision"`
	Metadata verity.StreamMetadata `json:"metadata"`
}
