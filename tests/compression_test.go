package tests

import (
	"bytes"
	"compress/flate"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/wsframework"
)

// permessage-deflate (RFC 7692), end to end, in both reader modes. The
// client side compresses and inflates with gobwas/ws's wsflate (without
// context takeover) or compress/flate directly (with it).

const (
	// chromiumOffer is what browsers offer.
	chromiumOffer = "permessage-deflate; client_max_window_bits"
	// noTakeoverAnswer is the server's answer without context takeover.
	noTakeoverAnswer = "permessage-deflate;server_no_context_takeover;client_no_context_takeover"
)

var rsv1 = ws.Rsv(true, false, false)

// compressible returns n bytes of JSON-like text that compresses well.
func compressible(n int) []byte {
	var b []byte
	for i := 0; len(b) < n; i++ {
		b = append(b, `{"type":"message","room":"lobby","text":"hello number `...)
		b = append(b, byte('0'+i%10))
		b = append(b, `"} `...)
	}
	return b[:n]
}

// dialDeflate upgrades on path offering extensions (one header line
// each; none: no header) and returns the client and the answer's
// Sec-WebSocket-Extensions.
func (h *harness) dialDeflate(t *testing.T, path string, offers ...string) (*wsClient, string) {
	t.Helper()
	var extra http.Header
	if len(offers) > 0 {
		extra = http.Header{"Sec-WebSocket-Extensions": offers}
	}
	c, resp := h.rawHandshake(t, path, extra)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode, "offer %q", offers)
	return c, resp.Header.Get("Sec-WebSocket-Extensions")
}

// sendCompressed writes payload (compressed already) as one message with
// RSV1 set.
func (c *wsClient) sendCompressed(op ws.OpCode, payload []byte) error {
	return c.writeHeaderAndPayload(ws.Header{Fin: true, Rsv: rsv1, OpCode: op, Masked: true, Length: int64(len(payload))}, payload)
}

// deflateMsg compresses a message as a client without context takeover
// does (wsflate: a sync flush, its 0x00 0x00 0xff 0xff removed).
func deflateMsg(t *testing.T, msg []byte) []byte {
	t.Helper()
	z, err := wsflate.DefaultHelper.Compress(msg)
	require.NoError(t, err)
	return z
}

// readMessage reads the next data frame (skipping pings and pongs) and
// returns it inflated with wsflate when RSV1 is set.
func (c *wsClient) readMessage(t *testing.T) (op ws.OpCode, msg []byte, compressed bool) {
	t.Helper()
	for {
		f, err := c.readFrame(ioTimeout)
		require.NoError(t, err)
		if f.op == ws.OpPing || f.op == ws.OpPong {
			continue
		}
		require.True(t, f.fin && !f.masked, "malformed server frame %v", f)
		require.Contains(t, []ws.OpCode{ws.OpText, ws.OpBinary}, f.op, "want a data frame, got %v", f)
		if f.rsv == 0 {
			return f.op, f.payload, false
		}
		require.Equal(t, rsv1, f.rsv, "frame %v", f)
		out, err := wsflate.DefaultHelper.Decompress(f.payload)
		require.NoError(t, err)
		return f.op, out, true
	}
}

