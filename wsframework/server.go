package wsframework

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/puzpuzpuz/xsync/v3"

	"github.com/strandws/strand/internal/clock"
	"github.com/strandws/strand/internal/core"
	"github.com/strandws/strand/internal/netpoll"
	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/wsframework/internal/wsproto"
)

// Errors returned by the Server.
var (
	// ErrServerClosed is returned by Serve and ListenAndServe after
	// Shutdown or Close.
	ErrServerClosed = errors.New("wsframework: server closed")
)

// Server serves HTTP and WebSocket for the plugin entries routed on it. It is
// an http.Handler, so it can be mounted in any Go server, and it can run its
// own with ListenAndServe or Serve. Create with New.
type Server struct {
	cfg Config
	mux *http.ServeMux

	mu        sync.Mutex // guards runtimes, acceptors, draining, connWG.Add and acceptWG.Add
	runtimes  map[*core.Plugin]*core.Runtime
	acceptors []*acceptor // one per Serve (accept.go)
	draining  bool
	connWG    sync.WaitGroup // one per WebSocket connection
	acceptWG  sync.WaitGroup // the acceptors' goroutines: http.Servers and handshakes
	httpWG    sync.WaitGroup // http.Server shutdowns in flight

	// The accept path's pooled buffers: *bufio.Reader (acceptReaderSize)
	// and *bufio.Writer (acceptWriterSize).
	readers sync.Pool
	writers sync.Pool
	// Connections on the accept path in their head read, every acceptor's
	// (handshakes.go).
	handshakes *handshakeList

	conns  *xsync.MapOf[uint64, *conn]
	perIP  *xsync.MapOf[string, int]
	open   atomic.Int64
	nextID atomic.Uint64

	// hardCtx ends when Shutdown's deadline passed or Close was called:
	// readers blocked on a full dispatcher give up then.
	hardCtx    context.Context
	hardCancel context.CancelFunc

	shutdownOnce sync.Once
	closeErr     error

	batches sync.Pool // *writeBatch

	rooms *hub // rooms and their adapter (rooms.go)

	phaseDeadlines *deadlines
	proxies        trustedProxies

	// The poll reader's loops (read_poll.go), started on first use.
	pollMu   sync.Mutex // guards the fields below
	poller   *netpoll.Poller
	pollErr  error // the poller could not start: read with goroutines
	pollDone bool  // stopped by Shutdown

	// clock is the source of every deadline: monotonic, replaced by a
	// manual clock in tests (before the Server serves).
	clock  *clock.Clock
	limits wsproto.Limits // every connection's frame parser's
	// parsers holds frame parsers not in use: a poll-read connection takes
	// one only while it reads (conn.takeParser), so an idle one holds none.
	parsers  sync.Pool
	deflater *deflater // compresses what is sent (compress.go)
	hooks    testHooks

	stats serverCounters

	health  health         // readiness checks and liveness (health.go)
	metrics *serverMetrics // Config.Metrics (metrics.go); nil: none
}

// testHooks let tests see or disturb a connection's reading; all nil
// outside tests.
type testHooks struct {
	event func(c *conn, ev *wsproto.Event) // a parser event, before the reader handles it
	write func(c *conn, v net.Buffers)     // a writer run's frames, before they are written
	// pollRead, if set, is read by poll-read connections without a socket
	// (pollState.hd nil) instead of it; arming and timers are then no-ops.
	pollRead func(c *conn, b []byte) (int, error)
}

type serverCounters struct {
	accepted       atomic.Uint64
	polled         atomic.Uint64
	tls            atomic.Uint64 // of accepted, over TLS
	rejectedOrigin atomic.Uint64
	rejectedCap    atomic.Uint64
	rejectedIP     atomic.Uint64
	messagesIn     atomic.Uint64
	messagesOut    atomic.Uint64
	compressed     atomic.Uint64 // handshakes that negotiated permessage-deflate
	messagesInZ    atomic.Uint64 // compressed messages inflated (counted by the parsers)
	messagesOutZ   atomic.Uint64 // data messages written compressed
	dropped        atomic.Uint64 // queued outgoing messages dropped on close
	sendsTooBig    atomic.Uint64 // outgoing messages refused with sdk.ErrTooBig
	phaseTimeouts  atomic.Uint64
	phasePanics    atomic.Uint64
	phaseRejected  atomic.Uint64
	phaseStuck     atomic.Uint64
	failOpenSkips  atomic.Uint64
	bodyTooLarge   atomic.Uint64
	bodyPassed     atomic.Uint64 // bodies over MaxBodyFilterBytes passed through unfiltered (fail open)
	bodyRefused    atomic.Uint64 // bodies over MaxBodyFilterBytes answered 502 (fail closed)
	panics         atomic.Uint64 // panics in a connection's reader or writer
	closes         reasonCounters

	// The accept path's limits (accept.go, handshakes.go).
	handshakesEvicted   atomic.Uint64
	rejectedHandshakeIP atomic.Uint64
	rejectedHeaderBytes atomic.Uint64
	tlsHandshakeErrors  atomic.Uint64
}

