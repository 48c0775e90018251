package remote_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/examples/echo/echoplugin"
	"github.com/strandws/strand/internal/remote"
	"github.com/strandws/strand/sdk"
)

// TestSettingsReachThePlugin: Config.Settings arrive, before any event, in
// the plugin's OnConfig.
func TestSettingsReachThePlugin(t *testing.T) {
	var greeting atomic.Value
	p := sdk.NewPlugin("cfg")
	p.OnConfig(func(s sdk.Settings) error {
		var c struct{ Greeting string }
		if err := s.Decode(&c); err != nil {
			return err
		}
		greeting.Store(c.Greeting)
		return nil
	})
	p.Entry("hi").WebSocket(sdk.WebSocketHandlers{OnOpen: func(c *sdk.Conn) {
		_ = c.SendText(greeting.Load().(string))
	}})
	e := startEnv(t, p, envOpts{routes: map[string]string{"/hi": "hi"},
		cfg: remote.Config{Settings: []byte(`{"greeting":"bonjour"}`)}})
	c := e.dial(t, "/hi")
	f, err := c.read(ioTimeout)
	require.NoError(t, err)
	require.Equal(t, "bonjour", string(f.payload))
}

// TestGoodbye: asked to finish, the plugin answers what it has and closes;
// Attach returns and the plugin's Dial returns nil.
func TestGoodbye(t *testing.T) {
	e := startEnv(t, echoplugin.New(), envOpts{routes: map[string]string{"/echo": "echo"}})
	c := e.dial(t, "/echo")
	require.NoError(t, c.send(ws.OpText, []byte("x")))
	_, err := c.read(ioTimeout)
	require.NoError(t, err)
	e.host.Goodbye()
	require.Error(t, e.waitEnd())
	require.Equal(t, sdk.CloseServiceRestart, c.closeCode(t))
	e.pmu.Lock()
	done := e.pdone
	e.pmu.Unlock()
	select {
	case err := <-done:
		require.NoError(t, err)
		done <- err // for stopPlugin in cleanup
	case <-time.After(ioTimeout):
		t.Fatal("the plugin did not finish after goodbye")
	}
}

// TestOneSessionAtATime: a second Attach while one is attached returns
// ErrBusy at once; Close ends the attached one and later Attach calls
// return ErrClosed.
func TestOneSessionAtATime(t *testing.T) {
	e := startEnv(t, echoplugin.New(), envOpts{routes: map[string]string{"/echo": "echo"}})
	c := e.dial(t, "/echo")
	a, b := net.Pipe()
	require.ErrorIs(t, e.host.Attach(context.Background(), a), remote.ErrBusy)
	_ = b.Close()

	require.NoError(t, e.host.Close())
	require.Error(t, e.waitEnd())
	require.Equal(t, sdk.CloseServiceRestart, c.closeCode(t))
	a, b = net.Pipe()
	require.ErrorIs(t, e.host.Attach(context.Background(), a), remote.ErrClosed)
	_ = b.Close()
	require.NoError(t, e.host.Close()) // idempotent
}

// TestHandshakeTimeout: a plugin that connects and says nothing is dropped
// after the handshake timeout.
func TestHandshakeTimeout(t *testing.T) {
	e := startEnv(t, echoplugin.New(), envOpts{noPlugin: true, cfg: remote.Config{HandshakeTimeout: 50 * time.Millisecond}})
	nc, err := net.Dial("unix", e.sock)
	require.NoError(t, err)
	defer nc.Close()
	err = e.waitEnd()
	require.ErrorContains(t, err, "no hello within")
}
