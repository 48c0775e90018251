package remote_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/examples/echo/echoplugin"
	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/sdk/serve"
)

// TestEchoThroughSocket: one echo through a real Unix socket, a
// wsframework.Server and the plugin side's own runtime.
func TestEchoThroughSocket(t *testing.T) {
	e := startEnv(t, echoplugin.New(), envOpts{routes: map[string]string{"/echo": "echo"}})
	c := e.dial(t, "/echo")
	require.NoError(t, c.send(ws.OpText, []byte("hello")))
	f, err := c.read(ioTimeout)
	require.NoError(t, err)
	require.Equal(t, ws.OpText, f.op)
	require.Equal(t, "hello", string(f.payload))
}

// TestOrderAcrossSocket: many connections pipeline many messages, some
// fragmented; every connection's echoes come back complete and in order.
func TestOrderAcrossSocket(t *testing.T) {
	conns, msgs := 50, 2000
	if testing.Short() {
		conns, msgs = 10, 200
	}
	e := startEnv(t, echoplugin.New(), envOpts{routes: map[string]string{"/echo": "echo"}})
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range conns {
		c := e.dial(t, "/echo")
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j := range msgs {
				p := []byte(fmt.Sprintf("c%d-m%d-%s", i, j, bytes.Repeat([]byte{'x'}, (i*7+j*13)%300)))
				var err error
				if j%5 == 0 {
					err = c.sendFragmented(ws.OpText, p, 3)
				} else {
					err = c.send(ws.OpBinary, p)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for j := range msgs {
				want := fmt.Sprintf("c%d-m%d-%s", i, j, bytes.Repeat([]byte{'x'}, (i*7+j*13)%300))
				f, err := c.read(30 * time.Second)
				if err != nil {
					errs <- fmt.Errorf("conn %d message %d: %w", i, j, err)
					return
				}
				if string(f.payload) != want {
					errs <- fmt.Errorf("conn %d message %d: got %.40q, want %.40q", i, j, f.payload, want)
					return
				}
				op := ws.OpBinary
				if j%5 == 0 {
					op = ws.OpText
				}
				if f.op != op {
					errs <- fmt.Errorf("conn %d message %d: opcode %v, want %v", i, j, f.op, op)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestSendUncompressedThroughSocket: an out-of-process plugin's
// SendUncompressed reaches a client that negotiated permessage-deflate
// uncompressed (RSV1 clear), while Send of the same compressible message
// goes out compressed (RSV1 set). The flag crosses the Unix socket in the
// send frame.
func TestSendUncompressedThroughSocket(t *testing.T) {
	p := sdk.NewPlugin("raw")
	p.Entry("raw").WebSocket(sdk.WebSocketHandlers{OnBinary: func(c *sdk.Conn, b []byte) {
		_ = c.SendUncompressed(sdk.Binary, b)
		_ = c.Send(sdk.Binary, b)
	}})
	e := startEnv(t, p, envOpts{routes: map[string]string{"/raw": "raw"}})
	c := e.dialDeflate(t, "/raw")
	msg := bytes.Repeat([]byte(`{"type":"message","room":"lobby","text":"hello"} `), 40) // 2000 B, above the 512 B threshold
	require.NoError(t, c.send(ws.OpBinary, msg))

	f, err := c.read(ioTimeout)
	require.NoError(t, err)
	require.Equal(t, ws.OpBinary, f.op)
	require.Zero(t, f.rsv, "SendUncompressed went out compressed")
	require.Equal(t, msg, f.payload)

	f, err = c.read(ioTimeout)
	require.NoError(t, err)
	require.Equal(t, ws.OpBinary, f.op)
	require.Equal(t, ws.Rsv(true, false, false), f.rsv, "Send did not compress")
	got, err := wsflate.DefaultHelper.Decompress(f.payload)
	require.NoError(t, err)
	require.Equal(t, msg, got)
}

// TestPluginLogLinesCarryRoute: the open event carries the route's pattern
// to the plugin process, so that its runtime's lines about a connection (a
// handler panic here) name the connection, its route and the plugin, as in
// process.
func TestPluginLogLinesCarryRoute(t *testing.T) {
	p := sdk.NewPlugin("panicky")
	p.Entry("boom").WebSocket(sdk.WebSocketHandlers{OnText: func(*sdk.Conn, []byte) { panic("test: boom") }})
	logs := newLines()
	e := startEnv(t, p, envOpts{
		routes: map[string]string{"/rooms/{room}": "boom"},
		serve:  serve.Options{Logger: slog.New(logs)},
	})
	c := e.dial(t, "/rooms/lobby")
	require.NoError(t, c.send(ws.OpText, []byte("x")))
	require.Equal(t, sdk.CloseInternalError, c.closeCode(t))
	requireConnAttrs(t, logs.wait(t, "strand: handler panic"), "/rooms/{room}", "panicky")
}
