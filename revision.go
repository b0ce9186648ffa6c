package verity

import "fmt"

// ExpectedRevision is the optimistic-concurrency condition of an append. The zero value is
// Any.
type ExpectedRevision struct {
	kind expectKind
	rev  uint64
}

type expectKind uint8

const (
	expectAny expectKind = iota
	expectNoStream
	expectStreamExists
	expectExact
)

// Any accepts the append whatever the stream's state.
func Any() ExpectedRevision { return ExpectedRevision{} }

// NoStream accepts the append only if the stream has no events (never written, or deleted).
func NoStream() ExpectedRevision { return ExpectedRevision{kind: expectNoStream} }

// StreamExists accepts the append only if the stream has at least one visible event.
func StreamExists() ExpectedRevision { return ExpectedRevision{kind: expectStreamExists} }

// Exact accepts the append only if the stream's last revision is rev.
func Exact(rev uint64) ExpectedRevision { return ExpectedRevision{kind: expectExact, rev: rev} }

// IsAny, IsNoStream, IsStreamExists report the condition's kind.
func (e ExpectedRevision) IsAny() bool          { return e.kind == expectAny }
func (e ExpectedRevision) IsNoStream() bool     { return e.kind == expectNoStream }
func (e ExpectedRevision) IsStreamExists() bool { return e.kind == expectStreamExists }

// Revision returns the exact revision expected and whether the condition is Exact.
func (e ExpectedRevision) Revision() (uint64, bool) { return e.rev, e.kind == expectExact }

func (e ExpectedRevision) String() string {
	switch e.kind {
	case expectNoStream:
		return "no stream"
	case expectStreamExists:
		return "stream exists"
	case expectExact:
		return fmt.Sprintf("%d", e.rev)
	default:
		return "any"
	}
}

// StreamState describes a stream's current revision in an error: either no stream, or a
// revision.
type StreamState struct {
	Exists   bool
	Revision uint64
}

func (s StreamState) String() string {
	if !s.Exists {
		return "no stream"
	}
	return fmt.Sprintf("%d", s.Revision)
}
