package main

import (
	"fmt"
	"html"
	"strings"
)

// Chart geometry: a grid of panels, one per cell, each a horizontal bar per
// server scaled to that panel's largest value (cells differ by orders of
// magnitude, so one shared axis would flatten most of them).
const (
	panelW    = 330
	labelW    = 70
	valueW    = 62
	barH      = 14
	barGap    = 4
	panelTop  = 34
	panelPad  = 14
	columns   = 3
	titleH    = 36
	legendH   = 22
	fontStack = "font-family=\"system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif\""
)

// serverColor gives strand a strong colour and the peers muted ones.
func serverColor(name string, i int) string {
	if name == strandName {
		return "#d9480f"
	}
	palette := []string{"#4c6ef5", "#15aabf", "#40c057", "#fab005", "#be4bdb", "#868e96", "#1c7ed6", "#82c91e"}
	return palette[i%len(palette)]
}

func chartSVG(t *table, title string, cells []cellKey, val func(*agg) float64, format func(float64) string) string {
	n := len(t.servers)
	panelH := panelTop + n*(barH+barGap) + panelPad
	rows := (len(cells) + columns - 1) / columns
	if rows == 0 {
		rows = 1
	}
	cols := min(columns, max(len(cells), 1))
	w := cols * panelW
	h := titleH + legendH + rows*panelH
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" %s font-size="11">`+"\n", w, h, w, h, fontStack)
	fmt.Fprintf(&sb, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", w, h)
	fmt.Fprintf(&sb, `<text x="10" y="22" font-size="15" font-weight="600" fill="#212529">%s</text>`+"\n", html.EscapeString(title))
	// Legend.
	x := 10
	colorIdx := 0
	colors := map[string]string{}
	for _, s := range t.servers {
		c := serverColor(s, colorIdx)
		if s != strandName {
			colorIdx++
		}
		colors[s] = c
		fmt.Fprintf(&sb, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d" fill="#343a40">%s</text>`+"\n",
			x, titleH+2, c, x+14, titleH+11, html.EscapeString(s))
		x += 26 + 6*len(s)
	}
	if len(cells) == 0 {
		fmt.Fprintf(&sb, `<text x="10" y="%d" fill="#868e96">no results</text>`+"\n", titleH+legendH+20)
	}
	for i, k := range cells {
		px := (i % columns) * panelW
		py := titleH + legendH + (i/columns)*panelH
		fmt.Fprintf(&sb, `<text x="%d" y="%d" font-weight="600" fill="#212529">%s</text>`+"\n", px+10, py+18, html.EscapeString(k.label()))
		maxV := 0.0
		for _, s := range t.servers {
			if a := t.get(k, s); a != nil && a.Connected > 0 {
				maxV = max(maxV, val(a))
			}
		}
		barMax := float64(panelW - labelW - valueW - 20)
		for j, s := range t.servers {
			y := py + panelTop + j*(barH+barGap) - 10
			fmt.Fprintf(&sb, `<text x="%d" y="%d" text-anchor="end" fill="#495057">%s</text>`+"\n", px+labelW, y+barH-3, html.EscapeString(s))
			a := t.get(k, s)
			if a == nil || a.Connected == 0 {
				fmt.Fprintf(&sb, `<text x="%d" y="%d" fill="#adb5bd">n/a</text>`+"\n", px+labelW+6, y+barH-3)
				continue
			}
			v := val(a)
			bw := 0.0
			if maxV > 0 {
				bw = barMax * v / maxV
			}
			bw = max(bw, 1)
			opacity := "1"
			if !a.ok() {
				opacity = "0.35"
			}
			label := format(v)
			if !a.ok() {
				label += " ⚠"
			}
			fmt.Fprintf(&sb, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s" fill-opacity="%s"><title>%s: %s</title></rect>`+"\n",
				px+labelW+6, y, bw, barH, colors[s], opacity, html.EscapeString(s), html.EscapeString(label))
			fmt.Fprintf(&sb, `<text x="%.1f" y="%d" fill="#212529">%s</text>`+"\n", float64(px+labelW+10)+bw, y+barH-3, html.EscapeString(label))
		}
	}
	sb.WriteString("</svg>\n")
	return sb.String()
}
