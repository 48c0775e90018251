package tests

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/wsframework"
)

func TestOriginCheck(t *testing.T) {
	p := newProbe("origin")
	h := startServer(t, wsframework.Config{
		AllowedOrigins: []string{"https://*.example.com", "*.trusted.org"},
	}, map[string]*sdk.Entry{"/ws": p.entry})
	rejected := 0
	for _, tc := range []struct {
		origin string // "" means no Origin header
		want   int
	}{
		{"", http.StatusSwitchingProtocols},
		{"http://" + h.addr, http.StatusSwitchingProtocols},
		{"https://" + h.addr, http.StatusSwitchingProtocols}, // same host:port, any scheme
		{"https://app.example.com", http.StatusSwitchingProtocols},
		{"HTTPS://App.Example.COM", http.StatusSwitchingProtocols},
		{"http://x.trusted.org", http.StatusSwitchingProtocols},
		{"https://evil.com", http.StatusForbidden},
		{"http://app.example.com", http.StatusForbidden}, // scheme is part of that pattern
		{"https://example.com.evil.com", http.StatusForbidden},
		{"http://127.0.0.1:1", http.StatusForbidden}, // same IP, other port
		{"null", http.StatusForbidden},
	} {
		t.Run(tc.origin, func(t *testing.T) {
			o := dialOpts{}
			if tc.origin != "" {
				o.header = http.Header{"Origin": {tc.origin}}
			}
			require.Equal(t, tc.want, h.handshakeStatus(t, "/ws", o))
			if tc.want == http.StatusForbidden {
				rejected++
			}
		})
	}
	require.Equal(t, uint64(rejected), h.srv.Stats().RejectedOrigin)
}

func TestConnectionCaps(t *testing.T) {
	t.Run("MaxConns", func(t *testing.T) {
		p := newProbe("maxconns")
		h := startServer(t, wsframework.Config{MaxConns: 2}, map[string]*sdk.Entry{"/ws": p.entry})
		a := h.dial(t, "/ws")
		b := h.dial(t, "/ws")
		require.Equal(t, http.StatusServiceUnavailable, h.handshakeStatus(t, "/ws", dialOpts{}))
		require.Equal(t, http.StatusServiceUnavailable, h.handshakeStatus(t, "/ws", dialOpts{localIP: "127.0.0.2"}))
		a.echo(t, ws.OpText, []byte("a"))
		b.echo(t, ws.OpText, []byte("b"))
		st := h.srv.Stats()
		require.Equal(t, uint64(2), st.RejectedCap)
		require.Equal(t, int64(2), st.Open)
	})
	t.Run("MaxConnsPerIP", func(t *testing.T) {
		p := newProbe("perip")
		h := startServer(t, wsframework.Config{MaxConnsPerIP: 1}, map[string]*sdk.Entry{"/ws": p.entry})
		a := h.dial(t, "/ws")
		require.Equal(t, http.StatusTooManyRequests, h.handshakeStatus(t, "/ws", dialOpts{}))
		// Another client address is counted apart.
		b, err := h.connect(t, "/ws", dialOpts{localIP: "127.0.0.2"})
		require.NoError(t, err)
		require.Equal(t, http.StatusTooManyRequests, h.handshakeStatus(t, "/ws", dialOpts{localIP: "127.0.0.2"}))
		a.echo(t, ws.OpText, []byte("a"))
		b.echo(t, ws.OpText, []byte("b"))
		require.Equal(t, uint64(2), h.srv.Stats().RejectedIP)
	})
}

func TestSubprotocols(t *testing.T) {
	p := newProbe("subprotocols")
	h := startServer(t, wsframework.Config{Subprotocols: []string{"v3", "v2", "v1"}},
		map[string]*sdk.Entry{"/ws": p.entry})
	for _, tc := range []struct {
		name    string
		offered []string // one Sec-WebSocket-Protocol line each
		want    string
	}{
		{"first_offered_supported", []string{"v0, v1, v2"}, "v1"},
		{"client_order_wins", []string{"v2,v3"}, "v2"},
		{"several_header_lines", []string{"x", "v3, v1"}, "v3"},
		{"none_matched", []string{"x, y"}, ""},
		{"none_offered", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hdr http.Header
			if tc.offered != nil {
				hdr = http.Header{"Sec-WebSocket-Protocol": tc.offered}
			}
			c, resp := h.rawHandshake(t, tagPath("/ws", t.Name()), hdr)
			require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
			if tc.want == "" {
				require.NotContains(t, resp.Header, "Sec-Websocket-Protocol", "sent when nothing matched")
			} else {
				require.Equal(t, []string{tc.want}, resp.Header.Values("Sec-WebSocket-Protocol"))
			}
			require.Equal(t, tc.want, p.waitOpen(t, t.Name()).subprotocol, "Conn.Subprotocol")
			c.echo(t, ws.OpText, []byte("hi"))
		})
	}
	// gobwas/ws's client sees the same selection.
	c, err := h.connect(t, tagPath("/ws", "gobwas"), dialOpts{protocols: []string{"v9", "v2", "v1"}})
	require.NoError(t, err)
	require.Equal(t, "v2", c.hs.Protocol)
	require.Equal(t, "v2", p.waitOpen(t, "gobwas").subprotocol)
}

