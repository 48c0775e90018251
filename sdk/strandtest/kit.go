package strandtest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strandws/strand/dispatcher"
	"github.com/strandws/strand/internal/core"
	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/sdk/bufpool"
)

// DefaultTimeout is how long helpers wait when Options.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// TB is the part of testing.TB the kit uses; *testing.T and *testing.B
// satisfy it.
type TB interface {
	Helper()
	Cleanup(func())
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// Options configure a Kit. The zero value is valid.
type Options struct {
	// Request is the handshake request Open uses. Nil means
	// NewRequest("/").
	Request *sdk.Request
	// Pattern is the route pattern the entry is mounted on, in net/http
	// ServeMux syntax ("/rooms/{room}"), as given to a server's Route: a
	// request's Params are its wildcards' values, and a request whose path
	// does not match is answered 404 before the filter runs, as a server
	// answers it. Empty means "/" (every path, no Params).
	Pattern string
	// RequestBody is the body a request filter's ReadBody gets. A body
	// over MaxRequestBodyBytes makes ReadBody fail and the request is
	// answered 413, as on a server.
	RequestBody []byte
	// MaxRequestBodyBytes is the server's Config.MaxRequestBodyBytes. Zero
	// means 1 MiB, the server's default.
	MaxRequestBodyBytes int64
	// MaxPendingBytes bounds a connection's inbound bytes handed to the
	// plugin but not yet handled, as the server's Config.MaxPendingBytes
	// does: beyond it Conn.Send blocks until handlers catch up (a server
	// stops reading the socket). Zero means 4 MiB, the server's default;
	// negative means no bound.
	MaxPendingBytes int64
	// Values are the per-request values present before the entry's request
	// filter runs (as set by earlier entries of a chain). Each connection
	// gets its own copy.
	Values map[string]any
	// Subprotocol is the negotiated subprotocol of every connection, or "".
	Subprotocol string
	// Buffers is the buffer pool of messages. Nil means a pool of the kit's
	// own (poisoned unless NoPoison; only then does Close check that every
	// buffer was released).
	Buffers *bufpool.Pool
	// Logger receives handler panics and slow handlers. Nil means the test
	// log.
	Logger *slog.Logger
	// Dispatcher configures the ordered executor that runs the handlers,
	// as the server's Config.Dispatcher does. Zero means its defaults.
	Dispatcher dispatcher.ShardedConfig
	// NoPoison turns off poisoning of the kit's own buffer pool. By default
	// released buffers are overwritten with 0xDB and a double release
	// panics, so a handler that keeps msg.Data is caught. (Under
	// -tags strand_debug every pool poisons.)
	NoPoison bool
	// WriteQueueLimit bounds each connection's messages written by the
	// plugin and not yet read by the test (with NextSent or an Expect
	// method). A Write beyond it returns sdk.ErrSlowConsumer and closes the
	// connection with 1008, as a server does with a slow client (a server
	// would drop the unread messages; the kit keeps them in Sent). Zero
	// means no limit.
	WriteQueueLimit int
	// WriteQueueBytes bounds the bytes of those unread messages, as the
	// server's Config.WriteQueueBytes does: a message larger than it on its
	// own is refused with sdk.ErrTooBig and the connection stays open; one
	// that fits on its own but not behind the unread bytes returns
	// sdk.ErrSlowConsumer and closes the connection with 1008. A broadcast
	// larger than it is refused with sdk.ErrTooBig before reaching any
	// member. Zero means no limit.
	WriteQueueBytes int64
	// MaxRoomsPerConn caps the rooms one connection is a member of at once,
	// as the server's Config.MaxRoomsPerConn does: a Join beyond it returns
	// sdk.ErrTooManyRooms, and re-joining a room does not count twice. Zero
	// means sdk.DefaultMaxRoomsPerConn (64), the server's default; negative
	// fails New, as the server's New fails.
	MaxRoomsPerConn int
	// MaxMessageBytes is the largest message the client may send; a bigger
	// one closes the connection with 1009 instead of reaching the plugin.
	// Zero means no limit.
	MaxMessageBytes int64
	// Timeout is how long Wait, the Expect methods, blocked sends and Close
	// wait before they fail the test. Zero means DefaultTimeout.
	Timeout time.Duration
}

// Kit runs one plugin entry on the runtime a server uses and hosts in-memory
// connections to it. Create one with New; it is closed when the test ends.
// All methods are safe for concurrent use.
type Kit struct {
	t       TB
	entry   *core.Entry
	opts    Options
	rt      *core.Runtime
	ownPool bool
	timeout time.Duration
	ctx     context.Context // cancelled by Close
	cancel  context.CancelFunc
	nextID  atomic.Uint64

	messagesIn atomic.Uint64

	mu     sync.Mutex // guards conns and closed
	conns  []*Conn
	closed bool

	roomMu sync.Mutex // guards rooms and every Conn.nrooms; taken before any Conn.mu
	rooms  map[string]map[*Conn]struct{}

	closeOnce sync.Once
	stopped   chan struct{} // closed once the runtime has stopped
}

// New returns a kit for entry, whose plugin's handlers run on a new
// runtime, as on a server. Options are optional: New(t, entry) uses the
// zero Options; pass at most one. It fails the test, as a server's Route
// fails, for an entry a server refuses (no handler, OnMessage with OnText
// or OnBinary), and if the runtime cannot be created. Like Route, it
// marks the entry mounted: registering a handler on it afterwards panics.
// The kit is closed by t.Cleanup; call Close to close it earlier.
func New(t TB, sentry *sdk.Entry, options ...Options) *Kit {
	t.Helper()
	if sentry == nil {
		t.Fatalf("strandtest: New: nil entry")
		return nil
	}
	var opts Options
	switch len(options) {
	case 0:
	case 1:
		opts = options[0]
	default:
		t.Fatalf("strandtest: New: %d Options given; pass at most one", len(options))
		return nil
	}
	entry := (*core.Entry)(sentry)
	if err := entry.Validate(); err != nil {
		t.Fatalf("strandtest: New: %v", err)
		return nil
	}
	k := &Kit{t: t, entry: entry, opts: opts, timeout: opts.Timeout, stopped: make(chan struct{})}
	if k.timeout <= 0 {
		k.timeout = DefaultTimeout
	}
	switch {
	case opts.MaxRoomsPerConn < 0:
		t.Fatalf("strandtest: New: negative Options.MaxRoomsPerConn")
		return nil
	case opts.MaxRoomsPerConn == 0:
		k.opts.MaxRoomsPerConn = sdk.DefaultMaxRoomsPerConn
	}
	cfg := core.RuntimeConfig{Buffers: opts.Buffers, Logger: opts.Logger, Dispatcher: opts.Dispatcher, MaxPendingBytes: opts.MaxPendingBytes}
	if k.opts.Pattern == "" {
		k.opts.Pattern = "/"
	}
	if k.opts.MaxRequestBodyBytes == 0 {
		k.opts.MaxRequestBodyBytes = 1 << 20
	}
	if cfg.Buffers == nil {
		cfg.Buffers = bufpool.New(bufpool.Config{Poison: !opts.NoPoison})
		k.ownPool = true
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logWriter{t}, nil))
	}
	rt, err := core.NewRuntime(entry.Plugin(), cfg)
	if err != nil {
		t.Fatalf("strandtest: New: %v", err)
		return nil
	}
	k.rt = rt
	k.ctx, k.cancel = context.WithCancel(context.Background())
	t.Cleanup(k.Close)
	entry.Mount()
	return k
}

