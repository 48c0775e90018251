package tests

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/dispatcher"
	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/wsframework"
)

// These tests run once per reader mode (TestMain): the behaviour they check
// is the same in both.

// TestUTF8FailFast: an invalid byte of a text message closes the
// connection with 1007 as soon as it arrives, before the message (or even
// its frame) ends.
func TestUTF8FailFast(t *testing.T) {
	p := newProbe("utf8")
	h := startServer(t, wsframework.Config{}, map[string]*sdk.Entry{"/ws": p.entry})
	for _, tc := range []struct {
		name  string
		write func(c *wsClient) error
	}{
		// The first fragment is invalid; the message never ends.
		{"first_fragment", func(c *wsClient) error {
			return c.writeFrame(ws.OpText, false, []byte("ok\xff"))
		}},
		// A later fragment declares 100 bytes; the bad byte is among the
		// first 5 sent, and the rest never comes.
		{"later_fragment_mid_frame", func(c *wsClient) error {
			if err := c.writeFrame(ws.OpText, false, []byte("abc")); err != nil {
				return err
			}
			return c.writeHeaderAndPayload(ws.Header{OpCode: ws.OpContinuation, Masked: true, Length: 100}, []byte("de\xc0\x80f"))
		}},
		// A surrogate cut across two fragments.
		{"surrogate_across_fragments", func(c *wsClient) error {
			if err := c.writeFrame(ws.OpText, false, []byte("a\xed")); err != nil {
				return err
			}
			return c.writeFrame(ws.OpContinuation, false, []byte("\xa0\x80"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := h.dial(t, tagPath("/ws", t.Name()))
			p.waitOpen(t, t.Name())
			require.NoError(t, tc.write(c))
			c.expectClose(t, ws.StatusInvalidFramePayloadData)
			p.waitClose(t, t.Name(), sdk.CloseInvalidPayload)
		})
	}
	t.Run("code_point_split_across_fragments_is_valid", func(t *testing.T) {
		c := h.dial(t, tagPath("/ws", t.Name()))
		p.waitOpen(t, t.Name())
		require.NoError(t, c.writeFrame(ws.OpText, false, []byte("x\xe2")))
		require.NoError(t, c.writeFrame(ws.OpContinuation, false, []byte("\x82")))
		require.NoError(t, c.writeFrame(ws.OpContinuation, true, []byte("\xacy")))
		c.expectFrame(t, ws.OpText, []byte("x€y"))
		c.closeHandshake(t, ws.StatusNormalClosure, "")
	})
}

// TestNothingReadIsLostAtClose: messages read before the peer's close
// frame or before a protocol violation are handled, and what their handlers
// send goes out before the server's close frame.
func TestNothingReadIsLostAtClose(t *testing.T) {
	p := newProbe("lastwords")
	h := startServer(t, wsframework.Config{}, map[string]*sdk.Entry{"/ws": p.entry})
	for _, tc := range []struct {
		name string
		tail []byte        // written right after the messages, in the same write
		code ws.StatusCode // the server's close code
	}{
		{"peer_close", maskedFrame(ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye")), ws.StatusNormalClosure},
		{"reserved_opcode", maskedFrame(0x3, nil), ws.StatusProtocolError},
		{"unmasked_frame", []byte{0x81, 0x00}, ws.StatusProtocolError},
		{"continuation_without_message", maskedFrame(ws.OpContinuation, nil), ws.StatusProtocolError},
		{"bad_utf8", maskedFrame(ws.OpText, []byte{0xff}), ws.StatusInvalidFramePayloadData},
		{"too_big", func() []byte {
			var b byteBuffer
			require.NoError(t, ws.WriteHeader(&b, ws.Header{Fin: true, OpCode: ws.OpBinary, Masked: true, Length: wsframework.DefaultMaxMessageBytes + 1}))
			return b.b
		}(), ws.StatusMessageTooBig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := h.dial(t, tagPath("/ws", t.Name()))
			p.waitOpen(t, t.Name())
			var all []byte
			var want [][]byte
			for i := range 20 {
				m := []byte(fmt.Sprintf("message %d %s", i, strings.Repeat("x", i*50)))
				want = append(want, m)
				all = append(all, maskedFrame(ws.OpText, m)...)
			}
			all = append(all, tc.tail...)
			require.NoError(t, c.writeRaw(all))
			for _, m := range want {
				c.expectFrame(t, ws.OpText, m)
			}
			c.expectClose(t, tc.code)
			c.expectEOF(t)
			p.waitClose(t, t.Name(), sdk.CloseCode(tc.code))
		})
	}
}

// TestMessageLimits: the fragment budget, the assembly time bound and the
// message rate.
func TestMessageLimits(t *testing.T) {
	t.Run("too_many_fragments", func(t *testing.T) {
		p := newProbe("frags")
		h := startServer(t, wsframework.Config{MaxFragments: 4}, map[string]*sdk.Entry{"/ws": p.entry})
		c := h.dial(t, tagPath("/ws", t.Name()))
		p.waitOpen(t, t.Name())
		// At the budget: accepted.
		for i := range 3 {
			require.NoError(t, c.writeFrame(map[bool]ws.OpCode{true: ws.OpText}[i == 0], false, []byte("ab")))
		}
		require.NoError(t, c.writeFrame(ws.OpContinuation, true, []byte("cd")))
		c.expectFrame(t, ws.OpText, []byte("abababcd"))
		// Over it: 1008.
		for i := range 5 {
			require.NoError(t, c.writeFrame(map[bool]ws.OpCode{true: ws.OpText}[i == 0], false, []byte("ab")))
		}
		c.expectClose(t, ws.StatusPolicyViolation)
		p.waitClose(t, t.Name(), sdk.ClosePolicyViolation)
		require.Equal(t, uint64(1), h.srv.Stats().Closes["message_limit"])
	})
	t.Run("assembly_timeout", func(t *testing.T) {
		p := newProbe("drip")
		h := startServer(t, wsframework.Config{MessageTimeout: 300 * time.Millisecond}, map[string]*sdk.Entry{"/ws": p.entry})
		c := h.dial(t, tagPath("/ws", t.Name()))
		p.waitOpen(t, t.Name())
		// Each fragment comes well within ReadTimeout; the message never ends.
		require.NoError(t, c.writeFrame(ws.OpBinary, false, []byte("a")))
		done := make(chan struct{})
		go func() {
			defer close(done)
			for range 50 {
				if c.writeFrame(ws.OpContinuation, false, []byte("b")) != nil {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
		c.expectClose(t, ws.StatusPolicyViolation)
		p.waitClose(t, t.Name(), sdk.ClosePolicyViolation)
		<-done
	})
	t.Run("rate_close", func(t *testing.T) {
		p := newProbe("rateclose")
		h := startServer(t, wsframework.Config{MessageRate: 1, MessageBurst: 3, MessageRateClose: true}, map[string]*sdk.Entry{"/ws": p.entry})
		c := h.dial(t, tagPath("/ws", t.Name()))
		p.waitOpen(t, t.Name())
		var all []byte
		for i := range 10 {
			all = append(all, maskedFrame(ws.OpText, []byte{'0' + byte(i)})...)
		}
		require.NoError(t, c.writeRaw(all))
		// The burst is echoed, then the connection closes with 1008 (a
		// fourth message can only fit if a second passed meanwhile).
		for i := range 3 {
			c.expectFrame(t, ws.OpText, []byte{'0' + byte(i)})
		}
		code, sawClose, _, err := c.drainToClose(ioTimeout)
		require.NoError(t, err)
		require.True(t, sawClose)
		require.Equal(t, ws.StatusPolicyViolation, code)
		p.waitClose(t, t.Name(), sdk.ClosePolicyViolation)
	})
	t.Run("rate_pause", func(t *testing.T) {
		p := newProbe("ratepause")
		h := startServer(t, wsframework.Config{MessageRate: 50, MessageBurst: 2}, map[string]*sdk.Entry{"/ws": p.entry})
		c := h.dial(t, tagPath("/ws", t.Name()))
		p.waitOpen(t, t.Name())
		var all []byte
		for i := range 20 {
			all = append(all, maskedFrame(ws.OpText, []byte(fmt.Sprint(i)))...)
		}
		start := time.Now()
		require.NoError(t, c.writeRaw(all))
		// Over the rate, reading pauses: every message still arrives, in
		// order, and the connection stays open.
		for i := range 20 {
			c.expectFrame(t, ws.OpText, []byte(fmt.Sprint(i)))
		}
		// The pause is real: past the burst, 50 messages a second let the
		// rest in about 340 ms after the first (unpaused, they all come in
		// a few ms). A lower bound: a loaded machine only makes it later.
		require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond,
			"20 messages over a rate of 50/s with a burst of 2 came too soon: reading did not pause")
		c.closeHandshake(t, ws.StatusNormalClosure, "")
		p.waitClose(t, t.Name(), sdk.CloseNormal)
	})
}

// TestHeldMessageDeliveredAtCloseDeadline: a complete message that waits
// for room in the dispatcher when the close deadline passes is delivered
// before OnClose (both modes alike).
func TestHeldMessageDeliveredAtCloseDeadline(t *testing.T) {
	p := newProbe("held")
	cfg := wsframework.Config{
		CloseTimeout: 200 * time.Millisecond,
		Dispatcher:   dispatcher.ShardedConfig{Shards: 1, Workers: 1, QueueSize: 1, TasksPerTurn: 1},
	}
	h := startServer(t, cfg, map[string]*sdk.Entry{"/ws": p.entry})
	c := h.dial(t, tagPath("/ws", t.Name()))
	open := p.waitOpen(t, t.Name())
	ev := p.events(t.Name())
	// The handler blocks; the queue (1) fills; the next message is held by
	// the reader for lack of room.
	require.NoError(t, c.send(ws.OpText, []byte("!block")))
	p.waitBlocked(t)
	var all []byte
	for _, m := range []string{"a", "b", "c"} {
		all = append(all, maskedFrame(ws.OpText, []byte(m))...)
	}
	require.NoError(t, c.writeRaw(all))
	// "a" is queued and "b" read and waiting for room: 3 messages read.
	require.Eventually(t, func() bool { return h.srv.Stats().MessagesIn == 3 }, ioTimeout, time.Millisecond)
	// The server closes the connection (the plugin's Close from outside the
	// handler); the client never answers, so the close deadline passes.
	// "c", not read yet, is data after the server's close: discarded.
	require.NoError(t, open.conn.Close(4001, "closing"))
	time.Sleep(3 * cfg.CloseTimeout)
	p.unblock()
	var got []string
	for range 3 {
		select {
		case m := <-ev.msgs:
			got = append(got, m)
		case <-time.After(ioTimeout):
			t.Fatalf("messages delivered %v, want !block a b", got)
		}
	}
	require.Equal(t, []string{"!block", "a", "b"}, got)
	p.waitClose(t, t.Name(), 4001) // OnClose comes after them
	require.Empty(t, ev.msgs, "a message delivered after OnClose")
}

// TestLargeFrameInParts: a frame declaring a large payload that arrives in
// parts (the message buffer grows as it arrives) is delivered whole.
func TestLargeFrameInParts(t *testing.T) {
	p := newProbe("parts")
	h := startServer(t, wsframework.Config{}, map[string]*sdk.Entry{"/ws": p.entry})
	c := h.dial(t, tagPath("/ws", t.Name()))
	p.waitOpen(t, t.Name())
	const n = wsframework.DefaultMaxMessageBytes
	msg := bytes.Repeat([]byte("0123456789abcdef"), n/16)
	mask := [4]byte{9, 8, 7, 6}
	var hb byteBuffer
	require.NoError(t, ws.WriteHeader(&hb, ws.Header{Fin: true, OpCode: ws.OpBinary, Masked: true, Mask: mask, Length: n}))
	masked := append([]byte(nil), msg...)
	ws.Cipher(masked, mask, 0)
	require.NoError(t, c.writeRaw(append(hb.b, masked[:2]...)))
	for off := 2; off < n; off += 100 << 10 {
		require.NoError(t, c.writeRaw(masked[off:min(off+100<<10, n)]))
		time.Sleep(5 * time.Millisecond)
	}
	f, err := c.readFrame(ioTimeout)
	require.NoError(t, err)
	require.Equal(t, ws.OpBinary, f.op)
	require.True(t, bytes.Equal(msg, f.payload), "the echo differs from the message")
	c.closeHandshake(t, ws.StatusNormalClosure, "")
}
