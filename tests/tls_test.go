package tests

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
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

// WebSocket over TLS (ServeTLS): the accept path runs the TLS handshake,
// then serves the connection as it serves plain TCP. Every TLS connection
// is read by a reader goroutine, in both reader modes (the harness checks
// Stats at cleanup: Polled counts none of them, TLS counts all).

// tlsInfo answers with what net/http and the request say about TLS.
var tlsInfo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil {
		_, _ = io.WriteString(w, "tls=false")
		return
	}
	_, _ = fmt.Fprintf(w, "tls=true proto=%s alpn=%s sni=%s", r.Proto, r.TLS.NegotiatedProtocol, r.TLS.ServerName)
})

// startTLSServer starts a harness serving TLS with a certificate made for
// the test.
func startTLSServer(t *testing.T, cfg wsframework.Config, routes map[string]*sdk.Entry, handlers map[string]http.Handler) (*harness, *testCert) {
	t.Helper()
	cert := newTestCert(t, "first")
	return startServerWith(t, cfg, routes, nil, handlers, cert), cert
}

// TestTLSEcho: a wss client that offers h2 and http/1.1 gets http/1.1,
// upgrades and echoes, messages larger than a TLS record included.
func TestTLSEcho(t *testing.T) {
	p := newProbe("tls-echo")
	h, _ := startTLSServer(t, wsframework.Config{}, map[string]*sdk.Entry{"/ws": p.entry}, nil)
	c := h.dial(t, "/ws?tag=wss")
	tc, ok := c.nc.(*tls.Conn)
	require.True(t, ok, "the client's connection is %T", c.nc)
	require.Equal(t, "http/1.1", tc.ConnectionState().NegotiatedProtocol)
	p.waitOpen(t, "wss")

	c.echo(t, ws.OpText, []byte("hello over TLS"))
	c.echo(t, ws.OpBinary, bytes.Repeat([]byte{0xa5}, 100<<10)) // several TLS records
	for i := range 50 {
		require.NoError(t, c.send(ws.OpText, []byte(fmt.Sprint("m", i))))
	}
	for i := range 50 {
		c.expectFrame(t, ws.OpText, []byte(fmt.Sprint("m", i)))
	}
	c.closeHandshake(t, ws.StatusNormalClosure, "bye")
	p.waitClose(t, "wss", sdk.CloseNormal)

	st := h.srv.Stats()
	require.EqualValues(t, 1, st.Accepted)
	require.EqualValues(t, 1, st.TLS)
	require.Zero(t, st.Polled, "a TLS connection was read by the poll reader")
}

// TestTLSHTTP: plain requests over TLS are served by net/http, over
// HTTP/1.1 (the client offered h2 too), and see the connection's TLS
// state, on the accept path's first request as on later keep-alive ones;
// a later request on the same connection may still upgrade.
func TestTLSHTTP(t *testing.T) {
	p := newProbe("tls-http")
	h, cert := startTLSServer(t, wsframework.Config{}, map[string]*sdk.Entry{"/ws": p.entry},
		map[string]http.Handler{"/info": tlsInfo})

	tr := &http.Transport{TLSClientConfig: cert.clientConfig(), ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: ioTimeout}
	for i := range 3 {
		resp, err := client.Get("https://" + h.addr + "/info")
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "HTTP/1.1", resp.Proto, "request %d", i)
		require.Equal(t, "http/1.1", resp.TLS.NegotiatedProtocol)
		require.Equal(t, "tls=true proto=HTTP/1.1 alpn=http/1.1 sni=", string(body), "request %d", i)
	}

	// One connection: a request, then an upgrade (served by net/http's
	// hijack, over TLS).
	nc, br := h.rawConn(t)
	_, err := io.WriteString(nc, "GET /info HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	resp, body := readResponse(t, br)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.True(t, strings.HasPrefix(body, "tls=true "), body)
	c := upgradeOn(t, nc, br, []byte("GET /ws?tag=later HTTP/1.1\r\nHost: x\r\n"+upgradeHead+"\r\n"))
	c.echo(t, ws.OpText, []byte("upgraded after a request"))
	p.waitOpen(t, "later")
	require.EqualValues(t, 1, h.srv.Stats().TLS)
}

