package wsframework

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strandws/strand/internal/clock"
)

// TLS. ServeTLS wraps its listener with tls.NewListener and serves it like
// any other: the accept path (accept.go) runs each connection's TLS
// handshake itself, as the first part of its handshake in progress, under
// the same limits as the request head; then reads the head, upgrades
// WebSocket handshakes and hands everything else to net/http, which is
// told the connection's TLS state. ALPN offers only http/1.1: a WebSocket
// upgrade needs HTTP/1.1 (RFC 8441's WebSocket over HTTP/2 is not served).
//
// Certificates given as files are read again when the files change: a
// handshake looks at their modification times and sizes at most every
// Config.CertCheckInterval (no goroutine watches them). A pair that does not
// load (a renewal half written) leaves the previous certificate in use and
// is tried again at the next look.

// http11 is the only protocol ServeTLS offers in ALPN.
const http11 = "http/1.1"

// ListenAndServeTLS listens on the TCP address addr and calls ServeTLS.
func (s *Server) ListenAndServeTLS(addr, certFile, keyFile string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return s.ServeTLS(l, certFile, keyFile)
}

// ServeTLS serves HTTPS and WebSocket over TLS (wss) on l, as Serve does
// over plain TCP. The TLS configuration is a clone of Config.TLS (nil:
// crypto/tls's defaults) whose NextProtos are replaced by "http/1.1". The
// certificate comes from certFile and keyFile (PEM) when they are set,
// reread when they change (see Config.CertCheckInterval); otherwise
// Config.TLS must provide one (Certificates, GetCertificate or
// GetConfigForClient). It takes ownership of l, also when it fails before
// serving (a certificate that does not load).
//
// Every WebSocket connection over TLS is read by a reader goroutine,
// whatever Config.Reader says: the poll reader reads plain TCP only
// (Stats.TLS counts them).
func (s *Server) ServeTLS(l net.Listener, certFile, keyFile string) error {
	cfg, err := s.tlsConfig(certFile, keyFile)
	if err != nil {
		_ = l.Close()
		return err
	}
	return s.Serve(tls.NewListener(l, cfg))
}

// tlsConfig builds ServeTLS's configuration.
func (s *Server) tlsConfig(certFile, keyFile string) (*tls.Config, error) {
	var cfg *tls.Config
	if s.cfg.TLS != nil {
		cfg = s.cfg.TLS.Clone()
	} else {
		cfg = new(tls.Config)
	}
	cfg.NextProtos = []string{http11}
	if certFile == "" && keyFile == "" {
		if len(cfg.Certificates) == 0 && cfg.GetCertificate == nil && cfg.GetConfigForClient == nil {
			return nil, errors.New("wsframework: ServeTLS: no certificate: give certFile and keyFile, or set Config.TLS")
		}
		return cfg, nil
	}
	if certFile == "" || keyFile == "" {
		return nil, errors.New("wsframework: ServeTLS: certFile and keyFile go together")
	}
	r, err := newCertReloader(certFile, keyFile, s.cfg.CertCheckInterval, s.clock, s.cfg.Logger)
	if err != nil {
		return nil, err
	}
	if own := cfg.GetCertificate; own != nil {
		// As net/http does with files and a GetCertificate: the
		// configuration's own callback first, the files when it has none.
		cfg.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if c, err := own(hello); c != nil || err != nil {
				return c, err
			}
			return r.GetCertificate(hello)
		}
	} else {
		cfg.GetCertificate = r.GetCertificate
	}
	return cfg, nil
}

// certReloader serves a certificate and key read from files, and reads
// them again, at most every interval, when their modification times or
// sizes changed. It is safe for concurrent use; the look happens on the
// handshake that finds it due (others meanwhile use the current
// certificate), so no goroutine is involved.
type certReloader struct {
	certFile, keyFile string
	every             int64 // clock nanoseconds between looks; <= 0: never look
	clock             *clock.Clock
	log               *slog.Logger

	cert atomic.Pointer[tls.Certificate]
	next atomic.Int64 // clock reading of the next look

	mu      sync.Mutex // one look at a time; guards the fields below
	stamp   certStamp  // the files as they were when cert was read
	failed  certStamp  // the files as they were when they last failed to load
	fails   bool       // failed is set
	lastErr string     // the last failure logged, so that it is logged once
}

// certStamp is what a look compares: both files' modification time and
// size. A renewal written in place or swapped in through a symbolic link
// (os.Stat follows it, as a Kubernetes secret volume does) changes it.
type certStamp struct {
	certMod, keyMod   time.Time
	certSize, keySize int64
}

func (a certStamp) equal(b certStamp) bool {
	return a.certMod.Equal(b.certMod) && a.keyMod.Equal(b.keyMod) && a.certSize == b.certSize && a.keySize == b.keySize
}

func newCertReloader(certFile, keyFile string, every time.Duration, clk *clock.Clock, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, every: int64(every), clock: clk, log: log}
	st, err := r.statFiles()
	if err != nil {
		return nil, fmt.Errorf("wsframework: ServeTLS: %w", err)
	}
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("wsframework: ServeTLS: %w", err)
	}
	r.cert.Store(&c)
	r.stamp = st
	r.next.Store(clk.Now() + r.every)
	return r, nil
}

func (r *certReloader) statFiles() (certStamp, error) {
	cf, err := os.Stat(r.certFile)
	if err != nil {
		return certStamp{}, err
	}
	kf, err := os.Stat(r.keyFile)
	if err != nil {
		return certStamp{}, err
	}
	return certStamp{certMod: cf.ModTime(), keyMod: kf.ModTime(), certSize: cf.Size(), keySize: kf.Size()}, nil
}

