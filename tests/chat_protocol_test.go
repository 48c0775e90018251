package tests

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/examples/chat/chatplugin"
	"github.com/strandws/strand/examples/chat/chatserver"
	"github.com/strandws/strand/wsframework"
)

func TestChatHandshakeValidation(t *testing.T) {
	chatHandshakeValidation(t, startChat(t, chatserver.Config{}))
}

// chatHandshakeValidation, chatHistoryAfterRejoin and chatBadInput run
// against the chat in process and, in strand_test.go, out of process;
// they use nothing but the network.
func chatHandshakeValidation(t *testing.T, h *chatHarness) {
	long := strings.Repeat("é", 33) // 33 characters, 66 bytes
	ok32 := strings.Repeat("é", 32)
	for _, tc := range []struct {
		name   string
		query  url.Values
		status int
		reason string
	}{
		{"room missing", url.Values{"name": {"ada"}}, 400, "room is missing"},
		{"name missing", url.Values{"room": {"r"}}, 400, "name is missing"},
		{"room empty", url.Values{"room": {""}, "name": {"ada"}}, 400, "room is empty"},
		{"name blank", url.Values{"room": {"r"}, "name": {"   "}}, 400, "name is empty"},
		{"name over 32 characters", url.Values{"room": {"r"}, "name": {long}}, 400, "name is over 32 characters"},
		{"room over 32 characters", url.Values{"room": {long}, "name": {"ada"}}, 400, "room is over 32 characters"},
		{"control character", url.Values{"room": {"r"}, "name": {"a\x07b"}}, 400, "name contains control characters"},
		{"32 characters of 2 bytes", url.Values{"room": {ok32}, "name": {ok32}}, http.StatusSwitchingProtocols, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.status == http.StatusSwitchingProtocols {
				c, hist := h.chatDial(t, tc.query.Get("room"), tc.query.Get("name"))
				require.Empty(t, hist)
				c.close(t)
				return
			}
			status, body := h.handshake(t, tc.query.Encode())
			require.Equal(t, tc.status, status)
			require.Equal(t, tc.reason, body)
		})
	}
}

func TestChatMessagesPresenceAndCleanup(t *testing.T) {
	h := startChat(t, chatserver.Config{})
	alice, hist := h.chatDial(t, "general", "alice")
	require.Empty(t, hist)
	require.Equal(t, chatMsg{Type: "join", Room: "general", Name: "alice"}, alice.next(t), "alice sees her own join")

	bob, _ := h.chatDial(t, "general", "bob")
	require.Equal(t, chatMsg{Type: "join", Room: "general", Name: "bob"}, alice.next(t))
	require.Equal(t, "bob", bob.next(t).Name)
	// A duplicate name is allowed.
	bob2, _ := h.chatDial(t, "general", "bob")
	require.Equal(t, "bob", alice.next(t).Name)
	require.Equal(t, "bob", bob.next(t).Name)
	require.Equal(t, "bob", bob2.next(t).Name)
	require.Equal(t, 3, h.Server.RoomSize("general"))

	before := time.Now().UnixMilli()
	bob.say(t, "<b>hi</b> & \"you\"")
	for _, c := range []*chatClient{alice, bob, bob2} { // the sender gets its own message too
		m := c.next(t)
		require.Equal(t, "message", m.Type)
		require.Equal(t, "general", m.Room)
		require.Equal(t, "bob", m.From)
		require.Equal(t, "<b>hi</b> & \"you\"", m.Text)
		require.Equal(t, uint64(1), m.Seq)
		require.GreaterOrEqual(t, m.TS, before)
		require.LessOrEqual(t, m.TS, time.Now().UnixMilli())
	}

	// Closing ends the membership: the others see the leave, the
	// server's room shrinks, and messages go on.
	bob.close(t)
	require.Equal(t, chatMsg{Type: "leave", Room: "general", Name: "bob"}, alice.next(t))
	require.Equal(t, "leave", bob2.next(t).Type)
	require.Equal(t, 2, h.Server.RoomSize("general"))
	// A dropped TCP connection (no close frame) too.
	require.NoError(t, bob2.nc.Close())
	require.Equal(t, chatMsg{Type: "leave", Room: "general", Name: "bob"}, alice.next(t))
	require.Equal(t, 1, h.Server.RoomSize("general"))
	alice.say(t, "anyone?")
	require.Equal(t, uint64(2), alice.next(t).Seq)

	alice.close(t)
	ctx, cancel := context.WithTimeout(context.Background(), chatTimeout)
	defer cancel()
	require.NoError(t, h.Server.Shutdown(ctx)) // every OnClose has run
	require.Empty(t, h.Server.Rooms(), "an empty room is gone from the server")
	require.Equal(t, chatplugin.Stats{Rooms: 1, IdleRooms: 1}, h.Plugin.Stats(), "its history stays")
}

