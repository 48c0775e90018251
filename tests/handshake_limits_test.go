package tests

import (
	"bufio"
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

// The accept path's limits on handshakes in progress (connections whose
// request head has not been read whole): MaxHandshakes evicts the oldest,
// MaxHandshakesPerIP refuses with 503, MaxHeaderBytes with 431.

// stalledHandshake is a connection that sent all of a handshake's head but
// its final empty line, and waits.
type stalledHandshake struct {
	nc net.Conn
	br *bufio.Reader
}

// stallHandshake opens a connection from 127.0.0.1 (or localIP) that sends
// a handshake head for tag without its final empty line.
func (h *harness) stallHandshake(t *testing.T, tag, localIP string) *stalledHandshake {
	t.Helper()
	nc := h.dialRaw(t, localIP)
	require.NoError(t, nc.SetDeadline(time.Now().Add(ioTimeout)))
	_, err := io.WriteString(nc, "GET "+tagPath("/ws", tag)+" HTTP/1.1\r\nHost: x\r\n"+upgradeHead)
	require.NoError(t, err)
	return &stalledHandshake{nc: nc, br: bufio.NewReader(nc)}
}

// finish sends the head's final empty line and expects the upgrade, and
// an echo on it.
func (s *stalledHandshake) finish(t *testing.T) {
	t.Helper()
	require.NoError(t, s.nc.SetDeadline(time.Now().Add(ioTimeout)))
	c := upgradeOn(t, s.nc, s.br, []byte("\r\n"))
	c.echo(t, ws.OpText, []byte("finished"))
}

// expectClosed checks that the server closed the connection without an
// answer (EOF, or a reset), well before any deadline.
func (s *stalledHandshake) expectClosed(t *testing.T) {
	t.Helper()
	require.NoError(t, s.nc.SetReadDeadline(time.Now().Add(ioTimeout)))
	b, err := s.br.ReadByte()
	require.Error(t, err, "got %q from an evicted handshake", b)
	require.False(t, isTimeout(err), "the evicted handshake is still open")
}

// waitHandshakes waits until the server counts n handshakes in progress.
func (h *harness) waitHandshakes(t *testing.T, n int64, within time.Duration) {
	t.Helper()
	require.Eventually(t, func() bool { return h.srv.Stats().Handshakes == n }, within, time.Millisecond,
		"handshakes in progress: want %d", n)
}

// TestMaxHandshakesBelowCap: below the cap, a new handshake proceeds and
// evicts nobody; every stalled one can still finish.
func TestMaxHandshakesBelowCap(t *testing.T) {
	p := newProbe("below-cap")
	h := startServer(t, wsframework.Config{MaxHandshakes: 4, HandshakeTimeout: time.Minute}, map[string]*sdk.Entry{"/ws": p.entry})
	var stalled []*stalledHandshake
	for i := range 3 {
		stalled = append(stalled, h.stallHandshake(t, "s", ""))
		h.waitHandshakes(t, int64(i+1), ioTimeout)
	}
	h.dial(t, "/ws?tag=new").echo(t, ws.OpText, []byte("new"))
	for _, s := range stalled {
		s.finish(t)
	}
	st := h.srv.Stats()
	require.Zero(t, st.HandshakesEvicted)
	require.EqualValues(t, 4, st.Accepted)
	require.Zero(t, st.Handshakes)
}

// TestMaxHandshakesEvictsOldest: at the cap, a new connection evicts the
// handshake in progress longest (closed unanswered) and upgrades; the
// others are untouched and can finish.
func TestMaxHandshakesEvictsOldest(t *testing.T) {
	p := newProbe("at-cap")
	h := startServer(t, wsframework.Config{MaxHandshakes: 3, HandshakeTimeout: time.Minute}, map[string]*sdk.Entry{"/ws": p.entry})
	var stalled []*stalledHandshake
	for i := range 3 {
		stalled = append(stalled, h.stallHandshake(t, "s", ""))
		h.waitHandshakes(t, int64(i+1), ioTimeout) // in this order
	}
	h.dial(t, "/ws?tag=new").echo(t, ws.OpText, []byte("new"))
	stalled[0].expectClosed(t)
	require.EqualValues(t, 1, h.srv.Stats().HandshakesEvicted)
	for _, s := range stalled[1:] {
		s.finish(t)
	}
	st := h.srv.Stats()
	require.EqualValues(t, 1, st.HandshakesEvicted)
	require.EqualValues(t, 3, st.Accepted)
	require.Zero(t, st.Handshakes)
}

// TestMaxHandshakesManyStalled: 5,000 connections that sent part of a
// request head and stall do not lock out a new client: with MaxHandshakes
// at 1,000 the oldest 4,000 are evicted as the later ones arrive, and a new
// client still upgrades and echoes. (5,000 client sockets and at most about
// 1,000 server ones stay well within an open-file limit of 20,000.)
func TestMaxHandshakesManyStalled(t *testing.T) {
	const stalledConns, maxHandshakes = 5000, 1000
	p := newProbe("many-stalled")
	h := startServer(t, wsframework.Config{MaxHandshakes: maxHandshakes, HandshakeTimeout: time.Minute},
		map[string]*sdk.Entry{"/ws": p.entry})
	conns := make([]net.Conn, 0, stalledConns)
	t.Cleanup(func() {
		for _, nc := range conns {
			_ = nc.Close()
		}
	})
	partial := []byte("GET /ws?tag=stalled HTTP/1.1\r\nHost: x\r\n" + upgradeHead)
	d := net.Dialer{Timeout: ioTimeout}
	for range stalledConns {
		nc, err := d.Dial("tcp", h.addr)
		require.NoError(t, err)
		conns = append(conns, nc)
		require.NoError(t, nc.SetWriteDeadline(time.Now().Add(ioTimeout)))
		_, err = nc.Write(partial)
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool {
		st := h.srv.Stats()
		return st.Handshakes == maxHandshakes && st.HandshakesEvicted == stalledConns-maxHandshakes
	}, 6*ioTimeout, 5*time.Millisecond, "stats: %+v", h.srv.Stats())

	h.dial(t, "/ws?tag=new").echo(t, ws.OpText, []byte("not locked out"))
	st := h.srv.Stats()
	require.EqualValues(t, stalledConns-maxHandshakes+1, st.HandshakesEvicted, "the new client evicts one more")

	// The oldest was closed; the newest is still in progress and finishes.
	(&stalledHandshake{nc: conns[0], br: bufio.NewReader(conns[0])}).expectClosed(t)
	last := conns[len(conns)-1]
	(&stalledHandshake{nc: last, br: bufio.NewReader(last)}).finish(t)
}

// headOfSize returns a request head for target of exactly n bytes, padded
// with one header line (n must leave room for it).
func headOfSize(t *testing.T, target, extra string, n int) string {
	t.Helper()
	start := "GET " + target + " HTTP/1.1\r\nHost: x\r\n" + extra + "X-Pad: "
	const end = "\r\n\r\n"
	pad := n - len(start) - len(end)
	require.Positive(t, pad, "no room for padding in %d bytes", n)
	head := start + strings.Repeat("p", pad) + end
	require.Len(t, head, n)
	return head
}

// TestMaxHeaderBytes: a request head of exactly MaxHeaderBytes is served;
// one byte more gets 431 and the connection ends. Both for a cap within
// the accept path's pooled reader and for the default, beyond it, and for
// a handshake as for a plain request.
func TestMaxHeaderBytes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit int // Config.MaxHeaderBytes; 0 is the default
		bytes int
	}{
		{"small", 1000, 1000},
		{"default", 0, wsframework.DefaultMaxHeaderBytes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newProbe("header-bytes")
			h := startServerHandlers(t, wsframework.Config{MaxHeaderBytes: tc.limit}, map[string]*sdk.Entry{"/ws": p.entry},
				map[string]http.Handler{"/plain": okHandler})

			nc, br := h.rawConn(t)
			c := upgradeOn(t, nc, br, []byte(headOfSize(t, "/ws?tag=at", upgradeHead, tc.bytes)))
			c.echo(t, ws.OpText, []byte("at the cap"))

			nc, br = h.rawConn(t)
			_, err := io.WriteString(nc, headOfSize(t, "/plain", "", tc.bytes))
			require.NoError(t, err)
			resp, body := readResponse(t, br)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Equal(t, "ok /plain", body)

			for i, head := range []string{
				headOfSize(t, "/ws?tag=over", upgradeHead, tc.bytes+1),
				headOfSize(t, "/plain", "", tc.bytes+1),
			} {
				nc, br := h.rawConn(t)
				_, err := io.WriteString(nc, head)
				require.NoError(t, err)
				resp, _ := readResponse(t, br)
				require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode, "head %d", i)
				require.True(t, resp.Close, "the answer does not say the connection closes")
				_, err = br.ReadByte()
				require.Error(t, err, "the connection outlived the answer")
				require.False(t, isTimeout(err), "the connection outlived the answer")
			}
			st := h.srv.Stats()
			require.EqualValues(t, 2, st.RejectedHeaderBytes)
			require.EqualValues(t, 1, st.Accepted)
		})
	}
}