// TestCompressionNegotiation: what the server answers to offers, on its
// own accept path; off server-wide and per route. A connection that did
// not negotiate the extension is closed with 1002 for RSV1; one that did
// gets a compressed echo.
func TestCompressionNegotiation(t *testing.T) {
	p := newProbe("negotiation")
	h := startServerOpts(t, wsframework.Config{}, map[string]*sdk.Entry{"/z": p.entry, "/off": p.entry},
		map[string]wsframework.RouteOptions{"/off": {NoCompression: true}}, nil)
	hOff := startServer(t, wsframework.Config{Compression: wsframework.CompressionConfig{Disabled: true}}, map[string]*sdk.Entry{"/z": p.entry})
	for _, tc := range []struct {
		name   string
		h      *harness
		path   string
		offers []string
		want   string // the answer's Sec-WebSocket-Extensions; "": declined
	}{
		{"not_offered", h, "/z", nil, ""},
		{"chromium", h, "/z", []string{chromiumOffer}, noTakeoverAnswer},
		{"both_no_takeover", h, "/z", []string{"permessage-deflate; server_no_context_takeover; client_no_context_takeover"}, noTakeoverAnswer},
		{"server_window_15", h, "/z", []string{"permessage-deflate; server_max_window_bits=15"}, noTakeoverAnswer + ";server_max_window_bits=15"},
		{"server_window_10", h, "/z", []string{"permessage-deflate; server_max_window_bits=10"}, ""},
		{"fallback", h, "/z", []string{"permessage-deflate; server_max_window_bits=10, permessage-deflate"}, noTakeoverAnswer},
		{"unknown_param", h, "/z", []string{"permessage-deflate; x_garbage=1"}, ""},
		{"bad_value", h, "/z", []string{"permessage-deflate; client_max_window_bits=99"}, ""},
		{"repeated_param", h, "/z", []string{"permessage-deflate; server_no_context_takeover; server_no_context_takeover"}, ""},
		{"other_extension", h, "/z", []string{"x-webkit-deflate-frame"}, ""},
		{"empty_header", h, "/z", []string{""}, ""},
		{"off_for_the_route", h, "/off", []string{chromiumOffer}, ""},
		{"off_for_the_server", hOff, "/z", []string{chromiumOffer}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ext := tc.h.dialDeflate(t, tagPath(tc.path, tc.name), tc.offers...)
			require.Equal(t, tc.want, ext)
			msg := compressible(2000)
			require.NoError(t, c.sendCompressed(ws.OpText, deflateMsg(t, msg)))
			if tc.want == "" {
				c.expectClose(t, ws.StatusProtocolError)
				return
			}
			op, got, compressed := c.readMessage(t)
			require.Equal(t, ws.OpText, op)
			require.Equal(t, msg, got)
			require.True(t, compressed, "the echo is compressed")
			c.closeHandshake(t, ws.StatusNormalClosure, "")
		})
	}
	// A Sec-WebSocket-Extensions header that breaks RFC 6455's grammar
	// is refused, compression on or off.
	for _, hh := range []*harness{h, hOff} {
		_, resp := hh.rawHandshake(t, "/z", http.Header{"Sec-WebSocket-Extensions": {"permessage-deflate;;"}})
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	}
	require.Equal(t, uint64(4), h.srv.Stats().Compressed)
	require.Zero(t, hOff.srv.Stats().Compressed)
}

// TestCompressionHijackPath: mounted as an http.Handler in another
// server, the Server upgrades through net/http's Hijack and negotiates
// the same way.
func TestCompressionHijackPath(t *testing.T) {
	p := newProbe("hijack")
	srv, err := wsframework.New(wsframework.Config{Logger: quietLogger(), Reader: readerMode})
	require.NoError(t, err)
	require.NoError(t, srv.Route("/z", nil, p.entry))
	require.NoError(t, srv.RouteWith("/off", wsframework.RouteOptions{NoCompression: true}, nil, p.entry))
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		defer cancel()
		assert.NoError(t, srv.Shutdown(ctx))
		hs.Close()
	})
	h := &harness{srv: srv, addr: hs.Listener.Addr().String()}

	c, ext := h.dialDeflate(t, "/z", chromiumOffer)
	require.Equal(t, noTakeoverAnswer, ext)
	msg := compressible(3000)
	require.NoError(t, c.sendCompressed(ws.OpBinary, deflateMsg(t, msg)))
	op, got, compressed := c.readMessage(t)
	require.Equal(t, ws.OpBinary, op)
	require.Equal(t, msg, got)
	require.True(t, compressed)
	c.closeHandshake(t, ws.StatusNormalClosure, "")

	c, ext = h.dialDeflate(t, "/off", chromiumOffer)
	require.Empty(t, ext)
	c.echo(t, ws.OpText, msg) // uncompressed, both ways
	c.closeHandshake(t, ws.StatusNormalClosure, "")

	_, resp := h.rawHandshake(t, "/z", http.Header{"Sec-WebSocket-Extensions": {"permessage-deflate; =1"}})
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
}