// GetCertificate is the tls.Config callback: the current certificate,
// after a look at the files when one is due.
func (r *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if r.every > 0 && r.clock.Now() >= r.next.Load() && r.mu.TryLock() {
		r.lookLocked()
		r.mu.Unlock()
	}
	return r.cert.Load(), nil
}

// lookLocked reads the files again if they changed since the certificate
// in use was read; r.mu is held.
func (r *certReloader) lookLocked() {
	now := r.clock.Now()
	if now < r.next.Load() {
		return // another handshake looked meanwhile
	}
	r.next.Store(now + r.every)
	st, err := r.statFiles()
	if err == nil && (st.equal(r.stamp) || r.fails && st.equal(r.failed)) {
		return // unchanged since read, or since they last failed to load
	}
	var c tls.Certificate
	if err == nil {
		c, err = tls.LoadX509KeyPair(r.certFile, r.keyFile)
	}
	if err != nil {
		// A renewal in progress (one file written, not the other) or a
		// file gone: serve on with the certificate in use; the next
		// change is tried at a later look.
		r.failed, r.fails = st, true
		if msg := err.Error(); msg != r.lastErr {
			r.lastErr = msg
			r.log.Warn("strand: TLS certificate files changed but do not load; serving the previous certificate",
				"cert_file", r.certFile, "key_file", r.keyFile, "err", err)
		}
		return
	}
	r.cert.Store(&c)
	r.stamp, r.fails, r.lastErr = st, false, ""
	attrs := []any{"cert_file", r.certFile}
	if c.Leaf != nil {
		attrs = append(attrs, "subject", c.Leaf.Subject.String(), "not_after", c.Leaf.NotAfter)
	}
	r.log.Info("strand: TLS certificate reloaded", attrs...)
}

// The accept path's TLS side (accept.go).

// tlsHandshake runs a connection's TLS handshake, within the deadline
// handshake set for the head. It reports whether the head is to be read
// next; otherwise the connection was dealt with: closed (the handshake
// failed, or it was evicted or dropped meanwhile), or handed to net/http
// as it is because ALPN chose a protocol other than http/1.1.
func (a *acceptor) tlsHandshake(h *handshake, tc *tls.Conn) bool {
	s := a.s
	// Handshake, not HandshakeContext: closeRaw (eviction, Shutdown) and
	// the deadline end it just as well. It runs on a goroutine of its own,
	// which this one waits for: the handshake's cryptography (ML-KEM key
	// shares, signatures) grows a stack to 16 KiB or more, and a goroutine
	// that grew it keeps it while it waits in a read, so the reader
	// goroutine this one may become would keep it for the connection's
	// life.
	_ = tc.SetWriteDeadline(s.clock.Deadline(s.cfg.HandshakeTimeout))
	done := make(chan error, 1)
	go func() { done <- tc.Handshake() }()
	err := <-done
	_ = tc.SetWriteDeadline(time.Time{}) // net/http sets none of its own
	if err != nil {
		if s.handshakes.remove(h) {
			s.stats.tlsHandshakeErrors.Add(1)
			if s.cfg.Logger.Enabled(context.Background(), slog.LevelDebug) {
				s.cfg.Logger.Debug("strand: TLS handshake failed", "remote", tc.RemoteAddr().String(), "err", err)
			}
			var re tls.RecordHeaderError
			if errors.As(err, &re) && re.Conn != nil && looksLikeHTTP(re.RecordHeader) {
				// As net/http answers a plain request on a TLS port.
				_, _ = io.WriteString(re.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
			}
		}
		closeRaw(tc)
		return false
	}
	if p := tc.ConnectionState().NegotiatedProtocol; p != "" && p != http11 {
		if !s.handshakes.remove(h) {
			closeRaw(tc)
			return false
		}
		_ = tc.SetReadDeadline(time.Time{})
		if !a.pass.push(tc) {
			_ = tc.Close()
		}
		return false
	}
	return true
}

// looksLikeHTTP reports whether the first bytes a TLS server read are a
// plain HTTP request's.
func looksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO":
		return true
	}
	return false
}

// closeRaw closes a connection at the TCP level: for a TLS one, without
// the close_notify alert tls.Conn.Close would write first (under a write
// deadline of its own, on the caller's goroutine).
func closeRaw(nc net.Conn) {
	if tc, ok := nc.(*tls.Conn); ok {
		_ = tc.NetConn().Close()
		return
	}
	_ = nc.Close()
}

// tlsStateKey is the context key under which tlsStateContext keeps a TLS
// connection's state for the requests net/http reads from it.
type tlsStateKey struct{}

// tlsStateContext is the acceptor's http.Server's ConnContext: a TLS
// connection handed to net/http after the accept path read from it is a
// prefixConn, which net/http takes for plain TCP; its state goes into the
// connection's context instead.
func tlsStateContext(ctx context.Context, c net.Conn) context.Context {
	if pc, ok := c.(*prefixConn); ok {
		if tc, ok := pc.Conn.(*tls.Conn); ok {
			st := tc.ConnectionState()
			return context.WithValue(ctx, tlsStateKey{}, &st)
		}
	}
	return ctx
}

// withTLSState sets Request.TLS, as net/http would have, on the requests
// of a connection tlsStateContext found to be TLS.
func withTLSState(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			if st, ok := r.Context().Value(tlsStateKey{}).(*tls.ConnectionState); ok {
				r.TLS = st
			}
		}
		h.ServeHTTP(w, r)
	})
}
