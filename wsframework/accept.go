package wsframework

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Serve's own accept path. net/http serves a WebSocket handshake well but
// expensively: the hijacked connection's 4 KiB bufio reader and writer are
// never returned to its pools, so every upgrade leaves ~8 KiB of garbage
// (plus a goroutine that grew its stack through the server's request loop)
// on top of the connection's own state. An acceptor reads each new
// connection's request head itself into a pooled reader and:
//
//   - a WebSocket handshake (GET with Upgrade: websocket) is parsed with
//     http.ReadRequest and served through the routes with a small
//     hijackable ResponseWriter (upgradeWriter); the pooled buffers go back
//     to their pools once the connection no longer reads through them;
//   - anything else (plain HTTP, a head larger than the reader) is
//     handed, with the bytes already read, to the http.Server behind a
//     listener the acceptor feeds (passListener), so net/http keeps serving
//     it with everything it does: keep-alive, chunked bodies, HTTP/1.0.
//
// A TLS connection (a *tls.Conn from the listener, as ServeTLS's are) goes
// the same way once the acceptor has run its TLS handshake: the head is
// read through it, a request served on the accept path carries its TLS
// state, and one handed to net/http is given it back (ConnContext and
// withTLSState: net/http only knows the state of a *tls.Conn it was handed
// directly). A connection whose ALPN chose another protocol than
// http/1.1 (h2, on a listener configured elsewhere) goes to net/http as it
// is, before any read.
//
// An answer other than 101 on the accept path (a refused handshake) is
// written with "Connection: close" and ends the connection.
//
// Until its head is read whole a connection is a handshake in progress
// (handshakes.go), its TLS handshake included, under three limits:
// MaxHandshakes (at the cap, a new connection evicts the oldest),
// MaxHandshakesPerIP (beyond it, 503 with Retry-After before anything is
// read; on TLS, closed unanswered, before any TLS work) and MaxHeaderBytes
// (a longer head gets 431), besides HandshakeTimeout, one deadline for the
// TLS handshake and the head together. A head too large for the pooled
// reader but within MaxHeaderBytes is read on into a buffer of its own
// before it goes to net/http, so the cap is exact on the first request.
// A connection closed by eviction or Shutdown before its head is read is
// closed at the TCP level (closeRaw): no TLS alert is written from the
// goroutine that closes it.

const (
	// acceptReaderSize is the pooled reader a request head must fit in to be
	// served on the accept path; a larger head goes to net/http.
	acceptReaderSize = 4 << 10
	// acceptWriterSize buffers the 101 response.
	acceptWriterSize = 512
	// busyRetryAfter is the Retry-After of a 503 for MaxHandshakesPerIP.
	busyRetryAfter = "1"
	// maxBufferedAnswer is how much of a refusal's body is buffered to send
	// it with a Content-Length; beyond it the answer is streamed and ends
	// with the connection.
	maxBufferedAnswer = 64 << 10
)

// acceptor serves one listener for Serve. Its goroutines (the http.Server's
// and one per handshake) are counted in wg; Add is called under mu while
// not closed, so Server.Shutdown, which closes the acceptor first, can wait
// for them. Its connections in their head read are in the Server's
// handshakeList, listed under mu too, so that close finds them all.
type acceptor struct {
	s    *Server
	l    net.Listener
	hs   *http.Server
	pass *passListener
	wg   *sync.WaitGroup

	mu     sync.Mutex // guards closed, wg.Add and listing in s.handshakes
	closed bool
}

func newAcceptor(s *Server, l net.Listener, wg *sync.WaitGroup) *acceptor {
	a := &acceptor{s: s, l: l, wg: wg, pass: newPassListener(l.Addr())}
	a.hs = &http.Server{
		Handler:           withTLSState(s),
		ConnContext:       tlsStateContext,
		ReadHeaderTimeout: s.cfg.HandshakeTimeout,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelWarn),
	}
	return a
}