// logWriter sends the runtime's log lines to the test log.
type logWriter struct{ t TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", bytes.TrimRight(p, "\n"))
	return len(p), nil
}

// Buffers returns the buffer pool of the kit's runtime.
func (k *Kit) Buffers() *bufpool.Pool { return k.rt.Buffers() }

// Stats are counters of a kit's runtime.
type Stats struct {
	Open     int64  // connections opened whose OnClose has not run
	Panics   uint64 // handler panics recovered
	Rejected uint64 // messages refused for a full queue (and retried)
	// MessagesIn counts the messages the runtime accepted from the kit's
	// clients, as a server's Stats.MessagesIn counts those its readers
	// took from sockets.
	MessagesIn uint64
}

// Stats returns the counters of the kit's runtime.
func (k *Kit) Stats() Stats {
	st := k.rt.Stats()
	return Stats{Open: st.Open, Panics: st.Panics, Rejected: st.Dispatcher.Rejected, MessagesIn: k.messagesIn.Load()}
}

// Decision is what a request filter decided.
type Decision uint8

// Decisions.
const (
	Undecided Decision = iota // the filter did not decide (see FilterResult.Err)
	Next                      // the request goes on to the next entry or the terminal
	End                       // the filter answered (Status, Header, Body)
	Upgrade                   // the filter upgraded to a WebSocket
)

func (d Decision) String() string {
	switch d {
	case Next:
		return "next"
	case End:
		return "end"
	case Upgrade:
		return "upgrade"
	}
	return "undecided"
}

