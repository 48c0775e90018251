package tests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
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

// TestBlockedHandlersStallOnlyTheirConnections: handlers blocked on many
// connections at once — more than 2×GOMAXPROCS of them (the base worker
// set) and more than the shards, so that they share shards with each other
// and with the free connections — hold up no other connection: every free
// connection, those sharing a blocked one's shard included, gets all its
// messages echoed, in order, while they are blocked. Once released, the
// blocked connections get theirs, in order. Nothing here waits for a
// duration: blocked handlers are seen to start, free echoes to arrive, and
// the blocked connections' later messages not to have reached a handler.
func TestBlockedHandlersStallOnlyTheirConnections(t *testing.T) {
	const shardCount = 8
	dcfg := dispatcher.ShardedConfig{Shards: shardCount, Workers: 2}
	blockedN := max(2*runtime.GOMAXPROCS(0), shardCount) + 4
	const (
		freeN  = 24
		perMsg = 40
		queued = 5 // messages sent behind each blocked one
	)
	// A dispatcher with the same shard count hashes IDs like the server's.
	shards, err := dispatcher.NewSharded(dispatcher.ShardedConfig{Shards: shardCount, Workers: 1, SlowThreshold: -1, BlockThreshold: -1})
	require.NoError(t, err)
	defer func() { require.NoError(t, shards.Close(context.Background())) }()

	p := newProbe("isolation")
	h := startServer(t, wsframework.Config{Dispatcher: dcfg}, map[string]*sdk.Entry{"/ws": p.entry})
	t.Cleanup(p.unblock) // before the server's shutdown

	blockedShards := map[int]bool{}
	blocked := make([]*wsClient, blockedN)
	for i := range blocked {
		tag := fmt.Sprintf("blocked-%d", i)
		c := h.dial(t, tagPath("/ws", tag))
		blockedShards[shards.ShardOf(connID(t, c))] = true
		require.NoError(t, c.send(ws.OpText, []byte("!block")))
		// Each starts blocking only if the worker set grows past the
		// blocked ones before it.
		p.waitBlocked(t)
		for j := range queued {
			require.NoError(t, c.send(ws.OpText, fmt.Appendf(nil, "%s/%d", tag, j)))
		}
		blocked[i] = c
	}

	free := make([]*wsClient, freeN)
	sharing := 0
	for i := range free {
		free[i] = h.dial(t, tagPath("/ws", fmt.Sprintf("free-%d", i)))
		if blockedShards[shards.ShardOf(connID(t, free[i]))] {
			sharing++
		}
	}
	require.Positive(t, sharing, "no free connection shares a shard with a blocked one")
	t.Logf("%d connections blocked over %d of %d shards; %d of %d free connections share their shards", blockedN, len(blockedShards), shardCount, sharing, freeN)

	// Every free connection pipelines its messages, then reads them back.
	for i, c := range free {
		for j := range perMsg {
			require.NoError(t, c.send(ws.OpBinary, fmt.Appendf(nil, "free-%d/%d", i, j)))
		}
	}
	for i, c := range free {
		for j := range perMsg {
			c.expectFrame(t, ws.OpBinary, fmt.Appendf(nil, "free-%d/%d", i, j))
		}
	}
	// The blocked connections' later messages reached no handler.
	for i := range blocked {
		require.Equal(t, []string{"!id", "!block"}, p.messages(fmt.Sprintf("blocked-%d", i)))
	}

	p.unblock()
	for i, c := range blocked {
		for j := range queued {
			c.expectFrame(t, ws.OpText, fmt.Appendf(nil, "blocked-%d/%d", i, j))
		}
		c.echo(t, ws.OpText, []byte("after"))
	}
	free[0].echo(t, ws.OpText, []byte("after"))
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
