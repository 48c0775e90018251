//go:build linux

package netpoll_test

import (
	"fmt"
	"net"

	"github.com/strandws/strand/internal/netpoll"
)

// echoOnce reads what is available when its connection is readable.
type echoOnce struct {
	hd   *netpoll.Handle
	done chan string
}

func (e *echoOnce) Ready() {
	buf := make([]byte, 64)
	n, err := e.hd.Read(buf)
	if err != nil { // ErrWouldBlock: wait for the next report
		_ = e.hd.Arm()
		return
	}
	e.hd.Deregister()
	e.done <- string(buf[:n])
}

// A connection is read when epoll reports it readable, on the poller's
// loop, without a goroutine of its own.
func Example() {
	p, err := netpoll.New(1, nil)
	if err != nil {
		panic(err)
	}
	defer p.Close()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	defer l.Close()
	client, _ := net.Dial("tcp", l.Addr().String())
	defer client.Close()
	server, _ := l.Accept()
	defer server.Close()

	e := &echoOnce{done: make(chan string, 1)}
	e.hd, _ = p.Detach(server.(*net.TCPConn), e) // server is closed; e.hd owns the socket now
	defer e.hd.Close()
	_ = e.hd.Arm()
	_, _ = client.Write([]byte("hello"))
	fmt.Println(<-e.done)
	// Output: hello
}
