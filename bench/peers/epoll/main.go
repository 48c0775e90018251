//go:build linux

// Command epoll is the inline-epoll peer: gobwas/ws for the handshake only,
// then every connection's descriptor (a non-blocking dup) on one of
// GOMAXPROCS epoll loops driven with golang.org/x/sys/unix. A loop reads
// all that a ready connection has buffered into a per-loop buffer (a small
// per-connection carry keeps a partial frame), parses and unmasks every
// frame itself, answers inline by appending server frames to the
// connection's out buffer, and flushes each touched connection once per
// readiness turn: one write per connection per epoll_wait. What the socket
// does not take stays in the out buffer with EPOLLOUT armed (an echo
// connection then stops being read until it drains). A /broadcast message
// is appended, under each member's lock, to every member's out buffer by
// the loop that read it, which flushes them at the end of its turn (see
// package peer for the endpoints).
package main

import (
	"fmt"
	"net"
	"os"
	"runtime"

	"github.com/strandws/strand/bench/internal/peer"
)

func main() {
	addr := peer.Addr()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "epoll:", err)
		os.Exit(1)
	}
	s, err := newServer(runtime.GOMAXPROCS(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "epoll:", err)
		os.Exit(1)
	}
	go s.serve(ln)
	fmt.Fprintf(os.Stderr, "epoll: serving /echo and /broadcast on %s\n", addr)
	ctx, stop := peer.SignalContext()
	defer stop()
	<-ctx.Done()
	_ = ln.Close()
}
