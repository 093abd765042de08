package bench

import (
	"math"
	"math/bits"
	"time"
)

// histSubBits sets the precision of latencyHist: 2^histSubBits buckets per
// power of two, so a recorded value is reported within 1/64 (1.6 %) of
// itself.
const histSubBits = 6

// histBuckets covers every uint64 nanosecond value.
const histBuckets = (64-histSubBits-1)*(1<<histSubBits) + 2<<histSubBits

// latencyHist is a log-linear histogram of durations in nanoseconds, in
// the manner of HdrHistogram: a fixed 30 KiB whatever the number of
// samples, so a long run keeps its memory. Values below 128 ns are exact;
// above, each power of two is split into 64 buckets. It is not safe for
// concurrent use: its owner locks.
type latencyHist struct {
	counts [histBuckets]uint64
	n      uint64
	min    uint64
	max    uint64
}

func histIndex(v uint64) int {
	shift := max(0, bits.Len64(v)-(histSubBits+1))
	return shift<<histSubBits + int(v>>shift)
}

// histValue is the middle of bucket i: the value a percentile in it reports.
func histValue(i int) uint64 {
	if i < 2<<histSubBits {
		return uint64(i)
	}
	shift := i>>histSubBits - 1
	low := uint64(i&(1<<histSubBits-1)+1<<histSubBits) << shift
	return low + (uint64(1)<<shift)/2
}

func (h *latencyHist) record(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[histIndex(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	h.max = max(h.max, v)
	h.n++
}

// quantile returns the value below which a fraction q of the samples lie
// (0 with no samples), clamped to the exact minimum and maximum.
func (h *latencyHist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(max(histValue(i), h.min), h.max))
		}
	}
	return time.Duration(h.max)
}

// latencyStats is a latencyHist summarised for the report. Times are in
// milliseconds.
type latencyStats struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p99_9_ms"`
	Max   float64 `json:"max_ms"`
}

func (h *latencyHist) stats() latencyStats {
	ms := func(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }
	return latencyStats{
		Count: int64(h.n),
		P50:   ms(h.quantile(0.50)),
		P90:   ms(h.quantile(0.90)),
		P99:   ms(h.quantile(0.99)),
		P999:  ms(h.quantile(0.999)),
		Max:   ms(time.Duration(h.max)),
	}
}
