// Package echoplugin is the echo example's plugin: every message comes back
// to its sender with the same type, in order.
package echoplugin

import "github.com/strandws/strand/sdk"

// New returns the echo plugin. Its entry "echo" upgrades every WebSocket
// handshake and echoes each message.
func New() *sdk.Plugin {
	p := sdk.NewPlugin("echo")
	p.Entry("echo").WebSocket(sdk.WebSocketHandlers{
		OnMessage: func(c *sdk.Conn, m sdk.Message) {
			// Send copies m.Data, which is only valid until we return.
			_ = c.Send(m.Type, m.Data)
		},
	})
	return p
}