// serve runs the accept loop until the listener fails or close is called;
// the caller has counted the http.Server's goroutine in wg.
func (a *acceptor) serve() error {
	hsDone := make(chan error, 1)
	go func() {
		defer a.wg.Done()
		hsDone <- a.hs.Serve(a.pass)
	}()
	var backoff time.Duration
	for {
		nc, err := a.l.Accept()
		if err != nil {
			if a.isClosed() {
				break
			}
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				// Out of descriptors and the like: retry, as net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				t := time.NewTimer(backoff)
				select {
				case <-t.C:
				case <-a.s.hardCtx.Done():
				}
				t.Stop()
				continue
			}
			// Connections already handed to net/http are served on.
			a.close()
			_ = a.pass.Close()
			<-hsDone
			return err
		}
		backoff = 0
		h, evicted, busy, ok := a.track(nc)
		if evicted != nil {
			// Its goroutine's read fails; it sees it was unlisted and
			// returns its reader to the pool.
			closeRaw(evicted.nc)
		}
		switch {
		case !ok:
			_ = nc.Close()
		case busy:
			go func() {
				defer a.wg.Done()
				a.refuseBusy(nc)
			}()
		default:
			go func() {
				defer a.wg.Done()
				a.handshake(h)
			}()
		}
	}
	if err := <-hsDone; !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// close stops accepting and closes every connection still in its
// handshake's head read. The http.Server is shut down by the Server.
// Idempotent.
func (a *acceptor) close() {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	a.closed = true
	a.mu.Unlock()
	_ = a.l.Close()
	// Nothing is listed for a after closed is set (track lists under mu).
	for _, h := range a.s.handshakes.drop(a) {
		closeRaw(h.nc)
	}
}

func (a *acceptor) isClosed() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.closed
}

// track counts a new connection's goroutine and lists it as a handshake in
// progress. Listing it may evict the oldest handshake, returned for the
// caller to close; busy means its IP is at MaxHandshakesPerIP (it is not
// listed: its goroutine refuses it). ok is false after close: the caller
// closes it, nothing is counted.
func (a *acceptor) track(nc net.Conn) (h, evicted *handshake, busy, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, nil, false, false
	}
	a.wg.Add(1)
	h = &handshake{nc: nc, a: a, ip: peerIP(nc)}
	evicted, listed := a.s.handshakes.add(h)
	return h, evicted, !listed, true
}

// refuseBusy answers a connection from an IP at MaxHandshakesPerIP, before
// reading anything from it, and closes it. A TLS connection is closed
// unanswered: an answer would cost a TLS handshake, the work the cap is
// there to refuse.
func (a *acceptor) refuseBusy(nc net.Conn) {
	if _, ok := nc.(*tls.Conn); ok {
		closeRaw(nc)
		return
	}
	h := http.Header{"Retry-After": {busyRetryAfter}}
	writeRefusal(nc, http.StatusServiceUnavailable, h, "too many handshakes from this address", a.s.cfg.HandshakeTimeout)
	_ = nc.Close()
}

// handshake reads a new connection's request head (after its TLS
// handshake, on TLS) and serves it.
func (a *acceptor) handshake(h *handshake) {
	s := a.s
	nc := h.nc
	_ = nc.SetReadDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	tc, isTLS := nc.(*tls.Conn)
	if isTLS && !a.tlsHandshake(h, tc) {
		return
	}
	br := s.readers.Get().(*bufio.Reader)
	br.Reset(nc)
	defer func() {
		br.Reset(nil)
		s.readers.Put(br)
	}()
	head, big, err := readHead(br, nc, s.cfg.MaxHeaderBytes)
	if !s.handshakes.remove(h) {
		// Evicted under MaxHandshakes, or dropped by Shutdown, while it
		// waited: closed already.
		_ = nc.Close()
		return
	}
	if errors.Is(err, errHeadTooLarge) {
		s.stats.rejectedHeaderBytes.Add(1)
		writeRefusal(nc, http.StatusRequestHeaderFieldsTooLarge, nil, "request header fields too large", s.cfg.HandshakeTimeout)
		_ = nc.Close()
		return
	}
	if err != nil {
		_ = nc.Close() // gone, or silent past HandshakeTimeout, before a whole head
		return
	}
	if big != nil || !isUpgradeHead(head) {
		// Everything but a WebSocket handshake that fits: net/http's.
		prefix := big
		if prefix == nil {
			prefix = bytes.Clone(peekBuffered(br))
		}
		if !a.pass.push(&prefixConn{Conn: nc, prefix: prefix}) {
			_ = nc.Close()
		}
		return
	}
	req, err := http.ReadRequest(br) // parses the buffered head: no I/O
	if err != nil {
		writeRefusal(nc, http.StatusBadRequest, nil, "malformed request", s.cfg.HandshakeTimeout)
		_ = nc.Close()
		return
	}
	_ = nc.SetReadDeadline(time.Time{})
	req.RemoteAddr = nc.RemoteAddr().String()
	if isTLS {
		st := tc.ConnectionState()
		req.TLS = &st
	}
	ctx, cancel := context.WithCancel(s.hardCtx)
	defer cancel()
	w := &upgradeWriter{s: s, nc: nc, br: br}
	s.mux.ServeHTTP(w, req.WithContext(ctx))
	// The connection, if it upgraded, no longer reads through br: a poll
	// reader took its bytes, a reader goroutine returned when it closed.
	w.releaseWriter()
	if !w.hijacked {
		w.finish()
		_ = nc.Close()
	}
}

