// Package cliflags holds the command-line flags the example programs share
// (listen address, TLS files, debug listener, logging, reader mode) and
// their checks, so that each program registers them in one call and reports
// a bad value the same way.
package cliflags

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/strandws/strand/internal/debugserver"
	"github.com/strandws/strand/internal/logsetup"
	"github.com/strandws/strand/wsframework"
)

// Server are the shared flags' values. Register them on a FlagSet, parse
// it, then call Check.
type Server struct {
	Addr, DebugAddr  string
	TLSCert, TLSKey  string
	LogFormat, Level string
	Reader           string
	Mode             wsframework.ReaderMode // set by Check from Reader
}

// Register adds the shared flags to fs; defaultAddr is -addr's default.
func (s *Server) Register(fs *flag.FlagSet, defaultAddr string) {
	fs.StringVar(&s.Addr, "addr", defaultAddr, "listen address (port 0: a free port, logged as addr=)")
	fs.StringVar(&s.Reader, "reader", "auto", "how connections are read: auto (poll on Linux), goroutine or poll")
	fs.StringVar(&s.DebugAddr, "debug-addr", "", "if set, serve /debug/vars and /debug/pprof/ on this separate address (off by default)")
	fs.StringVar(&s.TLSCert, "tls-cert", "", "PEM certificate file: serve wss:// and https:// (with -tls-key); reread when it changes")
	fs.StringVar(&s.TLSKey, "tls-key", "", "PEM private key file of -tls-cert")
	fs.StringVar(&s.LogFormat, "log-format", "text", "log format: "+logsetup.Formats)
	fs.StringVar(&s.Level, "log-level", "info", "lowest level logged: "+logsetup.Levels)
}

// Check validates the parsed values (and that fs has no arguments left)
// and returns the logger they ask for, writing to w.
func (s *Server) Check(fs *flag.FlagSet, w io.Writer) (*slog.Logger, error) {
	log, err := logsetup.New(w, s.LogFormat, s.Level)
	if err != nil {
		return nil, err
	}
	if s.Mode, err = ParseReader(s.Reader); err != nil {
		return nil, err
	}
	if err := debugserver.CheckAddrs(s.Addr, s.DebugAddr); err != nil {
		return nil, err
	}
	if (s.TLSCert == "") != (s.TLSKey == "") {
		return nil, errors.New("-tls-cert and -tls-key go together")
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return log, nil
}

// ParseReader maps a -reader value to a ReaderMode.
func ParseReader(v string) (wsframework.ReaderMode, error) {
	switch v {
	case "auto":
		return wsframework.ReaderAuto, nil
	case "goroutine":
		return wsframework.ReaderGoroutine, nil
	case "poll":
		return wsframework.ReaderPoll, nil
	}
	return 0, fmt.Errorf("unknown -reader %q: want auto, goroutine or poll", v)
}
