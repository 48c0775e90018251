package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/examples/chat/chatserver"
	"github.com/strandws/strand/wsframework"
)

// chatTimeout bounds every blocking step of a chat test.
const chatTimeout = 20 * time.Second

// chatHarness is the chat example's server on 127.0.0.1:0.
type chatHarness struct {
	*chatserver.Chat
	addr string
}

// startChat starts the chat server (logs discarded) and shuts it down in
// the test's cleanup.
func startChat(t testing.TB, cfg chatserver.Config) *chatHarness {
	t.Helper()
	if cfg.Server.Logger == nil {
		cfg.Server.Logger = quietLogger()
	}
	if cfg.Server.Reader == wsframework.ReaderAuto {
		cfg.Server.Reader = readerMode
	}
	chat, err := chatserver.New(cfg)
	require.NoError(t, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- chat.Server.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), chatTimeout)
		defer cancel()
		assert.NoError(t, chat.Server.Shutdown(ctx), "Shutdown")
		select {
		case err := <-served:
			assert.ErrorIs(t, err, wsframework.ErrServerClosed)
		case <-time.After(chatTimeout):
			t.Errorf("Serve did not return after Shutdown")
		}
	})
	return &chatHarness{Chat: chat, addr: l.Addr().String()}
}

func (h *chatHarness) wsURL(room, name string) string {
	return "ws://" + h.addr + "/ws?" + url.Values{"room": {room}, "name": {name}}.Encode()
}

// chatMsg is any server → client message of the chat protocol.
type chatMsg struct {
	Type     string    `json:"type"`
	Room     string    `json:"room"`
	From     string    `json:"from"`
	Text     string    `json:"text"`
	TS       int64     `json:"ts"`
	Seq      uint64    `json:"seq"`
	Name     string    `json:"name"`
	Error    string    `json:"error"`
	Messages []chatMsg `json:"messages"`
	Names    []string  `json:"names"`
}

// chatClient is one WebSocket client of the chat. Not safe for concurrent
// use.
type chatClient struct {
	name string
	nc   net.Conn
	br   *bufio.Reader
}

// chatDial connects as name to room and reads the history; it returns the
// client and the history's messages.
func (h *chatHarness) chatDial(t testing.TB, room, name string) (*chatClient, []chatMsg) {
	t.Helper()
	c := h.chatConnect(t, room, name, nil)
	m := c.next(t)
	require.Equal(t, "history", m.Type, "first message")
	return c, m.Messages
}

// chatConnect performs the handshake (with control, if not nil, applied to
// the socket before it connects).
func (h *chatHarness) chatConnect(t testing.TB, room, name string, control func(fd uintptr)) *chatClient {
	t.Helper()
	d := ws.Dialer{Timeout: chatTimeout}
	if control != nil {
		nd := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			return rc.Control(control)
		}}
		d.NetDial = nd.DialContext
	}
	ctx, cancel := context.WithTimeout(context.Background(), chatTimeout)
	defer cancel()
	nc, br, _, err := d.Dial(ctx, h.wsURL(room, name))
	require.NoError(t, err, "dial %s as %s", room, name)
	if br == nil {
		br = bufio.NewReader(nc)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return &chatClient{name: name, nc: nc, br: br}
}

// sendJSON writes v as one text message.
func (c *chatClient) sendJSON(t testing.TB, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	c.sendRaw(t, ws.OpText, b)
}

// say sends a chat message.
func (c *chatClient) say(t testing.TB, text string) {
	t.Helper()
	c.sendJSON(t, map[string]string{"type": "message", "text": text})
}

func (c *chatClient) sendRaw(t testing.TB, op ws.OpCode, b []byte) {
	t.Helper()
	require.NoError(t, c.nc.SetWriteDeadline(time.Now().Add(chatTimeout)))
	require.NoError(t, wsutil.WriteClientMessage(c.nc, op, b))
}

// chatCloseError is returned by readData for a close frame.
type chatCloseError struct {
	code   ws.StatusCode
	reason string
}

func (e *chatCloseError) Error() string { return "close " + e.reason }

// readData reads the next data message, answering nothing and skipping
// pings; a close frame is returned as a *chatCloseError.
func (c *chatClient) readData(timeout time.Duration, buf []byte) ([]byte, error) {
	if err := c.nc.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	for {
		h, err := ws.ReadHeader(c.br)
		if err != nil {
			return nil, err
		}
		if h.Length > 1<<20 {
			return nil, errors.New("frame too large")
		}
		if int64(cap(buf)) < h.Length {
			buf = make([]byte, h.Length)
		}
		buf = buf[:h.Length]
		if _, err := io.ReadFull(c.br, buf); err != nil {
			return nil, err
		}
		switch h.OpCode {
		case ws.OpText, ws.OpBinary:
			if !h.Fin {
				return nil, errors.New("fragmented server message")
			}
			return buf, nil
		case ws.OpClose:
			code, reason := ws.ParseCloseFrameData(buf)
			return nil, &chatCloseError{code: code, reason: reason}
		}
	}
}

// next reads and decodes the next message.
func (c *chatClient) next(t testing.TB) chatMsg {
	t.Helper()
	b, err := c.readData(chatTimeout, nil)
	require.NoError(t, err, "%s: read", c.name)
	var m chatMsg
	require.NoError(t, json.Unmarshal(b, &m), "%s: decode %q", c.name, b)
	return m
}

// nextOf reads until a message of type typ and returns it; other types are
// skipped.
func (c *chatClient) nextOf(t testing.TB, typ string) chatMsg {
	t.Helper()
	for {
		if m := c.next(t); m.Type == typ {
			return m
		}
	}
}

// expectClose reads until a close frame and checks its code.
func (c *chatClient) expectClose(t testing.TB, code ws.StatusCode) string {
	t.Helper()
	var buf []byte
	for {
		_, err := c.readData(chatTimeout, buf)
		var ce *chatCloseError
		if errors.As(err, &ce) {
			require.Equal(t, code, ce.code, "close code (reason %q)", ce.reason)
			return ce.reason
		}
		require.NoError(t, err, "%s: waiting for close %d", c.name, code)
	}
}

// close sends a normal close frame and waits for the server to end the TCP
// connection.
func (c *chatClient) close(t testing.TB) {
	t.Helper()
	c.sendRaw(t, ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye"))
	c.expectClose(t, ws.StatusNormalClosure)
	_ = c.nc.Close()
}

// handshake sends a WebSocket handshake for rawQuery with net/http and
// returns the status and body (for a refusal's reason).
func (h *chatHarness) handshake(t testing.TB, rawQuery string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+h.addr+"/ws?"+rawQuery, nil)
	require.NoError(t, err)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	client := &http.Client{Timeout: chatTimeout}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	client.CloseIdleConnections()
	return resp.StatusCode, string(body)
}

// chatClock is a clock the test moves by hand.
type chatClock struct{ ns atomic.Int64 }

func newChatClock() *chatClock {
	c := &chatClock{}
	c.ns.Store(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	return c
}

func (c *chatClock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *chatClock) Add(d time.Duration) { c.ns.Add(int64(d)) }