// TestCompressedEcho: a client that compresses gets its messages back
// compressed when they are over the threshold, fragmented or not, whether
// it sent them compressed or not; small ones come back as they are.
func TestCompressedEcho(t *testing.T) {
	p := newProbe("zecho")
	h := startServer(t, wsframework.Config{}, map[string]*sdk.Entry{"/z": p.entry})
	c, ext := h.dialDeflate(t, "/z", chromiumOffer)
	require.Equal(t, noTakeoverAnswer, ext)

	text := compressible(4000)
	require.NoError(t, c.sendCompressed(ws.OpText, deflateMsg(t, text)))
	op, got, compressed := c.readMessage(t)
	require.Equal(t, ws.OpText, op)
	require.Equal(t, text, got)
	require.True(t, compressed)

	// Fragmented, RSV1 on the first frame only, a ping in between.
	bin := compressible(70000)
	z := deflateMsg(t, bin)
	require.NoError(t, c.writeHeaderAndPayload(ws.Header{Rsv: rsv1, OpCode: ws.OpBinary, Masked: true, Length: 10}, z[:10]))
	require.NoError(t, c.send(ws.OpPing, []byte("p")))
	require.NoError(t, c.writeFrame(ws.OpContinuation, false, z[10:20]))
	require.NoError(t, c.writeFrame(ws.OpContinuation, true, z[20:]))
	c.expectFrame(t, ws.OpPong, []byte("p"))
	op, got, compressed = c.readMessage(t)
	require.Equal(t, ws.OpBinary, op)
	require.Equal(t, bin, got)
	require.True(t, compressed)

	// Small, compressed by the client: back as it is (under the threshold).
	require.NoError(t, c.sendCompressed(ws.OpText, deflateMsg(t, []byte("hi"))))
	c.expectFrame(t, ws.OpText, []byte("hi"))

	// Large and uncompressed from the client: compressed by the server.
	require.NoError(t, c.send(ws.OpText, text))
	op, got, compressed = c.readMessage(t)
	require.Equal(t, ws.OpText, op)
	require.Equal(t, text, got)
	require.True(t, compressed)

	c.closeHandshake(t, ws.StatusNormalClosure, "")
	st := h.srv.Stats()
	require.Equal(t, uint64(1), st.Compressed)
	require.Equal(t, uint64(3), st.MessagesInCompressed)
	require.Equal(t, uint64(3), st.MessagesOutCompressed)
	require.Equal(t, uint64(4), st.MessagesOut)
}

// TestCompressionThreshold: messages under the threshold go as they are,
// from it on compressed (RSV1 on the server's frames); a message that
// does not compress goes as it is.
func TestCompressionThreshold(t *testing.T) {
	p := newProbe("threshold")
	h := startServer(t, wsframework.Config{}, map[string]*sdk.Entry{"/z": p.entry})
	h32 := startServer(t, wsframework.Config{Compression: wsframework.CompressionConfig{Threshold: 32}}, map[string]*sdk.Entry{"/z": p.entry})
	random := make([]byte, 4096)
	_, _ = rand.NewChaCha8([32]byte{7}).Read(random)
	for _, tc := range []struct {
		name       string
		h          *harness
		msg        []byte
		compressed bool
	}{
		{"below_default", h, compressible(wsframework.DefaultCompressionThreshold - 1), false},
		{"at_default", h, compressible(wsframework.DefaultCompressionThreshold), true},
		{"incompressible", h, random, false},
		{"below_32", h32, bytes.Repeat([]byte("a"), 31), false},
		{"at_32", h32, bytes.Repeat([]byte("a"), 32), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := tc.h.dialDeflate(t, tagPath("/z", tc.name), chromiumOffer)
			require.NoError(t, c.send(ws.OpBinary, tc.msg))
			f, err := c.readFrame(ioTimeout)
			require.NoError(t, err)
			require.Equal(t, ws.OpBinary, f.op)
			if !tc.compressed {
				require.Zero(t, f.rsv, "sent uncompressed")
				require.Equal(t, tc.msg, f.payload)
				return
			}
			require.Equal(t, rsv1, f.rsv, "sent compressed")
			require.Less(t, len(f.payload), len(tc.msg))
			out, err := wsflate.DefaultHelper.Decompress(f.payload)
			require.NoError(t, err)
			require.Equal(t, tc.msg, out)
		})
	}
}

