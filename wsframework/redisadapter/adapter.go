package redisadapter

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/puzpuzpuz/xsync/v3"
	"github.com/redis/rueidis"

	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/sdk/bufpool"
	"github.com/strandws/strand/wsframework"
)

// Defaults of the zero Config.
const (
	DefaultPrefix         = "strand"
	DefaultHistorySize    = 1000
	DefaultStateTTL       = 24 * time.Hour
	DefaultCheckInterval  = time.Second
	DefaultHeartbeat      = 5 * time.Second
	DefaultBufferSize     = 4096
	DefaultRecoverBatch   = 500
	DefaultReconnectMin   = 50 * time.Millisecond
	DefaultReconnectMax   = 2 * time.Second
	DefaultCommandTimeout = 5 * time.Second
	DefaultFlushDelay     = 20 * time.Microsecond
)

// Errors of the adapter.
var (
	// ErrUnavailable is returned by Subscribe while the adapter has no
	// Pub/Sub connection to Redis, and by Ready.
	ErrUnavailable = errors.New("redisadapter: Redis is unavailable")
	// ErrPublish wraps the error of a Publish that Redis did not confirm:
	// the message was not delivered anywhere, or (if Redis ran it and the
	// reply was lost) delivered everywhere.
	ErrPublish = errors.New("redisadapter: message not published")
)