// errHeadTooLarge: no request head ends within MaxHeaderBytes.
var errHeadTooLarge = errors.New("wsframework: request head over MaxHeaderBytes")

// readHead reads a request head (through its empty line) of at most limit
// bytes from br, which reads from r. A head that fits br's buffer is
// returned from it, and big is nil. A larger one is read on from r into
// big, which then holds all the bytes read (the head, and whatever came
// with it) while br holds none; head is big's prefix. errHeadTooLarge when
// no head ends within limit bytes.
func readHead(br *bufio.Reader, r io.Reader, limit int) (head, big []byte, err error) {
	seen := 0
	for {
		if _, err := br.Peek(seen + 1); err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				break // the buffer is full and holds no head
			}
			return nil, nil, err
		}
		buf := peekBuffered(br)
		if end, done := headEnd(buf, seen, limit); done {
			if end < 0 {
				return nil, nil, errHeadTooLarge
			}
			return buf[:end], nil, nil
		}
		seen = len(buf)
	}
	big = make([]byte, 0, min(limit, 2*br.Size()))
	big = append(big, peekBuffered(br)...)
	_, _ = br.Discard(len(big))
	for {
		if len(big) == cap(big) {
			big = slices.Grow(big, min(cap(big), limit-len(big)))
		}
		seen := len(big)
		n, err := r.Read(big[seen:cap(big)])
		big = big[:seen+n]
		if end, done := headEnd(big, seen, limit); done {
			if end < 0 {
				return nil, nil, errHeadTooLarge
			}
			return big[:end], big, nil
		}
		if err != nil {
			return nil, nil, err
		}
	}
}

// headEnd looks for the end of a request head in buf, of which seen bytes
// were searched already: done with the head's length when it ends within
// limit bytes, done with -1 when it cannot (too large), not done when more
// bytes are needed to tell.
func headEnd(buf []byte, seen, limit int) (end int, done bool) {
	from := max(seen-3, 0)
	if i := bytes.Index(buf[from:], []byte("\r\n\r\n")); i >= 0 {
		if end = from + i + 4; end > limit {
			return -1, true
		}
		return end, true
	}
	if len(buf) >= limit {
		return -1, true
	}
	return 0, false
}

func peekBuffered(br *bufio.Reader) []byte {
	b, _ := br.Peek(br.Buffered())
	return b
}

// isUpgradeHead reports whether a request head is a GET with an Upgrade
// header naming websocket. It only sorts requests: net/http would serve a
// false negative just as well, and http.ReadRequest and the handshake
// checks judge what it lets through.
func isUpgradeHead(head []byte) bool {
	if !bytes.HasPrefix(head, []byte("GET ")) {
		return false
	}
	for line := range bytes.SplitSeq(head, []byte("\r\n")) {
		name, value, ok := bytes.Cut(line, []byte(":"))
		if ok && bytes.EqualFold(bytes.TrimSpace(name), []byte("Upgrade")) {
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				if bytes.EqualFold(bytes.TrimSpace(tok), []byte("websocket")) {
					return true
				}
			}
		}
	}
	return false
}

// upgradeWriter is the ResponseWriter of a handshake on the accept path:
// Hijack hands over the connection with the pooled reader (and a pooled
// writer for the 101 response); any other answer is buffered and written
// with Content-Length and "Connection: close" by finish, or streamed
// (close-delimited) once Flush is called or the body grows large.
type upgradeWriter struct {
	s  *Server
	nc net.Conn
	br *bufio.Reader
	bw *bufio.Writer

	header    http.Header
	status    int
	body      []byte
	streaming bool // the head is written: the body goes straight out
	hijacked  bool
	err       error // the first write error
}

var (
	_ http.ResponseWriter = (*upgradeWriter)(nil)
	_ http.Hijacker       = (*upgradeWriter)(nil)
	_ http.Flusher        = (*upgradeWriter)(nil)
)

