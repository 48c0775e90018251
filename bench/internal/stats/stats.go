package stats

import (
	"sync"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram bounds: 1 ns to 60 s at 3 significant digits.
const (
	lowest  = 1
	highest = 60_000_000_000
	sigfigs = 3
)

// Summary is a latency distribution in microseconds.
type Summary struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean_us"`
	P50   float64 `json:"p50_us"`
	P90   float64 `json:"p90_us"`
	P99   float64 `json:"p99_us"`
	P999  float64 `json:"p999_us"`
	Max   float64 `json:"max_us"`
}

type shard struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram
	_  [40]byte // keep shards' hot fields on separate cache lines
}

// Recorder is a sharded latency histogram.
type Recorder struct {
	shards []shard
}

// NewRecorder returns a recorder with n shards (at least 1).
func NewRecorder(n int) *Recorder {
	if n < 1 {
		n = 1
	}
	r := &Recorder{shards: make([]shard, n)}
	for i := range r.shards {
		r.shards[i].h = hdrhistogram.New(lowest, highest, sigfigs)
	}
	return r
}

// Record adds one latency in nanoseconds; key picks the shard (use the
// connection id). Values outside 1 ns .. 60 s are clamped.
func (r *Recorder) Record(key int, nanos int64) {
	if nanos < lowest {
		nanos = lowest
	}
	if nanos > highest {
		nanos = highest
	}
	s := &r.shards[key%len(r.shards)]
	s.mu.Lock()
	_ = s.h.RecordValue(nanos) // cannot fail: the value was clamped into range
	s.mu.Unlock()
}

// Merged returns a new histogram holding every recorded value.
func (r *Recorder) Merged() *hdrhistogram.Histogram {
	out := hdrhistogram.New(lowest, highest, sigfigs)
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		out.Merge(s.h)
		s.mu.Unlock()
	}
	return out
}

// Summarize reports h's percentiles in microseconds.
func Summarize(h *hdrhistogram.Histogram) Summary {
	if h.TotalCount() == 0 {
		return Summary{}
	}
	us := func(ns int64) float64 { return float64(ns) / 1e3 }
	return Summary{
		Count: h.TotalCount(),
		Mean:  h.Mean() / 1e3,
		P50:   us(h.ValueAtQuantile(50)),
		P90:   us(h.ValueAtQuantile(90)),
		P99:   us(h.ValueAtQuantile(99)),
		P999:  us(h.ValueAtQuantile(99.9)),
		Max:   us(h.Max()),
	}
}
