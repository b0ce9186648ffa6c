package engine

import (
	"fmt"
	"log/slog"
	"time"
)

// Config configures an Engine. The zero value of every field but Dir means its default.
type Config struct {
	// Dir is the data directory. Required; created if missing.
	Dir string

	// SegmentSize is the size in bytes at which a segment file is sealed and a new one
	// started. Default 256 MiB; at least 1 MiB and at most 2 GiB.
	SegmentSize int64

	// MaxEventSize is the largest encoded event (type, data, metadata and stream name) in
	// bytes. Default 1 MiB.
	MaxEventSize int
	// MaxAppendSize is the largest append, all its events together, in bytes. Default 4 MiB.
	MaxAppendSize int
	// MaxAppendEvents is the most events one append may carry. Default 10,000.
	MaxAppendEvents int
	// MaxStreamNameLength is the longest stream name in bytes. Default 1,024.
	MaxStreamNameLength int
	// MaxEventTypeLength is the longest event type in bytes. Default 512.
	MaxEventTypeLength int

	// IndexFlushEvents is how many events the in-memory index holds before it is written
	// to disk as an index run. Bounds index memory. Default 262,144.
	IndexFlushEvents int
	// StreamCacheSize is how many streams' states (last revision, metadata) the writer
	// keeps in memory. Default 100,000.
	StreamCacheSize int

	// ScavengeInterval runs an online scavenge this often; zero disables it (run
	// Engine.Scavenge or `verity scavenge` instead).
	ScavengeInterval time.Duration

	// OnCommit, when set, is called by the writer after each durable batch (group commit)
	// with the number of events and bytes it carried and how long its fsync took. It runs on
	// the writer's goroutine: it must be quick and must not call the engine. For metrics.
	OnCommit func(c CommitInfo)

	// Now is the clock for commit times and max-age; default time.Now.
	Now func() time.Time
	// Logger receives the engine's logs; default slog.Default().
	Logger *slog.Logger
}

// Defaults.
const (
	DefaultSegmentSize         = 256 << 20
	DefaultMaxEventSize        = 1 << 20
	DefaultMaxAppendSize       = 4 << 20
	DefaultMaxAppendEvents     = 10_000
	DefaultMaxStreamNameLength = 1024
	DefaultMaxEventTypeLength  = 512
	DefaultIndexFlushEvents    = 1 << 18
	DefaultStreamCacheSize     = 100_000
)

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.SegmentSize == 0 {
		c.SegmentSize = DefaultSegmentSize
	}
	if c.MaxEventSize == 0 {
		c.MaxEventSize = DefaultMaxEventSize
	}
	if c.MaxAppendSize == 0 {
		c.MaxAppendSize = DefaultMaxAppendSize
	}
	if c.MaxAppendEvents == 0 {
		c.MaxAppendEvents = DefaultMaxAppendEvents
	}
	if c.MaxStreamNameLength == 0 {
		c.MaxStreamNameLength = DefaultMaxStreamNameLength
	}
	if c.MaxEventTypeLength == 0 {
		c.MaxEventTypeLength = DefaultMaxEventTypeLength
	}
	if c.IndexFlushEvents == 0 {
		c.IndexFlushEvents = DefaultIndexFlushEvents
	}
	if c.StreamCacheSize == 0 {
		c.StreamCacheSize = DefaultStreamCacheSize
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate names the first field that is out of range.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Dir == "":
		return fmt.Errorf("engine config: Dir is required")
	case c.SegmentSize < 1<<20 || c.SegmentSize > 2<<30:
		return fmt.Errorf("engine config: SegmentSize %d out of range [1 MiB, 2 GiB]", c.SegmentSize)
	case c.MaxEventSize < 1024:
		return fmt.Errorf("engine config: MaxEventSize %d below 1024 bytes", c.MaxEventSize)
	case int64(c.MaxEventSize) > c.SegmentSize/4:
		return fmt.Errorf("engine config: MaxEventSize %d over a quarter of SegmentSize %d", c.MaxEventSize, c.SegmentSize)
	case c.MaxAppendSize < c.MaxEventSize:
		return fmt.Errorf("engine config: MaxAppendSize %d below MaxEventSize %d", c.MaxAppendSize, c.MaxEventSize)
	case int64(c.MaxAppendSize) > c.SegmentSize/2:
		return fmt.Errorf("engine config: MaxAppendSize %d over half of SegmentSize %d", c.MaxAppendSize, c.SegmentSize)
	case c.MaxAppendEvents < 1:
		return fmt.Errorf("engine config: MaxAppendEvents %d below 1", c.MaxAppendEvents)
	case c.MaxStreamNameLength < 1 || c.MaxStreamNameLength > 64<<10:
		return fmt.Errorf("engine config: MaxStreamNameLength %d out of range [1, 65536]", c.MaxStreamNameLength)
	case c.MaxEventTypeLength < 1 || c.MaxEventTypeLength > 64<<10:
		return fmt.Errorf("engine config: MaxEventTypeLength %d out of range [1, 65536]", c.MaxEventTypeLength)
	case c.IndexFlushEvents < 1024:
		return fmt.Errorf("engine config: IndexFlushEvents %d below 1024", c.IndexFlushEvents)
	case c.StreamCacheSize < 16:
		return fmt.Errorf("engine config: StreamCacheSize %d below 16", c.StreamCacheSize)
	case c.ScavengeInterval < 0:
		return fmt.Errorf("engine config: ScavengeInterval %v is negative", c.ScavengeInterval)
	}
	return nil
}
