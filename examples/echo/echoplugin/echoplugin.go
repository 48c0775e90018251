// Package echoplugin is the echo example's plugin: every message comes back
// to its sender with the same type, in order.
package echoplugin

import "github.com/strandws/strand/sdk"

// BroadcastRoom is the room every /broadcast connection joins.
const BroadcastRoom = "broadcast"

// New returns the echo plugin. Its entry "echo" upgrades every WebSocket
// handshake and echoes each message; its entry "broadcast" sends every
// message to all connections of that entry, the sender included, each
// sender's messages in order.
func New() *sdk.Plugin {
	p := sdk.NewPlugin("echo")
	p.Entry("echo").WebSocket(sdk.WebSocketHandlers{
		OnMessage: func(c *sdk.Conn, m sdk.Message) {
			// Send copies m.Data, which is only valid until we return.
			_ = c.Send(m.Type, m.Data)
		},
	})
	p.Entry("broadcast").WebSocket(sdk.WebSocketHandlers{
		OnOpen: func(c *sdk.Conn) {
			if err := c.Join(BroadcastRoom); err != nil {
				_ = c.Close(sdk.CloseInternalError, "join failed")
			}
		},
		OnMessage: func(c *sdk.Conn, m sdk.Message) {
			// One shared copy for every member (Broadcast copies m.Data).
			_ = c.Broadcast(BroadcastRoom, m.Type, m.Data, sdk.BroadcastOptions{})
		},
	})
	return p
}