// TestRequestFilter: values a request filter sets are visible to the
// WebSocket handlers, and a filter that rejects keeps them from running.
func TestRequestFilter(t *testing.T) {
	type claims struct{ User string }
	p := newProbe("auth")
	p.entry.RequestFilter(func(rc *sdk.RequestContext) {
		if rc.Request().Query().Get("token") != "good" {
			rc.Reject(http.StatusUnauthorized, "bad token")
			return
		}
		rc.Set("claims", claims{User: "alice"})
		rc.Upgrade(nil)
	})
	h := startServer(t, wsframework.Config{}, map[string]*sdk.Entry{"/ws": p.entry})

	require.Equal(t, http.StatusUnauthorized, h.handshakeStatus(t, "/ws?tag=rejected&token=bad", dialOpts{}))
	require.Equal(t, http.StatusUnauthorized, h.handshakeStatus(t, "/ws?tag=rejected", dialOpts{}))
	c := h.dial(t, "/ws?tag=ok&token=good")
	require.Equal(t, claims{User: "alice"}, p.waitOpen(t, "ok").claims)
	c.closeHandshake(t, ws.StatusNormalClosure, "")
	p.waitClose(t, "ok", sdk.CloseNormal)

	// The rejected handshakes never reached the WebSocket handlers.
	require.Empty(t, p.events("rejected").opens)
	require.Empty(t, p.events("rejected").closes)
	st := h.srv.Stats()
	require.Equal(t, uint64(1), st.Accepted)
}

// TestConnRequestSnapshot: the request a connection keeps has the upgrade
// request's own headers, without the handshake's.
func TestConnRequestSnapshot(t *testing.T) {
	p := newProbe("snapshot")
	h := startServer(t, wsframework.Config{}, map[string]*sdk.Entry{"/ws": p.entry})

	c, resp := h.rawHandshake(t, "/ws?tag=rich&x=1", http.Header{
		"X-Trace":                {"abc"},
		"X-Multi":                {"1", "2"},
		"Sec-WebSocket-Protocol": {"chat"},
	})
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	req := p.waitOpen(t, "rich").conn.Request()
	require.Equal(t, "/ws", req.Path)
	require.Equal(t, "tag=rich&x=1", req.RawQuery)
	require.Equal(t, "127.0.0.1", req.ClientIP)
	require.Equal(t, h.addr, req.Host)
	require.Equal(t, http.Header{
		"X-Trace":                {"abc"},
		"X-Multi":                {"1", "2"},
		"Sec-Websocket-Protocol": {"chat"}, // what was offered; Subprotocol says what was chosen
	}, req.Header)
	c.echo(t, ws.OpText, []byte("hi"))

	// Only handshake headers: nothing is kept.
	_, resp = h.rawHandshake(t, "/ws?tag=bare", nil)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	require.Nil(t, p.waitOpen(t, "bare").conn.Request().Header)
}

// TestKeepalive uses short durations: this is a test of timeouts, so it waits
// for them, but it never sleeps to synchronise.
func TestKeepalive(t *testing.T) {
	const (
		pingEvery = 50 * time.Millisecond
		idle      = 400 * time.Millisecond
	)
	p := newProbe("keepalive")
	h := startServer(t, wsframework.Config{PingInterval: pingEvery, IdleTimeout: idle},
		map[string]*sdk.Entry{"/ws": p.entry})

	t.Run("answering_client_stays", func(t *testing.T) {
		t.Parallel()
		c := h.dial(t, tagPath("/ws", "alive"))
		start := time.Now()
		pings := 0
		for time.Since(start) < 2*idle {
			f, err := c.readFrame(ioTimeout)
			require.NoError(t, err)
			require.Equal(t, ws.OpPing, f.op, "got %v", f)
			pings++
			require.NoError(t, c.send(ws.OpPong, f.payload))
		}
		require.GreaterOrEqual(t, pings, 3)
		require.NoError(t, c.send(ws.OpText, []byte("still here")))
		for {
			f, err := c.readFrame(ioTimeout)
			require.NoError(t, err)
			if f.op == ws.OpPing {
				continue
			}
			require.Equal(t, ws.OpText, f.op, "got %v", f)
			require.Equal(t, "still here", string(f.payload))
			break
		}
	})

	t.Run("silent_client_closed", func(t *testing.T) {
		t.Parallel()
		start := time.Now() // before the server arms its idle deadline
		c := h.dial(t, tagPath("/ws", "silent"))
		f, err := c.readFrame(ioTimeout)
		require.NoError(t, err)
		require.Equal(t, ws.OpPing, f.op, "got %v", f)
		require.Empty(t, f.payload)
		c.expectClose(t, ws.StatusGoingAway) // skips the pings before it
		elapsed := time.Since(start)
		require.GreaterOrEqual(t, elapsed, idle-idle/8, "closed before IdleTimeout")
		c.expectEOF(t)
		p.waitClose(t, "silent", sdk.CloseGoingAway)
		require.Equal(t, uint64(1), h.srv.Stats().Closes["idle"])
	})
}

