package tests

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/sdk/bufpool"
	"github.com/strandws/strand/wsframework"
)

// ioTimeout bounds every blocking step of a test (a read, a write, a wait for
// a plugin event): reaching it means the step will never happen.
const ioTimeout = 10 * time.Second

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// harness is a Server serving on 127.0.0.1:0.
type harness struct {
	srv    *wsframework.Server
	addr   string
	served chan error // Serve's result
	// clientTLS, when set, is the clients' TLS configuration: the server
	// serves TLS (startTLSServer) and every dial helper speaks it.
	clientTLS *tls.Config
}

// startServer starts a Server with cfg (logs discarded unless cfg.Logger is
// set) and routes, and shuts it down in the test's cleanup.
func startServer(t *testing.T, cfg wsframework.Config, routes map[string]*sdk.Entry) *harness {
	t.Helper()
	return startServerHandlers(t, cfg, routes, nil)
}

// startServerHandlers is startServer with plain http.Handlers mounted too.
func startServerHandlers(t *testing.T, cfg wsframework.Config, routes map[string]*sdk.Entry, handlers map[string]http.Handler) *harness {
	t.Helper()
	return startServerWith(t, cfg, routes, nil, handlers, nil)
}

// startServerOpts is startServerHandlers with RouteOptions for the routes
// listed in opts.
func startServerOpts(t *testing.T, cfg wsframework.Config, routes map[string]*sdk.Entry, opts map[string]wsframework.RouteOptions, handlers map[string]http.Handler) *harness {
	t.Helper()
	return startServerWith(t, cfg, routes, opts, handlers, nil)
}

// startServerWith is startServerOpts, serving TLS with cert's files
// (ServeTLS) when cert is not nil.
func startServerWith(t *testing.T, cfg wsframework.Config, routes map[string]*sdk.Entry, opts map[string]wsframework.RouteOptions, handlers map[string]http.Handler, cert *testCert) *harness {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	if cfg.Reader == wsframework.ReaderAuto {
		cfg.Reader = readerMode
	}
	if cfg.Buffers == nil {
		// Poisoned: a use after release or a double release shows up.
		cfg.Buffers = bufpool.New(bufpool.Config{Poison: true})
	}
	srv, err := wsframework.New(cfg)
	require.NoError(t, err)
	for pattern, e := range routes {
		require.NoError(t, srv.RouteWith(pattern, opts[pattern], nil, e))
	}
	for pattern, hd := range handlers {
		require.NoError(t, srv.Handle(pattern, hd))
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	h := &harness{srv: srv, addr: l.Addr().String(), served: make(chan error, 1)}
	if cert != nil {
		h.clientTLS = cert.clientConfig()
		go func() { h.served <- srv.ServeTLS(l, cert.certFile, cert.keyFile) }()
	} else {
		go func() { h.served <- srv.Serve(l) }()
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		defer cancel()
		if assert.NoError(t, srv.Shutdown(ctx), "Shutdown in cleanup") {
			// Every connection was read by the reader under test; TLS
			// ones by reader goroutines in every mode.
			if ss := srv.Stats(); cfg.Reader == wsframework.ReaderPoll {
				assert.Equal(t, ss.Accepted-ss.TLS, ss.Polled, "plain TCP connections not read by the poll reader")
			} else {
				assert.Zero(t, ss.Polled, "connections read by the poll reader")
			}
			if ss := srv.Stats(); cert == nil {
				assert.Zero(t, ss.TLS, "TLS connections on a plain listener")
			} else {
				assert.Equal(t, ss.Accepted, ss.TLS, "plain connections on a TLS listener")
			}
			// Every buffer taken from the pool was given back.
			st := cfg.Buffers.Stats()
			assert.Equal(t, st.Gets-st.Oversize, st.Releases, "pooled buffers not released after Shutdown: %+v", st)
		}
		h.waitServed(t)
	})
	return h
}

// waitServed waits for Serve to return and checks it returned ErrServerClosed.
func (h *harness) waitServed(t *testing.T) {
	t.Helper()
	select {
	case err := <-h.served:
		assert.ErrorIs(t, err, wsframework.ErrServerClosed)
		h.served <- err // keep it for a later call
	case <-time.After(ioTimeout):
		t.Errorf("Serve did not return after Shutdown")
	}
}

