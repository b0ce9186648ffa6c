package sdk

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/verity-dev/verity"
)

// Metadata keys as KurrentDB and its clients write them.
const (
	CorrelationIDKey = "$correlationId"
	CausationIDKey   = "$causationId"
)

// Metadata is the SDK's view of an event's metadata JSON object: the correlation id (the
// conversation or workflow the event belongs to) and the causation id (the event or command
// that caused it), under KurrentDB's keys, plus any other fields.
type Metadata struct {
	// CorrelationID is "$correlationId".
	CorrelationID string
	// CausationID is "$causationId".
	CausationID string
	// Extra holds every other field, e.g. "userId" or trace context.
	Extra map[string]json.RawMessage
}

// ParseMetadata reads an event's metadata. Empty metadata is the zero Metadata; anything
// but a JSON object is an error. Non-string correlation or causation ids are kept in
// Extra.
func ParseMetadata(b []byte) (Metadata, error) {
	var md Metadata
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return md, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		return Metadata{}, verity.Errorf(verity.Invalid, "metadata", "metadata must be a JSON object: %v", err)
	}
	for k, v := range obj {
		var s string
		switch {
		case k == CorrelationIDKey && json.Unmarshal(v, &s) == nil:
			md.CorrelationID = s
		case k == CausationIDKey && json.Unmarshal(v, &s) == nil:
			md.CausationID = s
		default:
			if md.Extra == nil {
				md.Extra = map[string]json.RawMessage{}
			}
			md.Extra[k] = v
		}
	}
	return md, nil
}

// Marshal writes the metadata as a JSON object; the zero Metadata is nil (no metadata).
func (m Metadata) Marshal() ([]byte, error) {
	if m.CorrelationID == "" && m.CausationID == "" && len(m.Extra) == 0 {
		return nil, nil
	}
	obj := make(map[string]any, len(m.Extra)+2)
	for k, v := range m.Extra {
		if !json.Valid(v) {
			return nil, verity.Errorf(verity.Invalid, "metadata", "metadata field %q is not valid JSON: %q", k, v)
		}
		obj[k] = v
	}
	if m.CorrelationID != "" {
		obj[CorrelationIDKey] = m.CorrelationID
	}
	if m.CausationID != "" {
		obj[CausationIDKey] = m.CausationID
	}
	return json.Marshal(obj)
}

// With returns a copy of m with one extra field set to v's JSON encoding.
func (m Metadata) With(key string, v any) (Metadata, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return m, verity.Errorf(verity.Invalid, "metadata", "metadata field %q: %v", key, err)
	}
	switch key {
	case CorrelationIDKey, CausationIDKey:
		var s string
		if json.Unmarshal(b, &s) != nil {
			return m, verity.Errorf(verity.Invalid, "metadata", "metadata field %q must be a string, got %s", key, b)
		}
		if key == CorrelationIDKey {
			m.CorrelationID = s
		} else {
			m.CausationID = s
		}
		return m, nil
	}
	extra := make(map[string]json.RawMessage, len(m.Extra)+1)
	for k, x := range m.Extra {
		extra[k] = x
	}
	extra[key] = b
	m.Extra = extra
	return m, nil
}

// CausedBy returns the metadata for events caused by e: the correlation id is e's (or e's
// id when it has none), so a whole workflow shares one, and the causation id is e's id.
func CausedBy(e verity.RecordedEvent) Metadata {
	md, _ := ParseMetadata(e.Metadata)
	corr := md.CorrelationID
	if corr == "" {
		corr = e.ID.String()
	}
	out := Metadata{CorrelationID: corr, CausationID: e.ID.String()}
	// The W3C trace context travels with the chain of causes, so that every event a
	// request led to, across services, carries the request's trace.
	for _, k := range []string{TraceparentKey, TracestateKey} {
		if v, ok := md.Extra[k]; ok {
			if out.Extra == nil {
				out.Extra = map[string]json.RawMessage{}
			}
			out.Extra[k] = v
		}
	}
	return out
}

// CorrelationID returns the "$correlationId" of a recorded event's metadata, or "".
func CorrelationID(e verity.RecordedEvent) string {
	md, _ := ParseMetadata(e.Metadata)
	return md.CorrelationID
}

// CausationID returns the "$causationId" of a recorded event's metadata, or "".
func CausationID(e verity.RecordedEvent) string {
	md, _ := ParseMetadata(e.Metadata)
	return md.CausationID
}

func (m Metadata) String() string {
	b, err := m.Marshal()
	if err != nil {
		return fmt.Sprintf("invalid metadata: %v", err)
	}
	return string(b)
}
