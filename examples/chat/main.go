// Command chat serves the Strand chat example: a page to open in a browser
// (embedded in the binary), its WebSocket with rooms, history and presence,
// and a health check.
//
//	go run ./examples/chat                 # then open http://127.0.0.1:8080/
//	go run ./examples/chat -addr :9000
//
// Routes: GET / (the page), GET /ws?room=NAME&name=NICK (the WebSocket; see
// README.md for the protocol), GET /healthz, GET /metrics (Prometheus; see
// docs/metrics.md).
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/strandws/strand/examples/chat/chatserver"
	"github.com/strandws/strand/wsframework"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	flag.Parse()
	if err := run(*addr); err != nil {
		slog.Error("chat", "err", err)
		os.Exit(1)
	}
}

func run(addr string) error {
	reg := metricsRegistry()
	chat, err := chatserver.New(chatserver.Config{Server: wsframework.Config{Metrics: reg}})
	if err != nil {
		return err
	}
	srv := chat.Server
	if err := srv.Handle("GET /metrics", metricsHandler(reg)); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe(addr) }()
	slog.Info("chat: listening", "open", "http://"+addr+"/", "ws", "ws://"+addr+"/ws?room=NAME&name=NICK",
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
