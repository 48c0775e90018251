// Command gorilla is the gorilla/websocket peer: one goroutine reads each
// connection; writes to a connection are serialised by a mutex because
// gorilla allows one concurrent writer (see package peer for the endpoints).
package main

import (
	"net/http"
	"os"
	"sync"

	"github.com/gorilla/websocket"

	"github.com/strandws/strand/bench/internal/peer"
)

// conn is a gorilla connection with its write lock.
type conn struct {
	ws *websocket.Conn
	mu sync.Mutex
}

func (c *conn) write(mt int, p []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ws.WriteMessage(mt, p)
}

func main() {
	upgrader := websocket.Upgrader{ReadBufferSize: 4096, WriteBufferSize: 4096}
	var room peer.Set[*conn]

	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		ws, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return // Upgrade has already answered with an HTTP error
		}
		defer ws.Close()
		ws.SetReadLimit(peer.MaxMessageSize)
		for {
			mt, p, err := ws.ReadMessage()
			if err != nil {
				return
			}
			// This goroutine is the only writer here: no lock needed.
			if err := ws.WriteMessage(mt, p); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/broadcast", func(w http.ResponseWriter, r *http.Request) {
		ws, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c := &conn{ws: ws}
		ws.SetReadLimit(peer.MaxMessageSize)
		room.Add(c)
		defer func() {
			room.Remove(c)
			ws.Close()
		}()
		for {
			mt, p, err := ws.ReadMessage()
			if err != nil {
				return
			}
			for _, m := range room.Snapshot() {
				// A failed peer is closed by its own read loop.
				_ = m.write(mt, p)
			}
		}
	})
	os.Exit(peer.Serve("gorilla", mux))
}
