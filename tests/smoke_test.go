package tests

import (
	"io"
	"testing"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/examples/echo/echoplugin"
	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/wsframework"
)

// TestSmokeEcho talks to the echo plugin with gobwas/ws's own client helpers
// (not this package's frame writer), as an ordinary client would.
func TestSmokeEcho(t *testing.T) {
	h := startServer(t, wsframework.Config{}, map[string]*sdk.Entry{"/echo": echoplugin.New().Entry("echo")})
	c := h.dial(t, "/echo")
	rw := struct {
		io.Reader
		io.Writer
	}{c.br, c.nc}
	for i := range 100 {
		msg := []byte{byte(i), 'x'}
		require.NoError(t, wsutil.WriteClientBinary(c.nc, msg))
		got, op, err := wsutil.ReadServerData(rw)
		require.NoError(t, err)
		require.Equal(t, ws.OpBinary, op)
		require.Equal(t, msg, got)
	}
	require.NoError(t, wsutil.WriteClientText(c.nc, []byte("h\u00e9llo")))
	got, op, err := wsutil.ReadServerData(rw)
	require.NoError(t, err)
	require.Equal(t, ws.OpText, op)
	require.Equal(t, "h\u00e9llo", string(got))

	require.NoError(t, wsutil.WriteClientMessage(c.nc, ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye")))
	_, _, err = wsutil.ReadServerData(rw)
	var ce wsutil.ClosedError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, ws.StatusNormalClosure, ce.Code)
}
