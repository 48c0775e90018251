package tests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/dispatcher"
	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/wsframework"
)

// TestSlowConsumerIsolated: a client that stops reading while the plugin
// keeps sending to it is closed with 1008 and counted as a slow consumer,
// while another client on the same server keeps echoing.
func TestSlowConsumerIsolated(t *testing.T) {
	p := newProbe("slow")
	h := startServer(t, wsframework.Config{
		WriteQueueMessages: 16,
		WriteQueueBytes:    64 << 10,
		WriteTimeout:       200 * time.Millisecond,
		CloseTimeout:       200 * time.Millisecond,
	}, map[string]*sdk.Entry{"/ws": p.entry})

	healthy := h.dial(t, tagPath("/ws", "healthy"))
	p.waitOpen(t, "healthy")
	healthy.echo(t, ws.OpText, []byte("hello"))

	slow := h.dial(t, tagPath("/ws", "slow"))
	sc := p.waitOpen(t, "slow").conn
	// The plugin side floods the slow client (which reads nothing) from
	// its own goroutine; the healthy client echoes meanwhile.
	flood := make(chan error, 1)
	var sent int
	go func() {
		payload := bytes.Repeat([]byte{0xab}, 8<<10)
		for sent < 64<<20/len(payload) {
			if err := sc.SendBinary(payload); err != nil {
				flood <- err
				return
			}
			sent++
		}
		flood <- errors.New("64 MiB queued to a client that reads nothing, and no slow-consumer close")
	}()
	for i := range 50 {
		healthy.echo(t, ws.OpBinary, []byte{byte(i)})
	}
	select {
	case err := <-flood:
		require.ErrorIs(t, err, sdk.ErrSlowConsumer, "after %d sends", sent)
	case <-time.After(ioTimeout):
		t.Fatal("flood did not end")
	}
	p.waitClose(t, "slow", sdk.ClosePolicyViolation)
	require.Equal(t, uint64(1), h.srv.Stats().Closes["slow_consumer"], "closes: %v", h.srv.Stats().Closes)
	require.ErrorIs(t, sc.SendText("late"), sdk.ErrClosed)

	// The slow client finally reads: what was written, then (its socket
	// was never full here) the 1008 close frame, then the end.
	code, sawClose, data, err := slow.drainToClose(ioTimeout)
	if sawClose {
		require.Equal(t, ws.StatusPolicyViolation, code)
	} else {
		require.False(t, isTimeout(err), "slow client: connection neither closed nor ended: %v", err)
	}
	t.Logf("slow client: %d sends accepted, %d messages read before the close (close frame: %v)", sent, data, sawClose)

	for i := range 50 {
		healthy.echo(t, ws.OpText, fmt.Appendf(nil, "after %d", i))
	}
	healthy.closeHandshake(t, ws.StatusNormalClosure, "")
	p.waitClose(t, "healthy", sdk.CloseNormal)
	st := h.srv.Stats()
	require.Equal(t, uint64(1), st.Closes["slow_consumer"], "closes: %v", st.Closes)
	require.Equal(t, uint64(1), st.Closes["peer"], "closes: %v", st.Closes)
}

// TestBlockedHandlerStallsOnlyItsShard: a handler blocked on one connection
// stalls the connections of its shard only; a connection on another shard
// keeps echoing, and the stalled ones resume in order once it returns.
func TestBlockedHandlerStallsOnlyItsShard(t *testing.T) {
	dcfg := dispatcher.ShardedConfig{Shards: 8, Workers: 2}
	// A dispatcher with the same shard count hashes IDs like the server's.
	shards, err := dispatcher.NewSharded(dispatcher.ShardedConfig{Shards: dcfg.Shards, Workers: 1, SlowThreshold: -1})
	require.NoError(t, err)
	defer func() { require.NoError(t, shards.Close(context.Background())) }()

	p := newProbe("shards")
	h := startServer(t, wsframework.Config{Dispatcher: dcfg}, map[string]*sdk.Entry{"/ws": p.entry})
	t.Cleanup(p.unblock) // before the server's shutdown

	blocked := h.dial(t, tagPath("/ws", "blocked"))
	blockedID := connID(t, blocked)
	blockedShard := shards.ShardOf(blockedID)

	// Open connections until one shares the blocked one's shard and one
	// does not (IDs are sequential; 8 shards make a few dials enough).
	var same, other *wsClient
	for i := 0; same == nil || other == nil; i++ {
		require.Less(t, i, 64, "no connection found on both kinds of shard")
		c := h.dial(t, tagPath("/ws", fmt.Sprintf("c%d", i)))
		switch id := connID(t, c); {
		case shards.ShardOf(id) == blockedShard && same == nil:
			same = c
		case shards.ShardOf(id) != blockedShard && other == nil:
			other = c
		}
	}

	require.NoError(t, blocked.send(ws.OpText, []byte("!block")))
	require.Equal(t, blockedID, p.waitBlocked(t))
	require.NoError(t, blocked.send(ws.OpText, []byte("queued behind the block")))
	require.NoError(t, same.send(ws.OpText, []byte("same shard")))

	for i := range 100 {
		other.echo(t, ws.OpBinary, fmt.Appendf(nil, "other shard %d", i))
	}
	// The same-shard connection is stalled: its echo cannot have been sent.
	_, err = same.readFrame(50 * time.Millisecond)
	require.True(t, isTimeout(err), "a connection sharing the blocked shard was served: %v", err)

	p.unblock()
	same.expectFrame(t, ws.OpText, []byte("same shard"))
	blocked.expectFrame(t, ws.OpText, []byte("queued behind the block"))
	blocked.echo(t, ws.OpText, []byte("after"))
	same.echo(t, ws.OpText, []byte("after"))
	other.echo(t, ws.OpText, []byte("after"))
}

