package remote_test

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/examples/echo/echoplugin"
	"github.com/strandws/strand/sdk/serve"
)

// TestListenMode: a plugin someone else runs listens on a socket
// (serve.Run with EnvListen); the host dials it, and again after the first
// connection ends. Run with neither variable set says which to set.
func TestListenMode(t *testing.T) {
	require.ErrorContains(t, serve.Run(context.Background(), echoplugin.New()), serve.EnvListen)

	path := sockPath(t)
	// A stale socket file from an earlier run is replaced.
	stale, err := net.Listen("unix", path)
	require.NoError(t, err)
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	require.NoError(t, stale.Close())

	t.Setenv(serve.EnvListen, path)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve.Run(ctx, echoplugin.New()) }()

	e := startEnv(t, echoplugin.New(), envOpts{noPlugin: true})
	for round := range 2 {
		var nc net.Conn
		require.Eventually(t, func() bool {
			nc, err = net.Dial("unix", path)
			return err == nil
		}, ioTimeout, time.Millisecond)
		attached := make(chan error, 1)
		go func() { attached <- e.host.Attach(context.Background(), nc) }()
		if round == 0 {
			proxy, err := e.host.Plugin(ctx)
			require.NoError(t, err)
			e.serveHTTP(proxy, envOpts{routes: map[string]string{"/echo": "echo"}})
		}
		e.waitUp()
		c := e.dial(t, "/echo")
		require.NoError(t, c.send(ws.OpText, []byte("hi")))
		f, err := c.read(ioTimeout)
		require.NoError(t, err)
		require.Equal(t, "hi", string(f.payload))
		e.host.Goodbye() // the plugin ends this connection and accepts the next
		require.Error(t, <-attached)
	}
	cancel()
	require.NoError(t, <-done)
	_, err = os.Stat(path)
	require.True(t, os.IsNotExist(err), "socket file left behind")
}