func (w *upgradeWriter) Header() http.Header {
	if w.header == nil {
		w.header = make(http.Header)
	}
	return w.header
}

func (w *upgradeWriter) WriteHeader(code int) {
	if w.status == 0 && !w.hijacked {
		w.status = code
	}
}

func (w *upgradeWriter) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	w.WriteHeader(http.StatusOK)
	if !w.streaming && len(w.body)+len(p) > maxBufferedAnswer {
		w.Flush()
	}
	if w.streaming {
		if w.err != nil {
			return 0, w.err
		}
		n, err := w.nc.Write(p)
		w.err = err
		return n, err
	}
	w.body = append(w.body, p...)
	return len(p), nil
}

// Flush writes the head (without Content-Length: the body ends with the
// connection) and what was buffered; later writes go straight out.
func (w *upgradeWriter) Flush() {
	if w.hijacked || w.streaming {
		return
	}
	w.WriteHeader(http.StatusOK)
	w.streaming = true
	_ = w.nc.SetWriteDeadline(time.Now().Add(w.s.cfg.HandshakeTimeout))
	w.err = writeAnswer(w.nc, w.status, w.header, w.body, false)
	w.body = nil
}

// finish writes a buffered answer whole.
func (w *upgradeWriter) finish() {
	if w.hijacked || w.streaming {
		return
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = w.nc.SetWriteDeadline(time.Now().Add(w.s.cfg.HandshakeTimeout))
	_ = writeAnswer(w.nc, w.status, w.header, w.body, true)
}

// Hijack hands over the connection; the reader holds any bytes the client
// sent after its head.
func (w *upgradeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.status != 0 || w.streaming {
		return nil, nil, errors.New("wsframework: hijack after the answer began")
	}
	w.hijacked = true
	w.bw = w.s.writers.Get().(*bufio.Writer)
	w.bw.Reset(w.nc)
	return w.nc, bufio.NewReadWriter(w.br, w.bw), nil
}

// releaseWriter returns the 101 response's writer to its pool.
func (w *upgradeWriter) releaseWriter() {
	if w.bw != nil {
		w.bw.Reset(nil)
		w.s.writers.Put(w.bw)
		w.bw = nil
	}
}

// writeAnswer writes an HTTP/1.1 answer that closes the connection.
func writeAnswer(nc net.Conn, status int, h http.Header, body []byte, withLength bool) error {
	var b bytes.Buffer
	b.Grow(256 + len(body))
	b.WriteString("HTTP/1.1 ")
	b.WriteString(strconv.Itoa(status))
	b.WriteByte(' ')
	b.WriteString(http.StatusText(status))
	b.WriteString("\r\n")
	h = h.Clone()
	if h == nil {
		h = make(http.Header)
	}
	h.Del("Content-Length")
	h.Del("Transfer-Encoding")
	h.Set("Connection", "close")
	if withLength {
		h.Set("Content-Length", strconv.Itoa(len(body)))
	}
	if h.Get("Date") == "" {
		h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	}
	_ = h.Write(&b)
	b.WriteString("\r\n")
	b.Write(body)
	_, err := nc.Write(b.Bytes())
	return err
}

// writeRefusal answers a request the accept path could not serve, with
// the header lines in h (which it may modify).
func writeRefusal(nc net.Conn, status int, h http.Header, text string, timeout time.Duration) {
	_ = nc.SetWriteDeadline(time.Now().Add(timeout))
	if h == nil {
		h = make(http.Header)
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	_ = writeAnswer(nc, status, h, []byte(text+"\n"), true)
}

// prefixConn is a connection handed to net/http: it reads the bytes the
// acceptor already read first.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite and ReadFrom reach the TCP connection, so that net/http can
// half-close before it closes (no reset for a pipelining client) and
// answer with sendfile.
func (c *prefixConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

func (c *prefixConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(onlyWriter{c.Conn}, r)
}

// onlyWriter hides a writer's ReadFrom from io.Copy.
type onlyWriter struct{ io.Writer }

// passListener is the listener the http.Server behind an acceptor serves:
// its connections come from the acceptor.
type passListener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newPassListener(addr net.Addr) *passListener {
	return &passListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *passListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// push hands c to the http.Server; false once the listener is closed.
func (l *passListener) push(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *passListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *passListener) Addr() net.Addr { return l.addr }