// TestCompressionViolations: what a client that breaks RFC 7692's rules
// sees, and how the close is counted. A decompression bomb is refused
// with 1009 once MaxMessageBytes came out of it.
func TestCompressionViolations(t *testing.T) {
	p := newProbe("violations")
	const maxMessage = 64 << 10
	h := startServer(t, wsframework.Config{MaxMessageBytes: maxMessage}, map[string]*sdk.Entry{"/z": p.entry})
	hello := deflateMsg(t, []byte("hello"))
	var bomb bytes.Buffer // 4 MiB of zeros, about 4 KiB compressed
	fw, err := flate.NewWriter(&bomb, flate.BestSpeed)
	require.NoError(t, err)
	_, _ = fw.Write(make([]byte, 4<<20))
	require.NoError(t, fw.Flush())
	bombData := bytes.TrimSuffix(bomb.Bytes(), []byte{0, 0, 0xff, 0xff})
	require.Less(t, len(bombData), maxMessage/4)
	for _, tc := range []struct {
		name   string
		offer  bool
		send   func(c *wsClient) error
		code   ws.StatusCode
		reason string // in Stats.Closes
	}{
		{"rsv1_not_negotiated", false, func(c *wsClient) error { return c.sendCompressed(ws.OpText, hello) }, ws.StatusProtocolError, "protocol"},
		{"rsv1_on_continuation", true, func(c *wsClient) error {
			if err := c.writeHeaderAndPayload(ws.Header{Rsv: rsv1, OpCode: ws.OpText, Masked: true, Length: 2}, hello[:2]); err != nil {
				return err
			}
			return c.writeHeaderAndPayload(ws.Header{Fin: true, Rsv: rsv1, OpCode: ws.OpContinuation, Masked: true, Length: int64(len(hello) - 2)}, hello[2:])
		}, ws.StatusProtocolError, "protocol"},
		{"rsv1_on_ping", true, func(c *wsClient) error {
			return c.writeHeaderAndPayload(ws.Header{Fin: true, Rsv: rsv1, OpCode: ws.OpPing, Masked: true, Length: 1}, []byte("p"))
		}, ws.StatusProtocolError, "protocol"},
		{"rsv1_on_close", true, func(c *wsClient) error {
			return c.writeHeaderAndPayload(ws.Header{Fin: true, Rsv: rsv1, OpCode: ws.OpClose, Masked: true, Length: 2}, []byte{0x03, 0xe8})
		}, ws.StatusProtocolError, "protocol"},
		{"rsv2", true, func(c *wsClient) error {
			return c.writeHeaderAndPayload(ws.Header{Fin: true, Rsv: ws.Rsv(false, true, false), OpCode: ws.OpText, Masked: true, Length: int64(len(hello))}, hello)
		}, ws.StatusProtocolError, "protocol"},
		{"bad_deflate_data", true, func(c *wsClient) error { return c.sendCompressed(ws.OpBinary, []byte{0xff, 0xfe, 0xfd, 0xfc}) }, ws.StatusInvalidFramePayloadData, "bad_deflate"},
		{"truncated_deflate_data", true, func(c *wsClient) error { return c.sendCompressed(ws.OpBinary, hello[:3]) }, ws.StatusInvalidFramePayloadData, "bad_deflate"},
		{"bad_utf8_inside", true, func(c *wsClient) error { return c.sendCompressed(ws.OpText, deflateMsg(t, []byte("caf\xc3("))) }, ws.StatusInvalidFramePayloadData, "bad_utf8"},
		{"bomb", true, func(c *wsClient) error { return c.sendCompressed(ws.OpBinary, bombData) }, ws.StatusMessageTooBig, "too_big"},
		{"compressed_frame_too_big", true, func(c *wsClient) error {
			return c.writeHeaderAndPayload(ws.Header{Fin: true, Rsv: rsv1, OpCode: ws.OpBinary, Masked: true, Length: maxMessage + 1}, nil)
		}, ws.StatusMessageTooBig, "too_big"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := h.srv.Stats().Closes[tc.reason]
			var offers []string
			if tc.offer {
				offers = []string{chromiumOffer}
			}
			c, _ := h.dialDeflate(t, tagPath("/z", tc.name), offers...)
			c.echo(t, ws.OpText, []byte("before"))
			require.NoError(t, tc.send(c))
			c.expectClose(t, tc.code)
			require.Eventually(t, func() bool { return h.srv.Stats().Closes[tc.reason] == before+1 }, ioTimeout, time.Millisecond,
				"closes %v", h.srv.Stats().Closes)
		})
	}
	// The server still serves.
	c, _ := h.dialDeflate(t, "/z", chromiumOffer)
	c.echo(t, ws.OpText, []byte("after"))
	c.closeHandshake(t, ws.StatusNormalClosure, "")
}

