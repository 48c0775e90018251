package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strandws/strand/internal/core"
	"github.com/strandws/strand/internal/pluglink"
	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/sdk/frame"
)

// upgradeKey is the per-request value the proxy's request filter sets when
// the plugin upgrades: the phase call's ID, which the open event carries so
// that the plugin finds the handlers and values its filter chose.
const upgradeKey = "strand.remote.upgrade"

// Host is the host's end of one configured out-of-process plugin. It serves
// one session (one plugin connection) at a time; a session that ends (the
// plugin crashed, was killed, stopped answering pings, or sent a bad frame)
// can be followed by another Attach, and the proxy plugin serves again.
type Host struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	attached bool
	closed   bool
	plugin   *sdk.Plugin       // the proxy, made at the first handshake
	decl     []frame.EntryDecl // the first hello's entries: fixed from then on
	ready    chan struct{}     // closed when plugin is set

	live    atomic.Pointer[session] // the session past its handshake, or nil
	calls   atomic.Uint64           // phase call IDs, never reused
	headers *frame.HeaderCache

	ctx    context.Context // cancelled by Close: ends every session
	cancel context.CancelFunc
	wg     sync.WaitGroup // Attach calls in progress
}

// New returns a Host for the plugin cfg describes.
func New(cfg Config) (*Host, error) {
	if cfg.Name == "" {
		return nil, errors.New("remote: Config.Name is empty")
	}
	switch {
	case cfg.MaxFrameSize < 0 || cfg.HandshakeTimeout < 0 || cfg.PingInterval < 0 || cfg.PingTimeout < 0 || cfg.CallTimeout < 0:
		return nil, errors.New("remote: negative Config value")
	}
	if cfg.MaxFrameSize == 0 {
		cfg.MaxFrameSize = DefaultMaxFrameSize
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.PingInterval == 0 {
		cfg.PingInterval = DefaultPingInterval
	}
	if cfg.PingTimeout == 0 {
		cfg.PingTimeout = DefaultPingTimeout
	}
	if cfg.CallTimeout == 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	hc, err := frame.NewHeaderCache(frame.HeaderCacheConfig{})
	if err != nil {
		return nil, err
	}
	h := &Host{cfg: cfg, log: log.With("plugin", cfg.Name), ready: make(chan struct{}), headers: hc}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	return h, nil
}

// Attach performs the handshake on conn and runs the session until it
// ends; it returns why it ended (io.EOF when the plugin closed, a
// *HandshakeError, ErrPingTimeout, a malformed-frame error, ctx.Err()). At
// most one session at a time: a second concurrent Attach returns ErrBusy at
// once. Attach closes conn before returning.
func (h *Host) Attach(ctx context.Context, conn net.Conn) error {
	h.mu.Lock()
	switch {
	case h.closed:
		h.mu.Unlock()
		_ = conn.Close()
		return ErrClosed
	case h.attached:
		h.mu.Unlock()
		_ = conn.Close()
		return ErrBusy
	}
	h.attached = true
	h.wg.Add(1)
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.attached = false
		h.mu.Unlock()
		h.wg.Done()
	}()

	link, err := pluglink.New(conn, pluglink.Config{MaxFrameSize: h.cfg.MaxFrameSize})
	if err != nil {
		_ = conn.Close()
		return err
	}
	// The context ends the session at any point, the handshake included.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(h.ctx, cancel)
	defer stop()
	stopLink := context.AfterFunc(ctx, func() { _ = link.Close() })
	defer stopLink()

	s, err := h.handshake(ctx, link)
	if err != nil {
		_ = link.Close()
		if ctx.Err() != nil && !isHandshake(err) {
			return ctx.Err()
		}
		return err
	}
	h.log.Info("strand: plugin session up")
	err = s.run(ctx)
	if ctx.Err() != nil && (errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) || errors.Is(err, ErrSessionClosed)) {
		err = ctx.Err()
	}
	h.log.Warn("strand: plugin session ended", "err", err)
	return err
}

