package remote_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/internal/remote"
	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/sdk/serve"
	"github.com/strandws/strand/wsframework"
)

const ioTimeout = 10 * time.Second

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// sockPath returns a short Unix socket path (sun_path holds 108 bytes) in
// a directory removed after the test.
func sockPath(t testing.TB) string {
	dir, err := os.MkdirTemp("", "strs")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return filepath.Join(dir, "p.sock")
}

// env is a Host listening on a Unix socket (every accepted connection is
// attached in turn), a wsframework.Server with the proxy mounted, and
// optionally the plugin side served by sdk/serve in this process.
type env struct {
	t      testing.TB
	host   *remote.Host
	srv    *wsframework.Server
	addr   string
	sock   string
	ln     net.Listener
	ends   chan error // each Attach's result
	wg     sync.WaitGroup
	plugin *sdk.Plugin
	popts  serve.Options

	pmu     sync.Mutex
	pcancel context.CancelFunc
	pdone   chan error
}

type envOpts struct {
	cfg      remote.Config
	routes   map[string]string // pattern -> entry name
	srvCfg   wsframework.Config
	noPlugin bool                    // do not start the plugin side
	terminal map[string]http.Handler // pattern -> terminal handler of the route
	serve    serve.Options
}

func startEnv(t testing.TB, p *sdk.Plugin, o envOpts) *env {
	t.Helper()
	if o.cfg.Name == "" {
		o.cfg.Name = p.Name()
	}
	if o.cfg.Logger == nil {
		o.cfg.Logger = quiet()
	}
	if o.serve.Logger == nil {
		o.serve.Logger = quiet()
	}
	h, err := remote.New(o.cfg)
	require.NoError(t, err)
	e := &env{t: t, host: h, sock: sockPath(t), ends: make(chan error, 16), plugin: p, popts: o.serve}
	e.ln, err = net.Listen("unix", e.sock)
	require.NoError(t, err)
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := e.ln.Accept()
			if err != nil {
				return
			}
			err = h.Attach(context.Background(), c)
			select {
			case e.ends <- err:
			default:
			}
		}
	}()
	t.Cleanup(e.close)
	if o.noPlugin {
		return e
	}
	e.startPlugin()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	proxy, err := h.Plugin(ctx)
	require.NoError(t, err)
	e.serveHTTP(proxy, o)
	return e
}

// serveHTTP starts the wsframework.Server with the proxy's entries.
func (e *env) serveHTTP(proxy *sdk.Plugin, o envOpts) {
	t := e.t
	cfg := o.srvCfg
	if cfg.Logger == nil {
		cfg.Logger = quiet()
	}
	srv, err := wsframework.New(cfg)
	require.NoError(t, err)
	for pattern, name := range o.routes {
		en, ok := proxy.Lookup(name)
		require.True(t, ok, name)
		require.NoError(t, srv.Route(pattern, o.terminal[pattern], en))
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	e.srv, e.addr = srv, l.Addr().String()
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		_ = srv.Serve(l)
	}()
}

// startPlugin serves the plugin side (sdk/serve.Dial) in this process.
func (e *env) startPlugin() {
	e.pmu.Lock()
	defer e.pmu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	e.pcancel, e.pdone = cancel, done
	go func() { done <- serve.DialWith(ctx, e.plugin, e.sock, e.popts) }()
}

// stopPlugin ends the plugin side and returns Dial's result.
func (e *env) stopPlugin() error {
	e.pmu.Lock()
	cancel, done := e.pcancel, e.pdone
	e.pcancel, e.pdone = nil, nil
	e.pmu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case err := <-done:
		return err
	case <-time.After(ioTimeout):
		e.t.Errorf("serve.Dial did not return")
		return nil
	}
}

// waitEnd returns the next Attach result.
func (e *env) waitEnd() error {
	e.t.Helper()
	select {
	case err := <-e.ends:
		return err
	case <-time.After(ioTimeout):
		e.t.Fatalf("the session did not end")
		return nil
	}
}

// waitUp waits until a session is up.
func (e *env) waitUp() {
	e.t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for !e.host.Up() {
		if time.Now().After(deadline) {
			e.t.Fatalf("no session came up")
		}
		time.Sleep(time.Millisecond)
	}
}

func (e *env) close() {
	if e.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		assert.NoError(e.t, e.srv.Shutdown(ctx))
		cancel()
	}
	_ = e.stopPlugin()
	_ = e.ln.Close()
	assert.NoError(e.t, e.host.Close())
	e.wg.Wait()
}

// client is a minimal WebSocket client.
type client struct {
	nc net.Conn
	br *bufio.Reader
}

func (e *env) dial(t testing.TB, path string) *client {
	t.Helper()
	c, err := e.connect(path, nil)
	require.NoError(t, err)
	return c
}

func (e *env) connect(path string, hdr map[string][]string) (*client, error) {
	d := ws.Dialer{Timeout: ioTimeout}
	if hdr != nil {
		d.Header = ws.HandshakeHeaderHTTP(hdr)
	}
	c, _, err := e.connectWith(d, path)
	return c, err
}

// dialDeflate upgrades on path offering permessage-deflate (wsflate's
// defaults: no context takeover) and fails t unless the server accepted it.
func (e *env) dialDeflate(t testing.TB, path string) *client {
	t.Helper()
	c, hs, err := e.connectWith(ws.Dialer{Timeout: ioTimeout, Extensions: []httphead.Option{wsflate.DefaultParameters.Option()}}, path)
	require.NoError(t, err)
	require.Len(t, hs.Extensions, 1, "permessage-deflate not negotiated")
	require.Equal(t, wsflate.ExtensionName, string(hs.Extensions[0].Name))
	return c
}

