// Command nbio is the lesismal/nbio peer: nbhttp's event-driven engine
// (epoll pollers, non-blocking I/O, per-connection ordered handler
// execution) with nbio's websocket upgrader. Writes are non-blocking and
// safe for concurrent use; nbio buffers what the socket does not take (see
// package peer for the endpoints).
package main

import (
	"fmt"
	"net/http"
	"os"

	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"

	"github.com/strandws/strand/bench/internal/peer"
)

func newUpgrader() *websocket.Upgrader {
	u := websocket.NewUpgrader()
	u.MessageLengthLimit = peer.MaxMessageSize
	// No idle read deadline, like every other peer: by default nbio re-arms
	// one after every message.
	u.KeepaliveTime = 0
	return u
}

func main() {
	addr := peer.Addr()
	var room peer.Set[*websocket.Conn]

	echo := newUpgrader()
	echo.OnMessage(func(c *websocket.Conn, mt websocket.MessageType, p []byte) {
		// WriteMessage copies p or writes it before returning, so the
		// payload buffer may be released after this handler.
		_ = c.WriteMessage(mt, p)
	})

	bcast := newUpgrader()
	bcast.OnOpen(func(c *websocket.Conn) { room.Add(c) })
	bcast.OnClose(func(c *websocket.Conn, _ error) { room.Remove(c) })
	bcast.OnMessage(func(c *websocket.Conn, mt websocket.MessageType, p []byte) {
		for _, m := range room.Snapshot() {
			// A failed peer is closed and removed by OnClose.
			_ = m.WriteMessage(mt, p)
		}
	})

	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		// Upgrade answers the HTTP request itself when it fails.
		_, _ = echo.Upgrade(w, r, nil)
	})
	mux.HandleFunc("/broadcast", func(w http.ResponseWriter, r *http.Request) {
		_, _ = bcast.Upgrade(w, r, nil)
	})

	engine := nbhttp.NewEngine(nbhttp.Config{
		Network:                 "tcp",
		Addrs:                   []string{addr},
		Handler:                 mux,
		ReleaseWebsocketPayload: true,
	})
	if err := engine.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "nbio:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "nbio: serving /echo and /broadcast on %s\n", addr)
	ctx, stop := peer.SignalContext()
	defer stop()
	<-ctx.Done()
	engine.Stop()
}
