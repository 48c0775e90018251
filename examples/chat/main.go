// Command chat serves the Strand chat example: a page to open in a browser
// (embedded in the binary), its WebSocket with rooms, history and presence,
// and a health check.
//
//	go run ./examples/chat                 # then open http://127.0.0.1:8080/
//	go run ./examples/chat -addr :9000
//	go run ./examples/chat -addr 127.0.0.1:8081 -redis redis://127.0.0.1:6379   # a node of a cluster
//
// Routes: GET / (the page), GET /ws?room=NAME&name=NICK (the WebSocket; see
// README.md for the protocol), GET /healthz.
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/strandws/strand/examples/chat/chatserver"
	"github.com/strandws/strand/wsframework"
	"github.com/strandws/strand/wsframework/redisadapter"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	redisURL := flag.String("redis", "", "join a cluster through this Redis (redis://[user:pass@]host:port[/db] or rediss://)")
	flag.Parse()
	if err := run(*addr, *redisURL); err != nil {
		slog.Error("chat", "err", err)
		os.Exit(1)
	}
}

func run(addr, redisURL string) error {
	var cfg chatserver.Config
	if redisURL != "" {
		cfg.Redis = &redisadapter.Config{URL: redisURL}
	}
	chat, err := chatserver.New(cfg)
	if err != nil {
		return err
	}
	if chat.Redis != nil {
		shown := "(unparsable)"
		if u, err := url.Parse(redisURL); err == nil {
			shown = u.Redacted() // no password in the log
		}
		slog.Info("chat: cluster node", "redis", shown, "node", chat.Redis.Node())
	}
	srv := chat.Server

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		_ = srv.Close()
		return err
	}
	addr = l.Addr().String() // the port chosen for ":0"
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	slog.Info("chat: listening", "addr", addr, "open", "http://"+addr+"/", "ws", "ws://"+addr+"/ws?room=NAME&name=NICK",
		"health", "http://"+addr+"/healthz")
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	slog.Info("chat: shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, wsframework.ErrServerClosed) {
		return serr
	}
	return err
}