// Config configures an Adapter. URL is required; the zero value of every
// other field means its default.
type Config struct {
	// URL is redis://[user:password@]host:port[/db] or rediss:// (TLS).
	// One standalone Redis; Cluster and Sentinel are not supported.
	URL string
	// TLSConfig, if set, is used for rediss:// instead of the default
	// (system roots, ServerName from the URL).
	TLSConfig *tls.Config
	// Prefix starts every key and channel name (default "strand"); nodes
	// that share rooms use the same one. No ':', '{', '}' or spaces.
	Prefix string
	// HistorySize is how many messages a room's history keeps, at least
	// (XADD MAXLEN ~; default 1000). Recovery after an outage reaches
	// back this far.
	HistorySize int
	// StateTTL is how long a room's offset and history outlive its last
	// publish or position check (default 24 h).
	StateTTL time.Duration
	// CheckInterval is how often a node checks the position of each room
	// it is subscribed to, so that it notices a lost message in a quiet
	// room (default 1 s).
	CheckInterval time.Duration
	// Heartbeat is how often a node renews its liveness key; its presence
	// entries disappear within two heartbeats of its death (default 5 s).
	Heartbeat time.Duration
	// Workers is the number of goroutines that deliver rooms' messages
	// (default GOMAXPROCS); a room always goes to the same one.
	Workers int
	// BufferSize is each worker's queue of received messages (default
	// 4096). A message that finds it full is dropped and recovered from
	// the history (Stats.Overflows).
	BufferSize int
	// RecoverBatch is how many messages one history read returns (default
	// 500).
	RecoverBatch int
	// ReconnectMin and ReconnectMax bound the backoff between attempts to
	// reconnect the Pub/Sub connection (defaults 50 ms and 2 s).
	ReconnectMin, ReconnectMax time.Duration
	// CommandTimeout bounds Subscribe's round trips, recovery reads and
	// presence commands (default 5 s). Publish has no deadline of its own:
	// it ends when Redis answers or the connection fails.
	CommandTimeout time.Duration
	// FlushDelay is how long the client waits for more commands before it
	// writes what it has (rueidis MaxFlushDelay): longer means fewer
	// system calls per message under load, and that much latency. Zero
	// means DefaultFlushDelay (20 µs); negative means none.
	FlushDelay time.Duration
	// Logger receives warnings (reconnects, failed recoveries). Nil means
	// slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, rueidis.ClientOption, error) {
	var opt rueidis.ClientOption
	u, err := url.Parse(c.URL)
	if err != nil {
		return c, opt, fmt.Errorf("redisadapter: URL: %w", err)
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return c, opt, fmt.Errorf("redisadapter: URL scheme %q: want redis or rediss", u.Scheme)
	}
	q := u.Query()
	if q.Has("addr") || q.Has("master_set") {
		return c, opt, errors.New("redisadapter: Redis Cluster and Sentinel are not supported: give one standalone Redis")
	}
	if opt, err = rueidis.ParseURL(c.URL); err != nil {
		return c, opt, fmt.Errorf("redisadapter: URL: %w", err)
	}
	if c.TLSConfig != nil && opt.TLSConfig != nil {
		opt.TLSConfig = c.TLSConfig
	}
	opt.DisableCache = true // no client-side caching (CLIENT TRACKING)
	opt.ClientName = "strand"
	switch {
	case c.FlushDelay == 0:
		opt.MaxFlushDelay = DefaultFlushDelay
	case c.FlushDelay > 0:
		opt.MaxFlushDelay = c.FlushDelay
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if !validPrefix(c.Prefix) {
		return c, opt, fmt.Errorf("redisadapter: bad Prefix %q", c.Prefix)
	}
	if c.HistorySize < 0 || c.StateTTL < 0 || c.CheckInterval < 0 || c.Heartbeat < 0 || c.Workers < 0 ||
		c.BufferSize < 0 || c.RecoverBatch < 0 || c.ReconnectMin < 0 || c.ReconnectMax < 0 || c.CommandTimeout < 0 {
		return c, opt, errors.New("redisadapter: negative value in Config")
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if c.HistorySize == 0 {
		c.HistorySize = DefaultHistorySize
	}
	def(&c.StateTTL, DefaultStateTTL)
	def(&c.CheckInterval, DefaultCheckInterval)
	def(&c.Heartbeat, DefaultHeartbeat)
	def(&c.ReconnectMin, DefaultReconnectMin)
	def(&c.ReconnectMax, DefaultReconnectMax)
	def(&c.CommandTimeout, DefaultCommandTimeout)
	if c.ReconnectMax < c.ReconnectMin {
		c.ReconnectMax = c.ReconnectMin
	}
	if c.Workers == 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	if c.BufferSize == 0 {
		c.BufferSize = DefaultBufferSize
	}
	if c.RecoverBatch == 0 {
		c.RecoverBatch = DefaultRecoverBatch
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, opt, nil
}

// Adapter is a wsframework.Adapter over one Redis: every node (Server) of a
// cluster has its own Adapter on the same Redis and prefix. It also
// implements wsframework.HistoryAdapter and wsframework.PresenceAdapter.
// See the package documentation for its guarantees.
type Adapter struct {
	cfg    Config
	client rueidis.Client
	node   [8]byte // this node's random ID
	nodeID string  // hex of node
	bufs   *bufpool.Pool

	// Constant arguments, as strings once.
	seed, ttlMs, maxHist, nodeKey, nodePrefix string

	h      wsframework.AdapterHandler
	bound  atomic.Bool
	closed atomic.Bool
	stop   chan struct{}
	wg     sync.WaitGroup

	rooms     *xsync.MapOf[string, *room]     // subscribed rooms by name
	keyCache  *xsync.MapOf[string, *roomKeys] // of rooms published to (bounded)
	byChannel *xsync.MapOf[string, *room]     // and by channel

	subMu     sync.Mutex // serialises (un)subscribing on the Pub/Sub connection
	dc        rueidis.DedicatedClient
	connected atomic.Bool

	workers []*worker

	pubs []*publisher
	reqs sync.Pool // of *pubReq

	presMu sync.Mutex
	pres   map[string]map[uint64][]byte // this node's presence: room → conn → payload
	pq     struct {
		mu      sync.Mutex
		notFull sync.Cond // on mu
		ops     []presOp  // presence writes waiting (presence.go)
		closed  bool
		wake    chan struct{}
	}

	stats counters
}

type counters struct {
	published, batches, publishErrors, delivered, recovered, gaps, overflows, reconnects, recoverErrors atomic.Uint64
}

// Stats are an Adapter's counters.
type Stats struct {
	Rooms         int    // rooms this node is subscribed to
	Connected     bool   // the Pub/Sub connection is up
	Published     uint64 // messages Redis confirmed
	Batches       uint64 // publish script runs (each publishes a batch of one room's messages)
	PublishErrors uint64 // Publish calls that returned an error
	Delivered     uint64 // messages handed to the Server (live and recovered)
	Recovered     uint64 // of which read from a room's history after a gap
	Gaps          uint64 // gap events: messages that could not be recovered
	Overflows     uint64 // received messages dropped because a worker's queue was full (then recovered)
	Reconnects    uint64 // Pub/Sub reconnections
	RecoverErrors uint64 // failed position checks or history reads (retried)
	Backlog       int    // received messages waiting for a worker
}

var (
	_ wsframework.Adapter         = (*Adapter)(nil)
	_ wsframework.HistoryAdapter  = (*Adapter)(nil)
	_ wsframework.PresenceAdapter = (*Adapter)(nil)
)

// New connects to Redis and returns a node's adapter, to be given to one
// Server as Config.Adapter. It fails if Redis cannot be reached now; after
// that, the adapter reconnects by itself.
func New(cfg Config) (*Adapter, error) {
	c, opt, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	a := &Adapter{
		cfg:       c,
		bufs:      bufpool.New(bufpool.Config{}),
		stop:      make(chan struct{}),
		rooms:     xsync.NewMapOf[string, *room](),
		keyCache:  xsync.NewMapOf[string, *roomKeys](),
		byChannel: xsync.NewMapOf[string, *room](),
		pres:      make(map[string]map[uint64][]byte),
	}
	if _, err := rand.Read(a.node[:]); err != nil {
		return nil, err
	}
	a.nodeID = hex.EncodeToString(a.node[:])
	a.seed = a.nodeID
	a.ttlMs = strconv.FormatInt(c.StateTTL.Milliseconds(), 10)
	a.maxHist = strconv.Itoa(c.HistorySize)
	a.nodePrefix = c.Prefix + ":node:"
	a.nodeKey = a.nodePrefix + a.nodeID
	if a.client, err = rueidis.NewClient(opt); err != nil {
		return nil, fmt.Errorf("redisadapter: connect: %w", err)
	}
	if err := a.heartbeat(); err != nil {
		a.client.Close()
		return nil, fmt.Errorf("redisadapter: %w", err)
	}
	a.startPublishers()
	a.pq.notFull.L = &a.pq.mu
	a.pq.wake = make(chan struct{}, 1)
	a.wg.Add(1)
	go a.runPresence()
	return a, nil
}

// Node returns this node's ID (as in wsframework.PresenceMember.Node).
func (a *Adapter) Node() string { return a.nodeID }

// Bind implements wsframework.Adapter and starts the adapter's goroutines.
func (a *Adapter) Bind(h wsframework.AdapterHandler) error {
	switch {
	case h == nil:
		return errors.New("redisadapter: Bind: nil handler")
	case a.closed.Load():
		return wsframework.ErrAdapterClosed
	case !a.bound.CompareAndSwap(false, true):
		return errors.New("redisadapter: already bound to a server")
	}
	a.h = h
	a.workers = make([]*worker, a.cfg.Workers)
	for i := range a.workers {
		w := &worker{a: a, in: make(chan item, a.cfg.BufferSize), kick: make(chan struct{}, 1)}
		a.workers[i] = w
		a.wg.Add(1)
		go w.run()
	}
	a.wg.Add(3)
	go a.runPubSub()
	go a.runChecks()
	go a.runHeartbeat()
	return nil
}

// Ready reports whether the node can take part in the cluster: its Pub/Sub
// connection is up and Redis answers. It is for a readiness probe.
func (a *Adapter) Ready(ctx context.Context) error {
	if a.closed.Load() {
		return wsframework.ErrAdapterClosed
	}
	if !a.connected.Load() {
		return ErrUnavailable
	}
	if err := a.client.Do(ctx, a.client.B().Ping().Build()).Error(); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// Stats returns the adapter's counters.
func (a *Adapter) Stats() Stats {
	s := Stats{
		Rooms:         a.rooms.Size(),
		Connected:     a.connected.Load(),
		Published:     a.stats.published.Load(),
		Batches:       a.stats.batches.Load(),
		PublishErrors: a.stats.publishErrors.Load(),
		Delivered:     a.stats.delivered.Load(),
		Recovered:     a.stats.recovered.Load(),
		Gaps:          a.stats.gaps.Load(),
		Overflows:     a.stats.overflows.Load(),
		Reconnects:    a.stats.reconnects.Load(),
		RecoverErrors: a.stats.recoverErrors.Load(),
	}
	for _, w := range a.workers {
		s.Backlog += len(w.in)
	}
	return s
}

// The body of a message, as stored in the history and published after the
// offset and epoch: a fixed header, then the payload.
const (
	bodyVersion = 1
	hdrLen      = 1 + 1 + 1 + 8 + 8 // version, type, flags, node, from
	flagExclude = 1
)

// Subscribe implements wsframework.Adapter. It subscribes the room's
// channel, then reads the room's position (making the room's state in Redis
// if it has none): messages after that position are delivered. While the
// Pub/Sub connection is down it waits for it up to CommandTimeout, then
// fails with ErrUnavailable.
func (a *Adapter) Subscribe(name string) error {
	if a.closed.Load() || !a.bound.Load() {
		return wsframework.ErrAdapterClosed
	}
	r := &room{name: name, keys: a.keysOf(name)}
	r.w = a.workers[workerOf(name, len(a.workers))]
	r.active.Store(true)

	// While the Pub/Sub connection is being (re)made, wait for it a while.
	deadline := time.Now().Add(a.cfg.CommandTimeout)
	for !a.connected.Load() && time.Now().Before(deadline) {
		if !a.sleep(5 * time.Millisecond) {
			return wsframework.ErrAdapterClosed
		}
	}
	a.subMu.Lock()
	a.rooms.Store(name, r)
	a.byChannel.Store(r.keys.channel, r)
	dc := a.dc
	err := ErrUnavailable
	if dc != nil {
		ctx, cancel := context.WithTimeout(context.Background(), a.cfg.CommandTimeout)
		err = dc.Do(ctx, dc.B().Subscribe().Channel(r.keys.channel).Build()).Error()
		cancel()
	}
	if err != nil {
		a.dropRoom(r)
		a.subMu.Unlock()
		return err
	}
	a.subMu.Unlock()

	done := make(chan error, 1)
	select {
	case r.w.in <- item{r: r, kind: kindStart, done: done}:
	case <-a.stop:
		return wsframework.ErrAdapterClosed
	}
	select {
	case err = <-done:
	case <-a.stop:
		err = wsframework.ErrAdapterClosed
	}
	if err != nil {
		_ = a.Unsubscribe(name)
	}
	return err
}

// keyCacheSize bounds the cache of the keys of rooms published to.
const keyCacheSize = 4096

// pubKeys returns room's keys, made once for the rooms published to most.
func (a *Adapter) pubKeys(room string) roomKeys {
	if k, ok := a.keyCache.Load(room); ok {
		return *k
	}
	k := a.keysOf(room)
	if a.keyCache.Size() < keyCacheSize {
		a.keyCache.Store(room, &k)
	}
	return k
}

// dropRoom forgets r; subMu is held.
func (a *Adapter) dropRoom(r *room) {
	r.active.Store(false)
	a.rooms.Compute(r.name, func(old *room, loaded bool) (*room, bool) { return old, !loaded || old == r })
	a.byChannel.Compute(r.keys.channel, func(old *room, loaded bool) (*room, bool) { return old, !loaded || old == r })
}

// Unsubscribe implements wsframework.Adapter.
func (a *Adapter) Unsubscribe(name string) error {
	if a.closed.Load() {
		return wsframework.ErrAdapterClosed
	}
	a.subMu.Lock()
	defer a.subMu.Unlock()
	r, ok := a.rooms.Load(name)
	if !ok {
		return nil
	}
	a.dropRoom(r)
	if dc := a.dc; dc != nil {
		ctx, cancel := context.WithTimeout(context.Background(), a.cfg.CommandTimeout)
		defer cancel()
		// A failure here means the connection is going: its replacement
		// subscribes only the rooms still wanted.
		_ = dc.Do(ctx, dc.B().Unsubscribe().Channel(r.keys.channel).Build()).Error()
	}
	return nil
}

// Close implements wsframework.Adapter: it stops the adapter's goroutines,
// deletes the node's liveness key (its presence entries go with it) and
// closes the Redis connections. Idempotent.
func (a *Adapter) Close() error {
	if a.closed.Swap(true) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.CommandTimeout)
	_ = a.client.Do(ctx, a.client.B().Del().Key(a.nodeKey).Build()).Error()
	cancel()
	close(a.stop)
	a.subMu.Lock()
	if a.dc != nil {
		a.dc.Close()
	}
	a.subMu.Unlock()
	a.client.Close()
	a.wg.Wait()
	return nil
}

// sleep waits d or until Close; false if closed.
func (a *Adapter) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-a.stop:
		return false
	}
}

// runPubSub keeps the Pub/Sub connection: it connects, subscribes every
// room with local members, has each of them recovered, and starts over with
// backoff when the connection fails.
func (a *Adapter) runPubSub() {
	defer a.wg.Done()
	backoff := a.cfg.ReconnectMin
	first := true
	for {
		select {
		case <-a.stop:
			return
		default:
		}
		dc, release := a.client.Dedicate()
		lost := dc.SetPubSubHooks(rueidis.PubSubHooks{OnMessage: a.onMessage})
		a.subMu.Lock()
		var chans []string
		a.byChannel.Range(func(ch string, _ *room) bool {
			chans = append(chans, ch)
			return true
		})
		ctx, cancel := context.WithTimeout(context.Background(), a.cfg.CommandTimeout)
		var err error
		if len(chans) > 0 {
			err = dc.Do(ctx, dc.B().Subscribe().Channel(chans...).Build()).Error()
		} else {
			err = dc.Do(ctx, dc.B().Ping().Build()).Error()
		}
		cancel()
		if err == nil && !a.closed.Load() {
			a.dc = dc
		}
		a.subMu.Unlock()
		if err != nil || a.closed.Load() {
			dc.Close()
			release()
			if !a.closed.Load() {
				a.cfg.Logger.Warn("redisadapter: Pub/Sub connection failed", "err", err, "retry", backoff)
			}
			if !a.sleep(jitter(backoff)) {
				return
			}
			backoff = min(2*backoff, a.cfg.ReconnectMax)
			continue
		}
		if !first {
			a.stats.reconnects.Add(1)
			a.cfg.Logger.Info("redisadapter: Pub/Sub connection restored", "rooms", len(chans))
		}
		first = false
		backoff = a.cfg.ReconnectMin
		a.connected.Store(true)
		// What was published while we were not subscribed is in the
		// history: every room catches up.
		a.rooms.Range(func(_ string, r *room) bool {
			r.dirty.Store(true)
			r.w.poke()
			return true
		})
		select {
		case err = <-lost:
		case <-a.stop:
		}
		a.connected.Store(false)
		a.subMu.Lock()
		if a.dc == dc {
			a.dc = nil
		}
		a.subMu.Unlock()
		dc.Close()
		release()
		if a.closed.Load() {
			return
		}
		a.cfg.Logger.Warn("redisadapter: Pub/Sub connection lost", "err", err)
	}
}

// jitter returns d ± 20 %.
func jitter(d time.Duration) time.Duration {
	var b [2]byte
	_, _ = rand.Read(b[:])
	f := 0.8 + 0.4*float64(binary.BigEndian.Uint16(b[:]))/65535
	return time.Duration(float64(d) * f)
}

// onMessage is the Pub/Sub hook: it parses the message and queues it to its
// room's worker without blocking (a full queue drops it: the room is then
// recovered from its history).
func (a *Adapter) onMessage(m rueidis.PubSubMessage) {
	r, ok := a.byChannel.Load(m.Channel)
	if !ok {
		return
	}
	off, epoch, body, ok := parseMessage(m.Message)
	if !ok {
		return
	}
	it := item{r: r, kind: kindMsg, off: off, epoch: epoch, body: body}
	select {
	case r.w.in <- it:
	default:
		a.stats.overflows.Add(1)
		r.dirty.Store(true)
		r.w.poke()
	}
}

// parseMessage splits a message received on a room's channel: offset (8
// bytes, big endian), epoch (1 length byte, then the bytes), body. ok is
// false if it is too short to hold them and a body header.
func parseMessage(s string) (off uint64, epoch, body string, ok bool) {
	if len(s) < 9 {
		return 0, "", "", false
	}
	el := int(s[8])
	if len(s) < 9+el+hdrLen {
		return 0, "", "", false
	}
	return getUint64(s), s[9 : 9+el], s[9+el:], true
}

// parsedBody is a message body's header and payload.
type parsedBody struct {
	typ     sdk.MessageType
	exclude bool   // ExcludeFrom was set by the publisher
	node    string // the publishing node's ID (8 bytes)
	from    uint64 // the sender's connection ID there
	data    string
}

// parseBody reads a body (from the channel or the history); ok is false
// for a body too short or of another version.
func parseBody(body string) (b parsedBody, ok bool) {
	if len(body) < hdrLen || body[0] != bodyVersion {
		return b, false
	}
	return parsedBody{
		typ:     sdk.MessageType(body[1]),
		exclude: body[2]&flagExclude != 0,
		node:    body[3:11],
		from:    getUint64(body[11:19]),
		data:    body[hdrLen:],
	}, true
}

func getUint64(s string) uint64 {
	_ = s[7]
	return uint64(s[0])<<56 | uint64(s[1])<<48 | uint64(s[2])<<40 | uint64(s[3])<<32 |
		uint64(s[4])<<24 | uint64(s[5])<<16 | uint64(s[6])<<8 | uint64(s[7])
}

// runChecks reads the position of every subscribed room every
// CheckInterval, in one pipelined batch, and hands each to its room's
// worker to compare with what it delivered: the worker does not wait for
// Redis unless it has something to recover.
func (a *Adapter) runChecks() {
	defer a.wg.Done()
	t := time.NewTicker(a.cfg.CheckInterval)
	defer t.Stop()
	var rooms []*room
	var cmds rueidis.Commands
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
		}
		rooms, cmds = rooms[:0], cmds[:0]
		a.rooms.Range(func(_ string, r *room) bool {
			rooms = append(rooms, r)
			cmds = append(cmds, a.syncCmd(r, false, "", 0, 0))
			return true
		})
		if len(cmds) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), a.cfg.CommandTimeout)
		res := a.client.DoMulti(ctx, cmds...)
		for i, rr := range res {
			if isNoScript(rr.Error()) {
				res[i] = a.client.Do(ctx, a.syncCmd(rooms[i], true, "", 0, 0))
			}
		}
		cancel()
		for i, r := range rooms {
			st, err := parseSync(res[i])
			if err != nil {
				a.stats.recoverErrors.Add(1)
				continue
			}
			select {
			case r.w.in <- item{r: r, kind: kindCheck, off: st.off, epoch: st.epoch}:
			default: // busy: the next tick
			}
		}
		clear(rooms)
	}
}

// deliver hands one message body to the Server.
func (a *Adapter) deliver(r *room, off uint64, body string) {
	b, ok := parseBody(body)
	if !ok || (b.typ != sdk.Text && b.typ != sdk.Binary) {
		return
	}
	msg := wsframework.RoomMessage{Room: r.name, Type: b.typ, Pos: wsframework.RoomPosition{Epoch: r.epoch, Offset: off}}
	if b.exclude && b.node == string(a.node[:]) {
		msg.ExcludeFrom = true
		msg.From = b.from
	}
	msg.Data = a.bufs.Get(len(b.data))
	copy(msg.Data.B, b.data)
	// Counted first: whoever sees the message can read it in Stats.
	a.stats.delivered.Add(1)
	a.h.Deliver(msg)
}

// gap reports a gap to the Server.
func (a *Adapter) gap(g wsframework.RoomGap) {
	a.stats.gaps.Add(1)
	a.cfg.Logger.Warn("redisadapter: messages lost", "room", g.Room, "after", g.After.Offset, "next", g.Next.Offset, "epochChanged", g.EpochChanged)
	if gh, ok := a.h.(wsframework.GapHandler); ok {
		gh.Gap(g)
	}
}