func TestChatHistoryAfterRejoin(t *testing.T) {
	chatHistoryAfterRejoin(t, startChat(t, chatserver.Config{Chat: chatplugin.Config{Rate: 1e6, Burst: 1000}}))
}

// chatHistoryAfterRejoin needs a rate of at least 1e6 messages/s with a
// burst of 1000.
func chatHistoryAfterRejoin(t *testing.T, h *chatHarness) {
	a, _ := h.chatDial(t, "hist", "a")
	a.nextOf(t, "join")
	const sent = 55 // more than the 50 kept
	for i := 1; i <= sent; i++ {
		a.say(t, fmt.Sprintf("m%02d", i))
		require.Equal(t, uint64(i), a.nextOf(t, "message").Seq)
	}
	// Other rooms keep their own history and sequence.
	other, _ := h.chatDial(t, "other", "o")
	other.nextOf(t, "join")
	other.say(t, "elsewhere")
	require.Equal(t, uint64(1), other.nextOf(t, "message").Seq)
	a.close(t)

	b, hist := h.chatDial(t, "hist", "b")
	require.Len(t, hist, 50)
	for i, m := range hist {
		n := sent - 50 + 1 + i
		require.Equal(t, chatMsg{Type: "message", Room: "hist", From: "a", Text: fmt.Sprintf("m%02d", n), TS: m.TS, Seq: uint64(n)}, m)
	}
	// Live events follow the history: b's own join, and a's leave before or
	// after it (a's OnClose runs asynchronously to b's dial).
	require.Equal(t, "b", b.nextOf(t, "join").Name, "live events follow the history")
	b.say(t, "next")
	require.Equal(t, uint64(sent+1), b.nextOf(t, "message").Seq, "the sequence goes on")
}

func TestChatBadInput(t *testing.T) {
	chatBadInput(t, startChat(t, chatserver.Config{}))
}