// TestPausedReaderNotIdle: a reader paused by backpressure (a blocked
// handler, MaxPendingBytes exceeded) for longer than IdleTimeout must not
// take the client for idle once it resumes, even when what it had already
// buffered ends inside a frame header.
func TestPausedReaderNotIdle(t *testing.T) {
	const idle = 400 * time.Millisecond
	p := newProbe("paused")
	h := startServer(t, wsframework.Config{
		PingInterval:    -1,
		IdleTimeout:     idle,
		MaxPendingBytes: 16,
	}, map[string]*sdk.Entry{"/ws": p.entry})
	t.Cleanup(p.unblock)

	c := h.dial(t, tagPath("/ws", "paused"))
	p.waitOpen(t, "paused")
	// One write: !block, then a 32-byte message (over MaxPendingBytes: the
	// reader waits for the handler after reading it), then the first byte
	// of the next frame's header.
	big := bytes.Repeat([]byte{7}, 32)
	next := []byte("next")
	head := append(maskedFrame(ws.OpText, []byte("!block")), maskedFrame(ws.OpBinary, big)...)
	tail := maskedFrame(ws.OpText, next)
	require.NoError(t, c.writeRaw(append(head, tail[0])))
	p.waitBlocked(t)

	// Let IdleTimeout pass while the reader is paused: a witness
	// connection opened now is closed as idle only after the paused
	// reader's idle deadline has passed too.
	witness := h.dial(t, tagPath("/ws", "witness"))
	witness.expectClose(t, ws.StatusGoingAway)
	p.waitClose(t, "witness", sdk.CloseGoingAway)

	require.NoError(t, c.writeRaw(tail[1:]))
	p.unblock()
	c.expectFrame(t, ws.OpBinary, big)
	c.expectFrame(t, ws.OpText, next)
	c.echo(t, ws.OpText, []byte("still open"))
	require.Equal(t, uint64(1), h.srv.Stats().Closes["idle"], "closes: %v", h.srv.Stats().Closes)
}

// TestPingFloodBounded: a client that sends pings and never reads cannot
// make the server queue pongs without bound: the pongs count against the
// write queue like any message; above half of it the reader pauses (TCP
// backpressure), and the client is closed as a slow consumer (queue full,
// or its socket not drained within WriteTimeout); at most a queue's worth
// of frames is ever dropped.
func TestPingFloodBounded(t *testing.T) {
	const queue = 64
	p := newProbe("pingflood")
	h := startServer(t, wsframework.Config{
		WriteQueueMessages: queue,
		WriteTimeout:       2 * time.Second, // a blocked write is a slow consumer too
		CloseTimeout:       200 * time.Millisecond,
	}, map[string]*sdk.Entry{"/ws": p.entry})
	c := h.dial(t, tagPath("/ws", "flood"))
	p.waitOpen(t, "flood")

	// 125-byte pings, 64 KiB per write, until the server stops reading
	// (the connection is closed) or 64 MiB went out.
	ping := maskedFrame(ws.OpPing, bytes.Repeat([]byte{'p'}, 125))
	chunk := bytes.Repeat(ping, (64<<10)/len(ping))
	sent := 0
	for sent < 64<<20 {
		if err := c.writeRaw(chunk); err != nil {
			break
		}
		sent += len(chunk)
	}
	var ev closeEvent
	select {
	case ev = <-p.events("flood").closes:
	case <-time.After(ioTimeout):
		t.Fatal("no OnClose")
	}
	st := h.srv.Stats()
	t.Logf("%d KiB of pings sent; OnClose %d; closes %v; dropped %d", sent>>10, ev.code, st.Closes, st.Dropped)
	require.Equal(t, sdk.ClosePolicyViolation, ev.code)
	require.Equal(t, uint64(1), st.Closes["slow_consumer"], "closes: %v", st.Closes)
	require.LessOrEqual(t, st.Dropped, uint64(queue+1))
}
