package wsframework

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
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
//   - anything else (plain HTTP, a head larger than the reader, TLS) is
//     handed, with the bytes already read, to the http.Server behind a
//     listener the acceptor feeds (passListener), so net/http keeps serving
//     it with everything it does: keep-alive, chunked bodies, HTTP/1.0.
//
// An answer other than 101 on the accept path (a refused handshake) is
// written with "Connection: close" and ends the connection.

const (
	// acceptReaderSize is the pooled reader a request head must fit in to be
	// served on the accept path; a larger head goes to net/http.
	acceptReaderSize = 4 << 10
	// acceptWriterSize buffers the 101 response.
	acceptWriterSize = 512
	// maxBufferedAnswer is how much of a refusal's body is buffered to send
	// it with a Content-Length; beyond it the answer is streamed and ends
	// with the connection.
	maxBufferedAnswer = 64 << 10
)

// acceptor serves one listener for Serve. Its goroutines (the http.Server's
// and one per handshake) are counted in wg; Add is called under mu while
// not closed, so Server.Shutdown, which closes the acceptor first, can wait
// for them.
type acceptor struct {
	s    *Server
	l    net.Listener
	hs   *http.Server
	pass *passListener
	wg   *sync.WaitGroup

	mu      sync.Mutex // guards pending, closed and wg.Add
	pending map[net.Conn]struct{}
	closed  bool
}

func newAcceptor(s *Server, l net.Listener, wg *sync.WaitGroup) *acceptor {
	a := &acceptor{s: s, l: l, wg: wg, pending: make(map[net.Conn]struct{}), pass: newPassListener(l.Addr())}
	a.hs = &http.Server{Handler: s, ReadHeaderTimeout: s.cfg.HandshakeTimeout}
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
		if !a.track(nc) {
			_ = nc.Close()
			continue
		}
		go func() {
			defer a.wg.Done()
			a.handshake(nc)
		}()
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
	pending := a.pending
	a.pending = nil
	a.mu.Unlock()
	_ = a.l.Close()
	for nc := range pending {
		_ = nc.Close()
	}
}

func (a *acceptor) isClosed() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.closed
}

// track records a connection whose head is being read and counts its
// goroutine; false after close.
func (a *acceptor) track(nc net.Conn) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return false
	}
	a.pending[nc] = struct{}{}
	a.wg.Add(1)
	return true
}

// untrack reports whether the connection was still tracked (not closed by
// close).
func (a *acceptor) untrack(nc net.Conn) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return false
	}
	delete(a.pending, nc)
	return true
}

// handshake reads a new connection's request head and serves it.
func (a *acceptor) handshake(nc net.Conn) {
	s := a.s
	if _, ok := nc.(*tls.Conn); ok {
		// ALPN and the request's TLS state are net/http's business.
		if a.untrack(nc) && !a.pass.push(nc) {
			_ = nc.Close()
		}
		return
	}
	br := s.readers.Get().(*bufio.Reader)
	br.Reset(nc)
	defer func() {
		br.Reset(nil)
		s.readers.Put(br)
	}()
	_ = nc.SetReadDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	head, err := readHead(br)
	if !a.untrack(nc) {
		_ = nc.Close() // closed by Shutdown while it waited
		return
	}
	if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
		_ = nc.Close() // gone, or silent past HandshakeTimeout, before a whole head
		return
	}
	if err != nil || !isUpgradeHead(head) {
		// Everything but a WebSocket handshake that fits: net/http's.
		prefix := bytes.Clone(peekBuffered(br))
		if !a.pass.push(&prefixConn{Conn: nc, prefix: prefix}) {
			_ = nc.Close()
		}
		return
	}
	req, err := http.ReadRequest(br) // parses the buffered head: no I/O
	if err != nil {
		writeRefusal(nc, http.StatusBadRequest, "malformed request", s.cfg.HandshakeTimeout)
		_ = nc.Close()
		return
	}
	_ = nc.SetReadDeadline(time.Time{})
	req.RemoteAddr = nc.RemoteAddr().String()
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

// readHead reads until br holds a whole request head (through the empty
// line) and returns it; bufio.ErrBufferFull when it does not fit.
func readHead(br *bufio.Reader) ([]byte, error) {
	seen := 0
	for {
		if _, err := br.Peek(seen + 1); err != nil {
			return nil, err
		}
		buf := peekBuffered(br)
		from := max(seen-3, 0)
		if i := bytes.Index(buf[from:], []byte("\r\n\r\n")); i >= 0 {
			return buf[:from+i+4], nil
		}
		seen = len(buf)
	}
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

// writeRefusal answers a request the accept path could not serve.
func writeRefusal(nc net.Conn, status int, text string, timeout time.Duration) {
	_ = nc.SetWriteDeadline(time.Now().Add(timeout))
	h := http.Header{"Content-Type": {"text/plain; charset=utf-8"}}
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
