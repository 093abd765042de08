package bench

import (
	"math"
	"testing"
	"time"
)

func TestLatencyHist(t *testing.T) {
	var h latencyHist
	if h.quantile(0.5) != 0 || h.stats().Count != 0 {
		t.Fatal("empty histogram reports samples")
	}
	for i := 1; i <= 100000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		want := q * 100000 * float64(time.Microsecond)
		got := float64(h.quantile(q))
		if math.Abs(got-want)/want > 1.0/64 {
			t.Errorf("q%g = %v, want %v within 1/64", q, time.Duration(got), time.Duration(want))
		}
	}
	if h.quantile(1) != 100*time.Millisecond || h.stats().Max != 100 {
		t.Errorf("max %v / %v", h.quantile(1), h.stats().Max)
	}
	// Every bucket's value lies in the bucket.
	for _, v := range []uint64{0, 1, 127, 128, 129, 255, 256, 1 << 20, 1<<20 + 12345, 1 << 62, math.MaxUint64} {
		if i := histIndex(v); i >= histBuckets || histIndex(histValue(i)) != i {
			t.Errorf("value %d: bucket %d, its value %d is in bucket %d", v, i, histValue(i), histIndex(histValue(i)))
		}
	}
}
