// Command melody is the olahol/melody peer: melody (on gorilla/websocket)
// gives every session a read goroutine, a write goroutine and a buffered
// outgoing queue; Broadcast goes through melody's hub. One Melody instance
// per endpoint (see package peer for the endpoints).
package main

import (
	"net/http"
	"os"

	"github.com/olahol/melody"

	"github.com/strandws/strand/bench/internal/peer"
)

func newMelody() *melody.Melody {
	m := melody.New()
	m.Config.MaxMessageSize = peer.MaxMessageSize
	// MessageBufferSize stays at melody's default (256 queued messages per
	// session); a session whose queue is full has messages dropped, which
	// the load generator reports as lost.
	return m
}

func main() {
	echo := newMelody()
	echo.HandleMessage(func(s *melody.Session, p []byte) { _ = s.Write(p) })
	echo.HandleMessageBinary(func(s *melody.Session, p []byte) { _ = s.WriteBinary(p) })

	bcast := newMelody()
	bcast.HandleMessage(func(_ *melody.Session, p []byte) { _ = bcast.Broadcast(p) })
	bcast.HandleMessageBinary(func(_ *melody.Session, p []byte) { _ = bcast.BroadcastBinary(p) })

	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		// HandleRequest blocks for the life of the session.
		_ = echo.HandleRequest(w, r)
	})
	mux.HandleFunc("/broadcast", func(w http.ResponseWriter, r *http.Request) {
		_ = bcast.HandleRequest(w, r)
	})
	os.Exit(peer.Serve("melody", mux))
}
