package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"

	"github.com/strandws/strand/bench/internal/result"
)

// strandName is the server the report compares against the peers.
const strandName = "strand"

// cellKey identifies a benchmark cell by what was run, not by its label.
type cellKey struct {
	Mode  string
	Conns int
	Size  int
	Depth int
	Rate  float64
	Text  bool
}

// label is the human name of a cell.
func (k cellKey) label() string {
	kind := ""
	if k.Text {
		kind = " text"
	}
	conns := fmtCount(k.Conns) + " conns"
	if k.Conns == 1 {
		conns = "1 conn"
	}
	switch {
	case k.Mode == "idle":
		return "idle " + conns
	case k.Mode == "broadcast":
		return fmt.Sprintf("broadcast %d clients, %s%s", k.Conns, fmtBytes(k.Size), kind)
	case k.Rate > 0:
		return fmt.Sprintf("echo %s × %g msg/s, %s%s", conns, k.Rate, fmtBytes(k.Size), kind)
	default:
		return fmt.Sprintf("echo %s, %s%s, depth %d", conns, fmtBytes(k.Size), kind, k.Depth)
	}
}

// order sorts cells: saturated echo, fixed-rate echo, broadcast, idle.
func (k cellKey) order() int {
	switch {
	case k.Mode == "echo" && k.Rate == 0:
		return 0
	case k.Mode == "echo":
		return 1
	case k.Mode == "broadcast":
		return 2
	default:
		return 3
	}
}

func compareCells(a, b cellKey) int {
	return cmp.Or(
		cmp.Compare(a.order(), b.order()),
		cmp.Compare(a.Conns, b.Conns),
		cmp.Compare(a.Size, b.Size),
		cmp.Compare(a.Depth, b.Depth),
		cmp.Compare(a.Rate, b.Rate),
		boolCompare(a.Text, b.Text),
	)
}

func boolCompare(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	default:
		return 1
	}
}

// agg is one server in one cell: medians over its repeats.
type agg struct {
	Server  string `json:"server"`
	Cell    string `json:"cell"`
	Repeats int    `json:"repeats"`

	MsgsPerSec      float64 `json:"msgs_per_s"`
	P50             float64 `json:"p50_us"`
	P90             float64 `json:"p90_us"`
	P99             float64 `json:"p99_us"`
	P999            float64 `json:"p999_us"`
	Max             float64 `json:"max_us"`
	ServerCPUPct    float64 `json:"server_cpu_pct"`
	ClientCPUPct    float64 `json:"client_cpu_pct"`
	RSSPerConnBytes float64 `json:"rss_per_conn_bytes,omitempty"`
	ServerRSSKB     float64 `json:"server_rss_after_kb,omitempty"`

	Connected  int               `json:"connected"` // fewest over the repeats
	Conns      int               `json:"conns"`
	ErrorTotal uint64            `json:"error_total"` // summed over the repeats
	Errors     map[string]uint64 `json:"errors,omitempty"`
	Sample     string            `json:"error_sample,omitempty"`
}

// ok reports whether every repeat connected everything and saw no error.
func (a *agg) ok() bool { return a != nil && a.ErrorTotal == 0 && a.Connected == a.Conns }

// clientBound reports whether the load generator was near its CPU limit, so
// the server may have had more to give.
func (a *agg) clientBound() bool { return a != nil && a.ClientCPUPct >= 95 }

// table is every aggregate, indexed by cell and server.
type table struct {
	cells   []cellKey
	servers []string
	data    map[cellKey]map[string]*agg
}

