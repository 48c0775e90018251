package main

import (
	"fmt"
	"strings"
)

// goroutinePerConn are the peers that read each connection on a goroutine
// of its own: the hand-off target is measured against them.
var goroutinePerConn = []string{"coder", "gobwas", "gorilla", "gws", "melody"}

// inlineEpoll is the inline-epoll peer (bench/peers/epoll), the design the
// echo and idle-memory targets are measured against.
var inlineEpoll = []string{"epoll"}

// target is one of the performance targets Strand is held to, checked
// against the same run as every table of the report.
type target struct {
	measure string
	goal    string
	cell    cellKey
	val     func(*agg) float64
	format  func(float64) string
	lower   bool     // lower is better
	limit   float64  // an absolute bound on strand's value (0: none)
	factor  float64  // strand must be within factor × the best peer (0: no comparison bound)
	among   []string // the peers compared (nil: all)
}

func targets() []target {
	return []target{
		{measure: "server RSS per idle connection, 10k connections", goal: "≤ 1.2 KB and ≤ the inline-epoll peer",
			cell: cellKey{Mode: "idle", Conns: 10000}, val: rssOf, format: fmtBytesF, lower: true, limit: 1200, factor: 1, among: inlineEpoll},
		{measure: "echo msgs/s, 1000 conns, 64 B, 16 in flight", goal: "≥ 1.0× the inline-epoll peer (moonshot 1.2×)",
			cell: cellKey{Mode: "echo", Conns: 1000, Size: 64, Depth: 16}, val: rateOf, format: fmtRate, factor: 1, among: inlineEpoll},
		{measure: "echo msgs/s, 100 conns, 4 KiB, 16 in flight", goal: "≥ best peer",
			cell: cellKey{Mode: "echo", Conns: 100, Size: 4096, Depth: 16}, val: rateOf, format: fmtRate, factor: 1},
		{measure: "p99 at fixed load, 1000 conns × 10 msg/s, 4 KiB", goal: "≤ 3 ms and ≤ the best peer",
			cell: cellKey{Mode: "echo", Conns: 1000, Size: 4096, Rate: 10}, val: p99Of, format: fmtMicros, lower: true, limit: 3000, factor: 1},
		{measure: "echo p99, 100 conns, 64 B, 16 in flight (fairness under overload)", goal: "≤ 10 ms",
			cell: cellKey{Mode: "echo", Conns: 100, Size: 64, Depth: 16}, val: p99Of, format: fmtMicros, lower: true, limit: 10000},
		{measure: "echo p50, 1 conn, 64 B, 1 in flight (hand-off cost)", goal: "≤ 1.3× the goroutine-per-connection peers",
			cell: cellKey{Mode: "echo", Conns: 1, Size: 64, Depth: 1}, val: p50Of, format: fmtMicros, lower: true, factor: 1.3, among: goroutinePerConn},
		{measure: "broadcast deliveries/s, 100 clients, 64 B", goal: "≥ best peer",
			cell: cellKey{Mode: "broadcast", Conns: 100, Size: 64}, val: rateOf, format: fmtRate, factor: 1},
	}
}

// check returns strand's value, the best compared peer and the verdict.
func (tg target) check(t *table) (value, peer, ratio, verdict string) {
	value, peer, ratio = "—", "—", "—"
	sa := t.get(tg.cell, strandName)
	if sa == nil || sa.Connected == 0 {
		return value, peer, ratio, "not run"
	}
	v := tg.val(sa)
	value = tg.format(v)
	if !sa.ok() {
		return value, peer, ratio, "**not met** (errors)"
	}
	met := true
	if tg.limit > 0 {
		met = tg.lower && v <= tg.limit || !tg.lower && v >= tg.limit
	}
	name, bv, found := t.bestAmong(tg.cell, tg.val, tg.lower, tg.among)
	if found {
		peer = fmt.Sprintf("%s %s", name, tg.format(bv))
		ratio = fmt.Sprintf("%.2f×", v/bv)
		if tg.factor > 0 {
			if tg.lower {
				met = met && v <= tg.factor*bv
			} else {
				met = met && v >= tg.factor*bv
			}
		}
	} else if tg.factor > 0 {
		return value, peer, ratio, "no peer to compare"
	}
	if met {
		return value, peer, ratio, "met"
	}
	return value, peer, ratio, "**not met**"
}

// targetsTable writes the targets with strand's figures from this run.
func targetsTable(sb *strings.Builder, t *table) {
	sb.WriteString("### Against the performance targets\n\n")
	sb.WriteString("From this run; a ratio below 1 is better for memory and latency, above 1 for throughput. " +
		"The hand-off row compares with the goroutine-per-connection peers (" + strings.Join(goroutinePerConn, ", ") + ").\n\n")
	sb.WriteString("| measure | target | strand | best peer | strand ÷ best peer | verdict |\n|---|---|--:|--:|--:|---|\n")
	for _, tg := range targets() {
		value, peer, ratio, verdict := tg.check(t)
		fmt.Fprintf(sb, "| %s | %s | %s | %s | %s | %s |\n", tg.measure, tg.goal, value, peer, ratio, verdict)
	}
	sb.WriteString("\n")
	ahead, behind := throughputStanding(t)
	if n := len(ahead) + len(behind); n > 0 {
		fmt.Fprintf(sb, "Every throughput cell (target: ≥ the best peer): strand ahead or level in %d of %d", len(ahead), n)
		if len(behind) > 0 {
			sb.WriteString("; behind in " + strings.Join(behind, ", "))
		}
		sb.WriteString(".\n\n")
	}
}

// throughputStanding sorts the throughput cells strand ran without error
// into those where it is at least the best peer and those where it is
// behind (labels with the ratio).
func throughputStanding(t *table) (ahead, behind []string) {
	for _, k := range throughputCells(t) {
		sa := t.get(k, strandName)
		if !sa.ok() {
			continue
		}
		name, bv, found := t.best(k, rateOf, false)
		if !found {
			continue
		}
		if r := sa.MsgsPerSec / bv; r >= 1 {
			ahead = append(ahead, k.label())
		} else {
			behind = append(behind, fmt.Sprintf("%s (%.2f× %s)", k.label(), r, name))
		}
	}
	return ahead, behind
}
