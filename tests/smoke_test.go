package tests

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/examples/echo/echoplugin"
	"github.com/strandws/strand/wsframework"
)

func TestSmokeEcho(t *testing.T) {
	srv, err := wsframework.New(wsframework.Config{})
	require.NoError(t, err)
	require.NoError(t, srv.Route("/echo", nil, echoplugin.New().Entry("echo")))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go srv.Serve(l)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, _, err := ws.Dial(ctx, "ws://"+l.Addr().String()+"/echo")
	require.NoError(t, err)
	for i := range 100 {
		msg := []byte{byte(i), 'x'}
		require.NoError(t, wsutil.WriteClientBinary(c, msg))
		got, op, err := wsutil.ReadServerData(c)
		require.NoError(t, err)
		require.Equal(t, ws.OpBinary, op)
		require.Equal(t, msg, got)
	}
	require.NoError(t, wsutil.WriteClientMessage(c, ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye")))
	_, _, err = wsutil.ReadServerData(c)
	var ce wsutil.ClosedError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, ws.StatusNormalClosure, ce.Code)
	c.Close()
	_ = http.StatusOK
}
