package serve_test

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/sdk/serve"
	"github.com/strandws/strand/wsframework"
)

// TestRefusesWhatAServerRefuses: a plugin served out of process is
// refused before its hello, with the error a server's Route gives for the
// same entry in process (there after the route's prefix).
func TestRefusesWhatAServerRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		plugin func() (*sdk.Plugin, *sdk.Entry)
		want   string
	}{
		{"on_message_and_on_text", func() (*sdk.Plugin, *sdk.Entry) {
			p := sdk.NewPlugin("p")
			p.Entry("ok").WebSocket(sdk.WebSocketHandlers{OnText: func(*sdk.Conn, []byte) {}})
			return p, p.Entry("both").WebSocket(sdk.WebSocketHandlers{
				OnMessage: func(*sdk.Conn, sdk.Message) {}, OnText: func(*sdk.Conn, []byte) {},
			})
		}, "sdk: entry p/both: WebSocket handlers set both OnMessage and OnText/OnBinary: OnMessage would shadow them; set one or the other"},
		{"registered_but_empty_entry", func() (*sdk.Plugin, *sdk.Entry) {
			p := sdk.NewPlugin("p")
			return p, p.Entry("empty")
		}, "sdk: entry p/empty has no handlers: is the name misspelled, or was it never registered?"},
		{"all_nil_websocket_handlers", func() (*sdk.Plugin, *sdk.Entry) {
			p := sdk.NewPlugin("p")
			return p, p.Entry("ws").WebSocket(sdk.WebSocketHandlers{})
		}, "sdk: entry p/ws has no handlers: its WebSocketHandlers are all nil"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, e := tc.plugin()

			srv, err := wsframework.New(wsframework.Config{})
			require.NoError(t, err)
			defer srv.Close()
			require.EqualError(t, srv.Route("/x", nil, e), `wsframework: Route "/x": `+tc.want, "in process")

			// A plugin that is not refused would wait for the host until
			// ctx ends: the test then fails instead of hanging.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()

			// Conn: nothing reaches the host, and the connection is closed.
			plugin, host := net.Pipe()
			defer host.Close()
			require.NoError(t, host.SetReadDeadline(time.Now().Add(10*time.Second)))
			done := make(chan error, 1)
			go func() { done <- serve.Conn(ctx, p, plugin, serve.Options{}) }()
			n, err := host.Read(make([]byte, 1))
			require.Equal(t, 0, n, "no hello")
			require.ErrorIs(t, err, io.EOF, "the connection is closed")
			require.EqualError(t, <-done, tc.want, "Conn")

			// Dial and Listen refuse before they touch the socket path.
			path := filepath.Join(t.TempDir(), "p.sock")
			require.EqualError(t, serve.Dial(ctx, p, path), tc.want, "Dial")
			require.EqualError(t, serve.Listen(ctx, p, path), tc.want, "Listen")
			_, err = os.Stat(path)
			require.ErrorIs(t, err, os.ErrNotExist, "Listen made no socket")

			t.Setenv(serve.EnvSocket, path)
			require.EqualError(t, serve.Run(ctx, p), tc.want, "Run")
		})
	}
}