func chatBadInput(t *testing.T, h *chatHarness) {
	c, _ := h.chatDial(t, "bad", "eve")
	c.nextOf(t, "join")
	for _, tc := range []struct {
		name  string
		op    ws.OpCode
		data  string
		error string // substring of the error; "" means accepted
	}{
		{"malformed JSON", ws.OpText, `{"type":"message",`, "malformed JSON"},
		{"not an object", ws.OpText, `[1,2]`, "malformed JSON"},
		{"text of the wrong type", ws.OpText, `{"type":"message","text":5}`, `field "text" must be a string`},
		{"unknown type", ws.OpText, `{"type":"shout","text":"x"}`, `unknown message type "shout"`},
		{"no type", ws.OpText, `{"text":"x"}`, `unknown message type ""`},
		{"empty text", ws.OpText, `{"type":"message","text":"  "}`, "text is empty"},
		{"text over 4 KiB", ws.OpText, `{"type":"message","text":"` + strings.Repeat("x", 4097) + `"}`, "text is over 4096 bytes"},
		{"binary", ws.OpBinary, `{"type":"message","text":"x"}`, "binary messages are not supported"},
		{"text of exactly 4 KiB", ws.OpText, `{"type":"message","text":"` + strings.Repeat("y", 4096) + `"}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.sendRaw(t, tc.op, []byte(tc.data))
			m := c.next(t)
			if tc.error == "" {
				require.Equal(t, "message", m.Type)
				require.Len(t, m.Text, 4096)
				return
			}
			require.Equal(t, "error", m.Type)
			require.Contains(t, m.Error, tc.error)
		})
	}
	// The connection is still usable after every error.
	c.say(t, "still here")
	require.Equal(t, "still here", c.nextOf(t, "message").Text)
}

func TestChatRateLimit(t *testing.T) {
	clock := newChatClock()
	h := startChat(t, chatserver.Config{Chat: chatplugin.Config{Now: clock.Now}})
	c, _ := h.chatDial(t, "fast", "speedy")
	c.nextOf(t, "join")
	watcher, _ := h.chatDial(t, "fast", "watcher")
	c.nextOf(t, "join")
	watcher.nextOf(t, "join")

	expectMessage := func(text string) {
		t.Helper()
		m := c.next(t)
		require.Equal(t, "message", m.Type, "%q: got %+v", text, m)
		require.Equal(t, text, m.Text)
	}
	expectRateError := func() {
		t.Helper()
		m := c.next(t)
		require.Equal(t, "error", m.Type)
		require.Contains(t, m.Error, "rate limit")
	}

	// The burst: 40 at once (the clock stands still).
	for i := range 40 {
		c.say(t, fmt.Sprint("burst ", i))
		expectMessage(fmt.Sprint("burst ", i))
	}
	c.say(t, "41st")
	expectRateError() // strike 1 at t=0
	// 20 per second sustained: one token per 50 ms.
	for i := range 20 {
		clock.Add(50 * time.Millisecond)
		c.say(t, fmt.Sprint("paced ", i))
		expectMessage(fmt.Sprint("paced ", i))
	}
	c.say(t, "too soon")
	expectRateError() // strike 2 at t=1s
	// Strikes older than 10 s are forgotten.
	clock.Add(9500 * time.Millisecond) // t=10.5 s: strike 1 expired, 190 tokens capped at 40
	for i := range 40 {
		c.say(t, fmt.Sprint("refilled ", i))
		expectMessage(fmt.Sprint("refilled ", i))
	}
	c.say(t, "over again")
	expectRateError() // strike 3, but only 2 within 10 s
	c.say(t, "and again")
	expectRateError() // the third within 10 s: closed with 1008
	require.Equal(t, "rate limit exceeded", c.expectClose(t, ws.StatusPolicyViolation))
	require.NoError(t, c.nc.Close())
	require.Equal(t, chatMsg{Type: "leave", Room: "fast", Name: "speedy"}, watcher.nextOf(t, "leave"))
}

// TestChatSlowReceiverClosed: a member that stops reading is closed with
// 1008 (slow consumer) while the sender and a reading member get every
// message, the sender never waiting for the slow one.
func TestChatSlowReceiverClosed(t *testing.T) {
	h := startChat(t, chatserver.Config{
		Chat: chatplugin.Config{Rate: 1e9, Burst: 1 << 30},
		// The server waits this long for the slow client's close reply.
		Server: wsframework.Config{WriteQueueMessages: 256, CloseTimeout: chatTimeout},
	})
	// The slow client has a tiny receive buffer and never reads.
	slow := h.chatConnect(t, "slow", "sloth", func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
	})
	sender, _ := h.chatDial(t, "slow", "sender")
	reader, _ := h.chatDial(t, "slow", "reader")
	sender.nextOf(t, "join") // its own
	sender.nextOf(t, "join") // the reader's
	reader.nextOf(t, "join")

	// 6 MB: the slow client's socket buffers and its queue (256 messages)
	// many times over. Both reading members read concurrently; the sender
	// keeps at most 32 of its messages in flight.
	const msgs, window = 2000, 32
	text := strings.Repeat("z", 3000)
	countMessages := func(c *chatClient, each chan<- struct{}) error {
		var buf []byte
		for n := 0; n < msgs; {
			b, err := c.readData(chatTimeout, buf)
			if err != nil {
				return fmt.Errorf("%s after %d messages: %w", c.name, n, err)
			}
			buf = b[:0]
			if strings.HasPrefix(string(b[:min(len(b), 20)]), `{"type":"message"`) {
				n++
				if each != nil {
					each <- struct{}{}
				}
			}
		}
		return nil
	}
	readerDone, senderDone := make(chan error, 1), make(chan error, 1)
	echoed := make(chan struct{}, msgs)
	go func() { readerDone <- countMessages(reader, nil) }()
	go func() { senderDone <- countMessages(sender, echoed) }()
	start := time.Now()
	for i := range msgs {
		if i >= window {
			select {
			case <-echoed:
			case err := <-senderDone:
				t.Fatalf("sender stopped reading: %v", err)
			}
		}
		sender.say(t, text)
	}
	require.NoError(t, <-senderDone, "the sender got every message")
	require.NoError(t, <-readerDone, "the reading member got every message")
	t.Logf("%d messages of %d bytes through a room with a stalled member in %v", msgs, len(text), time.Since(start))

	// The stalled member was closed as a slow consumer. Once it reads
	// again it gets what the kernel had buffered, then (its queue having
	// been dropped) the 1008 close frame.
	var buf []byte
	for {
		b, err := slow.readData(chatTimeout, buf)
		if ce, ok := err.(*chatCloseError); ok {
			require.Equal(t, ws.StatusPolicyViolation, ce.code)
			require.Equal(t, "slow consumer", ce.reason)
			break
		}
		require.NoError(t, err)
		buf = b[:0]
	}
	require.NoError(t, slow.nc.Close())
	require.Equal(t, chatMsg{Type: "leave", Room: "slow", Name: "sloth"}, reader.nextOf(t, "leave"))
	require.Equal(t, uint64(1), h.Server.Stats().Closes[wsframework.ReasonSlowConsumer.String()])
	require.Equal(t, 2, h.Server.RoomSize("slow"))
}