func isHandshake(err error) bool {
	var he *HandshakeError
	return errors.As(err, &he)
}

// ErrSessionClosed is what a session that the host itself ended reports
// when nothing more specific is known.
var ErrSessionClosed = errors.New("remote: session closed")

// handshake reads the plugin's hello and accepts or refuses it.
func (h *Host) handshake(ctx context.Context, link *pluglink.Link) (*session, error) {
	conn := link.Conn()
	_ = conn.SetReadDeadline(time.Now().Add(h.cfg.HandshakeTimeout))
	v, err := link.Next()
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, fmt.Errorf("remote: no hello within %v", h.cfg.HandshakeTimeout)
		}
		return nil, fmt.Errorf("remote: reading the hello: %w", err)
	}
	hs, hasHS := v.Handshake()
	hello, hasHello := v.Hello()
	switch {
	case v.Kind() != frame.KindHandshake || !hasHS || v.Method() != frame.MethodHello || !hasHello:
		return nil, h.refuse(link, fmt.Sprintf("first frame is not a hello (kind %v, method %v)", v.Kind(), v.Method()))
	case hs.Magic != frame.Magic:
		return nil, h.refuse(link, fmt.Sprintf("bad magic %#x, want %#x", hs.Magic, frame.Magic))
	case hs.ABIMajor != frame.ABIMajor:
		return nil, h.refuse(link, fmt.Sprintf("plugin speaks ABI %d.%d, host %d.%d", hs.ABIMajor, hs.ABIMinor, frame.ABIMajor, frame.ABIMinor))
	case string(hello.PluginName()) != h.cfg.Name:
		return nil, h.refuse(link, fmt.Sprintf("plugin calls itself %q, the configuration expects %q", hello.PluginName(), h.cfg.Name))
	}
	decl := make([]frame.EntryDecl, hello.NumEntries())
	seen := make(map[string]bool, len(decl))
	for i := range decl {
		name, phases := hello.Entry(i)
		decl[i] = frame.EntryDecl{Name: string(name), Phases: phases}
		if decl[i].Name == "" || seen[decl[i].Name] {
			return nil, h.refuse(link, fmt.Sprintf("entry %d: empty or repeated name %q", i, decl[i].Name))
		}
		if phases&^(pluglink.BitRequestFilter|pluglink.BitResponse|pluglink.BitBody|pluglink.BitLogging|pluglink.BitWebSocket) != 0 {
			return nil, h.refuse(link, fmt.Sprintf("entry %q: unknown phase bits %#x", decl[i].Name, phases))
		}
		seen[decl[i].Name] = true
	}
	credits := hello.InitialCredits()
	if credits == 0 {
		return nil, h.refuse(link, "the hello grants no credits")
	}
	peerMax := int(hello.MaxFrameSize())

	h.mu.Lock()
	first := h.decl == nil
	if first {
		h.decl = decl
		h.plugin = h.newProxy(decl)
	} else if why := sameEntries(h.decl, decl); why != "" {
		h.mu.Unlock()
		return nil, h.refuse(link, "entries changed since the first session: "+why+"; restart the host to change them")
	}
	h.mu.Unlock()

	link.SetPeerMax(peerMax)
	s := newSession(h, link, credits)
	err = link.Send(&frame.Frame{
		Kind: frame.KindHandshake, Method: frame.MethodAccept,
		Handshake: &frame.Handshake{Magic: frame.Magic, ABIMajor: frame.ABIMajor, ABIMinor: frame.ABIMinor},
		Hello:     &frame.Hello{PluginName: h.cfg.Name, MaxFrameSize: uint32(h.cfg.MaxFrameSize)},
		Payload:   h.cfg.Settings,
	})
	if err != nil {
		return nil, fmt.Errorf("remote: sending the accept: %w", err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	// Live before the proxy is handed out: its first event finds it.
	h.live.Store(s)
	if first {
		close(h.ready)
	}
	return s, nil
}

// refuse sends a refusal with reason and returns it as a *HandshakeError.
func (h *Host) refuse(link *pluglink.Link, reason string) error {
	_ = link.Conn().SetWriteDeadline(time.Now().Add(time.Second))
	if link.Send(&frame.Frame{
		Kind: frame.KindHandshake, Method: frame.MethodRefuse, Error: reason,
		Handshake: &frame.Handshake{Magic: frame.Magic, ABIMajor: frame.ABIMajor, ABIMinor: frame.ABIMinor},
	}) == nil {
		link.Flush()
	}
	h.log.Error("strand: plugin refused", "reason", reason)
	return &HandshakeError{Reason: reason}
}

// sameEntries returns why b differs from a, or "".
func sameEntries(a, b []frame.EntryDecl) string {
	m := make(map[string]uint8, len(a))
	for _, e := range a {
		m[e.Name] = e.Phases
	}
	for _, e := range b {
		p, ok := m[e.Name]
		if !ok {
			return fmt.Sprintf("new entry %q", e.Name)
		}
		if p != e.Phases {
			return fmt.Sprintf("entry %q handles phases %#x, was %#x", e.Name, e.Phases, p)
		}
		delete(m, e.Name)
	}
	for name := range m {
		return fmt.Sprintf("entry %q is gone", name)
	}
	return ""
}

// Plugin returns the proxy plugin to mount on routes. It exists after the
// first successful handshake; Plugin blocks until then or until ctx is done.
func (h *Host) Plugin(ctx context.Context) (*sdk.Plugin, error) {
	select {
	case <-h.ready:
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.plugin, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-h.ctx.Done():
		return nil, ErrClosed
	}
}

// HeaderCacheStats returns the counters of the cache that the host encodes
// request snapshots' headers with (phase events and WebSocket open events
// that carry the request), for metrics.
func (h *Host) HeaderCacheStats() frame.HeaderCacheStats { return h.headers.Stats() }

// Up reports whether a session is attached and past its handshake.
func (h *Host) Up() bool { return h.live.Load() != nil }

// Ping sends the attached plugin a ping and waits for its pong: one round
// trip through the socket and both sides' readers, without any handler.
// It returns ErrSessionClosed when no session is up.
func (h *Host) Ping(ctx context.Context) error {
	s := h.live.Load()
	if s == nil {
		return ErrSessionClosed
	}
	return s.ping(ctx)
}

// Goodbye asks the attached plugin, if any, to finish and exit: it stops
// taking new events, answers what it has, and closes. It does not wait.
func (h *Host) Goodbye() {
	if s := h.live.Load(); s != nil {
		_ = s.link.Send(&frame.Frame{Kind: frame.KindCall, Method: frame.MethodGoodbye})
	}
}

// Close ends any session, closes the proxy's WebSocket connections with
// 1012 and stops every goroutine of the Host. Idempotent.
func (h *Host) Close() error {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.cancel()
	h.wg.Wait()
	return nil
}

// phaseDown answers a phase while no session is up: 502, or Next when the
// plugin is configured fail-open.
func (h *Host) failRequest(c *core.RequestContext, why string) {
	if h.cfg.FailOpen {
		c.Next()
		return
	}
	c.Reject(502, "plugin "+h.cfg.Name+" unavailable: "+why+"\n")
}

func (h *Host) failResponse(c *core.ResponseContext) {
	if !h.cfg.FailOpen {
		c.SetStatus(502)
	}
	c.Next()
}

func (h *Host) failBody(c *core.BodyContext, why string) {
	if !h.cfg.FailOpen {
		c.SetStatus(502)
		c.SetHeader("Content-Type", "text/plain; charset=utf-8")
		c.SetBody([]byte("plugin " + h.cfg.Name + " unavailable: " + why + "\n"))
	}
	c.Next()
}
