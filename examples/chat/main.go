// Command chat serves the Strand chat example: a page to open in a browser
// (embedded in the binary), its WebSocket with rooms, history and presence,
// and health and readiness checks.
//
//	go run ./examples/chat                 # then open http://127.0.0.1:8080/
//	go run ./examples/chat -addr :9000
//	go run ./examples/chat -tls-cert cert.pem -tls-key key.pem   # https:// and wss://
//	go run ./examples/chat -addr 127.0.0.1:8081 -redis redis://127.0.0.1:6379   # a node of a cluster
//
// Routes: GET / (the page), GET /ws?room=NAME&name=NICK (the WebSocket; see
// README.md for the protocol), GET /healthz (200 while alive), GET /readyz
// (200 while ready for traffic, 503 once shutting down), GET /metrics
// (Prometheus; see docs/metrics.md).
//
// Flags: -addr (port 0: a free port, logged as addr=); -tls-cert and
// -tls-key (PEM files, reread when they change); -debug-addr (a separate
// listener with /debug/vars and /debug/pprof/, off by default; bind it to
// loopback); -log-format text|json and -log-level debug|info|warn|error
// (logs on stderr); -redis URL (join a cluster of chat nodes through Redis).
// A bad flag value exits with status 2.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/strandws/strand/examples/chat/chatserver"
	"github.com/strandws/strand/internal/debugserver"
	"github.com/strandws/strand/internal/logsetup"
	"github.com/strandws/strand/internal/metricsetup"
	"github.com/strandws/strand/wsframework"
	"github.com/strandws/strand/wsframework/redisadapter"
)

// options are the command line's settings.
type options struct {
	addr, debugAddr  string
	tlsCert, tlsKey  string
	logFormat, level string
	redisURL         string
}

func main() {
	var o options
	flag.StringVar(&o.addr, "addr", "127.0.0.1:8080", "listen address (port 0: a free port, logged as addr=)")
	flag.StringVar(&o.tlsCert, "tls-cert", "", "PEM certificate file: serve https:// and wss:// (with -tls-key); reread when it changes")
	flag.StringVar(&o.tlsKey, "tls-key", "", "PEM private key file of -tls-cert")
	flag.StringVar(&o.debugAddr, "debug-addr", "", "if set, serve /debug/vars and /debug/pprof/ on this separate address (off by default)")
	flag.StringVar(&o.logFormat, "log-format", "text", "log format: "+logsetup.Formats)
	flag.StringVar(&o.level, "log-level", "info", "lowest level logged: "+logsetup.Levels)
	flag.StringVar(&o.redisURL, "redis", "", "join a cluster through this Redis (redis://[user:pass@]host:port[/db] or rediss://)")
	flag.Parse()
	log, err := logsetup.New(os.Stderr, o.logFormat, o.level)
	if err == nil {
		err = debugserver.CheckAddrs(o.addr, o.debugAddr)
	}
	if err == nil && (o.tlsCert == "") != (o.tlsKey == "") {
		err = errors.New("-tls-cert and -tls-key go together")
	}
	if err == nil && flag.NArg() > 0 {
		err = fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chat:", err)
		flag.Usage()
		os.Exit(2)
	}
	slog.SetDefault(log)
	if err := run(o, log); err != nil {
		log.Error("chat", "err", err)
		os.Exit(1)
	}
}

func run(o options, log *slog.Logger) error {
	reg := metricsetup.Registry()
	cfg := chatserver.Config{Server: wsframework.Config{Logger: log, Metrics: reg}}
	if o.redisURL != "" {
		cfg.Redis = &redisadapter.Config{URL: o.redisURL}
	}
	chat, err := chatserver.New(cfg)
	if err != nil {
		return err
	}
	if chat.Redis != nil {
		shown := "(unparsable)"
		if u, err := url.Parse(o.redisURL); err == nil {
			shown = u.Redacted() // no password in the log
		}
		log.Info("chat: cluster node", "redis", shown, "node", chat.Redis.Node())
	}
	srv := chat.Server
	if err := srv.Handle("GET /metrics", metricsetup.Handler(reg)); err != nil {
		return err
	}
	ws, web := "ws", "http"
	if o.tlsCert != "" {
		// Read once here so that a bad pair fails before "listening".
		if _, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey); err != nil {
			return err
		}
		ws, web = "wss", "https"
	}

	l, err := net.Listen("tcp", o.addr)
	if err != nil {
		return err
	}
	var dbg *debugserver.Server
	if o.debugAddr != "" {
		vars := debugserver.Vars{
			"strand": func() any { return srv.Stats() },
			"rooms":  func() any { return srv.RoomStats() },
		}
		if dbg, err = debugserver.Listen(o.debugAddr, vars); err != nil {
			_ = l.Close()
			return err
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() {
		if o.tlsCert != "" {
			errc <- srv.ServeTLS(l, o.tlsCert, o.tlsKey)
			return
		}
		errc <- srv.Serve(l)
	}()
	dbgc := make(chan error, 1)
	bound := l.Addr().String()
	attrs := []any{"addr", bound, "tls", o.tlsCert != "", "open", web + "://" + bound + "/",
		"ws", ws + "://" + bound + "/ws?room=NAME&name=NICK", "health", web + "://" + bound + "/healthz"}
	if dbg != nil {
		go func() { dbgc <- dbg.Serve() }()
		da := dbg.Addr().String()
		attrs = append(attrs, "debug_addr", da, "debug", "http://"+da+"/debug/vars")
	}
	log.Info("chat: listening", attrs...)
	select {
	case err := <-errc:
		if dbg != nil {
			_ = dbg.Close()
		}
		return err
	case err := <-dbgc:
		_ = srv.Close() // the debug listener failed: go down with it
		<-errc
		return err
	case <-ctx.Done():
	}
	log.Info("chat: shutting down")
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
