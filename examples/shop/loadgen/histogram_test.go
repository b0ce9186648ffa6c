package loadgen

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketsCoverEveryValueInOrder(t *testing.T) {
	values := []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 1 << 20, 1<<40 + 12345, 1<<63 - 1, 1 << 63, ^uint64(0)}
	for _, v := range values {
		i := bucketOf(v)
		if i < 0 || i >= numBuckets {
			t.Fatalf("value %d: bucket %d out of [0,%d)", v, i, numBuckets)
		}
		lo, hi := bucketRange(i)
		if v < lo || v > hi {
			t.Errorf("value %d in bucket %d = [%d,%d]", v, i, lo, hi)
		}
		if v >= linearTop && float64(hi-lo) > float64(lo)/subBuckets {
			t.Errorf("value %d: bucket [%d,%d] wider than 1/%d of its value", v, lo, hi, subBuckets)
		}
	}
	for i := 1; i < numBuckets; i++ {
		_, prevHi := bucketRange(i - 1)
		lo, _ := bucketRange(i)
		if lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, bucket %d ends at %d", i, lo, i-1, prevHi)
		}
	}
}

func TestQuantilesAreWithinTheBucketErrorOfExactOnes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h histogram
	samples := make([]time.Duration, 100_000)
	for i := range samples {
		// Log-normal-ish: most answers fast, a long tail.
		samples[i] = time.Duration(rng.ExpFloat64() * rng.ExpFloat64() * float64(5*time.Millisecond))
		h.record(samples[i])
	}
	slices.Sort(samples)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := samples[int(q*float64(len(samples)))-1]
		got := h.quantile(q)
		if diff := float64(got-exact) / float64(exact); diff > 0.02 || diff < -0.02 {
			t.Errorf("q%v: %v, exact %v (%.1f%% off)", q, got, exact, diff*100)
		}
	}
	if h.latency().Max != samples[len(samples)-1] {
		t.Errorf("max %v, want %v", h.latency().Max, samples[len(samples)-1])
	}
	var empty histogram
	if l := empty.latency(); l != (Latency{}) {
		t.Errorf("an empty histogram's latency is %+v", l)
	}
}
