package wsframework

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
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
