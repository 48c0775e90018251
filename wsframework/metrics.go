package wsframework

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strandws/strand/internal/core"
)

// serverMetrics is a Server's Prometheus collector (Config.Metrics),
// registered once on the caller's Registerer by New; nil when the Server
// has no metrics, and every hook below is then a nil check.
//
// Most families cost nothing on the hot path: Collect reads the counters
// the Server keeps anyway (serverCounters, the buffer pool's, the
// runtimes'). What it adds is bounded by label: per route (connections
// open and accepted, resolved when the route is made), per plugin (handler
// and phase timings, resolved on first use), the byte counters (one atomic
// add per message read and per write batch) and close codes (at teardown).
// docs/metrics.md lists the families.
type serverMetrics struct {
	srv *Server
	reg prometheus.Registerer

	bytesIn  atomic.Uint64 // payload bytes of data messages read (readers)
	_        [56]byte      // (bytesIn and bytesOut are written on different cores)
	bytesOut atomic.Uint64 // payload bytes of data frames written (writers)
	// Compression, by direction (compressed, decompressed): bytes before
	// compression (uncompressed) and after (compressed).
	compPlain [2]atomic.Uint64
	compWire  [2]atomic.Uint64
	closes    [numReasons][numCodeBuckets]atomic.Uint64

	mu      sync.Mutex // guards routes and plugins
	routes  []*routeMetrics
	plugins map[string]*pluginMetrics

	dispatch  *prometheus.HistogramVec // {plugin}
	handler   *prometheus.HistogramVec // {plugin, event}
	phase     *prometheus.HistogramVec // {plugin, phase}
	phaseFail *prometheus.CounterVec   // {plugin, phase, kind}
}

// Compression directions (serverMetrics.compPlain and compWire).
const (
	dirSend    = 0
	dirReceive = 1
)

var dirNames = [2]string{"send", "receive"}