// takeoverCodec compresses and inflates a connection's messages with
// context takeover: one compressor runs through what it sends, and what it
// received compressed is the window of the next message.
type takeoverCodec struct {
	buf    bytes.Buffer
	fw     *flate.Writer
	window []byte
}

func (z *takeoverCodec) deflate(t *testing.T, msg []byte) []byte {
	t.Helper()
	if z.fw == nil {
		var err error
		z.fw, err = flate.NewWriter(&z.buf, flate.BestSpeed)
		require.NoError(t, err)
	}
	z.buf.Reset()
	_, err := z.fw.Write(msg)
	require.NoError(t, err)
	require.NoError(t, z.fw.Flush())
	return bytes.Clone(bytes.TrimSuffix(z.buf.Bytes(), []byte{0, 0, 0xff, 0xff}))
}

func inflateWith(payload, window []byte) ([]byte, error) {
	src := io.MultiReader(bytes.NewReader(payload), bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff}))
	return io.ReadAll(flate.NewReaderDict(src, window))
}

func (z *takeoverCodec) inflate(t *testing.T, payload []byte) []byte {
	t.Helper()
	out, err := inflateWith(payload, z.window)
	require.NoError(t, err)
	z.window = append(z.window, out...)
	z.window = z.window[max(0, len(z.window)-1<<15):]
	return out
}

// TestCompressionContextTakeover: with CompressionConfig.ContextTakeover,
// a client that offers plain permessage-deflate gets context takeover both
// ways: its second copy of a message refers back to the first and is
// inflated right, and so does the server's echo of it (which does not
// inflate without the window). A client that offers no context takeover
// gets none.
func TestCompressionContextTakeover(t *testing.T) {
	p := newProbe("takeover")
	h := startServer(t, wsframework.Config{Compression: wsframework.CompressionConfig{ContextTakeover: true}}, map[string]*sdk.Entry{"/z": p.entry})

	c, ext := h.dialDeflate(t, "/z", "permessage-deflate")
	require.Equal(t, "permessage-deflate", ext, "context takeover both ways")
	var client, server takeoverCodec
	// Letters at random: about 60% once compressed on its own, a few
	// bytes when it refers back to an earlier copy.
	msg := make([]byte, 3000)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range msg {
		msg[i] = 'a' + byte(rng.IntN(26))
	}
	var first, firstEcho int // compressed sizes of the first copy and of its echo
	for i := range 3 {
		z := client.deflate(t, msg)
		if i == 0 {
			first = len(z)
		} else {
			require.Less(t, len(z), first/4, "message %d refers back", i)
		}
		require.NoError(t, c.sendCompressed(ws.OpText, z))
		f, err := c.readFrame(ioTimeout)
		require.NoError(t, err)
		require.Equal(t, rsv1, f.rsv)
		if i == 0 {
			firstEcho = len(f.payload)
		} else {
			require.Less(t, len(f.payload), firstEcho/4, "echo %d refers back", i)
			_, err := inflateWith(f.payload, nil)
			require.Error(t, err, "echo %d does not inflate without the window", i)
		}
		require.Equal(t, msg, server.inflate(t, f.payload), "echo %d", i)
	}
	c.closeHandshake(t, ws.StatusNormalClosure, "")

	c, ext = h.dialDeflate(t, "/z", "permessage-deflate; server_no_context_takeover; client_no_context_takeover")
	require.Equal(t, noTakeoverAnswer, ext)
	for range 2 {
		require.NoError(t, c.sendCompressed(ws.OpText, deflateMsg(t, msg)))
		_, got, compressed := c.readMessage(t) // wsflate: no window
		require.True(t, compressed)
		require.Equal(t, msg, got)
	}
	c.closeHandshake(t, ws.StatusNormalClosure, "")

	c, ext = h.dialDeflate(t, "/z", "permessage-deflate; client_no_context_takeover")
	require.True(t, strings.HasSuffix(ext, "client_no_context_takeover") && !strings.Contains(ext, "server_no"), "answer %q", ext)
	c.closeHandshake(t, ws.StatusNormalClosure, "")
}