func (h *harness) url(path string) string {
	if h.clientTLS != nil {
		return "wss://" + h.addr + path
	}
	return "ws://" + h.addr + path
}

// dialRaw opens a connection to the harness from 127.0.0.1 (or localIP):
// TCP, or TLS with its handshake done when the harness serves TLS. It is
// closed in the test's cleanup.
func (h *harness) dialRaw(t *testing.T, localIP string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: ioTimeout}
	if localIP != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(localIP)}
	}
	nc, err := d.Dial("tcp", h.addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = nc.Close() })
	if h.clientTLS == nil {
		return nc
	}
	tc := tls.Client(nc, h.clientTLS)
	require.NoError(t, tc.SetDeadline(time.Now().Add(ioTimeout)))
	require.NoError(t, tc.Handshake())
	require.NoError(t, tc.SetDeadline(time.Time{}))
	return tc
}

// dialOpts are the optional handshake settings of connect.
type dialOpts struct {
	header    http.Header // extra request headers (Origin, ...)
	protocols []string    // offered subprotocols
	localIP   string      // source address of the TCP connection
}

// connect performs a WebSocket handshake. It returns the client, or the
// handshake error (a ws.StatusError for a non-101 answer).
func (h *harness) connect(t *testing.T, path string, o dialOpts) (*wsClient, error) {
	t.Helper()
	d := ws.Dialer{Timeout: ioTimeout, Protocols: o.protocols, TLSConfig: h.clientTLS}
	if o.header != nil {
		d.Header = ws.HandshakeHeaderHTTP(o.header)
	}
	if o.localIP != "" {
		nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(o.localIP)}}
		d.NetDial = nd.DialContext
	}
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	nc, br, hs, err := d.Dial(ctx, h.url(path))
	if err != nil {
		if nc != nil {
			_ = nc.Close()
		}
		return nil, err
	}
	if br == nil {
		br = bufio.NewReader(nc)
	}
	c := &wsClient{nc: nc, br: br, hs: hs}
	t.Cleanup(func() { _ = nc.Close() })
	return c, nil
}

// dial is connect with default options that must succeed.
func (h *harness) dial(t *testing.T, path string) *wsClient {
	t.Helper()
	c, err := h.connect(t, path, dialOpts{})
	require.NoError(t, err, "dial %s", path)
	return c
}

// rawHandshake sends a handshake request written by hand with the extra
// header lines and returns the server's response; on 101 the client is
// ready to use. The response headers are exactly what the server sent.
func (h *harness) rawHandshake(t *testing.T, path string, extra http.Header) (*wsClient, *http.Response) {
	t.Helper()
	nc := h.dialRaw(t, "")
	require.NoError(t, nc.SetDeadline(time.Now().Add(ioTimeout)))
	req := "GET " + path + " HTTP/1.1\r\nHost: " + h.addr + "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	for k, vs := range extra {
		for _, v := range vs {
			req += k + ": " + v + "\r\n"
		}
	}
	_, err := io.WriteString(nc, req+"\r\n")
	require.NoError(t, err)
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.NoError(t, nc.SetDeadline(time.Time{}))
	if resp.StatusCode != http.StatusSwitchingProtocols {
		_ = resp.Body.Close()
	}
	return &wsClient{nc: nc, br: br}, resp
}

// handshakeStatus returns the HTTP status of a handshake: 101 when it
// succeeded (the connection is then closed at once), the server's status
// otherwise.
func (h *harness) handshakeStatus(t *testing.T, path string, o dialOpts) int {
	t.Helper()
	c, err := h.connect(t, path, o)
	if err == nil {
		_ = c.nc.Close()
		return http.StatusSwitchingProtocols
	}
	var se ws.StatusError
	require.ErrorAs(t, err, &se, "handshake to %s", path)
	return int(se)
}

// wsClient is a client connection that writes frames exactly as told
// (including malformed ones) and reads server frames one by one. Not safe
// for concurrent use, except that close may be called from anywhere.
type wsClient struct {
	nc net.Conn
	br *bufio.Reader
	hs ws.Handshake
}

