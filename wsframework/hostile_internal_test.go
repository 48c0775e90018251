package wsframework

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/internal/clock"
	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/wsframework/internal/wsproto"
)

const hostileTimeout = 10 * time.Second

// hookedEcho serves an echo plugin on /echo; prepare may set test hooks or
// the clock before the Server serves. It returns the Server and its URL.
func hookedEcho(t *testing.T, cfg Config, prepare func(s *Server)) (*Server, string) {
	t.Helper()
	p := sdk.NewPlugin("echo")
	e := p.Entry("echo").WebSocket(sdk.WebSocketHandlers{
		OnMessage: func(c *sdk.Conn, m sdk.Message) { _ = c.Send(m.Type, m.Data) },
	})
	return serveEntry(t, cfg, prepare, "/echo", e, "/echo")
}

// serveEntry serves e on pattern with a Server made from cfg (prepare may
// set test hooks or the clock before it serves; a nil Logger discards),
// shut down when the test ends, and returns it with the ws:// URL of path.
func serveEntry(t *testing.T, cfg Config, prepare func(s *Server), pattern string, e *sdk.Entry, path string) (*Server, string) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := New(cfg)
	require.NoError(t, err)
	prepare(s)
	require.NoError(t, s.Route(pattern, nil, e))
	hs := httptest.NewServer(s)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), hostileTimeout)
		defer cancel()
		require.NoError(t, s.Shutdown(ctx))
		hs.Close()
	})
	return s, "ws" + strings.TrimPrefix(hs.URL, "http") + path
}

type hostileClient struct {
	nc net.Conn
	br *bufio.Reader
}

func dialHostile(t *testing.T, url string) *hostileClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hostileTimeout)
	defer cancel()
	nc, br, _, err := ws.Dial(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = nc.Close() })
	if br == nil {
		br = bufio.NewReader(nc)
	}
	return &hostileClient{nc: nc, br: br}
}

func (c *hostileClient) echo(t *testing.T, msg string) {
	t.Helper()
	require.NoError(t, wsutil.WriteClientText(c.nc, []byte(msg)))
	require.NoError(t, c.nc.SetReadDeadline(time.Now().Add(hostileTimeout)))
	got, op, err := wsutil.ReadServerData(readWriter{c.br, c.nc})
	require.NoError(t, err)
	require.Equal(t, ws.OpText, op)
	require.Equal(t, msg, string(got))
}

type readWriter struct {
	r *bufio.Reader
	w net.Conn
}

func (rw readWriter) Read(b []byte) (int, error)  { return rw.r.Read(b) }
func (rw readWriter) Write(b []byte) (int, error) { return rw.w.Write(b) }

// closed reads until the server's close frame (its code) or the end of the
// connection (0).
func (c *hostileClient) closed(t *testing.T) ws.StatusCode {
	t.Helper()
	require.NoError(t, c.nc.SetReadDeadline(time.Now().Add(hostileTimeout)))
	for {
		h, err := ws.ReadHeader(c.br)
		if err != nil {
			require.False(t, isTimeout(err), "the server did not close the connection")
			return 0
		}
		p := make([]byte, h.Length)
		if _, err := c.br.Read(p); err != nil && h.Length > 0 {
			return 0
		}
		if h.OpCode == ws.OpClose {
			code, _ := ws.ParseCloseFrameData(p)
			return code
		}
	}
}

// TestPanicClosesOnlyItsConnection: a panic while reading (after the
// parser, before the message is handled) or while writing one connection
// closes that connection with 1011, is counted, and every other connection
// keeps echoing. Both reader modes.
func TestPanicClosesOnlyItsConnection(t *testing.T) {
	for _, mode := range []ReaderMode{ReaderGoroutine, ReaderPoll} {
		t.Run(mode.String(), func(t *testing.T) {
			s, url := hookedEcho(t, Config{Reader: mode}, func(s *Server) {
				s.hooks.event = func(_ *conn, ev *wsproto.Event) {
					if ev.Kind == wsproto.Message && string(ev.Msg.B) == "boom-read" {
						panic("test: boom while reading")
					}
				}
				s.hooks.write = func(_ *conn, v net.Buffers) {
					for _, b := range v {
						if bytes.Equal(b, []byte("boom-write")) {
							panic("test: boom while writing")
						}
					}
				}
			})
			a, b, bystander := dialHostile(t, url), dialHostile(t, url), dialHostile(t, url)
			bystander.echo(t, "before")

			require.NoError(t, wsutil.WriteClientText(a.nc, []byte("boom-read")))
			require.Equal(t, ws.StatusInternalServerError, a.closed(t))
			bystander.echo(t, "after the reader's panic")

			// The writer's panic closes the socket: no close frame.
			require.NoError(t, wsutil.WriteClientText(b.nc, []byte("boom-write")))
			require.Zero(t, b.closed(t))
			bystander.echo(t, "after the writer's panic")

			require.Eventually(t, func() bool {
				st := s.Stats()
				return st.Panics == 2 && st.Closes["internal"] == 2
			}, hostileTimeout, time.Millisecond, "stats %+v", s.Stats())
		})
	}
}

