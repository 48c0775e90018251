package wsframework

import (
	"bytes"
	"compress/flate"
	"errors"
	"net/http"
	"strings"
	"sync"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws/wsflate"

	"github.com/strandws/strand/sdk/bufpool"
)

// permessage-deflate (RFC 7692) on the host's side: negotiation at the
// upgrade, and compression of what is sent. Inflating what clients send is
// the frame parser's (internal/wsproto, inflate.go).
//
// Without context takeover (the default) nothing is kept per connection:
// a message is compressed by a flate writer taken from the Server's pool
// and given back at once, in the sender's goroutine, and the compressed
// frame is what is queued; a broadcast is compressed once and the
// compressed frame shared by every member that negotiated the extension
// (rooms.go). With context takeover, the connection's writer compresses
// its queued messages in order with a flate writer of its own, taken from
// the pool at its first compressed message and given back at teardown.

// rsv1 is the RSV1 bit of a frame's first byte: the message is compressed.
const rsv1 = 0x40

// pmdMode is what a connection negotiated of permessage-deflate.
type pmdMode uint8

const (
	pmdOff    pmdMode = iota // not negotiated
	pmdShared                // no server context takeover: pooled writers, shared broadcasts
	pmdOwn                   // server context takeover: the connection's own writer
)

// offer is one permessage-deflate offer of a client, parsed.
type offer struct {
	bad                     bool // declined: unknown, invalid or repeated parameter
	serverNoContextTakeover bool
	clientNoContextTakeover bool
	serverMaxWindowBits     int // 0: not offered
	clientMaxWindowBits     int // 0: not offered, 1: offered without a value
}

// param applies one parameter of the offer (RFC 7692 section 7.1).
func (o *offer) param(attr, val []byte) {
	if o.bad {
		return
	}
	flag := func(seen *bool) {
		if *seen || len(val) > 0 {
			o.bad = true
		}
		*seen = true
	}
	bits := func(b *int, optional bool) {
		if *b != 0 {
			o.bad = true
			return
		}
		if len(val) == 0 && optional {
			*b = 1
			return
		}
		if *b = windowBits(val); *b == 0 {
			o.bad = true
		}
	}
	switch string(attr) {
	case "server_no_context_takeover":
		flag(&o.serverNoContextTakeover)
	case "client_no_context_takeover":
		flag(&o.clientNoContextTakeover)
	case "server_max_window_bits":
		bits(&o.serverMaxWindowBits, false)
	case "client_max_window_bits":
		bits(&o.clientMaxWindowBits, true)
	default:
		o.bad = true
	}
}

// windowBits parses a window bits value: 8 to 15, in decimal without a
// leading zero (RFC 7692 section 7.1.2.1); 0 if it is not one.
func windowBits(v []byte) int {
	switch len(v) {
	case 1:
		if v[0] >= '8' && v[0] <= '9' {
			return int(v[0] - '0')
		}
	case 2:
		if v[0] == '1' && v[1] >= '0' && v[1] <= '5' {
			return 10 + int(v[1]-'0')
		}
	}
	return 0
}

// deflateParams is what was agreed with a client.
type deflateParams struct {
	on bool
	// serverTakeover: the server compresses with context takeover.
	serverTakeover bool
	// clientTakeover: the client may compress with context takeover.
	clientTakeover bool
	// serverMaxWindowBits: the client asked for server_max_window_bits=15.
	serverMaxWindowBits bool
}

func (p deflateParams) index() int {
	i := 0
	if p.serverTakeover {
		i |= 1
	}
	if p.clientTakeover {
		i |= 2
	}
	if p.serverMaxWindowBits {
		i |= 4
	}
	return i
}

// deflateAnswers are the extension answers, by deflateParams.index.
var deflateAnswers = func() (a [8]string) {
	for i := range a {
		p := deflateParams{serverTakeover: i&1 != 0, clientTakeover: i&2 != 0, serverMaxWindowBits: i&4 != 0}
		w := wsflate.Parameters{ServerNoContextTakeover: !p.serverTakeover, ClientNoContextTakeover: !p.clientTakeover}
		if p.serverMaxWindowBits {
			w.ServerMaxWindowBits = 15
		}
		var b bytes.Buffer
		if _, err := httphead.WriteOptions(&b, []httphead.Option{w.Option()}); err != nil {
			panic(err)
		}
		a[i] = b.String()
	}
	return a
}()

// errBadExtensions: a Sec-WebSocket-Extensions header breaks RFC 6455's
// grammar (section 9.1).
var errBadExtensions = errors.New("wsframework: malformed Sec-WebSocket-Extensions header")

// negotiateDeflate reads the client's Sec-WebSocket-Extensions header
// lines and picks its first acceptable permessage-deflate offer, if on
// (RFC 7692 section 5: an offer that cannot be accepted as it is is
// declined, and the next one considered). takeover is
// CompressionConfig.ContextTakeover. It returns errBadExtensions for a
// header that breaks the grammar (the handshake is then refused with
// 400); empty list elements are ignored (RFC 7230 section 7).
func negotiateDeflate(lines []string, on, takeover bool) (deflateParams, error) {
	var p deflateParams
	for _, line := range lines {
		if strings.Trim(line, " \t,") == "" {
			continue
		}
		cur, index := offer{}, -1
		isPMD := false
		pick := func() {
			if isPMD && on && !p.on && !cur.bad && (cur.serverMaxWindowBits == 0 || cur.serverMaxWindowBits == 15) {
				p = deflateParams{
					on:                  true,
					serverTakeover:      takeover && !cur.serverNoContextTakeover,
					clientTakeover:      takeover && !cur.clientNoContextTakeover,
					serverMaxWindowBits: cur.serverMaxWindowBits == 15,
				}
			}
		}
		ok := httphead.ScanOptions([]byte(line), func(i int, name, attr, val []byte) httphead.Control {
			if i != index {
				pick()
				cur, index = offer{}, i
				isPMD = string(name) == wsflate.ExtensionName
			}
			if attr != nil && isPMD {
				cur.param(attr, val)
			}
			return httphead.ControlContinue
		})
		if !ok {
			return deflateParams{}, errBadExtensions
		}
		pick()
	}
	return p, nil
}

