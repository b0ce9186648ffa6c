package persistent

import (
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/verity-dev/verity"
)

// maxGroupName is the longest group name, in characters.
const maxGroupName = 256

// validateSpec checks a spec at the edge: a bad one is Invalid and changes nothing.
func validateSpec(op string, spec verity.GroupSpec) error {
	if err := validateName(op, spec.Group); err != nil {
		return err
	}
	src := sourceOf(spec.Stream)
	if src != verity.AllStream {
		if !spec.Filter.IsZero() {
			return &verity.Error{Kind: verity.Invalid, Op: op, Stream: spec.Stream, Message: "a filter applies to log groups ($all) only"}
		}
		if !utf8.ValidString(src) || hasControl(src) {
			return verity.Errorf(verity.Invalid, op, "stream name %q has control characters or is not UTF-8", src)
		}
	}
	if _, err := spec.Filter.Compile(); err != nil {
		return err
	}
	s := spec.Settings
	switch {
	case s.Strategy > verity.PinnedByCorrelation:
		return verity.Errorf(verity.Invalid, op, "group %q: unknown consumer strategy %d", spec.Group, s.Strategy)
	case s.Quarantine > verity.QuarantineOff:
		return verity.Errorf(verity.Invalid, op, "group %q: unknown quarantine mode %d", spec.Group, s.Quarantine)
	case s.LiveBufferSize < 0:
		return verity.Errorf(verity.Invalid, op, "group %q: LiveBufferSize %d is negative", spec.Group, s.LiveBufferSize)
	case s.ReadBatchSize < 0:
		return verity.Errorf(verity.Invalid, op, "group %q: ReadBatchSize %d is negative", spec.Group, s.ReadBatchSize)
	case s.HistoryBufferSize < 0:
		return verity.Errorf(verity.Invalid, op, "group %q: HistoryBufferSize %d is negative", spec.Group, s.HistoryBufferSize)
	case s.CheckpointUpperBound < 0:
		return verity.Errorf(verity.Invalid, op, "group %q: CheckpointUpperBound %d is negative", spec.Group, s.CheckpointUpperBound)
	case s.MaxConsumers < 0:
		return verity.Errorf(verity.Invalid, op, "group %q: MaxConsumers %d is negative", spec.Group, s.MaxConsumers)
	}
	f := withDefaults(s)
	if f.CheckpointUpperBound < f.CheckpointLowerBound {
		return verity.Errorf(verity.Invalid, op, "group %q: CheckpointUpperBound %d below CheckpointLowerBound %d", spec.Group, f.CheckpointUpperBound, f.CheckpointLowerBound)
	}
	return nil
}

func validateName(op, name string) error {
	n := utf8.RuneCountInString(name)
	switch {
	case n == 0:
		return verity.Errorf(verity.Invalid, op, "group name is empty")
	case n > maxGroupName:
		return verity.Errorf(verity.Invalid, op, "group name of %d characters is over %d", n, maxGroupName)
	case !utf8.ValidString(name):
		return verity.Errorf(verity.Invalid, op, "group name %q is not UTF-8", name)
	case hasControl(name):
		return verity.Errorf(verity.Invalid, op, "group name %q has control characters", name)
	}
	return nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}

// sourceOf normalises a group's source: "" is the log.
func sourceOf(stream string) string {
	if stream == "" {
		return verity.AllStream
	}
	return stream
}

// withDefaults fills in every zero setting; negative values that ask for zero are kept as
// they are (see effective for what they mean).
func withDefaults(s verity.GroupSettings) verity.GroupSettings {
	if s.MessageTimeout == 0 {
		s.MessageTimeout = verity.DefaultMessageTimeout
	}
	if s.MaxRetryCount == 0 {
		s.MaxRetryCount = verity.DefaultMaxRetryCount
	}
	if s.LiveBufferSize == 0 {
		s.LiveBufferSize = verity.DefaultLiveBufferSize
	}
	if s.ReadBatchSize == 0 {
		s.ReadBatchSize = verity.DefaultReadBatchSize
	}
	if s.HistoryBufferSize == 0 {
		s.HistoryBufferSize = verity.DefaultHistoryBufferSize
	}
	if s.CheckpointAfter == 0 {
		s.CheckpointAfter = verity.DefaultCheckpointAfter
	}
	if s.CheckpointLowerBound == 0 {
		s.CheckpointLowerBound = verity.DefaultCheckpointLowerBound
	}
	if s.CheckpointUpperBound == 0 {
		s.CheckpointUpperBound = verity.DefaultCheckpointUpperBound
	}
	if s.Quarantine == verity.QuarantineDefault {
		s.Quarantine = verity.QuarantineOff
		if s.Strategy == verity.Pinned || s.Strategy == verity.PinnedByCorrelation {
			s.Quarantine = verity.QuarantineOrdered
		}
	}
	return s
}

// effective is what a group runs with: the defaults filled in and every negative
// "ask for zero" turned into its meaning.
type effective struct {
	timeout     time.Duration // 0: never
	maxRetry    int
	liveBuf     int
	historyBuf  int
	batch       int
	cpAfter     time.Duration
	cpLower     int
	cpUpper     int
	strategy    verity.ConsumerStrategy
	ordered     bool
	maxConsumer int
}

func effectiveOf(s verity.GroupSettings) effective {
	s = withDefaults(s)
	e := effective{
		timeout: max(s.MessageTimeout, 0), maxRetry: max(s.MaxRetryCount, 0),
		liveBuf: s.LiveBufferSize, historyBuf: s.HistoryBufferSize, batch: s.ReadBatchSize,
		cpAfter: max(s.CheckpointAfter, 0), cpLower: max(s.CheckpointLowerBound, 0), cpUpper: s.CheckpointUpperBound,
		strategy: s.Strategy, ordered: s.Quarantine == verity.QuarantineOrdered, maxConsumer: s.MaxConsumers,
	}
	return e
}