// NewRequest returns the snapshot of a WebSocket handshake for target, a
// path with an optional query ("/chat?room=a"): GET, Host
// "strandtest.invalid", from 192.0.2.1, with the handshake headers set.
// Change its fields before handing it to the kit; do not change it
// afterwards.
func NewRequest(target string) *sdk.Request {
	u, err := url.ParseRequestURI(target)
	if err != nil {
		u = &url.URL{Path: target}
	}
	return &sdk.Request{
		Method:     http.MethodGet,
		Path:       u.Path,
		RawQuery:   u.RawQuery,
		Host:       "strandtest.invalid",
		RemoteAddr: "192.0.2.1:49152",
		ClientIP:   "192.0.2.1",
		Header: http.Header{
			"Connection":            {"Upgrade"},
			"Upgrade":               {"websocket"},
			"Sec-Websocket-Version": {"13"},
			"Sec-Websocket-Key":     {"dGhlIHNhbXBsZSBub25jZQ=="},
		},
		Params: map[string]string{},
		Time:   time.Now(),
	}
}

// FilterResult is what an entry's request filter decided.
type FilterResult struct {
	Decision Decision
	Status   int         // the answer's status for End (200 if the filter set none)
	Header   http.Header // the filter's header edits applied to an empty header
	Body     []byte      // the answer's body for End
	Values   map[string]any
	Err      error // the filter panicked or did not decide within the timeout

	handlers *core.WebSocketHandlers // an upgrade's: those passed to Upgrade, or the entry's own
	request  *core.Request           // the request as routed (Params set)
}

// RequestFilter runs the entry's request filter for req (nil means the
// kit's Options.Request) as a server would for a handshake, and returns its
// decision. An entry without a request filter upgrades if it has WebSocket
// handlers. Use it to test filters that answer or reject.
func (k *Kit) RequestFilter(req *sdk.Request) FilterResult {
	if req == nil {
		req = k.opts.Request
	}
	if req == nil {
		req = NewRequest("/")
	}
	res := FilterResult{Header: http.Header{}}
	params, ok := core.RouteParams(k.opts.Pattern, req.Method, req.Path)
	if !ok {
		// A server's mux answers before any entry runs.
		res.Decision, res.Status, res.Body = End, http.StatusNotFound, []byte("404 page not found\n")
		res.Header.Set("Content-Type", "text/plain; charset=utf-8")
		return res
	}
	routed := *req
	routed.Params = params
	res.request = (*core.Request)(&routed)
	// The request's context ends with the request, as on a server.
	rctx, cancel := context.WithCancel(k.ctx)
	defer cancel()
	rc := core.NewRequestContext(rctx, (*core.Request)(&routed), maps.Clone(k.opts.Values))
	d, err := k.runFilter(rc, &res)
	res.Err, res.Values = err, rc.Values()
	if err != nil || res.Decision == End {
		return res
	}
	core.ApplyHeaderEdits(res.Header, rc.HeaderEdits())
	switch d {
	case core.DecisionNext:
		res.Decision = Next
	case core.DecisionEnd:
		res.Decision = End
		res.Status, res.Body = rc.Status(), rc.Body()
		if res.Status == 0 {
			res.Status = http.StatusOK
		}
	case core.DecisionUpgrade:
		res.Decision = Upgrade
		res.handlers = rc.UpgradeHandlers()
		if res.handlers == nil {
			res.handlers = k.entry.WebSocketHandlers()
		}
	}
	return res
}

// Open runs the entry's request filter on Options.Request and, if it
// upgrades, opens a connection and submits its OnOpen. It fails the test if
// the filter does not upgrade.
func (k *Kit) Open() *Conn {
	k.t.Helper()
	return k.OpenRequest(nil)
}

// OpenRequest is Open with the handshake request req (nil means
// Options.Request). Values the filter set are the connection's
// (Conn.Value).
func (k *Kit) OpenRequest(req *sdk.Request) *Conn {
	k.t.Helper()
	res := k.RequestFilter(req)
	switch {
	case res.Err != nil:
		k.t.Fatalf("strandtest: request filter of %s: %v", k.entry, res.Err)
		return nil
	case res.Decision != Upgrade:
		k.t.Fatalf("strandtest: request filter of %s did not upgrade: %s", k.entry, res.describe())
		return nil
	case res.handlers == nil:
		k.t.Fatalf("strandtest: %s upgraded without WebSocket handlers", k.entry)
		return nil
	}
	if req == nil {
		req = k.opts.Request
	}
	if req == nil {
		req = NewRequest("/")
	}
	c := newConn(k, k.nextID.Add(1))
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		k.t.Fatalf("strandtest: Open after the kit was closed")
		return nil
	}
	k.conns = append(k.conns, c)
	k.mu.Unlock()

	info := core.ConnInfo{
		ID: c.id, Request: core.ConnSnapshot(res.request), Values: res.Values, Subprotocol: k.opts.Subprotocol,
		Handlers: res.handlers,
	}
	ctx, cancel := context.WithTimeout(k.ctx, k.timeout)
	defer cancel()
	sc, err := k.rt.Open(ctx, &host{c: c}, info)
	if err != nil {
		k.t.Fatalf("strandtest: Open: %v", err)
		return nil
	}
	c.opened(sc)
	return c
}