// TestPollDeadlinesFollowTheClock: the poll reader's deadlines read the
// Server's clock, not the wall clock: with a manual clock that does not
// move, an idle connection outlives its IdleTimeout in real time; moved
// past it, the connection closes as idle.
func TestPollDeadlinesFollowTheClock(t *testing.T) {
	clk := clock.NewManual(1)
	s, url := hookedEcho(t, Config{Reader: ReaderPoll, PingInterval: -1, IdleTimeout: 100 * time.Millisecond}, func(s *Server) {
		s.clock = clk
	})
	c := dialHostile(t, url)
	c.echo(t, "one")
	time.Sleep(500 * time.Millisecond) // 5 IdleTimeouts of real time
	c.echo(t, "still open")
	clk.Advance(time.Second)
	require.Equal(t, ws.StatusGoingAway, c.closed(t))
	// Counted by the teardown, which may finish after the client read the
	// close frame.
	require.Eventually(t, func() bool { return s.Stats().Closes["idle"] == 1 }, hostileTimeout, time.Millisecond,
		"closes: %v", s.Stats().Closes)
}

// TestMessageDeadlineFollowsTheClock: both readers time a fragmented
// message's assembly on the Server's clock. With a manual clock and
// timeouts of an hour or more, a message whose first fragment came two
// hours ago on that clock closes with 1008 when its next fragment arrives
// (or, in poll mode, when the reader's timer sees the moved clock first),
// though almost no real time passed; one that stays within its time is
// echoed. (The goroutine reader's deadlines become the socket's, in real
// time, so it shows when a fragment makes it set them again.)
func TestMessageDeadlineFollowsTheClock(t *testing.T) {
	for _, mode := range []ReaderMode{ReaderGoroutine, ReaderPoll} {
		t.Run(mode.String(), func(t *testing.T) {
			clk := clock.NewManual(1)
			cfg := Config{Reader: mode, PingInterval: -1, IdleTimeout: time.Hour,
				ReadTimeout: time.Hour, MessageTimeout: 90 * time.Minute}
			s, url := hookedEcho(t, cfg, func(s *Server) { s.clock = clk })
			fragment := func(c *hostileClient, op ws.OpCode, fin bool, p string) {
				t.Helper()
				require.NoError(t, ws.WriteFrame(c.nc, ws.MaskFrameInPlace(ws.NewFrame(op, fin, []byte(p)))))
			}
			// read returns the next data frame's payload, after a ping's
			// pong: the server has read everything sent before the ping.
			read := func(c *hostileClient) (ws.OpCode, string) {
				t.Helper()
				require.NoError(t, c.nc.SetReadDeadline(time.Now().Add(hostileTimeout)))
				h, err := ws.ReadHeader(c.br)
				require.NoError(t, err)
				p := make([]byte, h.Length)
				_, err = io.ReadFull(c.br, p)
				require.NoError(t, err)
				return h.OpCode, string(p)
			}
			synced := func(c *hostileClient) {
				t.Helper()
				fragment(c, ws.OpPing, true, "sync")
				op, p := read(c)
				require.Equal(t, ws.OpPong, op)
				require.Equal(t, "sync", p)
			}

			ok := dialHostile(t, url)
			fragment(ok, ws.OpText, false, "on ")
			synced(ok)
			clk.Advance(30 * time.Minute)
			fragment(ok, ws.OpContinuation, true, "time")
			op, p := read(ok)
			require.Equal(t, ws.OpText, op)
			require.Equal(t, "on time", p)

			late := dialHostile(t, url)
			fragment(late, ws.OpText, false, "too ")
			synced(late)
			clk.Advance(2 * time.Hour)
			// The poll reader's timer may see the moved clock first and
			// close before this fragment arrives (the same 1008): then
			// the write can meet a reset, and the close frame is still
			// there to read.
			_ = ws.WriteFrame(late.nc, ws.MaskFrameInPlace(ws.NewFrame(ws.OpContinuation, false, []byte("late"))))
			require.Equal(t, ws.StatusPolicyViolation, late.closed(t))
			require.Eventually(t, func() bool { return s.Stats().Closes["message_limit"] == 1 },
				hostileTimeout, time.Millisecond, "closes: %v", s.Stats().Closes)
		})
	}
}