// Stats are a Server's counters.
type Stats struct {
	Open           int64             // WebSocket connections open now
	Accepted       uint64            // handshakes completed
	Polled         uint64            // connections read by the poll reader (ReaderPoll), of Accepted
	TLS            uint64            // connections over TLS, of Accepted: read by a reader goroutine in every mode
	RejectedOrigin uint64            // 403: Origin not allowed
	RejectedCap    uint64            // 503: MaxConns reached or shutting down
	RejectedIP     uint64            // 429: MaxConnsPerIP reached
	MessagesIn     uint64            // messages read from clients
	MessagesOut    uint64            // data messages written to clients
	Dropped        uint64            // queued outgoing messages released unsent because their connection closed
	SendsTooBig    uint64            // outgoing messages refused with sdk.ErrTooBig, over WriteQueueBytes alone (see Config)
	Closes         map[string]uint64 // connections closed, by CloseReason name
	Panics         uint64            // panics while reading or writing a connection (each closed it with 1011)

	// permessage-deflate (Config.Compression).
	Compressed            uint64 // of Accepted, handshakes that negotiated it
	MessagesInCompressed  uint64 // messages that arrived compressed and were inflated (each in MessagesIn too, unless it came after the server's close frame)
	MessagesOutCompressed uint64 // of MessagesOut, data messages written compressed

	// Serve's accept path, before a request is read whole.
	Handshakes          int64  // connections whose request head is being read now
	HandshakesEvicted   uint64 // of those, closed unread to make room under MaxHandshakes
	RejectedHandshakeIP uint64 // 503: MaxHandshakesPerIP reached
	RejectedHeaderBytes uint64 // 431: a request head over MaxHeaderBytes
	TLSHandshakeErrors  uint64 // TLS handshakes that failed (or timed out) on the accept path

	PhaseTimeouts uint64 // phase handlers that did not decide within PhaseTimeout
	PhasePanics   uint64 // phase handlers that panicked
	PhaseRejected uint64 // phases the runtime's pool refused (503)
	PhaseStuck    uint64 // handlers still running when their phase timed out
	FailOpenSkips uint64 // plugins skipped by their fail-open policy
	BodyTooLarge  uint64 // request bodies over MaxRequestBodyBytes (413)
	BodyPassed    uint64 // answers over MaxBodyFilterBytes passed through unfiltered
	BodyRefused   uint64 // answers over MaxBodyFilterBytes refused with 502
}

// New returns a Server configured by cfg.
func New(cfg Config) (*Server, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	proxies, err := parseTrustedProxies(c.TrustedProxies)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      c,
		mux:      http.NewServeMux(),
		runtimes: make(map[*core.Plugin]*core.Runtime),
		conns:    xsync.NewMapOf[uint64, *conn](),
		perIP:    xsync.NewMapOf[string, int](),
		proxies:  proxies,
	}
	s.clock = clock.New()
	s.limits = wsproto.Limits{MaxMessage: c.MaxMessageBytes, MaxFragments: c.MaxFragments, Buffers: c.Buffers, Inflated: &s.stats.messagesInZ, Inflaters: wsproto.NewInflaters()}
	s.deflater = newDeflater(c.Compression.Level, c.Buffers)
	s.handshakes = newHandshakeList(c.MaxHandshakes, c.MaxHandshakesPerIP, &s.stats)
	s.phaseDeadlines = newDeadlines(c.PhaseTimeout, s.clock)
	s.hardCtx, s.hardCancel = context.WithCancel(context.Background())
	s.batches.New = func() any { return new(writeBatch) }
	s.readers.New = func() any { return bufio.NewReaderSize(nil, acceptReaderSize) }
	s.writers.New = func() any { return bufio.NewWriterSize(nil, acceptWriterSize) }
	if c.Metrics != nil {
		if s.metrics, err = newServerMetrics(s, c.Metrics); err != nil {
			return nil, fmt.Errorf("wsframework: Config.Metrics: %w", err)
		}
	}
	if s.rooms, err = newHub(s, c.Adapter); err != nil {
		s.metrics.unregister()
		return nil, err
	}
	return s, nil
}