func (t *table) get(k cellKey, server string) *agg { return t.data[k][server] }

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func aggregate(runs []*result.Result) *table {
	type group struct{ runs []*result.Result }
	groups := map[cellKey]map[string]*group{}
	servers := map[string]bool{}
	for _, r := range runs {
		k := cellKey{Mode: r.Mode, Conns: r.Conns, Size: r.Size, Depth: r.Depth, Rate: r.Rate, Text: r.Text}
		if r.Mode == "idle" {
			k.Depth, k.Size = 0, 0
		}
		if r.Mode == "broadcast" || r.Rate > 0 {
			k.Depth = 0 // at a fixed rate or in broadcast the window is a detail
		}
		if groups[k] == nil {
			groups[k] = map[string]*group{}
		}
		name := r.Server
		if name == "" {
			name = "unnamed"
		}
		servers[name] = true
		g := groups[k][name]
		if g == nil {
			g = &group{}
			groups[k][name] = g
		}
		g.runs = append(g.runs, r)
	}
	t := &table{data: map[cellKey]map[string]*agg{}}
	for k, bySrv := range groups {
		t.cells = append(t.cells, k)
		t.data[k] = map[string]*agg{}
		for name, g := range bySrv {
			a := &agg{Server: name, Cell: k.label(), Repeats: len(g.runs), Conns: k.Conns, Connected: k.Conns, Errors: map[string]uint64{}}
			pick := func(f func(*result.Result) float64) float64 {
				var xs []float64
				for _, r := range g.runs {
					xs = append(xs, f(r))
				}
				return median(xs)
			}
			a.MsgsPerSec = pick(func(r *result.Result) float64 { return r.MsgsPerSec })
			a.P50 = pick(func(r *result.Result) float64 { return r.Latency.P50 })
			a.P90 = pick(func(r *result.Result) float64 { return r.Latency.P90 })
			a.P99 = pick(func(r *result.Result) float64 { return r.Latency.P99 })
			a.P999 = pick(func(r *result.Result) float64 { return r.Latency.P999 })
			a.Max = pick(func(r *result.Result) float64 { return r.Latency.Max })
			a.ServerCPUPct = pick(func(r *result.Result) float64 { return r.ServerCPUPct })
			a.ClientCPUPct = pick(func(r *result.Result) float64 { return r.ClientCPUPct })
			a.RSSPerConnBytes = pick(func(r *result.Result) float64 { return r.RSSPerConnBytes })
			a.ServerRSSKB = pick(func(r *result.Result) float64 { return float64(r.ServerRSSAfterKB) })
			for _, r := range g.runs {
				a.Connected = min(a.Connected, r.Connected)
				a.ErrorTotal += r.ErrorTotal
				for kind, n := range r.Errors {
					a.Errors[kind] += n
				}
				if a.Sample == "" && len(r.ErrorSamples) > 0 {
					a.Sample = r.ErrorSamples[0]
				}
			}
			t.data[k][name] = a
		}
	}
	slices.SortFunc(t.cells, compareCells)
	for s := range servers {
		t.servers = append(t.servers, s)
	}
	// Strand first, then the peers by name.
	sort.Slice(t.servers, func(i, j int) bool {
		a, b := t.servers[i], t.servers[j]
		if (a == strandName) != (b == strandName) {
			return a == strandName
		}
		return a < b
	})
	return t
}

// best returns the peer (any server but strand) with the best value in cell
// k among those that ran without error; lower selects the smallest value.
func (t *table) best(k cellKey, val func(*agg) float64, lower bool) (string, float64, bool) {
	return t.bestAmong(k, val, lower, nil)
}

// bestAmong is best over the peers in among (nil: every peer).
func (t *table) bestAmong(k cellKey, val func(*agg) float64, lower bool, among []string) (string, float64, bool) {
	var name string
	var v float64
	found := false
	for _, s := range t.servers {
		a := t.get(k, s)
		if s == strandName || !a.ok() || among != nil && !slices.Contains(among, s) {
			continue
		}
		x := val(a)
		if x <= 0 {
			continue
		}
		if !found || (lower && x < v) || (!lower && x > v) {
			name, v, found = s, x, true
		}
	}
	return name, v, found
}

// The figures the tables, charts and targets compare, one accessor each.
func rateOf(a *agg) float64 { return a.MsgsPerSec }
func p50Of(a *agg) float64  { return a.P50 }
func p99Of(a *agg) float64  { return a.P99 }
func rssOf(a *agg) float64  { return a.RSSPerConnBytes }

func throughputCells(t *table) []cellKey {
	var out []cellKey
	for _, k := range t.cells {
		if k.Mode != "idle" && k.Rate == 0 {
			out = append(out, k)
		}
	}
	return out
}

func latencyCells(t *table) []cellKey {
	var out []cellKey
	for _, k := range t.cells {
		if k.Mode != "idle" {
			out = append(out, k)
		}
	}
	return out
}

func writeSummary(path string, t *table) error {
	var all []*agg
	for _, k := range t.cells {
		for _, s := range t.servers {
			if a := t.get(k, s); a != nil {
				all = append(all, a)
			}
		}
	}
	b, err := json.MarshalIndent(all, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func fmtCount(n int) string {
	if n >= 1000 && n%1000 == 0 {
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}

func fmtBytes(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1024 && n%1024 == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	default:
		return fmt.Sprintf("%d B", n)
	}
}

// fmtRate prints a message rate with three significant digits.
func fmtRate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.3gk", v/1e3)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

// fmtMicros prints a latency given in microseconds.
func fmtMicros(us float64) string {
	switch {
	case us >= 1e6:
		return fmt.Sprintf("%.2f s", us/1e6)
	case us >= 1e4:
		return fmt.Sprintf("%.0f ms", us/1e3)
	case us >= 1e3:
		return fmt.Sprintf("%.1f ms", us/1e3)
	default:
		return fmt.Sprintf("%.0f µs", us)
	}
}

func fmtBytesF(b float64) string {
	switch {
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", b/(1<<10))
	default:
		return fmt.Sprintf("%.0f B", b)
	}
}