// TestReadTimeout: a client that stalls in the middle of a frame is closed
// with 1008 once ReadTimeout passes, although it is not idle by IdleTimeout.
func TestReadTimeout(t *testing.T) {
	const readTimeout = 150 * time.Millisecond
	p := newProbe("readtimeout")
	h := startServer(t, wsframework.Config{ReadTimeout: readTimeout, PingInterval: -1, IdleTimeout: time.Minute},
		map[string]*sdk.Entry{"/ws": p.entry})
	c := h.dial(t, tagPath("/ws", "stall"))
	c.echo(t, ws.OpText, []byte("hi"))
	frame := maskedFrame(ws.OpBinary, make([]byte, 100))
	start := time.Now()
	require.NoError(t, c.writeRaw(frame[:50]))
	c.expectClose(t, ws.StatusPolicyViolation)
	require.GreaterOrEqual(t, time.Since(start), readTimeout-readTimeout/8, "closed before ReadTimeout")
	c.expectEOF(t)
	p.waitClose(t, "stall", sdk.ClosePolicyViolation)
	require.Equal(t, uint64(1), h.srv.Stats().Closes["read_timeout"])
	require.Equal(t, []string{"hi"}, p.messages("stall"))
}

// TestPlainRequestOnWebSocketRoute: a request that is not a WebSocket
// handshake never reaches WebSocket handlers: an entry without a request
// filter lets it through (here to no terminal: 404), and a filter that asks
// to upgrade it gets 426.
func TestPlainRequestOnWebSocketRoute(t *testing.T) {
	p := newProbe("plain")
	f := newProbe("filtered")
	f.entry.RequestFilter(func(rc *sdk.RequestContext) { rc.Upgrade(nil) })
	h := startServer(t, wsframework.Config{}, map[string]*sdk.Entry{"/ws": p.entry, "/filtered": f.entry})
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: ioTimeout}
	for _, tc := range []struct {
		path    string
		status  int
		upgrade string
	}{
		{"/ws?tag=plain", http.StatusNotFound, ""},
		{"/filtered?tag=plain", http.StatusUpgradeRequired, "websocket"},
	} {
		resp, err := client.Get("http://" + h.addr + tc.path)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, tc.status, resp.StatusCode, tc.path)
		require.Equal(t, tc.upgrade, resp.Header.Get("Upgrade"), tc.path)
	}
	require.Empty(t, p.events("plain").opens)
	require.Empty(t, f.events("plain").opens)
	require.Zero(t, h.srv.Stats().Accepted)
}

// TestCloseTimeout: after the server sends its close frame, a client that
// never answers is disconnected once CloseTimeout passes, and OnClose sees
// the server's code.
func TestCloseTimeout(t *testing.T) {
	const closeTimeout = 150 * time.Millisecond
	p := newProbe("closetimeout")
	h := startServer(t, wsframework.Config{CloseTimeout: closeTimeout}, map[string]*sdk.Entry{"/ws": p.entry})
	c := h.dial(t, tagPath("/ws", "mute"))
	start := time.Now() // before the server sends its close
	require.NoError(t, c.send(ws.OpText, []byte("!close")))
	c.expectClose(t, 4000)
	c.expectEOF(t)
	require.GreaterOrEqual(t, time.Since(start), closeTimeout-closeTimeout/8, "disconnected without waiting for the close reply")
	require.Equal(t, "x", p.waitClose(t, "mute", 4000).reason)
	require.Equal(t, uint64(1), h.srv.Stats().Closes["local"], "closes: %v", h.srv.Stats().Closes)
}

// TestHandshakeTimeout: a TCP client that never finishes its upgrade
// request is disconnected after HandshakeTimeout.
func TestHandshakeTimeout(t *testing.T) {
	const timeout = 150 * time.Millisecond
	p := newProbe("handshake")
	h := startServer(t, wsframework.Config{HandshakeTimeout: timeout}, map[string]*sdk.Entry{"/ws": p.entry})
	start := time.Now() // before the server starts its timer
	nc, err := net.DialTimeout("tcp", h.addr, ioTimeout)
	require.NoError(t, err)
	defer nc.Close()
	_, err = io.WriteString(nc, "GET /ws HTTP/1.1\r\nHost: x\r\n") // and never the end
	require.NoError(t, err)
	require.NoError(t, nc.SetReadDeadline(time.Now().Add(ioTimeout)))
	_, err = io.Copy(io.Discard, nc) // whatever is answered, then EOF
	if err != nil {
		require.False(t, isTimeout(err), "still connected after %v", ioTimeout)
	}
	require.GreaterOrEqual(t, time.Since(start), timeout-timeout/8)
	require.Zero(t, h.srv.Stats().Accepted)
}
