package wsframework

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/internal/core"
)

// gatedConn blocks its first write until the gate opens.
type gatedConn struct {
	*memConn
	gate    chan struct{}
	started chan struct{}
	first   bool
}

func (g *gatedConn) Write(p []byte) (int, error) {
	if !g.first {
		g.first = true
		close(g.started)
		<-g.gate
	}
	return g.memConn.Write(p)
}

// TestWriteQueueShrinksWhenIdle: the queue a burst grew is not kept by an
// idle connection past its next keepalive ping.
func TestWriteQueueShrinksWhenIdle(t *testing.T) {
	s := newRoomServer(t, Config{})
	g := &gatedConn{memConn: newMemConn(), gate: make(chan struct{}), started: make(chan struct{})}
	c := memberConn(t, s, g)
	send := func() {
		b := s.cfg.Buffers.Get(8)
		require.NoError(t, c.Write(core.Binary, b))
	}
	send()
	<-g.started // the writer holds the first frame; the rest queue up
	for range 4 * maxIdleQueue {
		send()
	}
	c.mu.Lock()
	require.Greater(t, cap(c.wq.q), maxIdleQueue)
	c.mu.Unlock()
	close(g.gate)
	waitWritten(t, c)
	c.mu.Lock()
	require.Greater(t, max(cap(c.wq.q), cap(c.wq.spare)), maxIdleQueue, "a burst's queue is kept for the next one")
	c.mu.Unlock()
	require.True(t, c.sendPing())
	waitWritten(t, c)
	c.mu.Lock()
	defer c.mu.Unlock()
	require.LessOrEqual(t, cap(c.wq.q), maxIdleQueue)
	require.LessOrEqual(t, cap(c.wq.spare), maxIdleQueue)
}