// Route mounts entries on pattern (net/http ServeMux syntax, such as
// "/chat/{room}"; wildcards become the request's Params). The entries' request
// filters run in order; the entry that upgrades owns the WebSocket. A
// request that every entry lets through goes to terminal, or gets 404 when
// terminal is nil. It is RouteWith with the zero RouteOptions.
//
// Mistakes fail here, with an error that names them: an entry with no
// handler (a misspelled or never registered name), WebSocket handlers that
// set both OnMessage and OnText or OnBinary, and a second plugin with the
// name of one already routed.
func (s *Server) Route(pattern string, terminal http.Handler, entries ...*sdk.Entry) error {
	return s.RouteWith(pattern, RouteOptions{}, terminal, entries...)
}

// RouteOptions are settings of one route that differ from the Server's
// (RouteWith). The zero value changes nothing.
type RouteOptions struct {
	// NoCompression declines permessage-deflate on the route's upgrades,
	// whatever Config.Compression says: for a route whose messages do
	// not compress (already compressed media), or that mixes secrets with
	// data a client controls in one message (compressed sizes can leak
	// such secrets, as in the CRIME and BREACH attacks).
	NoCompression bool
}

// RouteWith is Route with options for this route.
func (s *Server) RouteWith(pattern string, opts RouteOptions, terminal http.Handler, entries ...*sdk.Entry) (err error) {
	if len(entries) == 0 && terminal == nil {
		return fmt.Errorf("wsframework: Route %q: no entries and no terminal", pattern)
	}
	rt := &route{srv: s, pattern: pattern, terminal: terminal, compress: !opts.NoCompression && !s.cfg.Compression.Disabled}
	for _, se := range entries {
		if se == nil {
			return fmt.Errorf("wsframework: Route %q: nil entry", pattern)
		}
		e := (*core.Entry)(se)
		if err := e.Validate(); err != nil {
			return fmt.Errorf("wsframework: Route %q: %w", pattern, err)
		}
		r, err := s.runtimeFor(e.Plugin())
		if err != nil {
			return err
		}
		rt.chain = append(rt.chain, routeEntry{entry: e, rt: r})
	}
	rt.init()
	defer func() {
		if v := recover(); v != nil { // ServeMux panics on a bad or duplicate pattern
			err = fmt.Errorf("wsframework: Route %q: %v", pattern, v)
		}
	}()
	s.mux.Handle(pattern, rt)
	s.metrics.addRoute(rt.metrics)
	for _, re := range rt.chain {
		re.entry.Mount() // registering a handler now panics
	}
	return nil
}

// Handle mounts a plain http.Handler on pattern (such as a health check).
func (s *Server) Handle(pattern string, h http.Handler) error {
	return s.Route(pattern, h)
}

func (s *Server) runtimeFor(p *core.Plugin) (*core.Runtime, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return nil, ErrServerClosed
	}
	if r, ok := s.runtimes[p]; ok {
		return r, nil
	}
	for other := range s.runtimes {
		if other.Name() == p.Name() {
			return nil, fmt.Errorf("wsframework: two plugins named %q: plugin names must be unique on a server", p.Name())
		}
	}
	r, err := core.NewRuntime(p, core.RuntimeConfig{
		Dispatcher:      s.cfg.Dispatcher,
		Phases:          s.cfg.Phases,
		Buffers:         s.cfg.Buffers,
		MaxPendingBytes: s.cfg.MaxPendingBytes,
		Logger:          s.cfg.Logger,
		Observer:        s.metrics.observer(p.Name()),
		ObserveEvery:    s.cfg.MetricsSampleEvery,
		ConnRoute:       s.connRoute,
	})
	if err != nil {
		return nil, fmt.Errorf("wsframework: plugin %q: %w", p.Name(), err)
	}
	s.runtimes[p] = r
	return r, nil
}

// ServeHTTP serves a request through the routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// ListenAndServe listens on the TCP address addr and calls Serve.
func (s *Server) ListenAndServe(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(l)
}