// Metric descriptions of the families Collect builds from counters.
var (
	descConns = prometheus.NewDesc("strand_connections",
		"WebSocket connections open now, by route pattern.", []string{"route"}, nil)
	descAccepted = prometheus.NewDesc("strand_connections_accepted_total",
		"WebSocket handshakes completed, by route pattern.", []string{"route"}, nil)
	descCloses = prometheus.NewDesc("strand_connection_closes_total",
		"WebSocket connections closed, by CloseReason and the close code reported to OnClose "+
			"(a peer's or plugin's code outside 1000-1015 is grouped as 3xxx, 4xxx or other).",
		[]string{"reason", "code"}, nil)
	descSlow = prometheus.NewDesc("strand_slow_consumer_closes_total",
		"Connections closed as slow consumers (a full write queue, or a write blocked past WriteTimeout).", nil, nil)
	descRejected = prometheus.NewDesc("strand_handshake_rejections_total",
		"Handshakes refused by a limit of the Server, by reason.", []string{"reason"}, nil)
	descHandshakes = prometheus.NewDesc("strand_handshakes_in_progress",
		"Connections on Serve's accept path whose request head is being read now.", nil, nil)
	descEvicted = prometheus.NewDesc("strand_handshakes_evicted_total",
		"Handshakes in progress closed unread to make room under MaxHandshakes.", nil, nil)
	descMsgIn = prometheus.NewDesc("strand_messages_received_total",
		"Data messages read from clients.", nil, nil)
	descMsgOut = prometheus.NewDesc("strand_messages_sent_total",
		"Data messages written to clients.", nil, nil)
	descBytesIn = prometheus.NewDesc("strand_bytes_received_total",
		"Payload bytes of the data messages read from clients.", nil, nil)
	descBytesOut = prometheus.NewDesc("strand_bytes_sent_total",
		"Payload bytes of the data messages written to clients.", nil, nil)
	descDropped = prometheus.NewDesc("strand_messages_dropped_total",
		"Queued outgoing messages released unsent because their connection closed.", nil, nil)
	descTooBig = prometheus.NewDesc("strand_sends_too_big_total",
		"Sends refused with ErrTooBig: one message over WriteQueueBytes on its own.", nil, nil)
	descConnPanics = prometheus.NewDesc("strand_connection_panics_total",
		"Panics while reading or writing a connection (each closed it with 1011).", nil, nil)
	descQueueBytes = prometheus.NewDesc("strand_write_queue_bytes",
		"Bytes queued for writing and not yet taken by a writer, over every open connection.", nil, nil)
	descQueueMax = prometheus.NewDesc("strand_write_queue_max_bytes",
		"The bytes queued for writing on the open connection with the most.", nil, nil)
	descHandlerPanics = prometheus.NewDesc("strand_handler_panics_total",
		"Panics recovered in a plugin's handlers (WebSocket events and HTTP phases), by plugin.", []string{"plugin"}, nil)
	descQueued = prometheus.NewDesc("strand_dispatch_queued",
		"WebSocket events accepted by a plugin's runtime and not yet taken by a worker, by plugin.", []string{"plugin"}, nil)
	descWorkers = prometheus.NewDesc("strand_dispatch_workers",
		"Worker goroutines running a plugin's WebSocket events now (the base set plus those added while others are blocked), by plugin.", []string{"plugin"}, nil)
	descBlocked = prometheus.NewDesc("strand_dispatch_blocked_workers",
		"Workers held now by a connection whose handler ran past the block threshold (detached), by plugin.", []string{"plugin"}, nil)
	descDetached = prometheus.NewDesc("strand_dispatch_detached_total",
		"Connections detached from their shard because a handler ran past the block threshold, by plugin.", []string{"plugin"}, nil)
	descSlowHandlers = prometheus.NewDesc("strand_slow_handlers_total",
		"Handlers reported as slow (running past the slow threshold), by plugin.", []string{"plugin"}, nil)
	descPoolGets = prometheus.NewDesc("strand_buffer_pool_gets_total",
		"Buffers taken from the Server's buffer pool (Config.Buffers), by result: hit (a pooled buffer), "+
			"miss (a new poolable buffer) or oversize (over the largest class, never pooled).", []string{"result"}, nil)
	descPoolReleases = prometheus.NewDesc("strand_buffer_pool_releases_total",
		"Buffers returned to the Server's buffer pool.", nil, nil)
	descCompIn = prometheus.NewDesc("strand_compression_bytes_in_total",
		"Message payload bytes before compression (uncompressed), by direction: send (compressed by the "+
			"server) or receive (decompressed by the server).", []string{"direction"}, nil)
	descCompOut = prometheus.NewDesc("strand_compression_bytes_out_total",
		"Message payload bytes after compression (compressed, as on the wire), by direction.", []string{"direction"}, nil)
)

// Histogram buckets: handler and dispatch timings from 1 µs to about 4 s,
// phases from 100 µs to about 6.5 s (PhaseTimeout is 5 s by default).
var (
	handlerBuckets = prometheus.ExponentialBuckets(1e-6, 4, 12)
	phaseBuckets   = prometheus.ExponentialBuckets(1e-4, 4, 9)
)

// newServerMetrics registers s's collector on reg.
func newServerMetrics(s *Server, reg prometheus.Registerer) (*serverMetrics, error) {
	m := &serverMetrics{
		srv:     s,
		reg:     reg,
		plugins: make(map[string]*pluginMetrics),
		dispatch: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "strand_dispatch_delay_seconds",
			Help: "How long a WebSocket message waited between its reader handing it to the plugin's runtime " +
				"and its handler's start, by plugin; sampled (Config.MetricsSampleEvery).",
			Buckets: handlerBuckets,
		}, []string{"plugin"}),
		handler: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "strand_handler_duration_seconds",
			Help: "How long a plugin's WebSocket handler ran, by plugin and event (open, message, error, close); " +
				"messages are sampled (Config.MetricsSampleEvery).",
			Buckets: handlerBuckets,
		}, []string{"plugin", "event"}),
		phase: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "strand_phase_duration_seconds",
			Help: "How long an HTTP phase held its request, from its start to the plugin's decision " +
				"(or its failure), by plugin and phase.",
			Buckets: phaseBuckets,
		}, []string{"plugin", "phase"}),
		phaseFail: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strand_phase_failures_total",
			Help: "HTTP phases that failed, by plugin, phase and kind: timeout (no decision within PhaseTimeout), " +
				"panic, rejected (the phase pool refused it) or body_too_large (a body read over MaxRequestBodyBytes).",
		}, []string{"plugin", "phase", "kind"}),
	}
	if err := reg.Register(m); err != nil {
		return nil, err
	}
	return m, nil
}

