package strandtest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/internal/core"
	"github.com/strandws/strand/sdk"
)

// TestHostRefusesInvalidMessageType: the kit's host, like the server,
// refuses a type other than Text and Binary with sdk.ErrMessageType and
// releases the buffer (Kit.Close checks), whoever calls it.
func TestHostRefusesInvalidMessageType(t *testing.T) {
	kit := New(t, sdk.NewPlugin("p").Entry("e").WebSocket(sdk.WebSocketHandlers{OnText: func(*sdk.Conn, []byte) {}}), Options{})
	c := kit.Open()
	h := &host{c: c}
	bufs := kit.Buffers()
	require.ErrorIs(t, h.Write(core.MessageType(9), bufs.Get(1)), sdk.ErrMessageType)
	require.ErrorIs(t, h.Broadcast("r", core.MessageType(0), bufs.Get(1), core.BroadcastOptions{}), sdk.ErrMessageType)
	require.Empty(t, c.Sent())
	_, _, closed := c.Closed()
	require.False(t, closed)
}