// frame is one frame read from the server.
type frame struct {
	fin     bool
	rsv     byte
	masked  bool
	op      ws.OpCode
	payload []byte
}

func (f frame) String() string {
	return fmt.Sprintf("frame{op=%#x fin=%v rsv=%d masked=%v len=%d}", f.op, f.fin, f.rsv, f.masked, len(f.payload))
}

// writeHeaderAndPayload writes h (its Length as given, which may differ from
// len(payload)), then payload masked with h.Mask when h.Masked, in one write.
func (c *wsClient) writeHeaderAndPayload(h ws.Header, payload []byte) error {
	if h.Masked && h.Mask == [4]byte{} {
		h.Mask = ws.NewMask()
	}
	var hb [ws.MaxHeaderSize]byte
	buf := &byteBuffer{b: make([]byte, 0, ws.MaxHeaderSize+len(payload))}
	if err := ws.WriteHeaderBuffer(buf, h, hb[:]); err != nil {
		return err
	}
	start := len(buf.b)
	buf.b = append(buf.b, payload...)
	if h.Masked {
		ws.Cipher(buf.b[start:], h.Mask, 0)
	}
	return c.writeRaw(buf.b)
}

// writeFrame writes one masked frame with an accurate length.
func (c *wsClient) writeFrame(op ws.OpCode, fin bool, payload []byte) error {
	return c.writeHeaderAndPayload(ws.Header{Fin: fin, OpCode: op, Masked: true, Length: int64(len(payload))}, payload)
}

// send writes one masked, unfragmented message or control frame.
func (c *wsClient) send(op ws.OpCode, payload []byte) error {
	return c.writeFrame(op, true, payload)
}

// writeRaw writes b as is.
func (c *wsClient) writeRaw(b []byte) error {
	if err := c.nc.SetWriteDeadline(time.Now().Add(ioTimeout)); err != nil {
		return err
	}
	_, err := c.nc.Write(b)
	return err
}

// readFrame reads one frame within timeout.
func (c *wsClient) readFrame(timeout time.Duration) (frame, error) {
	if err := c.nc.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return frame{}, err
	}
	h, err := ws.ReadHeader(c.br)
	if err != nil {
		return frame{}, err
	}
	if h.Length > 1<<24 {
		return frame{}, fmt.Errorf("server frame of %d bytes", h.Length)
	}
	f := frame{fin: h.Fin, rsv: h.Rsv, masked: h.Masked, op: h.OpCode, payload: make([]byte, h.Length)}
	if _, err := io.ReadFull(c.br, f.payload); err != nil {
		return frame{}, err
	}
	if h.Masked {
		ws.Cipher(f.payload, h.Mask, 0)
	}
	return f, nil
}

// expectFrame reads one frame and checks it is a well-formed server frame
// with op and payload.
func (c *wsClient) expectFrame(t *testing.T, op ws.OpCode, payload []byte) {
	t.Helper()
	f, err := c.readFrame(ioTimeout)
	require.NoError(t, err, "read frame")
	require.True(t, f.fin && f.rsv == 0 && !f.masked, "malformed server frame %v", f)
	require.Equal(t, op, f.op, "opcode of %v", f)
	require.Equal(t, payload, f.payload, "payload of %v", f)
}

// echo sends a message and expects it back.
func (c *wsClient) echo(t *testing.T, op ws.OpCode, payload []byte) {
	t.Helper()
	require.NoError(t, c.send(op, payload))
	c.expectFrame(t, op, payload)
}

// expectClose reads the next frame, which must be a close frame with code,
// and returns its reason. Pings are skipped; a data frame fails the test.
// Control frames (the close, and the pings and pongs skipped) must have
// their RSV bits clear: they are never compressed, whatever the connection
// negotiated.
func (c *wsClient) expectClose(t *testing.T, code ws.StatusCode) string {
	t.Helper()
	for {
		f, err := c.readFrame(ioTimeout)
		require.NoError(t, err, "waiting for close %d", code)
		if f.op == ws.OpPing || f.op == ws.OpPong {
			require.Zero(t, f.rsv, "control frame with RSV bits set: %v", f)
			continue
		}
		require.Equal(t, ws.OpClose, f.op, "want a close frame %d, got %v", code, f)
		require.True(t, f.fin && f.rsv == 0 && !f.masked, "malformed close frame %v", f)
		require.GreaterOrEqual(t, len(f.payload), 2, "close frame without a code")
		got, reason := ws.ParseCloseFrameData(f.payload)
		require.Equal(t, code, got, "close code (reason %q)", reason)
		return reason
	}
}

