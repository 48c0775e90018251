package wsframework

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
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
	writeRefusal(nc, http.StatusServiceUnavailable, h, "too many handshakes from this address", a.s.clock.Deadline(a.s.cfg.HandshakeTimeout))
	_ = nc.Close()
}

// handshake reads a new connection's request head (after its TLS
// handshake, on TLS) and serves it.
func (a *acceptor) handshake(h *handshake) {
	s := a.s
	nc := h.nc
	_ = nc.SetReadDeadline(s.clock.Deadline(s.cfg.HandshakeTimeout))
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
		writeRefusal(nc, http.StatusRequestHeaderFieldsTooLarge, nil, "request header fields too large", s.clock.Deadline(s.cfg.HandshakeTimeout))
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
		writeRefusal(nc, http.StatusBadRequest, nil, "malformed request", s.clock.Deadline(s.cfg.HandshakeTimeout))
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

var (
	_ http.ResponseWriter = (*upgradeWriter)(nil)
	_ http.Hijacker       = (*upgradeWriter)(nil)
	_ http.Flusher        = (*upgradeWriter)(nil)
)
