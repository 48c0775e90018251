package strandtest_test

import (
	"fmt"
	"strings"

	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/sdk/strandtest"
)

// exampleT stands in for the *testing.T a real test passes to New.
type exampleT struct{ cleanups []func() }

func (*exampleT) Helper()                           {}
func (*exampleT) Logf(string, ...any)               {}
func (*exampleT) Errorf(format string, args ...any) { fmt.Printf("FAIL: "+format+"\n", args...) }
func (*exampleT) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
func (e *exampleT) Cleanup(f func())                { e.cleanups = append(e.cleanups, f) }

// done runs the cleanups, as the testing package does when a test ends.
func (e *exampleT) done() {
	for i := len(e.cleanups) - 1; i >= 0; i-- {
		e.cleanups[i]()
	}
}

func ExampleNew() {
	t := &exampleT{} // in a test: the test's *testing.T
	defer t.done()

	// The plugin under test: greets, shouts back, closes on "bye".
	p := sdk.NewPlugin("shout")
	p.Entry("ws").WebSocket(sdk.WebSocketHandlers{
		OnOpen: func(c *sdk.Conn) { _ = c.SendText("welcome") },
		OnText: func(c *sdk.Conn, text []byte) {
			if string(text) == "bye" {
				_ = c.Close(sdk.CloseNormal, "see you")
				return
			}
			_ = c.SendText(strings.ToUpper(string(text)))
		},
	})

	kit := strandtest.New(t, p.Entry("ws"))
	c := kit.Open()
	c.SendText("hello")
	c.SendText("bye")
	c.Wait() // every event handled, OnClose included

	for _, f := range c.Sent() {
		fmt.Println(f)
	}
	code, reason, _ := c.Closed()
	fmt.Println(code, reason)
	// Output:
	// text "welcome"
	// text "HELLO"
	// 1000 see you
}

func ExampleConn_Expect() {
	t := &exampleT{}
	defer t.done()

	echo := sdk.NewPlugin("echo").Entry("echo").WebSocket(sdk.WebSocketHandlers{
		OnMessage: func(c *sdk.Conn, m sdk.Message) { _ = c.Send(m.Type, m.Data) },
	})
	c := strandtest.New(t, echo).Open()
	c.SendText("ping")
	c.SendBinary([]byte{1, 2})
	c.Expect(t, strandtest.Text("ping"), strandtest.Binary([]byte{1, 2}))
	c.ExpectNoMore(t)
	c.Close(sdk.CloseNormal, "")
	c.Wait()
	_, _, closedByServer := c.Closed()
	fmt.Println("closed by server:", closedByServer)
	// Output:
	// closed by server: false
}

func ExampleKit_RequestFilter() {
	t := &exampleT{}
	defer t.done()

	entry := sdk.NewPlugin("auth").Entry("ws").
		RequestFilter(func(ctx *sdk.RequestContext) {
			if ctx.Request().Query().Get("token") != "secret" {
				ctx.Reject(401, "unauthorized")
				return
			}
			ctx.Upgrade(nil)
		}).
		WebSocket(sdk.WebSocketHandlers{})

	kit := strandtest.New(t, entry)
	res := kit.RequestFilter(strandtest.NewRequest("/ws?token=wrong"))
	fmt.Println(res.Status, string(res.Body))
	res = kit.RequestFilter(strandtest.NewRequest("/ws?token=secret"))
	fmt.Println(res.Decision == strandtest.Upgrade)
	// Output:
	// 401 unauthorized
	// true
}