// unregister takes the collector off its registry again (New failed after
// registering it).
func (m *serverMetrics) unregister() {
	if m != nil {
		m.reg.Unregister(m)
	}
}

// Describe implements prometheus.Collector.
func (m *serverMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descConns, descAccepted, descCloses, descSlow, descRejected, descHandshakes, descEvicted,
		descMsgIn, descMsgOut, descBytesIn, descBytesOut, descDropped, descTooBig, descConnPanics,
		descQueueBytes, descQueueMax, descHandlerPanics, descQueued, descWorkers, descBlocked, descDetached,
		descSlowHandlers, descPoolGets, descPoolReleases,
		descCompIn, descCompOut,
	} {
		ch <- d
	}
	m.dispatch.Describe(ch)
	m.handler.Describe(ch)
	m.phase.Describe(ch)
	m.phaseFail.Describe(ch)
}

// Collect implements prometheus.Collector: it reads the counters as they
// are at the scrape.
func (m *serverMetrics) Collect(ch chan<- prometheus.Metric) {
	s := m.srv
	st := &s.stats
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}

	m.mu.Lock()
	routes := append([]*routeMetrics(nil), m.routes...)
	m.mu.Unlock()
	for _, r := range routes {
		gauge(descConns, float64(r.open.Load()), r.pattern)
		counter(descAccepted, r.accepted.Load(), r.pattern)
	}
	for reason := range m.closes {
		for b := range m.closes[reason] {
			if n := m.closes[reason][b].Load(); n > 0 {
				counter(descCloses, n, CloseReason(reason).String(), codeBucketNames[b])
			}
		}
	}
	counter(descSlow, st.closes[ReasonSlowConsumer].Load())
	counter(descRejected, st.rejectedOrigin.Load(), "origin")
	counter(descRejected, st.rejectedCap.Load(), "max_conns")
	counter(descRejected, st.rejectedIP.Load(), "max_conns_per_ip")
	counter(descRejected, st.rejectedHandshakeIP.Load(), "max_handshakes_per_ip")
	counter(descRejected, st.rejectedHeaderBytes.Load(), "header_bytes")
	gauge(descHandshakes, float64(s.handshakes.len()))
	counter(descEvicted, st.handshakesEvicted.Load())

	counter(descMsgIn, st.messagesIn.Load())
	counter(descMsgOut, st.messagesOut.Load())
	counter(descBytesIn, m.bytesIn.Load())
	counter(descBytesOut, m.bytesOut.Load())
	counter(descDropped, st.dropped.Load())
	counter(descTooBig, st.sendsTooBig.Load())
	counter(descConnPanics, st.panics.Load())
	sum, most := m.writeQueues()
	gauge(descQueueBytes, float64(sum))
	gauge(descQueueMax, float64(most))

	for _, r := range s.runtimesSnapshot() {
		name := r.Plugin().Name()
		ds, panics := r.EventStats()
		counter(descHandlerPanics, panics, name)
		gauge(descQueued, float64(ds.Queued), name)
		gauge(descWorkers, float64(ds.Workers), name)
		gauge(descBlocked, float64(ds.Blocked), name)
		counter(descDetached, ds.Detached, name)
		counter(descSlowHandlers, ds.Slow, name)
	}
	ps := s.cfg.Buffers.Stats()
	counter(descPoolGets, ps.Hits, "hit")
	counter(descPoolGets, ps.Misses, "miss")
	counter(descPoolGets, ps.Oversize, "oversize")
	counter(descPoolReleases, ps.Releases)
	for d, name := range dirNames {
		counter(descCompIn, m.compPlain[d].Load(), name)
		counter(descCompOut, m.compWire[d].Load(), name)
	}

	m.dispatch.Collect(ch)
	m.handler.Collect(ch)
	m.phase.Collect(ch)
	m.phaseFail.Collect(ch)
}

