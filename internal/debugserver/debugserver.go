// Package debugserver is the examples' opt-in debug listener: expvar's
// variables and net/http/pprof on a ServeMux of its own (never
// http.DefaultServeMux), served on an address of its own (never the
// public one). It has no package-level state: what it shows is passed in.
//
// Bind it to loopback: it exposes profiles and the command line (flags
// included) to whoever can reach it.
package debugserver

import (
	"context"
	"encoding/json"
	"errors"
	"expvar"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Vars are variables served in /debug/vars next to those published with
// expvar (memstats, cmdline): each is computed per request and encoded as
// JSON. A name published with expvar too is served once, from Vars.
type Vars map[string]func() any

// Handler returns the debug routes:
//
//	GET /debug/vars       expvar's variables and vars, as one JSON object;
//	                      ?gc=1 runs a garbage collection first, so memstats
//	                      show the live heap
//	/debug/pprof/...      net/http/pprof
func Handler(vars Vars) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/vars", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("gc") == "1" {
			runtime.GC() // debug only: memstats after a collection are the live heap
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		writeVars(w, vars)
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// writeVars writes expvar's variables and vars as one JSON object, in
// name order.
func writeVars(w io.Writer, vars Vars) {
	out := make(map[string]string)
	expvar.Do(func(kv expvar.KeyValue) { out[kv.Key] = kv.Value.String() })
	for name, f := range vars {
		b, err := json.Marshal(f())
		if err != nil {
			b, _ = json.Marshal(err.Error())
		}
		out[name] = string(b)
	}
	names := make([]string, 0, len(out))
	for name := range out {
		names = append(names, name)
	}
	slices.Sort(names)
	var b strings.Builder
	b.WriteString("{\n")
	for i, name := range names {
		if i > 0 {
			b.WriteString(",\n")
		}
		k, _ := json.Marshal(name)
		fmt.Fprintf(&b, "%s: %s", k, out[name])
	}
	b.WriteString("\n}\n")
	_, _ = io.WriteString(w, b.String())
}

// CheckAddrs refuses a debug address equal to the public one (unless both
// ask for a free port, port 0, and so get different ones).
func CheckAddrs(public, debug string) error {
	if debug == "" || debug != public {
		return nil
	}
	if _, port, err := net.SplitHostPort(debug); err == nil && port == "0" {
		return nil
	}
	return errors.New("-debug-addr must differ from -addr: the debug listener is never the public one")
}

// Server is a bound debug listener.
type Server struct {
	l  net.Listener
	hs *http.Server
}

// Listen binds addr for the debug routes with vars; Serve serves them.
func Listen(addr string, vars Vars) (*Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("debug listener: %w", err)
	}
	return &Server{l: l, hs: &http.Server{Handler: Handler(vars), ReadHeaderTimeout: 10 * time.Second}}, nil
}

// Addr is the bound address (a port 0 resolved).
func (s *Server) Addr() net.Addr { return s.l.Addr() }

// Serve serves until Shutdown or Close (then it returns nil) or until the
// listener fails.
func (s *Server) Serve() error {
	if err := s.hs.Serve(s.l); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("debug listener: %w", err)
	}
	return nil
}

// Shutdown stops serving gracefully within ctx.
func (s *Server) Shutdown(ctx context.Context) error { return s.hs.Shutdown(ctx) }

// Close stops serving at once, also a Server whose Serve was never called.
func (s *Server) Close() error {
	err := s.hs.Close()
	_ = s.l.Close()
	return err
}
