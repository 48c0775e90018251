package remote_test

import (
	"strings"
	"testing"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/examples/chat/chatplugin"
)

// TestChatThroughSocket: the chat plugin, whose request filter keeps each
// client's state as a per-request value and whose OnOpen joins a room
// (a round trip) and broadcasts, works through the socket unchanged.
func TestChatThroughSocket(t *testing.T) {
	ch, err := chatplugin.New(chatplugin.Config{})
	require.NoError(t, err)
	e := startEnv(t, ch.Plugin(), envOpts{routes: map[string]string{"GET /ws": "chat"}})

	ann := e.dial(t, "/ws?room=lobby&name=ann")
	require.True(t, strings.HasPrefix(readText(t, ann), `{"type":"history"`))
	require.Contains(t, readText(t, ann), `"type":"join"`)
	bob := e.dial(t, "/ws?room=lobby&name=bob")
	require.True(t, strings.HasPrefix(readText(t, bob), `{"type":"history"`))
	require.Contains(t, readText(t, bob), `"name":"bob"`)
	require.Contains(t, readText(t, ann), `"name":"bob"`)

	require.NoError(t, ann.send(ws.OpText, []byte(`{"type":"message","text":"hello bob"}`)))
	for _, c := range []*client{ann, bob} {
		got := readText(t, c)
		require.Contains(t, got, `"from":"ann"`)
		require.Contains(t, got, `"text":"hello bob"`)
	}

	_, err = e.connect("/ws?room=lobby", nil) // no name: the remote filter rejects
	require.Error(t, err)
	require.Contains(t, err.Error(), "400")
}