// TestMaxHandshakesPerIP: at the per-IP cap, a further connection from
// that IP gets 503 with Retry-After and is closed; another IP is not
// affected, and once one of the first IP's handshakes finishes it may
// handshake again.
func TestMaxHandshakesPerIP(t *testing.T) {
	p := newProbe("per-ip")
	h := startServer(t, wsframework.Config{MaxHandshakesPerIP: 2, HandshakeTimeout: time.Minute},
		map[string]*sdk.Entry{"/ws": p.entry})
	a := h.stallHandshake(t, "a", "")
	b := h.stallHandshake(t, "b", "")
	h.waitHandshakes(t, 2, ioTimeout)

	nc, br := h.rawConn(t)
	_, err := io.WriteString(nc, "GET /ws?tag=refused HTTP/1.1\r\nHost: x\r\n"+upgradeHead+"\r\n")
	require.NoError(t, err)
	resp, _ := readResponse(t, br)
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Equal(t, "1", resp.Header.Get("Retry-After"))
	require.True(t, resp.Close, "the answer does not say the connection closes")
	_, err = br.ReadByte()
	require.Error(t, err, "the connection outlived the answer")
	require.False(t, isTimeout(err), "the connection outlived the answer")
	require.EqualValues(t, 1, h.srv.Stats().RejectedHandshakeIP)

	// The gobwas client sees the same.
	require.Equal(t, http.StatusServiceUnavailable, h.handshakeStatus(t, "/ws?tag=refused", dialOpts{}))
	// Another IP is under its own cap.
	c, err := h.connect(t, "/ws?tag=other-ip", dialOpts{localIP: "127.0.0.2"})
	require.NoError(t, err)
	c.echo(t, ws.OpText, []byte("other ip"))

	a.finish(t)
	h.dial(t, "/ws?tag=again").echo(t, ws.OpText, []byte("room again"))
	b.finish(t)
	st := h.srv.Stats()
	require.EqualValues(t, 2, st.RejectedHandshakeIP)
	require.Zero(t, st.HandshakesEvicted)
	require.EqualValues(t, 4, st.Accepted)
}

// TestMaxHandshakesPerIPOff: with no per-IP cap (the default), many
// handshakes in progress at once from one IP all proceed.
func TestMaxHandshakesPerIPOff(t *testing.T) {
	const n = 100
	p := newProbe("per-ip-off")
	h := startServer(t, wsframework.Config{HandshakeTimeout: time.Minute}, map[string]*sdk.Entry{"/ws": p.entry})
	stalled := make([]*stalledHandshake, n)
	for i := range stalled {
		stalled[i] = h.stallHandshake(t, "s", "")
	}
	h.waitHandshakes(t, n, ioTimeout)
	for _, s := range stalled {
		s.finish(t)
	}
	st := h.srv.Stats()
	require.Zero(t, st.RejectedHandshakeIP)
	require.Zero(t, st.HandshakesEvicted)
	require.EqualValues(t, n, st.Accepted)
}
