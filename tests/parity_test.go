package tests

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/sdk/strandtest"
	"github.com/strandws/strand/wsframework"
)

// The tests in this file run one plugin, written with package sdk alone,
// under sdk/strandtest and under a real server, and compare what a client
// sees: strandtest must behave like the host.

// parityPlugin is a plugin as an author writes it: sdk only.
type parityPlugin struct {
	p       *sdk.Plugin
	release chan struct{} // closes to let blocked handlers go
	once    sync.Once

	mu   sync.Mutex
	seen []string // messages handled, in order
}

func newParityPlugin(name string) *parityPlugin {
	pp := &parityPlugin{p: sdk.NewPlugin(name), release: make(chan struct{})}
	pp.p.Entry("ws").WebSocket(sdk.WebSocketHandlers{
		OnOpen: func(c *sdk.Conn) {
			r := c.Request()
			_ = c.SendText(fmt.Sprintf("room=%s key=%v upgrade=%v custom=%s",
				r.Param("room"), r.Header.Get("Sec-WebSocket-Key") != "", r.Header.Get("Upgrade") != "", r.Header.Get("X-Custom")))
		},
		OnText: func(c *sdk.Conn, b []byte) {
			if bytes.HasPrefix(b, []byte("block")) {
				<-pp.release
			}
			pp.mu.Lock()
			pp.seen = append(pp.seen, string(b[:min(len(b), 8)]))
			pp.mu.Unlock()
			_ = c.SendText(strings.ToUpper(string(b[:min(len(b), 8)])))
		},
	})
	pp.p.Entry("body").RequestFilter(func(ctx *sdk.RequestContext) {
		b, err := ctx.ReadBody()
		if err != nil {
			return // the host answers 413
		}
		ctx.SetStatus(http.StatusCreated)
		ctx.SetHeader("X-Len", strconv.Itoa(len(b)))
		ctx.SetBody(bytes.ToUpper(b))
		ctx.End()
	})
	return pp
}

func (pp *parityPlugin) unblock() { pp.once.Do(func() { close(pp.release) }) }

func (pp *parityPlugin) handled() []string {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	return append([]string(nil), pp.seen...)
}

// TestParityWebSocket: route params, the request a connection keeps (the
// handshake's own headers gone, the others kept), an echo and a close.
func TestParityWebSocket(t *testing.T) {
	const pattern = "/rooms/{room}"
	want := []string{"room=lobby key=false upgrade=false custom=v", "HELLO"}

	// A real server.
	srvPlugin := newParityPlugin("parity")
	h := startServer(t, wsframework.Config{}, map[string]*sdk.Entry{pattern: srvPlugin.p.Entry("ws")})
	c, err := h.connect(t, "/rooms/lobby", dialOpts{header: http.Header{"X-Custom": {"v"}}})
	require.NoError(t, err)
	c.expectFrame(t, ws.OpText, []byte(want[0]))
	require.NoError(t, c.send(ws.OpText, []byte("hello")))
	c.expectFrame(t, ws.OpText, []byte(want[1]))
	c.closeHandshake(t, ws.StatusNormalClosure, "")

	// strandtest.
	kitPlugin := newParityPlugin("parity")
	req := strandtest.NewRequest("/rooms/lobby")
	req.Header.Set("X-Custom", "v")
	kit := strandtest.New(t, kitPlugin.p.Entry("ws"), strandtest.Options{Pattern: pattern, Request: req})
	kc := kit.Open()
	kc.ExpectText(t, want[0])
	kc.SendText("hello")
	kc.ExpectText(t, want[1])
	kc.Close(sdk.CloseNormal, "")
	kc.Wait()
	_, _, serverClosed := kc.Closed()
	require.False(t, serverClosed, "the client closed, not the server")

	// A path the pattern does not match: 404 in both.
	require.Equal(t, http.StatusNotFound, h.handshakeStatus(t, "/elsewhere", dialOpts{}))
	res := kit.RequestFilter(strandtest.NewRequest("/elsewhere"))
	require.Equal(t, strandtest.End, res.Decision)
	require.Equal(t, http.StatusNotFound, res.Status)
}

