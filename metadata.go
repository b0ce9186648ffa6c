package verity

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// StreamMetadata is what a stream's metadata stream holds: limits that hide old events from
// reads (and let scavenging reclaim them), access rules, and anything custom.
type StreamMetadata struct {
	// MaxAge hides events older than this; zero means no limit. Whole seconds on the wire.
	MaxAge time.Duration
	// MaxCount keeps only the last MaxCount events visible; zero means no limit.
	MaxCount uint64
	// TruncateBefore hides events with a lower revision; nil means none.
	TruncateBefore *uint64
	// ACL is the stream's access control list, or nil.
	ACL *StreamACL
	// Custom holds the user's own keys (those not starting with "$").
	Custom map[string]json.RawMessage
}

// StreamACL lists, per operation, the users and roles allowed.
type StreamACL struct {
	Read      []string `json:"$r,omitempty"`
	Write     []string `json:"$w,omitempty"`
	Delete    []string `json:"$d,omitempty"`
	MetaRead  []string `json:"$mr,omitempty"`
	MetaWrite []string `json:"$mw,omitempty"`
}

// StreamMetadataResult is a stream's metadata with the revision of the metadata stream.
type StreamMetadataResult struct {
	Stream   string
	Metadata StreamMetadata
	// Revision of the metadata stream's last event.
	Revision uint64
}

// deletedMarker is the truncate-before value that marks a soft-deleted stream, as KurrentDB
// records it.
const deletedMarker = TombstoneRevision

// IsSoftDeleted reports whether the metadata marks the stream soft deleted.
func (m StreamMetadata) IsSoftDeleted() bool {
	return m.TruncateBefore != nil && *m.TruncateBefore == deletedMarker
}

// SoftDeleted returns a copy of m that marks the stream soft deleted.
func (m StreamMetadata) SoftDeleted() StreamMetadata {
	tb := deletedMarker
	m.TruncateBefore = &tb
	return m
}

// maxMaxAgeSeconds is the largest $maxAge a time.Duration holds (about 292 years).
const maxMaxAgeSeconds = int64(math.MaxInt64 / int64(time.Second))

// MarshalJSON writes the KurrentDB metadata format: $maxAge (seconds), $maxCount, $tb, $acl,
// then the custom keys.
func (m StreamMetadata) MarshalJSON() ([]byte, error) {
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
	if m.ACL != nil {
		obj["$acl"] = m.ACL
	}
	return json.Marshal(obj)
}

// UnmarshalJSON reads the KurrentDB metadata format. Unknown "$" keys are ignored, as
// KurrentDB does; custom keys are kept.
func (m *StreamMetadata) UnmarshalJSON(b []byte) error {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		return fmt.Errorf("stream metadata must be a JSON object: %w", err)
	}
	*m = StreamMetadata{}
	for k, v := range obj {
		switch k {
		case "$maxAge":
			var s int64
			if err := json.Unmarshal(v, &s); err != nil || s < 0 || s > maxMaxAgeSeconds {
				return fmt.Errorf("stream metadata $maxAge must be a whole number of seconds from 0 to %d, got %s", maxMaxAgeSeconds, v)
			}
			m.MaxAge = time.Duration(s) * time.Second
		case "$maxCount":
			var n uint64
			if err := json.Unmarshal(v, &n); err != nil {
				return fmt.Errorf("stream metadata $maxCount must be a whole number ≥ 0, got %s", v)
			}
			m.MaxCount = n
		case "$tb":
			var n uint64
			if err := json.Unmarshal(v, &n); err != nil {
				return fmt.Errorf("stream metadata $tb must be a whole number ≥ 0, got %s", v)
			}
			m.TruncateBefore = &n
		case "$acl":
			acl, err := parseACL(v)
			if err != nil {
				return err
			}
			m.ACL = acl
		default:
			if len(k) > 0 && k[0] == '$' {
				continue
			}
			if m.Custom == nil {
				m.Custom = map[string]json.RawMessage{}
			}
			m.Custom[k] = append(json.RawMessage(nil), v...)
		}
	}
	return nil
}

// parseACL accepts each role list either as a string or as an array of strings, as
// KurrentDB does.
func parseACL(b []byte) (*StreamACL, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("stream metadata $acl must be an object: %w", err)
	}
	acl := &StreamACL{}
	fields := map[string]*[]string{"$r": &acl.Read, "$w": &acl.Write, "$d": &acl.Delete, "$mr": &acl.MetaRead, "$mw": &acl.MetaWrite}
	for k, v := range raw {
		dst, ok := fields[k]
		if !ok {
			continue
		}
		v = bytes.TrimSpace(v)
		if len(v) > 0 && v[0] == '"' {
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return nil, fmt.Errorf("stream metadata $acl.%s: %w", k, err)
			}
			*dst = []string{s}
			continue
		}
		if err := json.Unmarshal(v, dst); err != nil {
			return nil, fmt.Errorf("stream metadata $acl.%s must be a string or an array of strings: %w", k, err)
		}
	}
	return acl, nil
}
