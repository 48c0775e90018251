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
// loopback); -reader auto|goroutine|poll; -log-format text|json and
// -log-level debug|info|warn|error (logs on stderr); -redis URL (join a cluster of chat nodes through Redis).
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
	"github.com/strandws/strand/internal/cliflags"
	"github.com/strandws/strand/internal/debugserver"
	"github.com/strandws/strand/internal/metricsetup"
	"github.com/strandws/strand/wsframework"
	"github.com/strandws/strand/wsframework/redisadapter"
)

// options are the command line's settings.
type options struct {
	cliflags.Server
	redisURL string
}

func main() {
	var o options
	o.Register(flag.CommandLine, "127.0.0.1:8080")
	flag.StringVar(&o.redisURL, "redis", "", "join a cluster through this Redis (redis://[user:pass@]host:port[/db] or rediss://)")
	flag.Parse()
	log, err := o.Check(flag.CommandLine, os.Stderr)
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
	cfg := chatserver.Config{Server: wsframework.Config{Logger: log, Metrics: reg, Reader: o.Mode}}
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
	if o.TLSCert != "" {
		// Read once here so that a bad pair fails before "listening".
		if _, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey); err != nil {
			return err
		}
		ws, web = "wss", "https"
	}

	l, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return err
	}
	var dbg *debugserver.Server
	if o.DebugAddr != "" {
		vars := debugserver.Vars{
			"strand": func() any { return srv.Stats() },
			"rooms":  func() any { return srv.RoomStats() },
		}
		if dbg, err = debugserver.Listen(o.DebugAddr, vars); err != nil {
			_ = l.Close()
			return err
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() {
		if o.TLSCert != "" {
			errc <- srv.ServeTLS(l, o.TLSCert, o.TLSKey)
			return
		}
		errc <- srv.Serve(l)
	}()
	dbgc := make(chan error, 1)
	bound := l.Addr().String()
	attrs := []any{"addr", bound, "tls", o.TLSCert != "", "open", web + "://" + bound + "/",
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
