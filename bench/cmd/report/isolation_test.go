package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/strandws/strand/bench/internal/result"
	"github.com/strandws/strand/bench/internal/stats"
)

func TestIsolationSection(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, rate, p99 float64) {
		t.Helper()
		r := &result.Result{Server: "strand", Mode: "echo", MsgsPerSec: rate, Latency: stats.Summary{P50: p99 / 2, P99: p99}}
		if err := result.Write(filepath.Join(dir, name), r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := readIsolation(dir); err == nil {
		t.Fatal("readIsolation of an empty directory: want an error")
	}
	// Medians: alone 100k msgs/s and p99 1000 µs; mixed 80k and 2500 µs.
	write("alone-r1.json", 100_000, 1000)
	write("alone-r2.json", 90_000, 900)
	write("alone-r3.json", 110_000, 1100)
	write("mixed-r1.json", 80_000, 2500)
	write("sleepers-r1.json", 600, 3_000_000)
	ir, err := readIsolation(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := isolationSection(ir)
	for _, want := range []string{
		"| throughput (msgs/s) | 100k | 80k | 0.80 | ≥ 0.90 | **not met** |",
		"| p99 latency | 1.0 ms | 2.5 ms | 2.50× | ≤ 2× | **not met** |",
		"Repeats: 3 alone, 1 next to the sleepers.",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("section lacks %q:\n%s", want, got)
		}
	}
}
