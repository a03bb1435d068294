package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// histogram is a lock-free log-linear histogram of durations in microseconds
// in the manner of HdrHistogram: every power of two is split into subBuckets
// linear buckets, so a recorded value is off by at most 1/subBuckets (< 0.8%).
type histogram struct {
	counts [64 * subBuckets]atomic.Int64
	total  atomic.Int64
	max    atomic.Int64
	sum    atomic.Int64
}

const (
	subBits    = 7
	subBuckets = 1 << subBits
)

func bucketOf(v int64) int {
	if v < subBuckets {
		return int(v)
	}
	exp := bits.Len64(uint64(v)) - subBits // >= 1
	return exp*subBuckets + int(v>>uint(exp-1)) - subBuckets
}

// lowerBound is the smallest value that falls into bucket i.
func lowerBound(i int) int64 {
	if i < subBuckets {
		return int64(i)
	}
	exp := i / subBuckets
	sub := i%subBuckets + subBuckets
	return int64(sub) << uint(exp-1)
}

// record adds one observation.
func (h *histogram) record(d time.Duration) {
	us := d.Microseconds()
	if us < 0 {
		us = 0
	}
	h.counts[bucketOf(us)].Add(1)
	h.total.Add(1)
	h.sum.Add(us)
	for {
		m := h.max.Load()
		if us <= m || h.max.CompareAndSwap(m, us) {
			return
		}
	}
}

// quantile returns the value at quantile q (0..1), as the upper edge of its
// bucket's lower bound (a conservative reading), in milliseconds.
func (h *histogram) quantile(q float64) float64 {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	rank := int64(q*float64(n) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen int64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			v := lowerBound(i + 1)
			if m := h.max.Load(); v > m {
				v = m
			}
			return float64(v) / 1000
		}
	}
	return float64(h.max.Load()) / 1000
}

// latency summarises a histogram for the report.
type latency struct {
	Count  int64   `json:"count"`
	MeanMs float64 `json:"meanMs"`
	P50Ms  float64 `json:"p50Ms"`
	P95Ms  float64 `json:"p95Ms"`
	P99Ms  float64 `json:"p99Ms"`
	MaxMs  float64 `json:"maxMs"`
}

func (h *histogram) summary() latency {
	n := h.total.Load()
	l := latency{Count: n}
	if n == 0 {
		return l
	}
	l.MeanMs = float64(h.sum.Load()) / float64(n) / 1000
	l.P50Ms = h.quantile(0.50)
	l.P95Ms = h.quantile(0.95)
	l.P99Ms = h.quantile(0.99)
	l.MaxMs = float64(h.max.Load()) / 1000
	return l
}
