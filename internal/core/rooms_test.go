package core_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/internal/core"
	"github.com/strandws/strand/sdk/bufpool"
)

// plainHost is a ConnHost without rooms.
type plainHost struct{}

func (plainHost) Write(_ core.MessageType, b *bufpool.Buffer) error { b.Release(); return nil }
func (plainHost) Close(core.CloseCode, string) error                { return nil }
func (plainHost) ClosePanic(string) error                           { return nil }

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

func (h *roomHost) Write(typ core.MessageType, b *bufpool.Buffer) error {
	h.record("write " + typ.String() + " " + string(b.B))
	b.Release()
	return nil
}

func (h *roomHost) Join(room string) error  { h.record("join " + room); return nil }
func (h *roomHost) Leave(room string) error { h.record("leave " + room); return nil }
func (h *roomHost) Broadcast(room string, typ core.MessageType, b *bufpool.Buffer, o core.BroadcastOptions) error {
	h.record("broadcast " + room + " " + typ.String() + " " + string(b.B) + map[bool]string{true: " excluding self"}[o.ExcludeSelf])
	b.Release()
	return nil
}

// openConn opens a plugin connection on a runtime whose host is host; the
// test's cleanup closes both.
func openConn(t *testing.T, host core.ConnHost, pool *bufpool.Pool) *core.Conn {
	t.Helper()
	rt, err := core.NewRuntime(core.NewPlugin("rooms"), core.RuntimeConfig{Buffers: pool})
	require.NoError(t, err)
	c, err := rt.Open(context.Background(), host, core.ConnInfo{ID: 1})
	require.NoError(t, err)
	t.Cleanup(func() {
		rt.Closed(c, core.CloseNormal, "")
		require.NoError(t, rt.Close(context.Background()))
	})
	return c
}

func TestRoomsWithoutRoomHost(t *testing.T) {
	pool := bufpool.New(bufpool.Config{Poison: true})
	c := openConn(t, plainHost{}, pool)
	require.ErrorIs(t, c.Join("r"), core.ErrRoomsUnsupported)
	require.ErrorIs(t, c.Leave("r"), core.ErrRoomsUnsupported)
	require.ErrorIs(t, c.Broadcast("r", core.Text, []byte("x"), core.BroadcastOptions{}), core.ErrRoomsUnsupported)
	b := c.Buffers().Get(1)
	require.ErrorIs(t, c.BroadcastBuffer("r", core.Text, b, core.BroadcastOptions{}), core.ErrRoomsUnsupported)
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
	require.NoError(t, c.Broadcast("r", core.Text, data, core.BroadcastOptions{}))
	data[0] = 'X' // Broadcast copied it
	b := c.Buffers().Get(3)
	copy(b.B, "raw")
	require.NoError(t, c.BroadcastBuffer("r", core.Binary, b, core.BroadcastOptions{ExcludeSelf: true}))
	require.NoError(t, c.Leave("r"))
	for _, bad := range []string{"", strings.Repeat("x", core.MaxRoomNameBytes+1)} {
		require.ErrorIs(t, c.Join(bad), core.ErrInvalidRoom)
		require.ErrorIs(t, c.Leave(bad), core.ErrInvalidRoom)
		require.ErrorIs(t, c.Broadcast(bad, core.Text, nil, core.BroadcastOptions{}), core.ErrInvalidRoom)
	}
	require.Equal(t, []string{"join r", "broadcast r text hi", "broadcast r binary raw excluding self", "leave r"}, h.calls)
	require.True(t, core.ValidRoomName(strings.Repeat("x", core.MaxRoomNameBytes)))
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
	for _, typ := range []core.MessageType{0, 3, 8, 9, 10, 255} {
		require.ErrorIs(t, c.Send(typ, []byte("x")), core.ErrMessageType, "Send %d", typ)
		b := c.Buffers().Get(1)
		require.ErrorIs(t, c.SendBuffer(typ, b), core.ErrMessageType, "SendBuffer %d", typ)
		require.Zero(t, b.Refs(), "SendBuffer %d released the buffer", typ)
		require.ErrorIs(t, c.Broadcast("r", typ, []byte("x"), core.BroadcastOptions{}), core.ErrMessageType, "Broadcast %d", typ)
		b = c.Buffers().Get(1)
		require.ErrorIs(t, c.BroadcastBuffer("r", typ, b, core.BroadcastOptions{}), core.ErrMessageType, "BroadcastBuffer %d", typ)
		require.Zero(t, b.Refs(), "BroadcastBuffer %d released the buffer", typ)
	}
	require.Empty(t, h.calls, "nothing reached the host")
	require.NoError(t, c.SendText("still open"))
	require.Equal(t, []string{"write text still open"}, h.calls)
	st := pool.Stats()
	require.Equal(t, st.Gets, st.Releases, "every buffer went back")
}