// writeQueues returns the bytes queued for writing over every open
// connection, and the most on one. It visits every connection (under its
// lock, briefly), so a scrape costs in proportion to the connections open.
func (m *serverMetrics) writeQueues() (sum, most int64) {
	m.srv.conns.Range(func(_ uint64, c *conn) bool {
		c.mu.Lock()
		n := c.qBytes
		c.mu.Unlock()
		sum += n
		most = max(most, n)
		return true
	})
	return sum, most
}

// countReceived counts the payload of a data message read (acceptMessage)
// on the reader's own counter, which flushReceived publishes: no atomic
// operation per message.
func (c *conn) countReceived(n int) {
	if c.srv.metrics != nil {
		c.rxBytes += uint64(n)
	}
}

// flushReceived publishes the bytes countReceived counted. The reader calls
// it where it may wait (before a blocking read, after a poll turn) and
// teardown at the end, so a scrape lags by at most what one read brought.
func (c *conn) flushReceived() {
	if n := c.rxBytes; n != 0 {
		c.srv.metrics.bytesIn.Add(n)
		c.rxBytes = 0
	}
}

// sent counts the payload bytes of the data frames of one write (writeLoop).
func (m *serverMetrics) sent(n int) {
	if m != nil && n > 0 {
		m.bytesOut.Add(uint64(n))
	}
}

// compressed counts one message compressed for sending: plain bytes in,
// wire bytes out. The permessage-deflate writer calls it.
func (m *serverMetrics) compressed(plain, wire int) {
	if m != nil {
		m.compPlain[dirSend].Add(uint64(plain))
		m.compWire[dirSend].Add(uint64(wire))
	}
}

// decompressed counts one message received compressed: wire bytes as read,
// plain bytes once decompressed. The permessage-deflate reader calls it.
func (m *serverMetrics) decompressed(wire, plain int) {
	if m != nil {
		m.compPlain[dirReceive].Add(uint64(plain))
		m.compWire[dirReceive].Add(uint64(wire))
	}
}

// closed counts a connection's close by reason and the code reported to
// OnClose (teardown).
func (m *serverMetrics) closed(reason CloseReason, code core.CloseCode) {
	if m != nil && reason < numReasons {
		m.closes[reason][codeBucket(code)].Add(1)
	}
}

// Close codes as a bounded label: the codes RFC 6455 and IANA define from
// 1000 to 1015 as themselves, a peer's or plugin's other codes by range.
const (
	codeFirst      = 1000
	codeLast       = 1015
	codeRange3     = codeLast - codeFirst + 1 // 3000-3999 (registered)
	codeRange4     = codeRange3 + 1           // 4000-4999 (private)
	codeOther      = codeRange4 + 1           // anything else
	numCodeBuckets = codeOther + 1
)

var codeBucketNames = func() (names [numCodeBuckets]string) {
	for c := codeFirst; c <= codeLast; c++ {
		names[c-codeFirst] = strconv.Itoa(c)
	}
	names[codeRange3], names[codeRange4], names[codeOther] = "3xxx", "4xxx", "other"
	return names
}()

func codeBucket(code core.CloseCode) int {
	switch c := int(code); {
	case c >= codeFirst && c <= codeLast:
		return c - codeFirst
	case c >= 3000 && c <= 3999:
		return codeRange3
	case c >= 4000 && c <= 4999:
		return codeRange4
	}
	return codeOther
}

// routeMetrics are one route's connection counters, made with a route that
// has plugin entries (nil without metrics, and for a plain http.Handler)
// and published once Route has mounted it.
type routeMetrics struct {
	pattern  string
	open     atomic.Int64
	accepted atomic.Uint64
}

// newRoute returns the counters of a route being made.
func (m *serverMetrics) newRoute(rt *route) *routeMetrics {
	if m == nil || len(rt.chain) == 0 {
		return nil
	}
	return &routeMetrics{pattern: rt.pattern}
}

