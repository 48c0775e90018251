// Command gobwas is the plain gobwas/ws peer, the baseline most Go users
// write: net/http upgrade, one goroutine per connection reading with
// wsutil.ReadClientData from the hijacked buffered reader, writing through a
// buffered writer, and a mutex per connection so broadcast writers from
// other goroutines do not interleave (see package peer for the endpoints).
package main

import (
	"bufio"
	"net"
	"net/http"
	"os"
	"sync"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/strandws/strand/bench/internal/peer"
)

// conn is a connection with its buffered writer and write lock.
type conn struct {
	nc net.Conn
	mu sync.Mutex
	bw *bufio.Writer
}

func (c *conn) write(op ws.OpCode, p []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := wsutil.WriteServerMessage(c.bw, op, p); err != nil {
		return err
	}
	return c.bw.Flush()
}

// lockedRW hands wsutil's control-frame replies (pong, close) the locked
// writer while reads go to the buffered reader.
type lockedRW struct {
	br *bufio.Reader
	c  *conn
}

func (l lockedRW) Read(p []byte) (int, error) { return l.br.Read(p) }

func (l lockedRW) Write(p []byte) (int, error) {
	l.c.mu.Lock()
	defer l.c.mu.Unlock()
	n, err := l.c.bw.Write(p)
	if err == nil {
		err = l.c.bw.Flush()
	}
	return n, err
}

func upgrade(w http.ResponseWriter, r *http.Request) (*conn, lockedRW, bool) {
	nc, rw, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		return nil, lockedRW{}, false // UpgradeHTTP has already answered
	}
	c := &conn{nc: nc, bw: rw.Writer}
	return c, lockedRW{br: rw.Reader, c: c}, true
}

func main() {
	wsutil.SetMaxFrameSize(peer.MaxMessageSize)
	var room peer.Set[*conn]

	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		c, rw, ok := upgrade(w, r)
		if !ok {
			return
		}
		go func() {
			defer c.nc.Close()
			for {
				p, op, err := wsutil.ReadClientData(rw)
				if err != nil {
					return
				}
				if err := c.write(op, p); err != nil {
					return
				}
			}
		}()
	})
	mux.HandleFunc("/broadcast", func(w http.ResponseWriter, r *http.Request) {
		c, rw, ok := upgrade(w, r)
		if !ok {
			return
		}
		room.Add(c)
		go func() {
			defer func() {
				room.Remove(c)
				c.nc.Close()
			}()
			for {
				p, op, err := wsutil.ReadClientData(rw)
				if err != nil {
					return
				}
				for _, m := range room.Snapshot() {
					// A failed peer is closed by its own read loop.
					_ = m.write(op, p)
				}
			}
		}()
	})
	os.Exit(peer.Serve("gobwas", mux))
}
