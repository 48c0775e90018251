package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/strandws/strand/bench/internal/result"
	"github.com/strandws/strand/bench/internal/stats"
)

func TestSplice(t *testing.T) {
	const sec = "NEW\n"
	for _, tc := range []struct {
		name, doc, want string
		err             error
	}{
		{
			name: "replaces-only-between-markers",
			doc:  "# B\n\nmicro stuff\n" + beginMarker + "\nOLD\n" + endMarker + "\nafter\n",
			want: "# B\n\nmicro stuff\n" + beginMarker + "\nNEW\n" + endMarker + "\nafter\n",
		},
		{
			name: "appends-when-no-markers",
			doc:  "# B\n\nmicro stuff\n",
			want: "# B\n\nmicro stuff\n\n" + beginMarker + "\nNEW\n" + endMarker + "\n",
		},
		{
			name: "empty-markers",
			doc:  beginMarker + endMarker,
			want: beginMarker + "\nNEW\n" + endMarker,
		},
		{name: "only-begin", doc: "x " + beginMarker + " y", err: errMarkers},
		{name: "reversed", doc: endMarker + " " + beginMarker, err: errMarkers},
		{name: "twice", doc: strings.Repeat(beginMarker+endMarker, 2), err: errMarkers},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := splice(tc.doc, sec)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err == nil && got != tc.want {
				t.Fatalf("got\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

func TestAggregateMediansAndBestPeer(t *testing.T) {
	mk := func(server string, rate, p99 float64, errs uint64) *result.Result {
		return &result.Result{Server: server, Mode: "echo", Conns: 10, Connected: 10, Size: 64, Depth: 1,
			MsgsPerSec: rate, Latency: stats.Summary{P99: p99}, ErrorTotal: errs}
	}
	tbl := aggregate([]*result.Result{
		mk("strand", 300, 10, 0), mk("strand", 100, 30, 0), mk("strand", 200, 20, 0),
		mk("a", 150, 15, 0),
		mk("b", 250, 5, 7), // fastest, but it broke the order: never "best"
	})
	if len(tbl.cells) != 1 || tbl.servers[0] != strandName {
		t.Fatalf("cells %v servers %v", tbl.cells, tbl.servers)
	}
	k := tbl.cells[0]
	if got := tbl.get(k, strandName); got.MsgsPerSec != 200 || got.P99 != 20 || got.Repeats != 3 {
		t.Fatalf("strand medians = %+v", got)
	}
	name, v, ok := tbl.best(k, rateOf, false)
	if !ok || name != "a" || v != 150 {
		t.Fatalf("best = %s %v %v, want a 150", name, v, ok)
	}
	md := markdown(tbl, "")
	if !strings.Contains(md, "| 1.33× |") {
		t.Fatalf("markdown lacks strand's 200/150 ratio:\n%s", md)
	}
	if !strings.Contains(md, "250 ⚠") {
		t.Fatalf("markdown does not flag b's errors:\n%s", md)
	}
}

func TestTargets(t *testing.T) {
	echo := func(server string, conns, size, depth int, rate, p50, p99 float64) *result.Result {
		return &result.Result{Server: server, Mode: "echo", Conns: conns, Connected: conns, Size: size, Depth: depth,
			MsgsPerSec: rate, Latency: stats.Summary{P50: p50, P99: p99}}
	}
	idle := func(server string, rss float64) *result.Result {
		return &result.Result{Server: server, Mode: "idle", Conns: 10000, Connected: 10000, RSSPerConnBytes: rss}
	}
	tbl := aggregate([]*result.Result{
		idle("strand", 1100), idle("epoll", 600), idle("nbio", 500), // under 1.2 KB, over the epoll peer (nbio does not count)
		echo("strand", 1000, 64, 16, 900e3, 0, 0), echo("epoll", 1000, 64, 16, 850e3, 0, 0), echo("gorilla", 1000, 64, 16, 950e3, 0, 0), // met: only the epoll peer counts
		echo("strand", 100, 4096, 16, 100e3, 0, 0), echo("gws", 100, 4096, 16, 120e3, 0, 0), // slower than gws
		// 1 conn p50: nbio's is lowest but it is not a goroutine-per-connection peer.
		echo("strand", 1, 64, 1, 10e3, 60, 90), echo("gorilla", 1, 64, 1, 10e3, 50, 80), echo("nbio", 1, 64, 1, 9e3, 30, 40),
	})
	verdicts := map[string]string{}
	for _, tg := range targets() {
		_, peer, _, verdict := tg.check(tbl)
		verdicts[tg.measure] = verdict + " / " + peer
	}
	for measure, want := range map[string]string{
		"server RSS per idle connection, 10k connections":     "**not met** / epoll 600 B",
		"echo msgs/s, 1000 conns, 64 B, 16 in flight":         "met / epoll 850k",
		"echo msgs/s, 100 conns, 4 KiB, 16 in flight":         "**not met** / gws 120k",
		"echo p50, 1 conn, 64 B, 1 in flight (hand-off cost)": "met / gorilla 50 µs", // 60 ≤ 1.3 × 50
		"broadcast deliveries/s, 100 clients, 64 B":           "not run / —",
	} {
		if got := verdicts[measure]; got != want {
			t.Errorf("%s: got %q, want %q", measure, got, want)
		}
	}
	md := markdown(tbl, "")
	if !strings.Contains(md, "### Against the performance targets") {
		t.Fatalf("markdown lacks the targets table:\n%s", md)
	}
	// Throughput cells: level with gorilla with one connection; behind
	// gws and gorilla (which the epoll target ignores) in the other two.
	want := "strand ahead or level in 1 of 3; behind in echo 100 conns, 4 KiB, depth 16 (0.83× gws), echo 1k conns, 64 B, depth 16 (0.95× gorilla)"
	if !strings.Contains(md, want) {
		t.Fatalf("markdown lacks %q:\n%s", want, md)
	}
}

func TestCompressionRunsKeptApart(t *testing.T) {
	echo := func(cell string, rate float64, offer string, comp int, sent, recv float64) *result.Result {
		return &result.Result{Server: "strand", Cell: cell, Mode: "echo", Conns: 100, Connected: 100, Size: 4096, Depth: 16,
			Payload: "json", CompressOffer: offer, CompressedConns: comp, MsgsPerSec: rate, ServerCPUPct: 99,
			WireBytesPerMsgSent: sent, WireBytesPerMsgRecv: recv}
	}
	plain := &result.Result{Server: "strand", Mode: "echo", Conns: 100, Connected: 100, Size: 4096, Depth: 16, MsgsPerSec: 1000}
	runs := []*result.Result{
		plain,
		echo("zecho-on", 30000, "no-takeover", 100, 1770, 1766),
		echo("zecho-off", 90000, "no-takeover", 0, 4104, 4100),
		echo("zecho-off", 110000, "no-takeover", 0, 4104, 4100),
		{Server: "strand", Cell: "zidle-takeover", Mode: "idle", Conns: 5000, Connected: 5000, Payload: "json",
			CompressOffer: "takeover", CompressedConns: 5000, ServerTakeoverConns: 5000, RSSPerConnBytes: 190 << 10},
	}
	e2e, comp := splitRuns(runs)
	if len(e2e) != 1 || e2e[0] != plain || len(comp) != 4 {
		t.Fatalf("split: %d end-to-end, %d compression runs", len(e2e), len(comp))
	}
	got := compressionTable(comp)
	for _, want := range []string{
		"| strand | zecho-off | 2 | no-takeover offered (0/100) | 100k | 99% | 4104 | 4100 | – | 0 |",
		"| strand | zecho-on | 1 | no-takeover offered (100/100) | 30k | 99% | 1770 | 1766 | – | 0 |",
		"| strand | zidle-takeover | 1 | takeover offered (5000/5000, takeover 5000) | – | – | 0 | 0 | 190.0 KiB | 0 |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
	if strings.Index(got, "zecho-off") > strings.Index(got, "zecho-on") {
		t.Errorf("rows not in cell order:\n%s", got)
	}
}
