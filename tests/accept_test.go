package tests

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/wsframework"
)

// Serve reads WebSocket handshakes itself and hands everything else to
// net/http (wsframework/accept.go). These tests speak raw HTTP/1.1 to both
// sides of that split.

const upgradeHead = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_, _ = io.WriteString(w, "ok "+r.URL.Path)
})

// rawConn dials the harness for hand-written HTTP.
func (h *harness) rawConn(t *testing.T) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc := h.dialRaw(t, "")
	require.NoError(t, nc.SetDeadline(time.Now().Add(ioTimeout)))
	return nc, bufio.NewReader(nc)
}

// upgradeOn writes raw (a handshake, maybe with more after it) on nc and
// expects 101.
func upgradeOn(t *testing.T, nc net.Conn, br *bufio.Reader, raw []byte) *wsClient {
	t.Helper()
	_, err := nc.Write(raw)
	require.NoError(t, err)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	return &wsClient{nc: nc, br: br}
}

func readResponse(t *testing.T, br *bufio.Reader) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	return resp, string(body)
}

// TestAcceptPlainHTTPThenUpgrade: plain requests keep their connection
// alive (net/http serves them), and a later request on it may upgrade.
func TestAcceptPlainHTTPThenUpgrade(t *testing.T) {
	p := newProbe("keepalive-upgrade")
	h := startServerHandlers(t, wsframework.Config{}, map[string]*sdk.Entry{"/ws": p.entry},
		map[string]http.Handler{"/plain": okHandler})
	nc, br := h.rawConn(t)
	for range 2 {
		_, err := io.WriteString(nc, "GET /plain HTTP/1.1\r\nHost: x\r\n\r\n")
		require.NoError(t, err)
		resp, body := readResponse(t, br)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "ok /plain", body)
		require.False(t, resp.Close, "a plain request closed its connection")
	}
	c := upgradeOn(t, nc, br, []byte("GET /ws?tag=later HTTP/1.1\r\nHost: x\r\n"+upgradeHead+"\r\n"))
	c.echo(t, ws.OpText, []byte("after keep-alive"))
	p.waitOpen(t, "later")
	// The harness checks at cleanup that the poll reader read it, in poll
	// mode: net/http's wrapper was taken off the socket.
}

// TestAcceptLargeHead: a handshake whose head does not fit the accept
// path's reader is served by net/http, and works all the same.
func TestAcceptLargeHead(t *testing.T) {
	p := newProbe("largehead")
	h := startServer(t, wsframework.Config{}, map[string]*sdk.Entry{"/ws": p.entry})
	c, resp := h.rawHandshake(t, "/ws?tag=big", http.Header{"Cookie": {"k=" + strings.Repeat("v", 6000)}})
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	c.echo(t, ws.OpBinary, []byte("big head"))
	require.Len(t, p.waitOpen(t, "big").conn.Request().Header.Get("Cookie"), 6002)
}

// TestAcceptFrameWithHandshake: a frame sent in the same write as the
// handshake is not lost between the accept path and the reader.
func TestAcceptFrameWithHandshake(t *testing.T) {
	p := newProbe("eager")
	h := startServer(t, wsframework.Config{}, map[string]*sdk.Entry{"/ws": p.entry})
	nc, br := h.rawConn(t)
	req := "GET /ws?tag=eager HTTP/1.1\r\nHost: x\r\n" + upgradeHead + "\r\n"
	c := upgradeOn(t, nc, br, append([]byte(req), maskedFrame(ws.OpText, []byte("early"))...))
	c.expectFrame(t, ws.OpText, []byte("early"))
}

// TestAcceptRefusals: a handshake refused on the accept path gets a whole
// HTTP answer, then the connection ends.
func TestAcceptRefusals(t *testing.T) {
	p := newProbe("refused")
	stream := newProbe("stream")
	stream.entry.RequestFilter(func(rc *sdk.RequestContext) {
		_ = rc.StreamHeader(http.StatusTeapot)
		_ = rc.StreamWrite([]byte("short "))
		_ = rc.StreamWrite([]byte("and stout"))
		_ = rc.StreamEnd()
	})
	h := startServer(t, wsframework.Config{}, map[string]*sdk.Entry{"/ws": p.entry, "/stream": stream.entry})
	for _, tc := range []struct {
		name, req string
		status    int
		body      string
		byGobwas  bool // answered by gobwas/ws after the hijack, in its own words
	}{
		{"origin", "GET /ws HTTP/1.1\r\nHost: x\r\nOrigin: http://elsewhere\r\n" + upgradeHead + "\r\n", http.StatusForbidden, "origin not allowed\n", false},
		{"malformed", "GET /ws HTTP/1.1\r\nHost: x\r\n" + upgradeHead + "no colon here\r\n\r\n", http.StatusBadRequest, "malformed request\n", false},
		{"bad_key", "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n", http.StatusBadRequest, "", true},
		{"streamed", "GET /stream HTTP/1.1\r\nHost: x\r\n" + upgradeHead + "\r\n", http.StatusTeapot, "short and stout", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, br := h.rawConn(t)
			_, err := io.WriteString(nc, tc.req)
			require.NoError(t, err)
			resp, body := readResponse(t, br)
			require.Equal(t, tc.status, resp.StatusCode)
			if !tc.byGobwas {
				require.True(t, resp.Close, "the answer does not say the connection closes")
			}
			if tc.body != "" {
				require.Equal(t, tc.body, body)
			}
			_, err = br.ReadByte()
			require.ErrorIs(t, err, io.EOF, "the connection outlived the answer")
		})
	}
	require.Zero(t, h.srv.Stats().Accepted)
}

// TestAcceptShutdownDropsPartialHeads: Shutdown does not wait for clients
// that are still sending their request head.
func TestAcceptShutdownDropsPartialHeads(t *testing.T) {
	p := newProbe("partial")
	h := startServer(t, wsframework.Config{HandshakeTimeout: time.Minute}, map[string]*sdk.Entry{"/ws": p.entry})
	nc, br := h.rawConn(t)
	_, err := io.WriteString(nc, "GET /ws HTTP/1.1\r\nHost: x\r\n") // and no more
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	require.Eventually(t, func() bool {
		// Once the head read has begun, Shutdown must end it.
		return h.srv.Shutdown(ctx) == nil
	}, ioTimeout, 10*time.Millisecond)
	// Closed, with or without its bytes read (EOF or a reset), well before
	// HandshakeTimeout.
	_, err = br.ReadByte()
	require.Error(t, err)
	require.False(t, isTimeout(err), "the connection is still open")
}
