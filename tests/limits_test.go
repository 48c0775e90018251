package tests

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/wsframework"
)

// limits is a plugin whose handlers report, on results, the error of what
// a text command asked them to do:
//
//	send N      SendBinary of N bytes of 'b'
//	bcast N     join "r", then Broadcast N bytes of 'r' to it
//	badtype     Send with message type 9
//	join N      Join "room-0" ... "room-(N-1)", stopping at the first error
//	close N     Close(N, "own")
//	panic       panic (nothing is reported)
//
// Any other message is echoed (its error is not reported).
type limits struct {
	entry   *sdk.Entry
	results chan error
	closes  chan closeEvent
}

func newLimits() *limits {
	l := &limits{results: make(chan error, 64), closes: make(chan closeEvent, 16)}
	l.entry = sdk.NewPlugin("limits").Entry("ws").WebSocket(sdk.WebSocketHandlers{
		OnText: func(c *sdk.Conn, b []byte) {
			cmd, arg, _ := strings.Cut(string(b), " ")
			n, _ := strconv.Atoi(arg)
			switch cmd {
			case "send":
				l.results <- c.SendBinary(bytes.Repeat([]byte("b"), n))
			case "bcast":
				if err := c.Join("r"); err != nil {
					l.results <- err
					return
				}
				l.results <- c.Broadcast("r", sdk.Binary, bytes.Repeat([]byte("r"), n), sdk.BroadcastOptions{})
			case "badtype":
				l.results <- c.Send(sdk.MessageType(9), []byte("x"))
			case "join":
				for i := range n {
					if err := c.Join(fmt.Sprint("room-", i)); err != nil {
						l.results <- fmt.Errorf("join room-%d: %w", i, err)
						return
					}
				}
				l.results <- nil
			case "close":
				l.results <- c.Close(sdk.CloseCode(n), "own")
			case "panic":
				panic("limits: asked to panic")
			default:
				_ = c.SendText(string(b))
			}
		},
		OnClose: func(c *sdk.Conn, code sdk.CloseCode, reason string) {
			l.closes <- closeEvent{id: c.ID(), code: code, reason: reason}
		},
	})
	return l
}

// result waits for the next command's error.
func (l *limits) result(t *testing.T) error {
	t.Helper()
	select {
	case err := <-l.results:
		return err
	case <-time.After(ioTimeout):
		t.Fatal("the plugin reported no result")
	}
	return nil
}

// waitClose waits for OnClose and checks its code.
func (l *limits) waitClose(t *testing.T, code sdk.CloseCode) closeEvent {
	t.Helper()
	select {
	case ev := <-l.closes:
		require.Equal(t, code, ev.code, "OnClose code (reason %q)", ev.reason)
		return ev
	case <-time.After(ioTimeout):
		t.Fatal("no OnClose")
	}
	return closeEvent{}
}

// TestSendTooBigKeepsConnection: a plugin's message larger than
// WriteQueueBytes on its own (Send or Broadcast) is refused with
// sdk.ErrTooBig and the connection stays open and usable; a message of an
// invalid type is refused with sdk.ErrMessageType, also without a close.
func TestSendTooBigKeepsConnection(t *testing.T) {
	const bound = 64 << 10
	l := newLimits()
	h := startServer(t, wsframework.Config{WriteQueueBytes: bound}, map[string]*sdk.Entry{"/ws": l.entry})
	c := h.dial(t, "/ws")

	require.NoError(t, c.send(ws.OpText, fmt.Appendf(nil, "send %d", bound+1)))
	require.ErrorIs(t, l.result(t), sdk.ErrTooBig)
	c.echo(t, ws.OpText, []byte("still open"))

	require.NoError(t, c.send(ws.OpText, fmt.Appendf(nil, "send %d", bound/2)))
	require.NoError(t, l.result(t))
	c.expectFrame(t, ws.OpBinary, bytes.Repeat([]byte("b"), bound/2))

	require.NoError(t, c.send(ws.OpText, fmt.Appendf(nil, "bcast %d", 4*bound)))
	require.ErrorIs(t, l.result(t), sdk.ErrTooBig)
	require.NoError(t, c.send(ws.OpText, []byte("bcast 100")))
	require.NoError(t, l.result(t))
	c.expectFrame(t, ws.OpBinary, bytes.Repeat([]byte("r"), 100))

	require.NoError(t, c.send(ws.OpText, []byte("badtype")))
	require.ErrorIs(t, l.result(t), sdk.ErrMessageType)
	c.echo(t, ws.OpText, []byte("open after all that"))

	st := h.srv.Stats()
	require.Equal(t, uint64(2), st.SendsTooBig)
	require.Empty(t, st.Closes, "nothing was closed")
	c.closeHandshake(t, ws.StatusNormalClosure, "")
	l.waitClose(t, sdk.CloseNormal)
}