// TestSendUncompressed: a plugin's Conn.SendUncompressed goes out without
// compression on a connection that negotiated it, and Send, for the same
// message, compressed.
func TestSendUncompressed(t *testing.T) {
	p := sdk.NewPlugin("raw")
	e := p.Entry("raw").WebSocket(sdk.WebSocketHandlers{OnBinary: func(c *sdk.Conn, b []byte) {
		_ = c.SendUncompressed(sdk.Binary, b)
		_ = c.Send(sdk.Binary, b)
	}})
	h := startServer(t, wsframework.Config{}, map[string]*sdk.Entry{"/raw": e})
	c, _ := h.dialDeflate(t, "/raw", chromiumOffer)
	msg := compressible(4096)
	require.NoError(t, c.send(ws.OpBinary, msg))
	f, err := c.readFrame(ioTimeout)
	require.NoError(t, err)
	require.Zero(t, f.rsv, "SendUncompressed compressed its message")
	require.Equal(t, msg, f.payload)
	f, err = c.readFrame(ioTimeout)
	require.NoError(t, err)
	require.Equal(t, rsv1, f.rsv, "Send did not compress")
}

// TestCompressionMetrics: bytes before and after compression are counted
// both ways, once per message.
func TestCompressionMetrics(t *testing.T) {
	p := newProbe("zmetrics")
	reg := prometheus.NewRegistry()
	h := startServer(t, wsframework.Config{Metrics: reg}, map[string]*sdk.Entry{"/z": p.entry})
	c, _ := h.dialDeflate(t, tagPath("/z", t.Name()), chromiumOffer)
	msg := compressible(4096)
	require.NoError(t, c.sendCompressed(ws.OpBinary, deflateMsg(t, msg)))
	_, got, compressed := c.readMessage(t)
	require.True(t, compressed)
	require.Equal(t, msg, got)
	values := func(name string) map[string]float64 {
		mfs, err := reg.Gather()
		require.NoError(t, err)
		out := map[string]float64{}
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "direction" {
						out[l.GetValue()] = m.GetCounter().GetValue()
					}
				}
			}
		}
		return out
	}
	plain, wire := values("strand_compression_bytes_in_total"), values("strand_compression_bytes_out_total")
	for _, dir := range []string{"send", "receive"} {
		require.Equal(t, float64(len(msg)), plain[dir], "plain bytes, %s", dir)
		require.Greater(t, wire[dir], float64(0), "wire bytes, %s", dir)
		require.Less(t, wire[dir], plain[dir], "compressed smaller, %s", dir)
	}
}

// TestControlFramesUncompressed: on a connection that negotiated
// permessage-deflate, without and with context takeover, the server's
// pings (a short keepalive interval) and its close frame have RSV1 clear
// while its data messages around them are compressed: control frames are
// never compressed (RFC 7692, section 6.1). expectClose checks the close
// frame's bits.
func TestControlFramesUncompressed(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   wsframework.CompressionConfig
		offer string
	}{
		{"no_context_takeover", wsframework.CompressionConfig{}, chromiumOffer},
		{"context_takeover", wsframework.CompressionConfig{ContextTakeover: true}, "permessage-deflate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newProbe("zping-" + tc.name)
			cfg := wsframework.Config{PingInterval: 20 * time.Millisecond, IdleTimeout: time.Minute, Compression: tc.cfg}
			h := startServer(t, cfg, map[string]*sdk.Entry{"/z": p.entry})
			c, ext := h.dialDeflate(t, tagPath("/z", tc.name), tc.offer)
			require.True(t, strings.HasPrefix(ext, "permessage-deflate"), "answer %q", ext)
			msg := compressible(4096)
			const want = 3
			for range want {
				require.NoError(t, c.send(ws.OpText, msg)) // echoed compressed
			}
			pings, data := 0, 0
			for pings < want || data < want {
				f, err := c.readFrame(ioTimeout)
				require.NoError(t, err)
				switch f.op {
				case ws.OpPing:
					pings++
					require.Zero(t, f.rsv, "ping %d: %v", pings, f)
					require.NoError(t, c.send(ws.OpPong, f.payload))
				case ws.OpText:
					data++
					require.Equal(t, rsv1, f.rsv, "echo %d not compressed: %v", data, f)
				default:
					t.Fatalf("unexpected frame %v", f)
				}
			}
			c.closeHandshake(t, ws.StatusNormalClosure, "")
		})
	}
}
