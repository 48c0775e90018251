// Command report turns the JSON results of bench/run.sh into the end-to-end
// section of docs/benchmarks.md (tables) and two SVG charts next to it. It
// takes the median of each cell's repeats, and rewrites only the text
// between the markers <!-- e2e:begin --> and <!-- e2e:end -->, creating the
// file with a heading and the markers if it does not exist.
//
//	go run ./cmd/report -results results/raw -docs ../docs -note "..."
//
// Results of the compression cells (a JSON payload or a permessage-deflate
// offer, bench/run.sh's z* cells) stay out of those tables; -compression
// prints them as a table of their own on stdout and writes nothing:
//
//	go run ./cmd/report -results results/raw -compression
//
// The isolation cell's results (bench/run.sh writes them outside the
// matrix's directory) become a subsection of the end-to-end section with
// -isolation DIR; with -isolation-only it prints that subsection on stdout
// and writes nothing:
//
//	go run ./cmd/report -isolation results/isolation -isolation-only
package main

import (
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/strandws/strand/bench/internal/result"
)

func main() {
	resultsDir := flag.String("results", "results/raw", "directory searched for loadgen result *.json files")
	docsDir := flag.String("docs", "../docs", "directory holding benchmarks.md; charts are written here")
	summaryPath := flag.String("summary", "", "also write the per-cell medians as JSON to this file")
	note := flag.String("note", "", "one line about how the results were produced (machine, settings)")
	compression := flag.Bool("compression", false, "print the compression cells (JSON payload or permessage-deflate) as a Markdown table on stdout, and touch nothing else")
	isolation := flag.String("isolation", "", "directory of the isolation cell's results (alone-r*.json, mixed-r*.json): add their subsection")
	isolationOnly := flag.Bool("isolation-only", false, "with -isolation: print that subsection on stdout, and touch nothing else")
	flag.Parse()
	if *isolationOnly {
		if err := printIsolation(*isolation); err != nil {
			fmt.Fprintln(os.Stderr, "report:", err)
			os.Exit(1)
		}
		return
	}
	if *compression {
		if err := printCompression(os.Stdout, *resultsDir); err != nil {
			fmt.Fprintln(os.Stderr, "report:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*resultsDir, *docsDir, *summaryPath, *note, *isolation); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

// readRuns loads every result file under dir.
func readRuns(dir string) ([]*result.Result, error) {
	var runs []*result.Result
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(path, ".json") {
			return nil
		}
		r, err := result.Read(path)
		if err != nil {
			return err
		}
		runs = append(runs, r)
		return nil
	})
	return runs, err
}

// printCompression writes the compression cells' table to w.
func printCompression(w io.Writer, resultsDir string) error {
	runs, err := readRuns(resultsDir)
	if err != nil {
		return err
	}
	_, comp := splitRuns(runs)
	if len(comp) == 0 {
		return fmt.Errorf("no compression results under %s", resultsDir)
	}
	_, err = io.WriteString(w, compressionTable(comp))
	return err
}

func run(resultsDir, docsDir, summaryPath, note, isolationDir string) error {
	runs, err := readRuns(resultsDir)
	if err != nil {
		return err
	}
	// The compression cells have a table of their own (-compression).
	runs, _ = splitRuns(runs)
	if len(runs) == 0 {
		return fmt.Errorf("no end-to-end result files under %s", resultsDir)
	}
	t := aggregate(runs)
	if summaryPath != "" {
		if err := writeSummary(summaryPath, t); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(docsDir, 0o755); err != nil {
		return err
	}
	charts := []struct {
		file string
		svg  string
	}{
		{throughputChart, chartSVG(t, "End-to-end throughput (msgs/s, higher is better)", throughputCells(t), rateOf, fmtRate)},
		{latencyChart, chartSVG(t, "p99 latency, send to receive (lower is better)", latencyCells(t), p99Of, fmtMicros)},
	}
	for _, c := range charts {
		if err := os.WriteFile(filepath.Join(docsDir, c.file), []byte(c.svg), 0o644); err != nil {
			return err
		}
	}
	mdPath := filepath.Join(docsDir, "benchmarks.md")
	old, err := os.ReadFile(mdPath)
	if os.IsNotExist(err) {
		old = []byte("# Benchmarks\n\n" + beginMarker + "\n" + endMarker + "\n")
	} else if err != nil {
		return err
	}
	md := markdown(t, note)
	if isolationDir != "" {
		if ir, err := readIsolation(isolationDir); err == nil {
			md += "\n" + isolationSection(ir)
		} else {
			fmt.Fprintln(os.Stderr, "report: no isolation subsection:", err)
		}
	}
	out, err := splice(string(old), md)
	if err != nil {
		return fmt.Errorf("%s: %w", mdPath, err)
	}
	return os.WriteFile(mdPath, []byte(out), 0o644)
}