func (e *env) connectWith(d ws.Dialer, path string) (*client, ws.Handshake, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	nc, br, hs, err := d.Dial(ctx, "ws://"+e.addr+path)
	if err != nil {
		if nc != nil {
			_ = nc.Close()
		}
		return nil, hs, err
	}
	if br == nil {
		br = bufio.NewReader(nc)
	}
	c := &client{nc: nc, br: br}
	e.t.Cleanup(func() { _ = nc.Close() })
	return c, hs, nil
}

// writeFrame writes one masked frame.
func (c *client) writeFrame(op ws.OpCode, fin bool, payload []byte) error {
	h := ws.Header{Fin: fin, OpCode: op, Masked: true, Length: int64(len(payload)), Mask: ws.NewMask()}
	buf := make([]byte, 0, ws.MaxHeaderSize+len(payload))
	w := &sliceWriter{b: buf}
	if err := ws.WriteHeader(w, h); err != nil {
		return err
	}
	start := len(w.b)
	w.b = append(w.b, payload...)
	ws.Cipher(w.b[start:], h.Mask, 0)
	_ = c.nc.SetWriteDeadline(time.Now().Add(ioTimeout))
	_, err := c.nc.Write(w.b)
	return err
}

func (c *client) send(op ws.OpCode, payload []byte) error { return c.writeFrame(op, true, payload) }

// sendFragmented writes one message in n fragments.
func (c *client) sendFragmented(op ws.OpCode, payload []byte, n int) error {
	if n < 2 || len(payload) < n {
		return c.send(op, payload)
	}
	step := len(payload) / n
	for i := range n {
		lo, hi := i*step, (i+1)*step
		if i == n-1 {
			hi = len(payload)
		}
		fop := ws.OpContinuation
		if i == 0 {
			fop = op
		}
		if err := c.writeFrame(fop, i == n-1, payload[lo:hi]); err != nil {
			return err
		}
	}
	return nil
}

type wsFrame struct {
	op      ws.OpCode
	rsv     byte // the RSV bits; RSV1 set: a compressed message (payload as sent)
	payload []byte
}

// read reads the next data message or close frame (pings are skipped).
func (c *client) read(timeout time.Duration) (wsFrame, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(timeout))
	for {
		h, err := ws.ReadHeader(c.br)
		if err != nil {
			return wsFrame{}, err
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(c.br, p); err != nil {
			return wsFrame{}, err
		}
		if h.OpCode == ws.OpPing || h.OpCode == ws.OpPong {
			continue
		}
		return wsFrame{op: h.OpCode, rsv: h.Rsv, payload: p}, nil
	}
}

// closeCode reads until a close frame and returns its code.
func (c *client) closeCode(t testing.TB) sdk.CloseCode {
	t.Helper()
	for {
		f, err := c.read(ioTimeout)
		if err != nil {
			t.Fatalf("no close frame: %v", err)
		}
		if f.op == ws.OpClose {
			_ = c.send(ws.OpClose, f.payload) // answer, as a client does
			if len(f.payload) < 2 {
				return sdk.CloseNoStatus
			}
			return sdk.CloseCode(uint16(f.payload[0])<<8 | uint16(f.payload[1]))
		}
	}
}

type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// lines is a slog.Handler that keeps every record's message and
// attributes (those of With first), for tests of log lines.
type lines struct {
	attrs []slog.Attr
	mu    *sync.Mutex
	kept  *[]logLine
}

// logLine is one kept record: its message, and its attributes in order.
type logLine struct {
	msg   string
	keys  []string
	attrs map[string]string
}

func newLines() *lines { return &lines{mu: new(sync.Mutex), kept: new([]logLine)} }

func (l *lines) Enabled(context.Context, slog.Level) bool { return true }
func (l *lines) WithGroup(string) slog.Handler            { return l }
func (l *lines) WithAttrs(as []slog.Attr) slog.Handler {
	c := *l
	c.attrs = append(append([]slog.Attr(nil), l.attrs...), as...)
	return &c
}

func (l *lines) Handle(_ context.Context, r slog.Record) error {
	line := logLine{msg: r.Message, attrs: map[string]string{}}
	add := func(a slog.Attr) bool {
		line.keys = append(line.keys, a.Key)
		line.attrs[a.Key] = a.Value.String()
		return true
	}
	for _, a := range l.attrs {
		add(a)
	}
	r.Attrs(add)
	l.mu.Lock()
	*l.kept = append(*l.kept, line)
	l.mu.Unlock()
	return nil
}

// wait returns the first line with msg, waiting up to ioTimeout for it.
func (l *lines) wait(t testing.TB, msg string) logLine {
	t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for {
		l.mu.Lock()
		for _, line := range *l.kept {
			if line.msg == msg {
				l.mu.Unlock()
				return line
			}
		}
		l.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no %q line", msg)
		}
		time.Sleep(time.Millisecond)
	}
}

// requireConnAttrs checks that line carries conn (non-empty), route and
// plugin.
func requireConnAttrs(t testing.TB, line logLine, route, plugin string) {
	t.Helper()
	for _, k := range []string{"conn", "route", "plugin"} {
		require.Contains(t, line.keys, k, "%s: attributes %v", line.msg, line.keys)
	}
	require.NotEmpty(t, line.attrs["conn"], line.msg)
	require.Equal(t, route, line.attrs["route"], line.msg)
	require.Equal(t, plugin, line.attrs["plugin"], line.msg)
}
