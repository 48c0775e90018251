package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/strandws/strand/bench/internal/result"
)

// The isolation cell (bench/run.sh, Strand only): 900 plain echo
// connections at depth 16 measured alone ("alone-r<N>.json"), then next to
// 100 connections whose every message blocks its handler for 200 ms
// ("mixed-r<N>.json", the sleepers' own run in "sleepers-r<N>.json"), on a
// fresh server each time. Its results live in a directory of their own,
// outside the matrix's, so that their cells do not merge with the matrix's.

// Targets of the isolation cell: the 900 keep this share of their
// throughput, and their p99 grows by at most this factor.
const (
	isolationMinThroughput = 0.90
	isolationMaxP99        = 2.0
)

// isolationRuns is the isolation cell's results: the 900 alone, next to the
// sleepers, and the sleepers'.
type isolationRuns struct {
	alone, mixed, sleepers []*result.Result
}

func readIsolation(dir string) (isolationRuns, error) {
	var ir isolationRuns
	for _, part := range []struct {
		prefix string
		dst    *[]*result.Result
	}{{"alone-", &ir.alone}, {"mixed-", &ir.mixed}, {"sleepers-", &ir.sleepers}} {
		paths, err := filepath.Glob(filepath.Join(dir, part.prefix+"r*.json"))
		if err != nil {
			return ir, err
		}
		for _, p := range paths {
			r, err := result.Read(p)
			if err != nil {
				return ir, err
			}
			*part.dst = append(*part.dst, r)
		}
	}
	if len(ir.alone) == 0 || len(ir.mixed) == 0 {
		return ir, fmt.Errorf("no isolation results (alone-r*.json and mixed-r*.json) under %s", dir)
	}
	return ir, nil
}

func medianOf(runs []*result.Result, f func(*result.Result) float64) float64 {
	xs := make([]float64, 0, len(runs))
	for _, r := range runs {
		xs = append(xs, f(r))
	}
	return median(xs)
}

func errorsOf(runs []*result.Result) uint64 {
	var n uint64
	for _, r := range runs {
		n += r.ErrorTotal
	}
	return n
}

// isolationSection is the isolation cell's Markdown section.
func isolationSection(ir isolationRuns) string {
	rate := func(r *result.Result) float64 { return r.MsgsPerSec }
	p99 := func(r *result.Result) float64 { return r.Latency.P99 }
	aRate, mRate := medianOf(ir.alone, rate), medianOf(ir.mixed, rate)
	aP99, mP99 := medianOf(ir.alone, p99), medianOf(ir.mixed, p99)
	var sb strings.Builder
	sb.WriteString("### Slow handlers: 900 echo connections next to 100 blocked ones\n\n")
	sb.WriteString("Strand only (`examples/echo -sleep-param`). 900 connections echo 64 B at depth 16, measured alone and then, " +
		"on a fresh server, next to 100 connections opened with `?sleep=200ms` (each of their messages blocks its handler for 200 ms, " +
		"16 in flight). Medians of the repeats; the ratios compare the two runs of the 900.\n\n")
	sb.WriteString("| the 900 | alone | next to the sleepers | ratio | target | |\n|---|--:|--:|--:|---|---|\n")
	tr, pr := 0.0, 0.0
	if aRate > 0 {
		tr = mRate / aRate
	}
	if aP99 > 0 {
		pr = mP99 / aP99
	}
	fmt.Fprintf(&sb, "| throughput (msgs/s) | %s | %s | %.2f | ≥ %.2f | %s |\n", fmtRate(aRate), fmtRate(mRate), tr, isolationMinThroughput, metMark(tr >= isolationMinThroughput))
	fmt.Fprintf(&sb, "| p99 latency | %s | %s | %.2f× | ≤ %.0f× | %s |\n", fmtMicros(aP99), fmtMicros(mP99), pr, isolationMaxP99, metMark(pr > 0 && pr <= isolationMaxP99))
	fmt.Fprintf(&sb, "\nRepeats: %d alone, %d next to the sleepers. Errors (integrity, order, loss): %d alone, %d next to the sleepers",
		len(ir.alone), len(ir.mixed), errorsOf(ir.alone), errorsOf(ir.mixed))
	if len(ir.sleepers) > 0 {
		fmt.Fprintf(&sb, ", %d in the sleepers' own runs (%s msgs/s, p50 %s)", errorsOf(ir.sleepers),
			fmtRate(medianOf(ir.sleepers, rate)), fmtMicros(medianOf(ir.sleepers, func(r *result.Result) float64 { return r.Latency.P50 })))
	}
	sb.WriteString(".\n\n")
	return sb.String()
}

func metMark(ok bool) string {
	if ok {
		return "met"
	}
	return "**not met**"
}

// printIsolation writes the isolation cell's section for dir to stdout.
func printIsolation(dir string) error {
	ir, err := readIsolation(dir)
	if err != nil {
		return err
	}
	_, err = os.Stdout.WriteString(isolationSection(ir))
	return err
}
