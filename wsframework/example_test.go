package wsframework_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/wsframework"
)

// A plugin entry routed on a Server, which is an http.Handler, behind an
// auth filter and in front of nothing but its WebSocket.
func ExampleServer_Route() {
	p := sdk.NewPlugin("echo")
	p.Entry("echo").
		RequestFilter(func(ctx *sdk.RequestContext) {
			if ctx.Request().Query().Get("token") != "s3cret" {
				ctx.Reject(http.StatusUnauthorized, "no token")
				return
			}
			ctx.Upgrade(nil)
		}).
		WebSocket(sdk.WebSocketHandlers{
			OnMessage: func(c *sdk.Conn, m sdk.Message) { _ = c.Send(m.Type, m.Data) },
		})

	srv, err := wsframework.New(wsframework.Config{}) // the zero Config works
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	if err := srv.Route("/echo", nil, p.Entry("echo")); err != nil {
		panic(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/echo"

	resp, _ := http.Get(hs.URL + "/echo")
	fmt.Println(resp.StatusCode)
	resp.Body.Close()

	conn, _, _, err := ws.Dial(context.Background(), url+"?token=s3cret")
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	_ = wsutil.WriteClientText(conn, []byte("hi"))
	echo, _ := wsutil.ReadServerText(conn)
	fmt.Println(string(echo))
	// Output:
	// 401
	// hi
}
