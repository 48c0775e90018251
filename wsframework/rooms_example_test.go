package wsframework_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/wsframework"
)

// A plugin puts every connection in the room named by the path, relays
// what each one says to the others, and the server broadcasts to the room
// from outside any handler (as an HTTP endpoint or a timer would).
func ExampleServer_Broadcast() {
	p := sdk.NewPlugin("rooms")
	p.Entry("room").WebSocket(sdk.WebSocketHandlers{
		OnOpen: func(c *sdk.Conn) {
			_ = c.Join(c.Request().Param("room"))
			_ = c.SendText("joined")
		},
		OnMessage: func(c *sdk.Conn, m sdk.Message) {
			_ = c.Broadcast(c.Request().Param("room"), m.Type, m.Data, sdk.BroadcastOptions{ExcludeSelf: true})
		},
	})
	srv, err := wsframework.New(wsframework.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	if err := srv.Route("/rooms/{room}", nil, p.Entry("room")); err != nil {
		panic(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go func() { _ = srv.Serve(l) }()
	defer func() { _ = srv.Close() }()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dial := func() net.Conn {
		c, br, _, err := ws.Dial(ctx, "ws://"+l.Addr().String()+"/rooms/lobby")
		if err != nil {
			panic(err)
		}
		if br != nil { // frames that came with the handshake response
			c = bufferedConn{c, br}
		}
		read(c) // "joined": it is a member now
		return c
	}
	ada, grace := dial(), dial()
	defer ada.Close()
	defer grace.Close()

	_ = wsutil.WriteClientText(ada, []byte("hello from Ada"))
	fmt.Println("grace got:", read(grace))

	_ = srv.Broadcast("lobby", sdk.Text, []byte("server notice"))
	fmt.Println("ada got:", read(ada))
	fmt.Println("grace got:", read(grace))
	fmt.Println("members:", len(srv.RoomMembers("lobby")))
	// Output:
	// grace got: hello from Ada
	// ada got: server notice
	// grace got: server notice
	// members: 2
}

// bufferedConn reads what the handshake left buffered first.
type bufferedConn struct {
	net.Conn
	r io.Reader
}

func (c bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func read(c net.Conn) string {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := wsutil.ReadServerText(c)
	if err != nil {
		panic(err)
	}
	return string(b)
}
