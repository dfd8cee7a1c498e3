package main

import (
	"math"
	"math/bits"
)

// histogram counts durations (nanoseconds) in log-linear buckets, in the
// manner of HdrHistogram: values below 256 have a bucket each; above, every
// power of two is split into 128 buckets, so a quantile is reported within
// 1/128 (0.8%) of the true value, in a few kilobytes whatever the count.
type histogram struct {
	counts   []uint64
	n        uint64
	sum      float64
	min, max int64
}

const (
	subBits   = 8
	subCount  = 1 << subBits // exact buckets, and the resolution above them
	halfCount = subCount / 2
)

func bucketOf(v int64) int {
	if v < subCount {
		return int(max(v, 0))
	}
	shift := bits.Len64(uint64(v)) - subBits // ≥ 1
	m := int(v >> shift)                     // in [halfCount, subCount)
	return subCount + (shift-1)*halfCount + m - halfCount
}

// bucketTop is the highest value that falls in bucket i.
func bucketTop(i int) int64 {
	if i < subCount {
		return int64(i)
	}
	shift := (i-subCount)/halfCount + 1
	m := int64((i-subCount)%halfCount + halfCount)
	return (m+1)<<shift - 1
}

func (h *histogram) record(v int64) {
	v = max(v, 0)
	i := bucketOf(v)
	if i >= len(h.counts) {
		h.counts = append(h.counts, make([]uint64, i+1-len(h.counts))...)
	}
	h.counts[i]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	h.max = max(h.max, v)
	h.n++
	h.sum += float64(v)
}

func (h *histogram) merge(o *histogram) {
	if o.n == 0 {
		return
	}
	if len(o.counts) > len(h.counts) {
		h.counts = append(h.counts, make([]uint64, len(o.counts)-len(h.counts))...)
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

// quantile is the value at or below which a fraction q of the recorded
// values lie (the top of its bucket, never above the maximum seen).
func (h *histogram) quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(max(bucketTop(i), h.min), h.max)
		}
	}
	return h.max
}

func (h *histogram) mean() float64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / float64(h.n)
}
