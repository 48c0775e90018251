// Command echo serves WebSocket echo on /echo with Strand: text comes back as
// text, binary as binary, in order. /broadcast sends every message to all
// clients connected there, the sender included, each sender's messages in
// order. GET /healthz answers 200. With -token, /echo upgrades without the
// token get 401.
//
//	go run ./examples/echo -addr 127.0.0.1:8080 [-token SECRET]
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/strandws/strand/examples/echo/echoplugin"
	"github.com/strandws/strand/wsframework"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	maxMsg := flag.Int64("max-message-bytes", 1<<20, "largest message accepted (1009 beyond)")
	token := flag.String("token", "", "if set, upgrades need ?token=TOKEN or Authorization: Bearer TOKEN (401 otherwise)")
	flag.Parse()
	if err := run(*addr, *maxMsg, *token); err != nil {
		slog.Error("echo", "err", err)
		os.Exit(1)
	}
}

func run(addr string, maxMsg int64, token string) error {
	srv, err := wsframework.New(wsframework.Config{MaxMessageBytes: maxMsg})
	if err != nil {
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

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe(addr) }()
	slog.Info("echo: listening", "ws", "ws://"+addr+"/echo", "health", "http://"+addr+"/healthz")
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, wsframework.ErrServerClosed) {
		return serr
	}
	return err
}