// drainToClose reads until a close frame or the end of the connection,
// skipping data frames. It reports the close code and whether a close frame
// came; err is the read error that ended it otherwise.
func (c *wsClient) drainToClose(timeout time.Duration) (code ws.StatusCode, sawClose bool, data int, err error) {
	deadline := time.Now().Add(timeout)
	for {
		f, err := c.readFrame(time.Until(deadline))
		if err != nil {
			return 0, false, data, err
		}
		switch f.op {
		case ws.OpClose:
			code, _ = ws.ParseCloseFrameData(f.payload)
			return code, true, data, nil
		case ws.OpText, ws.OpBinary, ws.OpContinuation:
			data++
		}
	}
}

// expectEOF checks that the server closes the TCP connection cleanly (FIN)
// without sending anything more.
func (c *wsClient) expectEOF(t *testing.T) {
	t.Helper()
	require.NoError(t, c.nc.SetReadDeadline(time.Now().Add(ioTimeout)))
	var b [1]byte
	n, err := c.br.Read(b[:])
	require.Zero(t, n, "unexpected byte %#x after close", b[0])
	require.ErrorIs(t, err, io.EOF)
}

// closeHandshake sends a close frame with code and reason and expects the
// server's answer with the same code, then EOF.
func (c *wsClient) closeHandshake(t *testing.T, code ws.StatusCode, reason string) {
	t.Helper()
	require.NoError(t, c.send(ws.OpClose, ws.NewCloseFrameBody(code, reason)))
	c.expectClose(t, code)
	c.expectEOF(t)
}

// byteBuffer is an io.Writer appending to b.
type byteBuffer struct{ b []byte }

func (w *byteBuffer) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// maskedFrame returns the bytes of one masked, final frame.
func maskedFrame(op ws.OpCode, payload []byte) []byte {
	mask := ws.NewMask()
	var b byteBuffer
	if err := ws.WriteHeader(&b, ws.Header{Fin: true, OpCode: op, Masked: true, Mask: mask, Length: int64(len(payload))}); err != nil {
		panic(err)
	}
	start := len(b.b)
	b.b = append(b.b, payload...)
	ws.Cipher(b.b[start:], mask, 0)
	return b.b
}

// closeBody returns a close frame payload with an arbitrary (even invalid)
// code.
func closeBody(code uint16, reason string) []byte {
	p := binary.BigEndian.AppendUint16(nil, code)
	return append(p, reason...)
}

// probe is a plugin whose handlers report what they see, keyed by the "tag"
// query parameter of the upgrade request, and obey a few text commands:
//
//	!panic  panic in OnMessage
//	!close  Conn.Close(4000, "x")
//	!burst-close  send "1", "2", "3", Close(4000, "x"), then send once more
//	!close-long  Close(1005, 200 bytes of "é")
//	!block  report the connection ID on blocked, then wait for unblock
//	!id     answer with the connection ID (decimal text)
//
// Any other message is echoed.
type probe struct {
	plugin  *sdk.Plugin
	entry   *sdk.Entry
	blocked chan uint64 // IDs of handlers that started blocking

	release     chan struct{}
	releaseOnce sync.Once

	mu   sync.Mutex
	tags map[string]*tagEvents
}

// tagEvents are the events of the connections with one tag.
type tagEvents struct {
	opens  chan openEvent
	msgs   chan string // every message's data, in handler order
	closes chan closeEvent
}

type openEvent struct {
	conn        *sdk.Conn
	subprotocol string
	claims      any
}

type closeEvent struct {
	id     uint64
	code   sdk.CloseCode
	reason string
}

func newProbe(name string) *probe {
	p := &probe{
		plugin:  sdk.NewPlugin(name),
		blocked: make(chan uint64, 64),
		release: make(chan struct{}),
		tags:    make(map[string]*tagEvents),
	}
	p.entry = p.plugin.Entry("probe").WebSocket(p.handlers())
	return p
}