// addRoute publishes a route's counters once the route is mounted.
func (m *serverMetrics) addRoute(r *routeMetrics) {
	if m == nil || r == nil {
		return
	}
	m.mu.Lock()
	m.routes = append(m.routes, r)
	m.mu.Unlock()
}

// opened counts c as accepted on r and open until forget (released).
func (r *routeMetrics) opened(c *conn) {
	if r == nil {
		return
	}
	r.accepted.Add(1)
	r.open.Add(1)
	c.metrics = r
}

// released counts a connection of r as gone (conn.forget).
func (r *routeMetrics) released() {
	if r != nil {
		r.open.Add(-1)
	}
}

// pluginMetrics are one plugin's timings: its runtime's core.Observer, and
// its HTTP phases'. Each series is resolved once, on first use.
type pluginMetrics struct {
	m        *serverMetrics
	name     string
	dispatch lazyObserver
	handled  [core.NumHandlerEvents]lazyObserver
	phases   [numPhases]lazyObserver
}

// numPhases bounds core.Phase's values (PhaseRequestFilter ... PhaseLogging).
const numPhases = int(core.PhaseLogging) + 1

// lazyObserver is a histogram series resolved on its first observation,
// so that a handler or phase a plugin never runs shows no series.
type lazyObserver struct {
	once sync.Once
	o    prometheus.Observer
}

func (l *lazyObserver) get(vec *prometheus.HistogramVec, labels ...string) prometheus.Observer {
	l.once.Do(func() { l.o = vec.WithLabelValues(labels...) })
	return l.o
}

// plugin returns the named plugin's metrics, made on first use; nil
// without metrics.
func (m *serverMetrics) plugin(name string) *pluginMetrics {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	pm := m.plugins[name]
	if pm == nil {
		pm = &pluginMetrics{m: m, name: name}
		m.plugins[name] = pm
	}
	return pm
}

// observer returns the core.Observer of the named plugin's runtime: nil
// (an interface holding nothing) without metrics.
func (m *serverMetrics) observer(name string) core.Observer {
	if m == nil {
		return nil
	}
	return m.plugin(name)
}

var _ core.Observer = (*pluginMetrics)(nil)

// Dispatched implements core.Observer.
func (pm *pluginMetrics) Dispatched(wait time.Duration) {
	pm.dispatch.get(pm.m.dispatch, pm.name).Observe(wait.Seconds())
}

// Handled implements core.Observer.
func (pm *pluginMetrics) Handled(ev core.HandlerEvent, d time.Duration) {
	if ev < core.NumHandlerEvents {
		pm.handled[ev].get(pm.m.handler, pm.name, ev.String()).Observe(d.Seconds())
	}
}

// phaseStart returns when a phase starts, for phaseDone; the zero Time
// (and no clock read) without metrics.
func (pm *pluginMetrics) phaseStart() time.Time {
	if pm == nil {
		return time.Time{}
	}
	return time.Now()
}

// phaseDone records how waiting for a phase of the plugin ended: its
// duration when it ran (decided or failed while running) and its failure.
func (pm *pluginMetrics) phaseDone(ph core.Phase, out outcome, start time.Time) {
	if pm == nil {
		return
	}
	pm.phaseDoneAt(ph, out, start, time.Now())
}

// phaseDoneAt is phaseDone for a phase that ended at end.
func (pm *pluginMetrics) phaseDoneAt(ph core.Phase, out outcome, start, end time.Time) {
	if pm == nil || int(ph) >= numPhases {
		return
	}
	kind := ""
	switch out {
	case outTimeout:
		kind = "timeout"
	case outPanic:
		kind = "panic"
	case outRejected:
		kind = "rejected"
	case outTooLarge:
		kind = "body_too_large"
	case outGone:
		return // the client left: neither a duration nor the plugin's failure
	}
	if out != outRejected && !start.IsZero() {
		pm.phases[ph].get(pm.m.phase, pm.name, ph.String()).Observe(end.Sub(start).Seconds())
	}
	if kind != "" {
		pm.m.phaseFail.WithLabelValues(pm.name, ph.String(), kind).Inc()
	}
}
