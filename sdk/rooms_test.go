package sdk_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/sdk/bufpool"
)

// plainHost is a ConnHost without rooms.
type plainHost struct{}

func (plainHost) Write(_ sdk.MessageType, b *bufpool.Buffer) error { b.Release(); return nil }
func (plainHost) Close(sdk.CloseCode, string) error                { return nil }
func (plainHost) ClosePanic(string) error                          { return nil }

// roomHost records the room calls it gets.
type roomHost struct {
	plainHost
	mu    sync.Mutex
	calls []string
}

func (h *roomHost) record(s string) {
	h.mu.Lock()
	h.calls = append(h.calls, s)
	h.mu.Unlock()
}

func (h *roomHost) Write(typ sdk.MessageType, b *bufpool.Buffer) error {
	h.record("write " + typ.String() + " " + string(b.B))
	b.Release()
	return nil
}

func (h *roomHost) Join(room string) error  { h.record("join " + room); return nil }
func (h *roomHost) Leave(room string) error { h.record("leave " + room); return nil }
func (h *roomHost) Broadcast(room string, typ sdk.MessageType, b *bufpool.Buffer, o sdk.BroadcastOptions) error {
	h.record("broadcast " + room + " " + typ.String() + " " + string(b.B) + map[bool]string{true: " excluding self"}[o.ExcludeSelf])
	b.Release()
	return nil
}

// openConn opens a plugin connection on a runtime whose host is host; the
// test's cleanup closes both.
func openConn(t *testing.T, host sdk.ConnHost, pool *bufpool.Pool) *sdk.Conn {
	t.Helper()
	rt, err := sdk.NewRuntime(sdk.NewPlugin("rooms"), sdk.RuntimeConfig{Buffers: pool})
	require.NoError(t, err)
	c, err := rt.Open(context.Background(), host, sdk.ConnInfo{ID: 1})
	require.NoError(t, err)
	t.Cleanup(func() {
		rt.Closed(c, sdk.CloseNormal, "")
		require.NoError(t, rt.Close(context.Background()))
	})
	return c
}

func TestRoomsWithoutRoomHost(t *testing.T) {
	pool := bufpool.New(bufpool.Config{Poison: true})
	c := openConn(t, plainHost{}, pool)
	require.ErrorIs(t, c.Join("r"), sdk.ErrRoomsUnsupported)
	require.ErrorIs(t, c.Leave("r"), sdk.ErrRoomsUnsupported)
	require.ErrorIs(t, c.Broadcast("r", sdk.Text, []byte("x"), sdk.BroadcastOptions{}), sdk.ErrRoomsUnsupported)
	b := c.Buffers().Get(1)
	require.ErrorIs(t, c.BroadcastBuffer("r", sdk.Text, b, sdk.BroadcastOptions{}), sdk.ErrRoomsUnsupported)
	require.Zero(t, b.Refs(), "the buffer was released")
	st := pool.Stats()
	require.Equal(t, st.Gets, st.Releases, "every buffer went back")
}

func TestRoomsCallTheHost(t *testing.T) {
	pool := bufpool.New(bufpool.Config{Poison: true})
	h := &roomHost{}
	c := openConn(t, h, pool)
	data := []byte("hi")
	require.NoError(t, c.Join("r"))
	require.NoError(t, c.Broadcast("r", sdk.Text, data, sdk.BroadcastOptions{}))
	data[0] = 'X' // Broadcast copied it
	b := c.Buffers().Get(3)
	copy(b.B, "raw")
	require.NoError(t, c.BroadcastBuffer("r", sdk.Binary, b, sdk.BroadcastOptions{ExcludeSelf: true}))
	require.NoError(t, c.Leave("r"))
	for _, bad := range []string{"", strings.Repeat("x", sdk.MaxRoomNameBytes+1)} {
		require.ErrorIs(t, c.Join(bad), sdk.ErrInvalidRoom)
		require.ErrorIs(t, c.Leave(bad), sdk.ErrInvalidRoom)
		require.ErrorIs(t, c.Broadcast(bad, sdk.Text, nil, sdk.BroadcastOptions{}), sdk.ErrInvalidRoom)
	}
	require.Equal(t, []string{"join r", "broadcast r text hi", "broadcast r binary raw excluding self", "leave r"}, h.calls)
	require.True(t, sdk.ValidRoomName(strings.Repeat("x", sdk.MaxRoomNameBytes)))
	st := pool.Stats()
	require.Equal(t, st.Gets, st.Releases, "every buffer went back")
}

// TestSendInvalidMessageType: every send method refuses a type other than
// Text and Binary with ErrMessageType, releases a buffer it was handed, and
// never reaches the host.
func TestSendInvalidMessageType(t *testing.T) {
	pool := bufpool.New(bufpool.Config{Poison: true})
	h := &roomHost{}
	c := openConn(t, h, pool)
	for _, typ := range []sdk.MessageType{0, 3, 8, 9, 10, 255} {
		require.ErrorIs(t, c.Send(typ, []byte("x")), sdk.ErrMessageType, "Send %d", typ)
		b := c.Buffers().Get(1)
		require.ErrorIs(t, c.SendBuffer(typ, b), sdk.ErrMessageType, "SendBuffer %d", typ)
		require.Zero(t, b.Refs(), "SendBuffer %d released the buffer", typ)
		require.ErrorIs(t, c.Broadcast("r", typ, []byte("x"), sdk.BroadcastOptions{}), sdk.ErrMessageType, "Broadcast %d", typ)
		b = c.Buffers().Get(1)
		require.ErrorIs(t, c.BroadcastBuffer("r", typ, b, sdk.BroadcastOptions{}), sdk.ErrMessageType, "BroadcastBuffer %d", typ)
		require.Zero(t, b.Refs(), "BroadcastBuffer %d released the buffer", typ)
	}
	require.Empty(t, h.calls, "nothing reached the host")
	require.NoError(t, c.SendText("still open"))
	require.Equal(t, []string{"write text still open"}, h.calls)
	st := pool.Stats()
	require.Equal(t, st.Gets, st.Releases, "every buffer went back")
}
