// Command coder is the coder/websocket peer: one goroutine reads each
// connection; coder's Conn.Write is safe for concurrent use, so broadcast
// writes straight to every member (see package peer for the endpoints).
package main

import (
	"context"
	"net/http"
	"os"

	"github.com/coder/websocket"

	"github.com/strandws/strand/bench/internal/peer"
)

func main() {
	// A context without deadline or cancellation: coder/websocket then sets
	// up no per-call timeout machinery.
	ctx := context.Background()
	var room peer.Set[*websocket.Conn]

	accept := func(w http.ResponseWriter, r *http.Request) *websocket.Conn {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return nil // Accept has already answered with an HTTP error
		}
		c.SetReadLimit(peer.MaxMessageSize)
		return c
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		c := accept(w, r)
		if c == nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, p, err := c.Read(ctx)
			if err != nil {
				return
			}
			if err := c.Write(ctx, typ, p); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/broadcast", func(w http.ResponseWriter, r *http.Request) {
		c := accept(w, r)
		if c == nil {
			return
		}
		room.Add(c)
		defer func() {
			room.Remove(c)
			c.CloseNow()
		}()
		for {
			typ, p, err := c.Read(ctx)
			if err != nil {
				return
			}
			for _, m := range room.Snapshot() {
				// A failed peer is closed by its own read loop.
				_ = m.Write(ctx, typ, p)
			}
		}
	})
	os.Exit(peer.Serve("coder", mux))
}
