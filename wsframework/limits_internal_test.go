package wsframework

import (
	"bytes"
	"fmt"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/internal/core"
	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/sdk/bufpool"
)

// payload returns a pooled buffer of n bytes of c.
func payload(pool *bufpool.Pool, n int, c byte) *bufpool.Buffer {
	b := pool.Get(n)
	copy(b.B, bytes.Repeat([]byte{c}, n))
	return b
}

func closeState(c *conn) (closing bool, reason CloseReason) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing, c.reason
}

// TestWriteTooBigKeepsConnOpen: a message larger than WriteQueueBytes on
// its own is refused with core.ErrTooBig and the connection stays open and
// usable; one as large as the bound goes out on an empty queue.
func TestWriteTooBigKeepsConnOpen(t *testing.T) {
	const bound = 1 << 10
	pool := bufpool.New(bufpool.Config{Poison: true})
	s := newRoomServer(t, Config{Buffers: pool, WriteQueueBytes: bound})
	nc := newMemConn()
	nc.record = true
	c := memberConn(t, s, nc)

	require.ErrorIs(t, c.Write(core.Binary, payload(pool, bound+1, 'x')), core.ErrTooBig)
	require.ErrorIs(t, s.SendTo(c.id, sdk.Text, bytes.Repeat([]byte("y"), 4*bound)), core.ErrTooBig)
	closing, _ := closeState(c)
	require.False(t, closing, "a message too big on its own closes nothing")
	require.Equal(t, uint64(2), s.Stats().SendsTooBig)

	require.NoError(t, c.Write(core.Binary, payload(pool, bound, 'z')), "exactly the bound fits an empty queue")
	waitWritten(t, c) // (until the writer takes it, nothing more fits)
	require.NoError(t, s.SendTo(c.id, sdk.Text, []byte("after")))
	waitWritten(t, c)
	require.Equal(t, []string{string(bytes.Repeat([]byte("z"), bound)), "after"}, dataPayloads(nc.frames(t)))
	require.Empty(t, s.Stats().Closes)

	closeMemberConn(c)
	st := pool.Stats()
	require.Equal(t, st.Gets-st.Oversize, st.Releases, "every buffer went back to the pool")
}

// TestWriteOverQueuedBytesIsSlowConsumer: a message that fits the bound on
// its own but not behind what the writer has not taken yet closes the
// connection as a slow consumer (1008), as before.
func TestWriteOverQueuedBytesIsSlowConsumer(t *testing.T) {
	const bound = 1 << 10
	pool := bufpool.New(bufpool.Config{Poison: true})
	s := newRoomServer(t, Config{Buffers: pool, WriteQueueBytes: bound})
	g := &gatedConn{memConn: newMemConn(), gate: make(chan struct{}), started: make(chan struct{})}
	c := memberConn(t, s, g)
	defer close(g.gate) // before the cleanup's closeMemberConn waits for the writer

	require.NoError(t, c.Write(core.Binary, payload(pool, 8, 'a')))
	<-g.started // the writer holds the first frame; the rest queue up
	require.NoError(t, c.Write(core.Binary, payload(pool, bound/2+1, 'b')))
	require.ErrorIs(t, c.Write(core.Binary, payload(pool, bound/2+1, 'c')), core.ErrSlowConsumer)
	closing, reason := closeState(c)
	require.True(t, closing)
	require.Equal(t, ReasonSlowConsumer, reason)
	require.ErrorIs(t, c.Write(core.Binary, payload(pool, 1, 'd')), core.ErrClosed)
	require.Zero(t, s.Stats().SendsTooBig)
}

