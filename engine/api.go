package engine

import (
	"time"

	"github.com/verity-dev/verity"
)

var _ verity.Store = (*Engine)(nil)

// Stats are counters and gauges of an open engine, for metrics and `verity bench`.
type Stats struct {
	// LastPosition is the position of the last visible (durable) event; 0 when empty.
	LastPosition uint64
	Appends      uint64 // append calls committed (including multi-stream ones)
	Events       uint64 // events committed since open
	Bytes        uint64 // bytes written to segments since open
	Fsyncs       uint64 // fsyncs of segment files since open
	// FsyncNanos is the total time spent in those fsyncs.
	FsyncNanos uint64
	Segments   int // segment files in the log
	IndexRuns  int // on-disk index runs
	// DiskBytes is the size of the log's segment files.
	DiskBytes int64
}

// ScavengeResult reports what a scavenge reclaimed.
type ScavengeResult struct {
	SegmentsRewritten int
	EventsRemoved     int64
	BytesReclaimed    int64
}

// VerifyResult reports a check of a data directory's checksums and hash chain.
type VerifyResult struct {
	// Events is how many events (including scavenged stubs) were checked.
	Events uint64
	// LastPosition is the last position checked.
	LastPosition uint64
	// Head is the hex SHA-256 chain value after the last event: record it elsewhere to
	// detect a rewrite of the whole log later.
	Head string
	// OK is true when every checksum and chain link held.
	OK bool
	// FirstBadPosition is the first position whose entry failed (0 when OK, or when the
	// damage is before any readable position: see Problem).
	FirstBadPosition uint64
	// Problem says what failed and where (segment file and offset).
	Problem string
}

// CommitInfo describes one durable batch of the group commit, for Config.OnCommit.
type CommitInfo struct {
	Appends int           // append calls answered with success
	Events  int           // events made durable
	Bytes   int           // bytes written to the segment
	Fsync   time.Duration // time the fsync took
}
