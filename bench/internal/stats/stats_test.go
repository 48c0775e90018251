package stats

import (
	"fmt"
	"math"
	"sync"
	"testing"
)

// within reports whether got is inside the histogram's 3-significant-digit
// error band around want.
func within(got, want float64) bool {
	return math.Abs(got-want) <= want*1e-3+1e-3
}

func TestPercentiles(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values func(record func(ns int64))
		want   Summary
	}{
		{
			name: "uniform-1-to-10000us",
			values: func(record func(int64)) {
				for i := int64(1); i <= 10000; i++ {
					record(i * 1000)
				}
			},
			want: Summary{Count: 10000, Mean: 5000.5, P50: 5000, P90: 9000, P99: 9900, P999: 9990, Max: 10000},
		},
		{
			name: "one-outlier-shows-only-in-tail",
			values: func(record func(int64)) {
				for range 999 {
					record(20_000) // 20 us
				}
				record(5_000_000) // 5 ms
			},
			want: Summary{Count: 1000, Mean: (999*20 + 5000) / 1000.0, P50: 20, P90: 20, P99: 20, P999: 20, Max: 5000},
		},
		{
			name: "clamped-out-of-range",
			values: func(record func(int64)) {
				record(-5)
				record(0)
			},
			want: Summary{Count: 2, Mean: 0.001, P50: 0.001, P90: 0.001, P99: 0.001, P999: 0.001, Max: 0.001},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRecorder(4)
			i := 0
			tc.values(func(ns int64) { r.Record(i, ns); i++ })
			got := Summarize(r.Merged())
			if got.Count != tc.want.Count {
				t.Fatalf("Count = %d, want %d", got.Count, tc.want.Count)
			}
			for _, f := range []struct {
				name      string
				got, want float64
			}{
				{"mean", got.Mean, tc.want.Mean},
				{"p50", got.P50, tc.want.P50},
				{"p90", got.P90, tc.want.P90},
				{"p99", got.P99, tc.want.P99},
				{"p999", got.P999, tc.want.P999},
				{"max", got.Max, tc.want.Max},
			} {
				if !within(f.got, f.want) {
					t.Errorf("%s = %v us, want %v us", f.name, f.got, f.want)
				}
			}
		})
	}
}

func TestEmpty(t *testing.T) {
	if got := Summarize(NewRecorder(0).Merged()); got != (Summary{}) {
		t.Fatalf("Summarize(empty) = %+v, want zero", got)
	}
}

func TestConcurrentRecordMergesEverything(t *testing.T) {
	r := NewRecorder(8)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				r.Record(g, 1000)
			}
		}()
	}
	wg.Wait()
	if n := r.Merged().TotalCount(); n != 16000 {
		t.Fatalf("TotalCount = %d, want 16000", n)
	}
}

func BenchmarkRecord(b *testing.B) {
	r := NewRecorder(32)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r.Record(i, int64(i%100000+1000))
		i++
	}
}

func ExampleSummarize() {
	r := NewRecorder(1)
	for i := int64(1); i <= 100; i++ {
		r.Record(0, i*1000) // 1 .. 100 us
	}
	s := Summarize(r.Merged())
	// Values are the upper edge of their histogram bucket (3 significant digits).
	fmt.Printf("%d %.0f %.0f %.0f\n", s.Count, s.P50, s.P99, s.Max)
	// Output: 100 50 99 100
}
