// Command echo serves WebSocket echo on /echo with Strand: text comes back as
// text, binary as binary, in order. /broadcast sends every message to all
// clients connected there, the sender included, each sender's messages in
// order. GET /healthz answers 200; GET /metrics serves the Prometheus
// metrics (docs/metrics.md). With -token, /echo upgrades without the token
// get 401.
//
//	go run ./examples/echo -addr 127.0.0.1:8080 [-token SECRET] [-reader auto|goroutine|poll] [-debug-addr 127.0.0.1:6060]
//
// -reader picks wsframework.Config.Reader: auto (the default) is the poll
// reader on Linux and goroutines elsewhere.
//
// With port 0 in -addr (or -debug-addr) the system picks a free port. Once
// listening, the program logs one line with the bound addresses as
// key=value pairs, for scripts and tests to read:
//
//	... INFO echo: listening addr=127.0.0.1:41234 reader=poll debug_addr=127.0.0.1:41235 ...
//
// (debug_addr only with -debug-addr). -debug-addr serves a separate debug
// listener, never the public one, off by default: /debug/vars (expvar:
// runtime memstats, the command line, and the server's Stats as "strand";
// /debug/vars?gc=1 runs a garbage collection first, so memstats show the
// live heap) and /debug/pprof/ (net/http/pprof). Bind it to loopback: it
// exposes profiles and the command line (including -token) to whoever can
// reach it.
package main

import (
	"context"
	"errors"
	"expvar"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/strandws/strand/examples/echo/echoplugin"
	"github.com/strandws/strand/wsframework"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address (port 0: a free port, logged as addr=)")
	maxMsg := flag.Int64("max-message-bytes", 1<<20, "largest message accepted (1009 beyond)")
	token := flag.String("token", "", "if set, upgrades need ?token=TOKEN or Authorization: Bearer TOKEN (401 otherwise)")
	reader := flag.String("reader", "auto", "how connections are read: auto (poll on Linux), goroutine or poll")
	debugAddr := flag.String("debug-addr", "", "if set, serve /debug/vars and /debug/pprof/ on this separate address (off by default)")
	flag.Parse()
	mode, err := parseReader(*reader)
	if err == nil && *debugAddr != "" && *debugAddr == *addr && !anyPort(*addr) {
		err = errors.New("-debug-addr must differ from -addr: the debug listener is never the public one")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*addr, *debugAddr, *maxMsg, *token, mode); err != nil {
		slog.Error("echo", "err", err)
		os.Exit(1)
	}
}

// anyPort reports whether addr asks for a free port (port 0): two such
// listeners get different ports.
func anyPort(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return err == nil && port == "0"
}

// parseReader maps a -reader value to a ReaderMode.
func parseReader(s string) (wsframework.ReaderMode, error) {
	switch s {
	case "auto":
		return wsframework.ReaderAuto, nil
	case "goroutine":
		return wsframework.ReaderGoroutine, nil
	case "poll":
		return wsframework.ReaderPoll, nil
	}
	return 0, fmt.Errorf("unknown -reader %q: want auto, goroutine or poll", s)
}

func run(addr, debugAddr string, maxMsg int64, token string, mode wsframework.ReaderMode) error {
	reg := metricsRegistry()
	srv, err := wsframework.New(wsframework.Config{MaxMessageBytes: maxMsg, Reader: mode, Metrics: reg})
	if err != nil {
		return err
	}
	if err := srv.Handle("GET /metrics", metricsHandler(reg)); err != nil {
		return err
	}
	plugin := echoplugin.WithToken(token)
	if err := srv.Route("/echo", nil, plugin.Entry("echo")); err != nil {
		return err
	}
	if err := srv.Route("/broadcast", nil, plugin.Entry("broadcast")); err != nil {
		return err
	}
	if err := srv.Handle("GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})); err != nil {
		return err
	}

	// Listen before logging, so the line carries the bound addresses (a
	// port 0 becomes the one the system picked).
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	var dbg *http.Server
	var dl net.Listener
	if debugAddr != "" {
		if dl, err = net.Listen("tcp", debugAddr); err != nil {
			_ = l.Close()
			return fmt.Errorf("debug listener: %w", err)
		}
		dbg = debugServer(srv)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	dbgc := make(chan error, 1)
	bound := l.Addr().String()
	attrs := []any{"addr", bound, "reader", mode.String(),
		"ws", "ws://" + bound + "/echo", "health", "http://" + bound + "/healthz"}
	if dbg != nil {
		go func() { dbgc <- dbg.Serve(dl) }()
		attrs = append(attrs, "debug_addr", dl.Addr().String(), "debug", "http://"+dl.Addr().String()+"/debug/vars")
	}
	slog.Info("echo: listening", attrs...)
	select {
	case err := <-errc:
		if dbg != nil {
			_ = dbg.Close()
		}
		return err
	case err := <-dbgc:
		// The debug listener failed; the program goes down with it rather
		// than run on without what it was asked to serve.
		_ = srv.Close()
		<-errc
		return fmt.Errorf("debug listener: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if dbg != nil {
		_ = dbg.Shutdown(sctx)
	}
	err = srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, wsframework.ErrServerClosed) {
		return serr
	}
	return err
}

// debugServer returns the debug listener's server: expvar and pprof on a
// ServeMux of its own (never http.DefaultServeMux, never the public port).
func debugServer(srv *wsframework.Server) *http.Server {
	expvar.Publish("strand", expvar.Func(func() any { return srv.Stats() }))
	vars := expvar.Handler()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/vars", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("gc") == "1" {
			// Debug only: memstats after a collection are the live heap.
			runtime.GC()
		}
		vars.ServeHTTP(w, r)
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
}