// TestTLSOtherProtocol: on a TLS listener of one's own that offers h2, a
// client that negotiates h2 is handed to net/http as it is, and served
// over HTTP/2; WebSocket clients still get http/1.1.
func TestTLSOtherProtocol(t *testing.T) {
	cert := newTestCert(t, "h2")
	kp, err := tls.LoadX509KeyPair(cert.certFile, cert.keyFile)
	require.NoError(t, err)
	p := newProbe("tls-h2")
	srv, err := wsframework.New(wsframework.Config{Logger: quietLogger(), Reader: readerMode})
	require.NoError(t, err)
	require.NoError(t, srv.Route("/ws", nil, p.entry))
	require.NoError(t, srv.Handle("/info", tlsInfo))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() {
		served <- srv.Serve(tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{kp}, NextProtos: []string{"h2", "http/1.1"}}))
	}()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		defer cancel()
		require.NoError(t, srv.Shutdown(ctx))
		require.ErrorIs(t, <-served, wsframework.ErrServerClosed)
	}()

	tr := &http.Transport{TLSClientConfig: cert.clientConfig(), ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: ioTimeout}).Get("https://" + l.Addr().String() + "/info")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, "HTTP/2.0", resp.Proto)
	require.Equal(t, "tls=true proto=HTTP/2.0 alpn=h2 sni=", string(body))

	h := &harness{srv: srv, addr: l.Addr().String(), clientTLS: &tls.Config{RootCAs: cert.roots, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}}}
	c := h.dial(t, "/ws?tag=h1")
	c.echo(t, ws.OpText, []byte("http/1.1 on an h2 listener"))
	c.closeHandshake(t, ws.StatusNormalClosure, "")
	require.EqualValues(t, 1, srv.Stats().TLS)
}

// peerCN dials the harness over TLS and returns the common name of the
// certificate the server presented.
func peerCN(t *testing.T, h *harness) string {
	t.Helper()
	nc := h.dialRaw(t, "")
	defer nc.Close()
	return nc.(*tls.Conn).ConnectionState().PeerCertificates[0].Subject.CommonName
}

// TestTLSCertReload: certificate files renewed in place are served to new
// connections without a restart, once a handshake finds a look at the
// files due; a renewal half written (a new certificate with the old key)
// leaves the certificate in use until the key follows. Connections already
// open are untouched.
func TestTLSCertReload(t *testing.T) {
	p := newProbe("tls-reload")
	cert := newTestCert(t, "first")
	h := startServerWith(t, wsframework.Config{CertCheckInterval: 10 * time.Millisecond},
		map[string]*sdk.Entry{"/ws": p.entry}, nil, nil, cert)
	require.Equal(t, "first", peerCN(t, h))
	old := h.dial(t, "/ws?tag=old")

	cert.writeOver(t, "second", time.Now().Add(time.Minute))
	require.Eventually(t, func() bool { return peerCN(t, h) == "second" }, ioTimeout, 20*time.Millisecond,
		"the renewed certificate is never served")

	// Half a renewal: the certificate is new, the key is still the old one.
	certPEM, keyPEM, third := makeCert(t, "third")
	cert.roots.AddCert(third)
	writeFile(t, cert.certFile, certPEM, time.Now().Add(2*time.Minute))
	time.Sleep(50 * time.Millisecond) // several looks at the files
	for range 3 {
		require.Equal(t, "second", peerCN(t, h), "a certificate without its key was served")
	}
	writeFile(t, cert.keyFile, keyPEM, time.Now().Add(2*time.Minute))
	require.Eventually(t, func() bool { return peerCN(t, h) == "third" }, ioTimeout, 20*time.Millisecond,
		"the completed renewal is never served")

	old.echo(t, ws.OpText, []byte("still open"))
	require.Equal(t, "first", old.nc.(*tls.Conn).ConnectionState().PeerCertificates[0].Subject.CommonName)
}

// TestTLSServeErrors: ServeTLS without a certificate, or with files that
// do not load, fails at once and closes its listener.
func TestTLSServeErrors(t *testing.T) {
	cert := newTestCert(t, "x")
	srv, err := wsframework.New(wsframework.Config{Logger: quietLogger()})
	require.NoError(t, err)
	defer srv.Close()
	for _, tc := range []struct{ name, certFile, keyFile, want string }{
		{"no certificate", "", "", "no certificate"},
		{"key without certificate", "", cert.keyFile, "go together"},
		{"missing file", cert.certFile + ".missing", cert.keyFile, "no such file"},
		{"key for certificate", cert.keyFile, cert.certFile, "ServeTLS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			err = srv.ServeTLS(l, tc.certFile, tc.keyFile)
			require.ErrorContains(t, err, tc.want)
			_, err = l.Accept()
			require.ErrorIs(t, err, net.ErrClosed, "the listener is still open")
		})
	}
}