// Serve serves HTTP and WebSocket on l until Shutdown or Close, then returns
// ErrServerClosed; if l fails first, it returns l's error (connections
// already open are served on until Shutdown). It takes ownership of l.
//
// WebSocket handshakes are read and upgraded by Strand itself, with small
// pooled buffers; every other request is served by a net/http Server
// (accept.go). Connections that l returns as *tls.Conn (ServeTLS's, or a
// tls.NewListener of your own) have their TLS handshake run on the same
// path first, under the same limits.
func (s *Server) Serve(l net.Listener) error {
	a := newAcceptor(s, l, &s.acceptWG)
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		_ = l.Close()
		return ErrServerClosed
	}
	s.acceptors = append(s.acceptors, a)
	s.acceptWG.Add(1) // a's http.Server
	s.health.listening.Add(1)
	s.mu.Unlock()
	err := a.serve()
	s.health.listening.Add(-1)
	if err != nil {
		return err
	}
	return ErrServerClosed
}

// Shutdown stops the server gracefully: it stops accepting (listeners
// close, new handshakes get 503), sends 1001 to every WebSocket, lets queued
// events and writes drain, waits for every connection and handler to
// finish, and returns ctx.Err() if the deadline passes first (connections
// still open then are closed at once). Idempotent; a later call waits again.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() {
		s.mu.Lock()
		s.draining = true
		acceptors := s.acceptors
		s.mu.Unlock()
		for _, a := range acceptors {
			// Stop accepting and drop handshakes still reading their head;
			// the http.Server closes idle HTTP connections and waits for
			// active requests. WebSockets are ours to close below.
			a.close()
			s.httpWG.Go(func() { _ = a.hs.Shutdown(s.hardCtx) })
		}
		s.conns.Range(func(_ uint64, c *conn) bool {
			c.closeWith(ReasonShutdown, core.CloseGoingAway, "server shutting down")
			return true
		})
	})
	done := make(chan struct{})
	go func() {
		s.connWG.Wait()
		s.httpWG.Wait()
		s.acceptWG.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.abort()
		<-done
	}
	s.closePoller() // every connection is gone: no loop has work left
	s.phaseDeadlines.stop()
	var errs []error
	for _, r := range s.runtimesSnapshot() {
		errs = append(errs, r.Close(ctx))
	}
	errs = append(errs, s.rooms.close()) // after OnClose handlers, which may broadcast
	s.mu.Lock()
	for _, a := range s.acceptors {
		_ = a.hs.Close()
	}
	s.mu.Unlock()
	s.health.done.Store(true)
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.Join(errs...)
}

// Close closes the server at once: listeners, every connection (without
// waiting for close handshakes) and the runtimes. Idempotent.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Shutdown(ctx)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// abort drops every connection without waiting.
func (s *Server) abort() {
	s.hardCancel()
	s.conns.Range(func(_ uint64, c *conn) bool {
		c.abort()
		return true
	})
}

func (s *Server) runtimesSnapshot() []*core.Runtime {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*core.Runtime, 0, len(s.runtimes))
	for _, r := range s.runtimes {
		out = append(out, r)
	}
	return out
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	c := &s.stats
	return Stats{
		Open:           s.open.Load(),
		Accepted:       c.accepted.Load(),
		Polled:         c.polled.Load(),
		TLS:            c.tls.Load(),
		RejectedOrigin: c.rejectedOrigin.Load(),
		RejectedCap:    c.rejectedCap.Load(),
		RejectedIP:     c.rejectedIP.Load(),
		MessagesIn:     c.messagesIn.Load(),
		MessagesOut:    c.messagesOut.Load(),
		Dropped:        c.dropped.Load(),
		SendsTooBig:    c.sendsTooBig.Load(),
		Closes:         c.closes.snapshot(),
		Panics:         c.panics.Load(),
		PhaseTimeouts:  c.phaseTimeouts.Load(),
		PhasePanics:    c.phasePanics.Load(),
		PhaseRejected:  c.phaseRejected.Load(),
		PhaseStuck:     c.phaseStuck.Load(),
		FailOpenSkips:  c.failOpenSkips.Load(),
		BodyTooLarge:   c.bodyTooLarge.Load(),
		BodyPassed:     c.bodyPassed.Load(),
		BodyRefused:    c.bodyRefused.Load(),

		Compressed:            c.compressed.Load(),
		MessagesInCompressed:  c.messagesInZ.Load(),
		MessagesOutCompressed: c.messagesOutZ.Load(),

		Handshakes:          s.handshakes.len(),
		HandshakesEvicted:   c.handshakesEvicted.Load(),
		RejectedHandshakeIP: c.rejectedHandshakeIP.Load(),
		RejectedHeaderBytes: c.rejectedHeaderBytes.Load(),
		TLSHandshakeErrors:  c.tlsHandshakeErrors.Load(),
	}
}
