package remote_test

import (
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/internal/remote"
	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/sdk/serve"
	"github.com/strandws/strand/wsframework"
)

// TestSlowPluginPausesReading: while the plugin's handler is stuck, the
// credit window fills, the proxy's handler waits, the host's queue for the
// connection fills and the host stops reading the client's socket (the
// client's writes stall: memory stays bounded); once the plugin moves
// again, every message is echoed in order and nothing deadlocks.
func TestSlowPluginPausesReading(t *testing.T) {
	gate := make(chan struct{})
	var handled atomic.Int64
	p := sdk.NewPlugin("slow")
	p.Entry("echo").WebSocket(sdk.WebSocketHandlers{
		OnMessage: func(c *sdk.Conn, m sdk.Message) {
			<-gate
			handled.Add(1)
			_ = c.Send(m.Type, m.Data)
		},
	})
	e := startEnv(t, p, envOpts{
		routes: map[string]string{"/echo": "echo"},
		cfg:    remote.Config{CallTimeout: time.Minute},
		serve:  serve.Options{Credits: 16},
		srvCfg: wsframework.Config{MaxPendingBytes: 64 << 10},
	})
	c := e.dial(t, "/echo")
	const n = 4000
	payload := make([]byte, 16<<10) // 64 MiB in all: far over what sockets buffer
	sent := make(chan error, 1)
	var wrote atomic.Int64
	go func() {
		for i := range n {
			copy(payload, fmt.Sprintf("%08d", i))
			if err := c.send(ws.OpBinary, payload); err != nil {
				sent <- err
				return
			}
			wrote.Add(1)
		}
		sent <- nil
	}()
	// The writer stalls well before the end: the host stopped reading.
	time.Sleep(500 * time.Millisecond)
	require.Less(t, wrote.Load(), int64(n/2), "the host kept reading while the plugin was stuck")
	require.Zero(t, handled.Load())
	close(gate)
	for i := range n {
		f, err := c.read(30 * time.Second)
		require.NoError(t, err, "echo %d", i)
		require.Equal(t, fmt.Sprintf("%08d", i), string(f.payload[:8]))
	}
	require.NoError(t, <-sent)
}

// TestStuckPluginClosesWith1013: a plugin that grants no credit at all for
// a call timeout (its handlers are stuck) gets the waiting connection
// closed with 1013, try again later; its event is not delivered, and not
// lost silently. The host's line about it names the connection, its route
// and the plugin.
func TestStuckPluginClosesWith1013(t *testing.T) {
	gate := make(chan struct{})
	defer close(gate)
	p := sdk.NewPlugin("stuck")
	p.Entry("echo").WebSocket(sdk.WebSocketHandlers{
		OnMessage: func(c *sdk.Conn, m sdk.Message) {
			<-gate
			_ = c.Send(m.Type, m.Data)
		},
	})
	logs := newLines()
	e := startEnv(t, p, envOpts{
		routes: map[string]string{"/echo/{x}": "echo"},
		cfg:    remote.Config{CallTimeout: 300 * time.Millisecond, Logger: slog.New(logs)},
		serve:  serve.Options{Credits: 4},
	})
	c := e.dial(t, "/echo/1")
	for i := range 10 {
		require.NoError(t, c.send(ws.OpText, fmt.Appendf(nil, "m%d", i)))
	}
	require.Equal(t, sdk.CloseTryAgainLater, c.closeCode(t))
	requireConnAttrs(t, logs.wait(t, "strand: plugin granted no credit in time; closing the connection"), "/echo/{x}", "stuck")
}