// TestParityReadBody: a request filter that reads the body gets the same
// body, answers the same, and is refused the same way over the cap.
func TestParityReadBody(t *testing.T) {
	for _, tc := range []struct {
		name    string
		max     int64
		status  int
		body    string
		xLength string
	}{
		{"under_cap", 0, http.StatusCreated, "ABC", "3"},
		{"over_cap", 2, http.StatusRequestEntityTooLarge, http.StatusText(http.StatusRequestEntityTooLarge) + "\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srvPlugin := newParityPlugin("parity")
			h := startServer(t, wsframework.Config{MaxRequestBodyBytes: tc.max}, map[string]*sdk.Entry{"/body": srvPlugin.p.Entry("body")})
			resp, err := http.Post("http://"+h.addr+"/body", "text/plain", strings.NewReader("abc"))
			require.NoError(t, err)
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())
			require.Equal(t, tc.status, resp.StatusCode)
			require.Equal(t, tc.body, string(body))
			require.Equal(t, tc.xLength, resp.Header.Get("X-Len"))

			kitPlugin := newParityPlugin("parity")
			req := strandtest.NewRequest("/body")
			req.Method = http.MethodPost
			kit := strandtest.New(t, kitPlugin.p.Entry("body"), strandtest.Options{RequestBody: []byte("abc"), MaxRequestBodyBytes: tc.max})
			res := kit.RequestFilter(req)
			require.NoError(t, res.Err)
			require.Equal(t, strandtest.End, res.Decision)
			require.Equal(t, tc.status, res.Status)
			require.Equal(t, tc.body, string(res.Body))
			require.Equal(t, tc.xLength, res.Header.Get("X-Len"))
		})
	}
}

// TestParityPendingBytes: while a handler is blocked, the host takes
// messages from the client only until the connection's pending bytes pass
// MaxPendingBytes (two of three 600-byte messages under a 1000-byte bound),
// then waits; released, every message is handled in order. Both hosts.
func TestParityPendingBytes(t *testing.T) {
	const bound = 1000
	msgs := []string{"block-1" + strings.Repeat(".", 593), "block-2" + strings.Repeat(".", 593), "block-3" + strings.Repeat(".", 593)}
	wantHandled := []string{"block-1.", "block-2.", "block-3."}
	// A negative check with a generous pause: taking the third message
	// early is the bug it looks for, and it cannot pass by being slow.
	const settle = 200 * time.Millisecond

	srvPlugin := newParityPlugin("parity")
	h := startServer(t, wsframework.Config{MaxPendingBytes: bound}, map[string]*sdk.Entry{"/ws": srvPlugin.p.Entry("ws")})
	c := h.dial(t, "/ws")
	c.expectFrame(t, ws.OpText, []byte("room= key=false upgrade=false custom="))
	for _, m := range msgs {
		require.NoError(t, c.send(ws.OpText, []byte(m)))
	}
	require.Eventually(t, func() bool { return h.srv.Stats().MessagesIn == 2 }, ioTimeout, time.Millisecond)
	time.Sleep(settle)
	require.Equal(t, uint64(2), h.srv.Stats().MessagesIn, "the server read past MaxPendingBytes")
	srvPlugin.unblock()
	for _, m := range wantHandled {
		c.expectFrame(t, ws.OpText, []byte(strings.ToUpper(m)))
	}
	require.Equal(t, wantHandled, srvPlugin.handled())

	kitPlugin := newParityPlugin("parity")
	kit := strandtest.New(t, kitPlugin.p.Entry("ws"), strandtest.Options{MaxPendingBytes: bound})
	kc := kit.Open()
	kc.ExpectText(t, "room= key=false upgrade=false custom=")
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for _, m := range msgs {
			kc.SendText(m)
		}
	}()
	require.Eventually(t, func() bool { return kit.Stats().MessagesIn == 2 }, ioTimeout, time.Millisecond)
	time.Sleep(settle)
	require.Equal(t, uint64(2), kit.Stats().MessagesIn, "the kit took a message past MaxPendingBytes")
	kitPlugin.unblock()
	<-sent
	for _, m := range wantHandled {
		kc.ExpectText(t, strings.ToUpper(m))
	}
	require.Equal(t, wantHandled, kitPlugin.handled())
}
