// Command gws is the lxzan/gws peer, written as gws's README recommends:
// an Upgrader with an event handler, one ReadLoop goroutine per connection,
// sequential (not parallel) message handling so order holds, and gws's
// Broadcaster, which queues one pre-built frame on every member's own
// asynchronous write queue (see package peer for the endpoints).
package main

import (
	"net/http"
	"os"

	"github.com/lxzan/gws"

	"github.com/strandws/strand/bench/internal/peer"
)

// echoHandler sends every message back to its sender.
type echoHandler struct{ gws.BuiltinEventHandler }

func (echoHandler) OnMessage(c *gws.Conn, m *gws.Message) {
	defer m.Close()
	_ = c.WriteMessage(m.Opcode, m.Bytes())
}

// roomHandler relays every message to every member.
type roomHandler struct {
	gws.BuiltinEventHandler
	room *peer.Set[*gws.Conn]
}

func (h roomHandler) OnOpen(c *gws.Conn)           { h.room.Add(c) }
func (h roomHandler) OnClose(c *gws.Conn, _ error) { h.room.Remove(c) }
func (h roomHandler) OnMessage(c *gws.Conn, m *gws.Message) {
	defer m.Close()
	// The broadcaster builds the frame once, on its first Broadcast call;
	// m's buffer may be released after that.
	b := gws.NewBroadcaster(m.Opcode, m.Bytes())
	defer b.Close()
	for _, member := range h.room.Snapshot() {
		_ = b.Broadcast(member)
	}
}

func upgradeHandler(u *gws.Upgrader) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := u.Upgrade(w, r)
		if err != nil {
			return // Upgrade has already answered with an HTTP error
		}
		go c.ReadLoop() // gws README: reading in a goroutine lets the request context be collected
	}
}

func main() {
	opt := func() *gws.ServerOption {
		return &gws.ServerOption{ReadMaxPayloadSize: peer.MaxMessageSize}
	}
	var room peer.Set[*gws.Conn]
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", upgradeHandler(gws.NewUpgrader(echoHandler{}, opt())))
	mux.HandleFunc("/broadcast", upgradeHandler(gws.NewUpgrader(roomHandler{room: &room}, opt())))
	os.Exit(peer.Serve("gws", mux))
}
