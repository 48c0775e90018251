package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/strandws/strand/bench/internal/result"
)

// compressionRun reports whether r belongs to the compression cells (a JSON
// payload or a permessage-deflate offer) rather than the end-to-end tables,
// whose cells are keyed by shape alone and would mix the two.
func compressionRun(r *result.Result) bool {
	return r.Payload != "" || r.CompressOffer != ""
}

// splitRuns separates the end-to-end runs from the compression runs.
func splitRuns(runs []*result.Result) (e2e, comp []*result.Result) {
	for _, r := range runs {
		if compressionRun(r) {
			comp = append(comp, r)
		} else {
			e2e = append(e2e, r)
		}
	}
	return e2e, comp
}

// compressionTable is a Markdown table of the compression runs: one row per
// server and cell label, medians over the repeats, in cell-name order.
func compressionTable(runs []*result.Result) string {
	type key struct{ server, cell string }
	groups := map[key][]*result.Result{}
	var keys []key
	for _, r := range runs {
		k := key{r.Server, r.Cell}
		if groups[k] == nil {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], r)
	}
	slices.SortFunc(keys, func(a, b key) int {
		return strings.Compare(a.cell+"\x00"+a.server, b.cell+"\x00"+b.server)
	})
	med := func(rs []*result.Result, f func(*result.Result) float64) float64 {
		xs := make([]float64, len(rs))
		for i, r := range rs {
			xs[i] = f(r)
		}
		return median(xs)
	}
	var b strings.Builder
	b.WriteString("| server | cell | runs | deflate (conns) | msgs/s | server CPU | wire B/msg sent | wire B/msg received | RSS/conn | errors |\n")
	b.WriteString("|---|---|---:|---|---:|---:|---:|---:|---:|---:|\n")
	for _, k := range keys {
		rs := groups[k]
		r0 := rs[0]
		comp := "not offered"
		if r0.CompressOffer != "" {
			comp = fmt.Sprintf("%s offered (%d/%d", r0.CompressOffer, r0.CompressedConns, r0.Connected)
			if r0.ServerTakeoverConns > 0 {
				comp += fmt.Sprintf(", takeover %d", r0.ServerTakeoverConns)
			}
			comp += ")"
		}
		var errs uint64
		for _, r := range rs {
			errs += r.ErrorTotal
		}
		rate, cpu, rss := "–", "–", "–"
		if r0.Mode == "idle" {
			rss = fmtBytesF(med(rs, func(r *result.Result) float64 { return r.RSSPerConnBytes }))
		} else {
			rate = fmtRate(med(rs, func(r *result.Result) float64 { return r.MsgsPerSec }))
			cpu = fmt.Sprintf("%.0f%%", med(rs, func(r *result.Result) float64 { return r.ServerCPUPct }))
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s | %.0f | %.0f | %s | %d |\n",
			k.server, k.cell, len(rs), comp, rate, cpu,
			med(rs, func(r *result.Result) float64 { return r.WireBytesPerMsgSent }),
			med(rs, func(r *result.Result) float64 { return r.WireBytesPerMsgRecv }),
			rss, errs)
	}
	return b.String()
}
