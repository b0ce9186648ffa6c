package loadgen

import (
	"math/bits"
	"time"
)

// A histogram records durations in log-linear buckets, as HDR histograms do: exact below
// 128ns, then 64 buckets per power of two, so any recorded value is known within 1/64
// (about 1.6%) whatever its size, in a fixed 30 KB. Not safe for concurrent use.
type histogram struct {
	counts [numBuckets]uint64
	n      uint64
	sum    time.Duration
	max    time.Duration
}

const (
	subBits    = 6
	subBuckets = 1 << subBits   // buckets per power of two
	linearTop  = 2 * subBuckets // values below are their own bucket
	numBuckets = linearTop + (64-subBits-1)*subBuckets
)

// bucketOf is the index of v's bucket.
func bucketOf(v uint64) int {
	if v < linearTop {
		return int(v)
	}
	shift := bits.Len64(v) - (subBits + 1) // >= 1
	mantissa := v >> shift                 // in [subBuckets, 2*subBuckets)
	return linearTop + (shift-1)*subBuckets + int(mantissa-subBuckets)
}

// bucketRange is the lowest and highest value of bucket i.
func bucketRange(i int) (lo, hi uint64) {
	if i < linearTop {
		return uint64(i), uint64(i)
	}
	shift := (i-linearTop)/subBuckets + 1
	mantissa := uint64((i-linearTop)%subBuckets + subBuckets)
	return mantissa << shift, (mantissa+1)<<shift - 1
}

func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))]++
	h.n++
	h.sum += d
	h.max = max(h.max, d)
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// quantile is the value at or below which a fraction q of the values lie: the middle of
// its bucket, never above the largest value recorded.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	// The rank of the value wanted, from 1: the smallest with at least q*n values at or
	// below it (nearest-rank definition).
	rank := uint64(q*float64(h.n) + 0.999999999)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		if seen += c; seen >= rank {
			lo, hi := bucketRange(i)
			return min(time.Duration(lo+(hi-lo)/2), h.max)
		}
	}
	return h.max
}

func (h *histogram) latency() Latency {
	l := Latency{P50: h.quantile(0.50), P90: h.quantile(0.90), P99: h.quantile(0.99), Max: h.max}
	if h.n > 0 {
		l.Mean = h.sum / time.Duration(h.n)
	}
	return l
}
