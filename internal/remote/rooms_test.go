package remote_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/wsframework"
)

// roomPlugin runs commands sent as text messages, so a test drives the
// plugin's Send, Broadcast, Join, Leave and Close from outside.
func roomPlugin() *sdk.Plugin {
	p := sdk.NewPlugin("rooms")
	p.Entry("room").WebSocket(sdk.WebSocketHandlers{
		OnOpen: func(c *sdk.Conn) {
			if err := c.Join("r"); err != nil {
				_ = c.SendText("join error " + err.Error())
				return
			}
			_ = c.SendText("joined")
		},
		OnText: func(c *sdk.Conn, b []byte) {
			cmd, arg, _ := strings.Cut(string(b), ":")
			switch cmd {
			case "s":
				_ = c.SendText(arg)
			case "b":
				_ = c.Broadcast("r", sdk.Text, []byte(arg))
			case "bx":
				_ = c.Broadcast("r", sdk.Text, []byte(arg), sdk.BroadcastOptions{ExcludeSelf: true})
			case "join":
				err := c.Join(arg)
				switch {
				case errors.Is(err, sdk.ErrTooManyRooms):
					_ = c.SendText("too many rooms")
				case err != nil:
					_ = c.SendText("join error " + err.Error())
				default:
					_ = c.SendText("joined " + arg)
				}
			case "leave":
				_ = c.Leave("r")
				_ = c.SendText("left")
			case "close":
				_ = c.SendText("bye")
				_ = c.Close(4000, "done")
			}
		},
		OnClose: func(c *sdk.Conn, code sdk.CloseCode, reason string) {
			// Broadcasting from OnClose is allowed.
			_ = c.Broadcast("r", sdk.Text, []byte("gone"), sdk.BroadcastOptions{ExcludeSelf: true})
		},
	})
	return p
}

func readText(t *testing.T, c *client) string {
	t.Helper()
	f, err := c.read(ioTimeout)
	require.NoError(t, err)
	require.Equal(t, ws.OpText, f.op, "payload %q", f.payload)
	return string(f.payload)
}

// TestRoomsKeepOrder: a remote plugin's sends, broadcasts, joins, leaves and
// close reach the clients in the order the plugin made them.
func TestRoomsKeepOrder(t *testing.T) {
	e := startEnv(t, roomPlugin(), envOpts{routes: map[string]string{"/room": "room"},
		srvCfg: wsframework.Config{MaxRoomsPerConn: 1}})
	a := e.dial(t, "/room")
	require.Equal(t, "joined", readText(t, a))
	b := e.dial(t, "/room")
	require.Equal(t, "joined", readText(t, b))

	for _, m := range []string{"s:1", "b:2", "s:3", "bx:4", "join:other", "leave", "b:5", "close"} {
		require.NoError(t, a.send(ws.OpText, []byte(m)))
	}
	for _, want := range []string{"1", "2", "3", "too many rooms", "left", "bye"} {
		require.Equal(t, want, readText(t, a))
	}
	require.Equal(t, sdk.CloseCode(4000), a.closeCode(t))
	for _, want := range []string{"2", "4", "5", "gone"} {
		require.Equal(t, want, readText(t, b))
	}
}