// addDeflateAnswer adds the answer accepting p to the upgrade response's
// extra header lines h (made if nil).
func addDeflateAnswer(h http.Header, p deflateParams) http.Header {
	if h == nil {
		h = make(http.Header, 1)
	}
	h["Sec-Websocket-Extensions"] = []string{deflateAnswers[p.index()]}
	return h
}

// deflater compresses messages for a Server: flate writers pooled, at the
// configured level, writing into pooled buffers.
type deflater struct {
	level   int
	bufs    *bufpool.Pool
	writers sync.Pool // *flateWriter
}

// flateWriter is a flate writer and the buffer it writes into.
type flateWriter struct {
	fw  *flate.Writer
	out sink
}

// sink appends what a flate writer writes to a pooled buffer; with limit
// set, a write past limit bytes fails (the output would not be smaller than
// the input).
type sink struct {
	b     *bufpool.Buffer
	bufs  *bufpool.Pool
	limit int
}

var errNotSmaller = errors.New("wsframework: compressed message not smaller")

func (s *sink) Write(p []byte) (int, error) {
	n := len(s.b.B) + len(p)
	if s.limit > 0 && n > s.limit {
		return 0, errNotSmaller
	}
	if n > cap(s.b.B) {
		s.b = s.bufs.Grow(s.b, max(n, 2*cap(s.b.B)))
	}
	s.b.B = append(s.b.B, p...)
	return len(p), nil
}

func newDeflater(level int, bufs *bufpool.Pool) *deflater {
	return &deflater{level: level, bufs: bufs}
}

// take returns a flate writer, reset.
func (d *deflater) take() *flateWriter {
	if w, ok := d.writers.Get().(*flateWriter); ok {
		w.fw.Reset(&w.out)
		return w
	}
	w := &flateWriter{out: sink{bufs: d.bufs}}
	fw, err := flate.NewWriter(&w.out, d.level)
	if err != nil {
		panic(err) // the level was checked by Config.withDefaults
	}
	w.fw = fw
	return w
}

// give returns w to the pool.
func (d *deflater) give(w *flateWriter) {
	w.out.b = nil
	d.writers.Put(w)
}

// compress returns raw compressed as one permessage-deflate message
// without context takeover (RFC 7692 section 7.2.1: the output of a sync
// flush without its trailing 0x00 0x00 0xff 0xff), or nil when that would
// not be smaller than raw (the message then goes uncompressed).
func (d *deflater) compress(raw []byte) *bufpool.Buffer {
	w := d.take()
	w.out.limit = len(raw) + 3 // + the 4 bytes stripped: < len(raw)
	out := w.deflate(raw, max(len(raw)/2, 64))
	d.give(w)
	return out
}

// deflate compresses raw into a new pooled buffer (of size hint to begin
// with), continuing w's stream, and strips the sync flush's tail; nil if
// the sink refused the output.
func (w *flateWriter) deflate(raw []byte, hint int) *bufpool.Buffer {
	out := w.out.bufs.Get(hint)
	out.B = out.B[:0]
	w.out.b = out
	_, err := w.fw.Write(raw)
	if err == nil {
		err = w.fw.Flush()
	}
	out, w.out.b = w.out.b, nil
	if err != nil {
		out.Release()
		if errors.Is(err, errNotSmaller) {
			return nil
		}
		panic(err) // the sink fails with nothing else
	}
	b := out.B
	if len(b) < 4 || !bytes.Equal(b[len(b)-4:], []byte{0x00, 0x00, 0xff, 0xff}) {
		panic("wsframework: flate sync flush without its tail")
	}
	out.B = b[:len(b)-4]
	return out
}

// compresses reports whether a data message of n bytes sent to c is
// compressed (unless sent uncompressed on purpose).
func (c *conn) compresses(n int) bool {
	return c.pmd != pmdOff && n >= c.srv.cfg.Compression.Threshold && int64(n) <= c.srv.cfg.WriteQueueBytes
}

// setDeflate applies what was negotiated with the client, before the
// connection is served.
func (c *conn) setDeflate(p deflateParams) {
	if !p.on {
		return
	}
	c.pmd = pmdShared
	if p.serverTakeover {
		c.pmd = pmdOwn
	}
	c.parked.Deflate(p.clientTakeover) // the parser starts from parked (takeParser)
}

// deflateOwn compresses a queued message with the connection's own
// compressor (context takeover), in its writer: the messages that go
// through it must be compressed in the order they are written.
func (c *conn) deflateOwn(it *outItem) {
	w := c.zw
	c.zw = nil // a panic below drops it rather than pool it half-updated
	if w == nil {
		w = c.srv.deflater.take()
		w.out.limit = 0
	}
	out := w.deflate(it.buf.B, max(len(it.buf.B)/2, 64))
	c.zw = w
	c.srv.metrics.compressed(len(it.buf.B), len(out.B))
	it.buf.Release()
	it.buf, it.op, it.deflate = out, it.op|rsv1, false
}

// Compression reports whether the connection negotiated permessage-deflate.
func (c *conn) Compression() bool { return c.pmd != pmdOff }