// TestBroadcastTooBig: a broadcast larger than the publishing node's
// WriteQueueBytes is refused before it is published; one published by a
// node with a larger bound is skipped by this node's members, which stay
// open, and counted as dropped.
func TestBroadcastTooBig(t *testing.T) {
	pool := bufpool.New(bufpool.Config{Poison: true})
	bus := NewMemoryBus()
	big := newRoomServer(t, Config{Buffers: pool, Adapter: bus.NewAdapter(), WriteQueueBytes: 4 << 10})
	small := newRoomServer(t, Config{Buffers: pool, Adapter: bus.NewAdapter(), WriteQueueBytes: 1 << 10})
	rec := func(s *Server) (*conn, *memConn) {
		nc := newMemConn()
		nc.record = true
		c := memberConn(t, s, nc)
		require.NoError(t, c.Join("r"))
		return c, nc
	}
	b1, b1nc := rec(big)
	s1, s1nc := rec(small)
	s2, s2nc := rec(small)

	// Too big for the sender's own node: refused, nothing published.
	require.ErrorIs(t, small.Broadcast("r", sdk.Text, bytes.Repeat([]byte("x"), 2<<10)), core.ErrTooBig)
	require.ErrorIs(t, s1.Broadcast("r", core.Text, payload(pool, 2<<10, 'x'), core.BroadcastOptions{}), core.ErrTooBig)
	require.Zero(t, small.RoomStats().Published)
	require.Equal(t, uint64(2), small.Stats().SendsTooBig)

	// Fits the big node's bound, not the small node's members.
	require.NoError(t, big.Broadcast("r", sdk.Text, bytes.Repeat([]byte("y"), 2<<10)))
	require.NoError(t, big.Broadcast("r", sdk.Text, []byte("small")))
	waitWritten(t, b1, s1, s2)
	require.Equal(t, []string{string(bytes.Repeat([]byte("y"), 2<<10)), "small"}, dataPayloads(b1nc.frames(t)))
	for _, nc := range []*memConn{s1nc, s2nc} {
		require.Equal(t, []string{"small"}, dataPayloads(nc.frames(t)))
	}
	for _, c := range []*conn{s1, s2} {
		closing, _ := closeState(c)
		require.False(t, closing, "a member skips a message too big for it and stays open")
	}
	require.Equal(t, uint64(2), small.RoomStats().Dropped)
	require.Equal(t, uint64(4), small.Stats().SendsTooBig)
	require.Zero(t, big.RoomStats().Dropped)

	for _, c := range []*conn{b1, s1, s2} {
		closeMemberConn(c)
	}
	st := pool.Stats()
	require.Equal(t, st.Gets-st.Oversize, st.Releases, "every buffer went back to the pool")
}

// TestCloseReasonOfPluginCloseAndPanic: Close is the plugin's own close,
// ReasonLocal whatever the code (1011 included); ClosePanic, which only the
// runtime calls, is ReasonPanic. Both send 1011, and the first close wins.
func TestCloseReasonOfPluginCloseAndPanic(t *testing.T) {
	s := newRoomServer(t, Config{})
	own := memberConn(t, s, newMemConn())
	require.NoError(t, own.Close(core.CloseInternalError, "plugin's choice"))
	require.NoError(t, own.ClosePanic("internal error"), "a second close is a no-op")
	panicked := memberConn(t, s, newMemConn())
	require.NoError(t, panicked.ClosePanic("internal error"))
	require.NoError(t, panicked.Close(core.CloseNormal, ""), "a second close is a no-op")
	for _, tc := range []struct {
		c      *conn
		reason CloseReason
		text   string
	}{{own, ReasonLocal, "plugin's choice"}, {panicked, ReasonPanic, "internal error"}} {
		tc.c.mu.Lock()
		reason, code, text := tc.c.reason, tc.c.localCode, tc.c.localText
		tc.c.mu.Unlock()
		require.Equal(t, tc.reason, reason)
		require.Equal(t, core.CloseInternalError, code)
		require.Equal(t, tc.text, text)
	}
}

// TestMaxRoomsPerConn: a connection joins up to MaxRoomsPerConn rooms;
// beyond, Join and Server.JoinRoom return core.ErrTooManyRooms and the
// connection keeps its rooms. Re-joining does not count; leaving makes
// room. Zero means the default; negative is refused by New.
func TestMaxRoomsPerConn(t *testing.T) {
	s := newRoomServer(t, Config{MaxRoomsPerConn: 3})
	c := memberConn(t, s, newMemConn())
	other := memberConn(t, s, newMemConn())
	for _, r := range []string{"a", "b", "c", "a", "c"} {
		require.NoError(t, c.Join(r), "join %s", r)
	}
	require.ErrorIs(t, c.Join("d"), core.ErrTooManyRooms)
	require.ErrorIs(t, s.JoinRoom(c.id, "d"), core.ErrTooManyRooms)
	require.NoError(t, other.Join("d"), "the cap is per connection")
	require.Equal(t, []uint64{other.id}, s.RoomMembers("d"))
	require.NoError(t, c.Join("b"), "a room it is in is not refused")
	closing, _ := closeState(c)
	require.False(t, closing)
	require.NoError(t, c.Leave("b"))
	require.NoError(t, c.Join("d"))
	require.ErrorIs(t, c.Join("b"), core.ErrTooManyRooms)
	require.Equal(t, []string{"a", "c", "d"}, s.Rooms())
	st := s.RoomStats()
	require.Equal(t, uint64(3), st.TooManyRooms)
	require.Equal(t, int64(4), st.Members)

	def := newRoomServer(t, Config{})
	require.Equal(t, core.DefaultMaxRoomsPerConn, def.cfg.MaxRoomsPerConn)
	dc := memberConn(t, def, newMemConn())
	for i := range core.DefaultMaxRoomsPerConn {
		require.NoError(t, dc.Join(fmt.Sprint("room-", i)))
	}
	require.NoError(t, dc.Join("room-0"))
	require.ErrorIs(t, dc.Join("one-too-many"), core.ErrTooManyRooms)

	_, err := New(Config{MaxRoomsPerConn: -1, Logger: slog.New(slog.DiscardHandler)})
	require.Error(t, err)
}