// runFilter runs the entry's request filter and serves its host calls as
// a server does: ReadBody gets Options.RequestBody (over the cap: an error,
// and the answer is 413), and a streamed answer is collected into res
// (Decision End). An entry without a request filter upgrades when it has
// WebSocket handlers and lets the request through otherwise.
func (k *Kit) runFilter(rc *core.RequestContext, res *FilterResult) (core.Decision, error) {
	streamed, answered := false, false
	d, err := k.rt.RequestFilter(k.entry, rc, k.timeout, func(hc *core.HostCall) bool {
		switch hc.Method {
		case core.MethodReadRequestBody:
			if int64(len(k.opts.RequestBody)) > k.opts.MaxRequestBodyBytes {
				// A server answers 413 at once; the filter's decision no
				// longer matters.
				hc.Reply(core.HostReply{Err: core.ErrBodyTooLarge})
				res.Decision, res.Status = End, http.StatusRequestEntityTooLarge
				res.Body = []byte(http.StatusText(http.StatusRequestEntityTooLarge) + "\n")
				res.Header.Set("Content-Type", "text/plain; charset=utf-8")
				res.Header.Set("X-Content-Type-Options", "nosniff")
				answered = true
				return true
			}
			hc.Reply(core.HostReply{Data: append([]byte(nil), k.opts.RequestBody...)})
		case core.MethodResponseStreamHead, core.MethodResponseStreamData, core.MethodResponseStreamEnd:
			if !streamed {
				streamed = true
				res.Decision, res.Status = End, http.StatusOK
				if hc.Method == core.MethodResponseStreamHead && hc.Int != 0 {
					res.Status = hc.Int
				}
				core.ApplyHeaderEdits(res.Header, rc.HeaderEdits())
			}
			if hc.Method == core.MethodResponseStreamData {
				res.Body = append(res.Body, hc.Data...)
			}
			hc.Reply(core.HostReply{})
		default:
			hc.Reply(core.HostReply{Err: core.ErrPhaseOver})
		}
		return false
	})
	if answered {
		return core.DecisionEnd, nil
	}
	return d, err
}

func (r FilterResult) describe() string {
	switch r.Decision {
	case Next:
		return "it let the request through (Next)"
	case End:
		return fmt.Sprintf("it answered %d %q", r.Status, r.Body)
	}
	return fmt.Sprintf("decision %d", r.Decision)
}

// Members returns the connections in room, in no particular order.
func (k *Kit) Members(room string) []*Conn {
	k.roomMu.Lock()
	defer k.roomMu.Unlock()
	var out []*Conn
	for c := range k.rooms[room] {
		if !c.isClosing() {
			out = append(out, c)
		}
	}
	return out
}

// Close closes every open connection with 1001 (as a server shutting down
// does), waits for every accepted event to be handled, and stops the
// runtime, so no goroutine of the kit is left. It then fails the test if a
// buffer of the kit's pool was never released, or if the plugin sent a
// text message that is not valid UTF-8. Idempotent; t.Cleanup calls it.
func (k *Kit) Close() {
	k.closeOnce.Do(k.close)
}

func (k *Kit) close() {
	k.t.Helper()
	k.mu.Lock()
	k.closed = true
	conns := k.conns
	k.mu.Unlock()
	for _, c := range conns {
		c.serverClose(sdk.CloseGoingAway, "server shutting down")
	}
	ctx, cancel := context.WithTimeout(context.Background(), k.timeout)
	defer cancel()
	err := k.rt.Close(ctx)
	k.cancel()
	close(k.stopped)
	for _, c := range conns {
		c.markDone() // in case a Sync was refused while the runtime stopped
	}
	if err != nil {
		k.t.Errorf("strandtest: runtime did not stop within %v (a handler is blocked?): %v", k.timeout, err)
		return
	}
	for _, c := range conns {
		if n := c.badText.Load(); n > 0 {
			k.t.Errorf("strandtest: conn %d: the plugin sent %d text message(s) that are not valid UTF-8; a client fails the connection (1007)", c.id, n)
		}
	}
	if k.ownPool {
		s := k.rt.Buffers().Stats()
		if leaked := int64(s.Gets) - int64(s.Oversize) - int64(s.Releases); leaked != 0 {
			k.t.Errorf("strandtest: %d pooled buffer(s) were not released: a buffer from Conn.Buffers() was neither released nor handed to SendBuffer/BroadcastBuffer", leaked)
		}
	}
}