func (p *probe) handlers() sdk.WebSocketHandlers {
	return sdk.WebSocketHandlers{
		OnOpen: func(c *sdk.Conn) {
			p.events(tagOf(c)).opens <- openEvent{conn: c, subprotocol: c.Subprotocol(), claims: c.Value("claims")}
		},
		OnMessage: func(c *sdk.Conn, m sdk.Message) {
			p.events(tagOf(c)).msgs <- string(m.Data)
			if m.Type == sdk.Text {
				switch string(m.Data) {
				case "!panic":
					panic("probe: asked to panic")
				case "!close":
					_ = c.Close(4000, "x")
					return
				case "!burst-close":
					for _, m := range []string{"1", "2", "3"} {
						_ = c.SendText(m)
					}
					_ = c.Close(4000, "x")
					_ = c.SendText("after close")
					return
				case "!close-long":
					// An invalid code and a 200-byte reason of 2-byte runes.
					_ = c.Close(sdk.CloseNoStatus, strings.Repeat("\u00e9", 100))
					return
				case "!block":
					p.blocked <- c.ID()
					<-p.release
					return
				case "!id":
					_ = c.SendText(strconv.FormatUint(c.ID(), 10))
					return
				}
			}
			_ = c.Send(m.Type, m.Data)
		},
		OnClose: func(c *sdk.Conn, code sdk.CloseCode, reason string) {
			p.events(tagOf(c)).closes <- closeEvent{id: c.ID(), code: code, reason: reason}
		},
	}
}

func tagOf(c *sdk.Conn) string { return c.Request().Query().Get("tag") }

// tagPath returns the request path for a connection tagged tag on route.
func tagPath(route, tag string) string { return route + "?tag=" + url.QueryEscape(tag) }

func (p *probe) events(tag string) *tagEvents {
	p.mu.Lock()
	defer p.mu.Unlock()
	ev, ok := p.tags[tag]
	if !ok {
		ev = &tagEvents{opens: make(chan openEvent, 256), msgs: make(chan string, 4096), closes: make(chan closeEvent, 256)}
		p.tags[tag] = ev
	}
	return ev
}

// unblock releases every handler blocked on !block, now and later.
func (p *probe) unblock() { p.releaseOnce.Do(func() { close(p.release) }) }

// waitOpen waits for OnOpen of a connection tagged tag.
func (p *probe) waitOpen(t *testing.T, tag string) openEvent {
	t.Helper()
	select {
	case ev := <-p.events(tag).opens:
		return ev
	case <-time.After(ioTimeout):
		t.Fatalf("no OnOpen for tag %q", tag)
	}
	return openEvent{}
}

// waitClose waits for OnClose of a connection tagged tag and checks its code.
func (p *probe) waitClose(t *testing.T, tag string, code sdk.CloseCode) closeEvent {
	t.Helper()
	select {
	case ev := <-p.events(tag).closes:
		require.Equal(t, code, ev.code, "OnClose code for tag %q (reason %q)", tag, ev.reason)
		return ev
	case <-time.After(ioTimeout):
		t.Fatalf("no OnClose for tag %q", tag)
	}
	return closeEvent{}
}

// messages returns the data of the messages handled so far for tag, in
// order.
func (p *probe) messages(tag string) []string {
	ch := p.events(tag).msgs
	var out []string
	for {
		select {
		case m := <-ch:
			out = append(out, m)
		default:
			return out
		}
	}
}

// waitBlocked waits for a !block handler to start and returns its conn ID.
func (p *probe) waitBlocked(t *testing.T) uint64 {
	t.Helper()
	select {
	case id := <-p.blocked:
		return id
	case <-time.After(ioTimeout):
		t.Fatalf("no handler blocked")
	}
	return 0
}

// connID asks a probe connection for its ID.
func connID(t *testing.T, c *wsClient) uint64 {
	t.Helper()
	require.NoError(t, c.send(ws.OpText, []byte("!id")))
	f, err := c.readFrame(ioTimeout)
	require.NoError(t, err)
	require.Equal(t, ws.OpText, f.op)
	id, err := strconv.ParseUint(string(f.payload), 10, 64)
	require.NoError(t, err)
	return id
}

// isTimeout reports whether err is a read deadline expiring.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