// TestCloseReasonPluginVersusPanic: a plugin's own Close(1011) is counted
// as a local close, and only a handler panic as a panic; both send 1011.
func TestCloseReasonPluginVersusPanic(t *testing.T) {
	l := newLimits()
	h := startServer(t, wsframework.Config{}, map[string]*sdk.Entry{"/ws": l.entry})

	own := h.dial(t, "/ws")
	require.NoError(t, own.send(ws.OpText, []byte("close 1011")))
	require.NoError(t, l.result(t))
	require.Equal(t, "own", own.expectClose(t, ws.StatusInternalServerError))
	require.NoError(t, own.send(ws.OpClose, ws.NewCloseFrameBody(ws.StatusInternalServerError, "")))
	own.expectEOF(t)
	l.waitClose(t, sdk.CloseInternalError)
	require.Equal(t, map[string]uint64{"local": 1}, h.srv.Stats().Closes)

	p := h.dial(t, "/ws")
	require.NoError(t, p.send(ws.OpText, []byte("panic")))
	require.Equal(t, "internal error", p.expectClose(t, ws.StatusInternalServerError))
	require.NoError(t, p.send(ws.OpClose, ws.NewCloseFrameBody(ws.StatusInternalServerError, "")))
	p.expectEOF(t)
	l.waitClose(t, sdk.CloseInternalError)
	require.Equal(t, map[string]uint64{"local": 1, "panic": 1}, h.srv.Stats().Closes)
}

// TestMaxRoomsPerConnEndToEnd: with the default Config, a connection joins
// sdk.DefaultMaxRoomsPerConn rooms; re-joining them is not refused, one
// more is refused with sdk.ErrTooManyRooms, and the connection stays open
// and in its rooms.
func TestMaxRoomsPerConnEndToEnd(t *testing.T) {
	l := newLimits()
	h := startServer(t, wsframework.Config{}, map[string]*sdk.Entry{"/ws": l.entry})
	c := h.dial(t, "/ws")
	require.NoError(t, c.send(ws.OpText, fmt.Appendf(nil, "join %d", sdk.DefaultMaxRoomsPerConn)))
	require.NoError(t, l.result(t))
	require.NoError(t, c.send(ws.OpText, fmt.Appendf(nil, "join %d", sdk.DefaultMaxRoomsPerConn)))
	require.NoError(t, l.result(t), "re-joining counts once")
	require.NoError(t, c.send(ws.OpText, fmt.Appendf(nil, "join %d", sdk.DefaultMaxRoomsPerConn+1)))
	err := l.result(t)
	require.ErrorIs(t, err, sdk.ErrTooManyRooms)
	require.ErrorContains(t, err, fmt.Sprintf("room-%d", sdk.DefaultMaxRoomsPerConn))
	c.echo(t, ws.OpText, []byte("still open"))
	require.Len(t, h.srv.Rooms(), sdk.DefaultMaxRoomsPerConn)
	require.Equal(t, uint64(1), h.srv.RoomStats().TooManyRooms)
	c.closeHandshake(t, ws.StatusNormalClosure, "")
	l.waitClose(t, sdk.CloseNormal)
	require.Empty(t, h.srv.Rooms())
}