// TestTLSHandshakeLimits: on TLS the limits on handshakes in progress
// hold as on plain TCP, the TLS handshake counting as part of the head:
// a client silent before its ClientHello is a handshake in progress
// (evicted at MaxHandshakes, closed at HandshakeTimeout and counted as a
// failed TLS handshake), one at MaxHandshakesPerIP is closed before any
// TLS work, and a head over MaxHeaderBytes gets 431.
func TestTLSHandshakeLimits(t *testing.T) {
	t.Run("MaxHandshakes", func(t *testing.T) {
		p := newProbe("tls-cap")
		h, _ := startTLSServer(t, wsframework.Config{MaxHandshakes: 2, HandshakeTimeout: time.Minute},
			map[string]*sdk.Entry{"/ws": p.entry}, nil)
		silent, err := net.DialTimeout("tcp", h.addr, ioTimeout) // no ClientHello
		require.NoError(t, err)
		defer silent.Close()
		h.waitHandshakes(t, 1, ioTimeout)
		stalled := h.stallHandshake(t, "s", "") // TLS done, head partly sent
		h.waitHandshakes(t, 2, ioTimeout)

		h.dial(t, "/ws?tag=new").echo(t, ws.OpText, []byte("new"))
		require.NoError(t, silent.SetReadDeadline(time.Now().Add(ioTimeout)))
		_, err = silent.Read(make([]byte, 1))
		require.Error(t, err)
		require.False(t, isTimeout(err), "the silent handshake was not evicted")
		stalled.finish(t)
		st := h.srv.Stats()
		require.EqualValues(t, 1, st.HandshakesEvicted)
		require.EqualValues(t, 2, st.Accepted)
	})

	t.Run("HandshakeTimeout", func(t *testing.T) {
		p := newProbe("tls-timeout")
		h, _ := startTLSServer(t, wsframework.Config{HandshakeTimeout: 200 * time.Millisecond},
			map[string]*sdk.Entry{"/ws": p.entry}, nil)
		silent, err := net.DialTimeout("tcp", h.addr, ioTimeout)
		require.NoError(t, err)
		defer silent.Close()
		require.NoError(t, silent.SetReadDeadline(time.Now().Add(ioTimeout)))
		_, err = silent.Read(make([]byte, 1))
		require.Error(t, err)
		require.False(t, isTimeout(err), "a client silent past HandshakeTimeout is still connected")
		require.Eventually(t, func() bool { return h.srv.Stats().TLSHandshakeErrors == 1 }, ioTimeout, time.Millisecond)
		require.Zero(t, h.srv.Stats().Handshakes)
	})

	t.Run("MaxHandshakesPerIP", func(t *testing.T) {
		p := newProbe("tls-per-ip")
		h, _ := startTLSServer(t, wsframework.Config{MaxHandshakesPerIP: 1, HandshakeTimeout: time.Minute},
			map[string]*sdk.Entry{"/ws": p.entry}, nil)
		a := h.stallHandshake(t, "a", "")
		h.waitHandshakes(t, 1, ioTimeout)

		nc, err := net.DialTimeout("tcp", h.addr, ioTimeout)
		require.NoError(t, err)
		defer nc.Close()
		tc := tls.Client(nc, h.clientTLS)
		require.NoError(t, tc.SetDeadline(time.Now().Add(ioTimeout)))
		err = tc.Handshake()
		require.Error(t, err, "a client over the per-IP cap got a TLS handshake")
		require.False(t, isTimeout(err), "a client over the per-IP cap is still connected")
		require.EqualValues(t, 1, h.srv.Stats().RejectedHandshakeIP)

		c, err := h.connect(t, "/ws?tag=other-ip", dialOpts{localIP: "127.0.0.2"})
		require.NoError(t, err)
		c.echo(t, ws.OpText, []byte("other ip"))
		a.finish(t)
	})

	t.Run("MaxHeaderBytes", func(t *testing.T) {
		p := newProbe("tls-header-bytes")
		h, _ := startTLSServer(t, wsframework.Config{MaxHeaderBytes: 1000}, map[string]*sdk.Entry{"/ws": p.entry},
			map[string]http.Handler{"/info": tlsInfo})
		nc, br := h.rawConn(t)
		upgradeOn(t, nc, br, []byte(headOfSize(t, "/ws?tag=at", upgradeHead, 1000))).echo(t, ws.OpText, []byte("at the cap"))

		for _, head := range []string{headOfSize(t, "/ws?tag=over", upgradeHead, 1001), headOfSize(t, "/info", "", 1001)} {
			nc, br := h.rawConn(t)
			_, err := io.WriteString(nc, head)
			require.NoError(t, err)
			resp, _ := readResponse(t, br)
			require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)
			require.True(t, resp.Close)
		}
		require.EqualValues(t, 2, h.srv.Stats().RejectedHeaderBytes)
	})
}

// TestTLSPlainClient: a client that speaks plain HTTP to a TLS listener
// fails its TLS handshake (counted) and is told so in plain HTTP, as
// net/http does; the server serves on.
func TestTLSPlainClient(t *testing.T) {
	p := newProbe("tls-plain-client")
	h, _ := startTLSServer(t, wsframework.Config{}, map[string]*sdk.Entry{"/ws": p.entry}, nil)
	nc, err := net.DialTimeout("tcp", h.addr, ioTimeout)
	require.NoError(t, err)
	defer nc.Close()
	require.NoError(t, nc.SetDeadline(time.Now().Add(ioTimeout)))
	_, err = io.WriteString(nc, "GET /ws HTTP/1.1\r\nHost: x\r\n"+upgradeHead+"\r\n")
	require.NoError(t, err)
	resp, body := readResponse(t, bufio.NewReader(nc))
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Equal(t, "Client sent an HTTP request to an HTTPS server.\n", body)
	require.Eventually(t, func() bool { return h.srv.Stats().TLSHandshakeErrors == 1 }, ioTimeout, time.Millisecond)
	h.dial(t, "/ws?tag=after").echo(t, ws.OpText, []byte("still serving"))
}
