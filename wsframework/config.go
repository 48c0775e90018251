package wsframework

import (
	"compress/flate"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strandws/strand/dispatcher"
	"github.com/strandws/strand/internal/core"
	"github.com/strandws/strand/sdk/bufpool"
)

// Defaults for zero Config fields.
const (
	DefaultMaxMessageBytes     = 1 << 20
	DefaultWriteQueueMessages  = 4096
	DefaultWriteQueueBytes     = 16 << 20
	DefaultHandshakeTimeout    = 10 * time.Second
	DefaultWriteTimeout        = 10 * time.Second
	DefaultReadTimeout         = 30 * time.Second
	DefaultPingInterval        = 30 * time.Second
	DefaultCloseTimeout        = 5 * time.Second
	DefaultPhaseTimeout        = 5 * time.Second
	DefaultMaxPendingBytes     = 4 << 20
	DefaultMaxRequestBodyBytes = 1 << 20
	DefaultMaxBodyFilterBytes  = 4 << 20
	DefaultMaxFragments        = 4096
	DefaultMessageTimeout      = 30 * time.Second
	DefaultMaxHeaderBytes      = 16 << 10
	DefaultCertCheckInterval   = 5 * time.Second
	DefaultMetricsSampleEvery  = core.DefaultObserveEvery
	// DefaultMaxHandshakes is MaxHandshakes's default where the process's
	// open-file limit cannot be read; elsewhere the default follows that
	// limit (see Config.MaxHandshakes).
	DefaultMaxHandshakes = 4096
	// DefaultCompressionThreshold is CompressionConfig.Threshold's default:
	// smaller messages are sent uncompressed.
	DefaultCompressionThreshold = 512
	// DefaultCompressionLevel is CompressionConfig.Level's default.
	DefaultCompressionLevel = flate.BestSpeed
)

// Bounds of MaxHandshakes's default derived from the open-file limit.
const (
	minDefaultMaxHandshakes = 1024
	maxDefaultMaxHandshakes = 1 << 20
)

// defaultMaxHandshakes is a quarter of the open-file soft limit, within
// [minDefaultMaxHandshakes, maxDefaultMaxHandshakes]; DefaultMaxHandshakes
// when there is no limit to read.
func defaultMaxHandshakes() int {
	limit, ok := openFileLimit()
	if !ok {
		return DefaultMaxHandshakes
	}
	return int(min(max(limit/4, minDefaultMaxHandshakes), maxDefaultMaxHandshakes))
}

// ReaderMode selects how a Server reads its WebSocket connections.
type ReaderMode uint8

// Reader modes.
const (
	// ReaderAuto is ReaderPoll where it is supported (Linux, plain TCP
	// connections) and ReaderGoroutine elsewhere (other platforms, TLS or
	// any other net.Conn).
	ReaderAuto ReaderMode = iota
	// ReaderGoroutine reads each connection on a goroutine of its own,
	// which blocks in Read while the connection is idle.
	ReaderGoroutine
	// ReaderPoll reads connections when epoll reports them readable: a
	// connection with nothing to read holds no goroutine and no read
	// buffer, and its descriptor is taken over from its net.Conn, so none
	// of net's per-socket state either. A small fixed set of loops (one
	// per GOMAXPROCS) reads the available frames without waiting and
	// submits them in order; deadlines and keepalive pings are timers in
	// the loop. Where it is not supported, it falls back to
	// ReaderGoroutine.
	ReaderPoll
	numReaderModes
)

func (m ReaderMode) String() string {
	switch m {
	case ReaderAuto:
		return "auto"
	case ReaderGoroutine:
		return "goroutine"
	case ReaderPoll:
		return "poll"
	}
	return "unknown"
}

// PluginPolicy is how the host treats one plugin.
type PluginPolicy struct {
	// FailOpen skips the plugin when one of its phase handlers times out,
	// panics or cannot take a larger body, instead of failing the request
	// (500, 504 on timeout, 502 for an oversize body). Both are counted.
	FailOpen bool
}

// CompressionConfig configures permessage-deflate (RFC 7692), the
// WebSocket compression extension browsers offer. The zero value turns it on
// without context takeover, for messages of 512 bytes and more.
//
// A client that offers the extension gets it, unless it is Disabled (or
// turned off for the route, RouteOptions.NoCompression). An offer with a
// parameter RFC 7692 does not define, an invalid value or a parameter given
// twice is declined (answered without the extension), and so is one asking
// for server_max_window_bits below 15 (compress/flate always uses the
// full 32 KiB window); the next offer, if any, is considered. A
// Sec-WebSocket-Extensions header that breaks RFC 6455's grammar (section
// 9.1) is answered 400 (section 4.2.1), whether compression is on or not.
// The answer names server_no_context_takeover and
// client_no_context_takeover (with ContextTakeover, each only if the
// client offered it), and server_max_window_bits=15 when the client asked
// for it.
//
// What a compressed message from a client may cost is bounded by
// Config.MaxMessageBytes twice: its compressed frames, and its size once
// inflated, counted as it is inflated (docs/security.md).
type CompressionConfig struct {
	// Disabled declines every offer: no connection is compressed.
	Disabled bool
	// Threshold is the size from which a data message sent to a client
	// that negotiated the extension is compressed; smaller ones go as they
	// are. Control frames never are, nor a message sent uncompressed on
	// purpose (the connection's WriteUncompressed, for the runtime to
	// offer plugins). Without context takeover a message whose
	// compressed form is not smaller goes uncompressed too. Zero means
	// DefaultCompressionThreshold (512 bytes); to compress every message,
	// set 1.
	Threshold int
	// ContextTakeover lets both sides refer back to earlier messages of
	// the connection (up to 32 KiB), which compresses small, similar
	// messages much better, at a memory cost per connection: from its
	// first compressed message on, a connection holds its own compressor
	// (about 1.2 MiB at level 1 and 0.8 MiB at the other levels) until it
	// closes, and up to 32 KiB of what its client sent compressed. A
	// client that offers no context takeover for either side still gets
	// none on that side. A broadcast is compressed by each such member's
	// writer, not once for all. Off (the default), the compressors and
	// inflaters are pooled and taken per message: an idle connection holds
	// no compression state, and a broadcast is compressed once for every
	// member that negotiated the extension.
	ContextTakeover bool
	// Level is the compress/flate level of what the server compresses:
	// flate.BestSpeed (1) to flate.BestCompression (9),
	// flate.DefaultCompression (6) or flate.HuffmanOnly. Zero means
	// DefaultCompressionLevel (flate.BestSpeed). Without context takeover
	// every level but 1 clears about 640 KiB of tables per message: a
	// 1 KiB message takes about three times as long to compress at level 6
	// as at level 1 (BenchmarkCompress).
	Level int
}

// Config configures a Server. The zero value is valid; New copies it and
// fills the defaults.
type Config struct {
	// MaxMessageBytes is the largest message accepted from a client, after
	// reassembling fragments; a larger one closes the connection with 1009.
	// Zero means DefaultMaxMessageBytes (1 MiB).
	MaxMessageBytes int64
	// MaxFragments bounds the frames of one message; a message with more
	// closes the connection with 1008. Zero means DefaultMaxFragments
	// (4096); negative means no bound.
	MaxFragments int
	// MessageTimeout bounds the time from a fragmented message's first frame
	// to its last, so that a slow drip of small fragments (each within
	// ReadTimeout) cannot hold a connection and its partial message for
	// ever; past it the connection closes with 1008. Zero means
	// DefaultMessageTimeout (30 s).
	MessageTimeout time.Duration
	// MessageRate limits the messages a connection may send, per second, on
	// average over a burst of MessageBurst. A connection over it is paused:
	// its reader stops reading until the rate allows the next message, so
	// TCP pushes back on the client; with MessageRateClose it is closed with
	// 1008 instead (the message over the rate is not delivered). Zero means
	// no limit.
	MessageRate float64
	// MessageBurst is how many messages a connection may send at once
	// within MessageRate. Zero means MessageRate rounded up (at least 1).
	MessageBurst int
	// MessageRateClose closes a connection over MessageRate (1008) instead
	// of pausing its reader.
	MessageRateClose bool
	// WriteQueueMessages and WriteQueueBytes bound a connection's write
	// queue: the data messages (and pong replies) queued and not yet taken
	// by its writer, which takes everything queued at once. A send (a
	// plugin's Send, SendTo, a room delivery) is treated by size:
	//
	//   - a message larger than WriteQueueBytes on its own is refused with
	//     sdk.ErrTooBig and the connection stays open (a broadcast that
	//     large is refused before it is published);
	//   - one that fits on its own but would take the queue over either
	//     bound closes the connection with 1008 (slow consumer): its queue
	//     is dropped and the send returns sdk.ErrSlowConsumer. So does a
	//     write blocked for WriteTimeout. A message close to
	//     WriteQueueBytes therefore closes a connection with anything
	//     queued: keep messages well under it.
	//
	// While the queue is over half of either bound the connection's reader
	// pauses, so a client that sends faster than it reads its answers is
	// slowed by TCP backpressure, not closed. Zero means
	// DefaultWriteQueueMessages (4096) and DefaultWriteQueueBytes (16 MiB),
	// sized so that a client that keeps reading is never treated as slow.
	WriteQueueMessages int
	WriteQueueBytes    int64
	// MaxPendingBytes bounds a connection's inbound bytes handed to the
	// plugin but not yet handled; above it the reader pauses. Zero means
	// DefaultMaxPendingBytes (4 MiB).
	MaxPendingBytes int64
	// HandshakeTimeout bounds reading the upgrade request (when the Server
	// runs its own http.Server; on TLS, the TLS handshake and the request
	// head together) and writing the handshake response. Zero means
	// DefaultHandshakeTimeout (10 s).
	HandshakeTimeout time.Duration
	// MaxHandshakes caps the handshakes in progress on Serve's accept
	// path: connections accepted whose request head has not been read
	// whole yet (each holds a descriptor, a goroutine and a 4 KiB reader
	// for up to HandshakeTimeout, at the client's pace). When a connection
	// arrives at the cap, the handshake that has been in progress longest
	// is closed unanswered to make room (Stats.HandshakesEvicted), so
	// clients that open connections and stall mid-head cannot lock new
	// ones out. Once its head is read a handshake no longer counts: the
	// routes' decision and the answer are bounded by PhaseTimeout and
	// HandshakeTimeout. On TLS a connection counts from its accept, its TLS
	// handshake included, so clients stalling before or inside the TLS
	// handshake are evicted the same way. Zero means a quarter
	// of the process's open-file soft limit (RLIMIT_NOFILE) when New runs,
	// at least 1024 and at most 1<<20, or DefaultMaxHandshakes (4096) on a
	// platform without that limit; negative means no cap.
	MaxHandshakes int
	// MaxHandshakesPerIP caps the handshakes in progress (see
	// MaxHandshakes) from one peer IP: a connection beyond it is answered
	// 503 Service Unavailable with "Retry-After: 1", before its request is
	// read, and closed (Stats.RejectedHandshakeIP); on TLS it is closed
	// unanswered, before any TLS work (an answer would need a TLS
	// handshake). The IP is the socket
	// peer's: no header has been read yet, so TrustedProxies cannot apply,
	// and behind a proxy or a NAT every client it carries shares one IP.
	// Zero means no cap.
	MaxHandshakesPerIP int
	// MaxHeaderBytes caps the request head (request line, header lines and
	// the empty line ending them) of a connection's first request on
	// Serve's accept path: a longer head is answered 431 Request Header
	// Fields Too Large and the connection is closed
	// (Stats.RejectedHeaderBytes). A head larger than the pooled 4 KiB
	// reader is read on into a buffer of its own and served by net/http.
	// The same holds over TLS. Later requests on a keep-alive connection
	// are read by net/http, which applies the same cap with its own
	// allowance of up to 4 KiB more. Mounted as an http.Handler
	// elsewhere, the enclosing server's limit applies. Zero means
	// DefaultMaxHeaderBytes (16 KiB).
	MaxHeaderBytes int
	// WriteTimeout bounds one write to a connection; a peer that stops
	// reading is closed when it passes. Zero means DefaultWriteTimeout (10 s).
	WriteTimeout time.Duration
	// ReadTimeout bounds reading the rest of a frame once its first byte
	// has arrived; a client that stalls mid-frame (header or payload) is
	// closed with 1008. Zero means DefaultReadTimeout (30 s).
	ReadTimeout time.Duration
	// PingInterval is how often the server pings a connection. Zero means
	// DefaultPingInterval (30 s); negative disables pings.
	PingInterval time.Duration
	// IdleTimeout closes (1001) a connection from which nothing, not even a
	// pong, arrived for this long. Zero means twice the ping interval (60 s
	// by default); negative disables it.
	IdleTimeout time.Duration
	// CloseTimeout bounds waiting for the peer's close frame after the
	// server sent one, and for queued writes to drain on close. Zero means
	// DefaultCloseTimeout (5 s).
	CloseTimeout time.Duration
	// Subprotocols lists the supported subprotocols. The first one offered
	// by the client that is in this list is selected; none means no
	// Sec-WebSocket-Protocol header. Zero means none supported.
	Subprotocols []string
	// AllowedOrigins lists path.Match patterns for the Origin header of a
	// WebSocket handshake, matched against the whole origin
	// ("https://*.example.com") and against its host[:port]
	// ("*.example.com"). A request without Origin is allowed (not a
	// browser); an Origin whose host:port equals the request's Host is
	// always allowed. Any other gets 403. Zero means same-host only.
	AllowedOrigins []string
	// MaxConns caps open WebSocket connections (503 beyond). Zero means no cap.
	MaxConns int
	// MaxConnsPerIP caps open WebSocket connections per client IP (429
	// beyond). Zero means no cap.
	MaxConnsPerIP int
	// MaxRoomsPerConn caps the rooms one connection is a member of at
	// once, so that a client cannot make its plugin hold memberships (and
	// adapter subscriptions) without bound. A join beyond it (Conn.Join,
	// Server.JoinRoom) returns sdk.ErrTooManyRooms; the connection stays
	// open and in its rooms. Joining a room it is already in does not count
	// twice. Zero means sdk.DefaultMaxRoomsPerConn (64); negative is an
	// error, like every negative limit (set a large value for no practical
	// cap).
	MaxRoomsPerConn int
	// PhaseTimeout bounds one HTTP phase handler: a handler that has not
	// decided (Next/End/Upgrade) by then fails its plugin's failure mode.
	// Each host call the handler makes restarts it. Zero means
	// DefaultPhaseTimeout (5 s).
	PhaseTimeout time.Duration
	// MaxRequestBodyBytes caps a request body read by a plugin through the
	// channel context (413 beyond). Zero means DefaultMaxRequestBodyBytes
	// (1 MiB).
	MaxRequestBodyBytes int64
	// MaxBodyFilterBytes caps the answer body buffered for a
	// ResponseBodyFilter; a larger body follows the failure mode (closed:
	// 502; open: passed through unfiltered, counted). Zero means
	// DefaultMaxBodyFilterBytes (4 MiB).
	MaxBodyFilterBytes int64
	// Plugins holds per-plugin policies by plugin name. A plugin not listed
	// gets the zero PluginPolicy (fail closed).
	Plugins map[string]PluginPolicy
	// TrustedProxies lists the proxies (IP addresses or CIDR prefixes) whose
	// X-Forwarded-For and Forwarded headers are believed for the client IP.
	// Zero means none: the client IP is the socket's.
	TrustedProxies []string
	// Phases configures each plugin runtime's HTTP phase worker pool. Zero
	// means dispatcher's defaults.
	Phases dispatcher.PoolConfig
	// Dispatcher configures the ordered executor of each plugin's runtime.
	// Zero means the dispatcher's defaults, except that with an Adapter a
	// zero Workers means ClusterWorkers: a broadcast from a handler waits
	// for the adapter (a Redis round trip) on the worker running it, so a
	// node needs many workers for many connections' broadcasts to be in
	// flight at once and share round trips (docs/cluster.md).
	Dispatcher dispatcher.ShardedConfig
	// Buffers is the buffer pool shared by connections and runtimes. Nil
	// means a new pool.
	Buffers *bufpool.Pool
	// Adapter carries room messages between the nodes serving one set of
	// rooms. Nil means a node of its own in-memory bus (one node). The
	// Server binds it in New and closes it at the end of Shutdown.
	Adapter Adapter
	// Metrics is the Prometheus registry the Server's metrics are
	// registered on, as one collector, by New (docs/metrics.md lists the
	// families): typically the application's own prometheus.NewRegistry(),
	// served with promhttp.HandlerFor. Nil means no metrics and no cost;
	// the library never registers anything globally. New fails if the
	// registration does, as for a second Server on the same registry:
	// give each Server a registry of its own, or wrap the shared one for
	// every Server on it with prometheus.WrapRegistererWith and a label
	// that tells them apart. The metrics stay registered after Shutdown,
	// with their final values.
	Metrics prometheus.Registerer
	// MetricsSampleEvery samples the WebSocket messages whose dispatch
	// delay and handler duration are timed (each costs clock reads): one
	// in this many per connection, its first included. Zero means
	// DefaultMetricsSampleEvery (64); 1 times every message.
	MetricsSampleEvery int
	// Logger receives the server's logs. Nil means slog.Default().
	Logger *slog.Logger
	// Reader selects how connections are read (see ReaderMode); behaviour,
	// limits and close codes are the same in every mode. Zero means
	// ReaderAuto.
	Reader ReaderMode
	// Compression configures permessage-deflate. The zero value is on for
	// every client that offers it (see CompressionConfig).
	Compression CompressionConfig
	// TLS is the base TLS configuration of ServeTLS and ListenAndServeTLS,
	// as http.Server.TLSConfig is net/http's: cipher suites, minimum
	// version, client certificates, and the certificate itself when no
	// files are given. It is cloned when serving starts; its NextProtos
	// are replaced by "http/1.1" (a WebSocket upgrade needs HTTP/1.1). Nil
	// means crypto/tls's defaults. Serve and ListenAndServe ignore it.
	TLS *tls.Config
	// CertCheckInterval is how often, at most, ServeTLS looks at its
	// certificate and key files' modification times and sizes, and reads
	// them again when they changed: a renewed certificate is served to
	// new connections without a restart. The look is made by a handshake
	// that finds it due (no goroutine watches the files); a pair that does
	// not load leaves the previous certificate in use. Zero means
	// DefaultCertCheckInterval (5 s); negative means the files are read
	// once.
	CertCheckInterval time.Duration
}

// ClusterWorkers is the dispatcher's default worker count per plugin
// runtime on a Server with an Adapter (Config.Dispatcher).
const ClusterWorkers = 256

func (c Config) withDefaults() (Config, error) {
	if c.MaxMessageBytes < 0 || c.WriteQueueMessages < 0 || c.WriteQueueBytes < 0 ||
		c.MaxConns < 0 || c.MaxConnsPerIP < 0 || c.MaxRoomsPerConn < 0 || c.HandshakeTimeout < 0 ||
		c.WriteTimeout < 0 || c.ReadTimeout < 0 || c.CloseTimeout < 0 ||
		c.PhaseTimeout < 0 || c.MaxRequestBodyBytes < 0 || c.MaxBodyFilterBytes < 0 ||
		c.MessageTimeout < 0 || c.MessageRate < 0 || c.MessageBurst < 0 || math.IsNaN(c.MessageRate) || math.IsInf(c.MessageRate, 0) ||
		c.MaxHandshakesPerIP < 0 || c.MaxHeaderBytes < 0 || c.MetricsSampleEvery < 0 {
		return c, errors.New("wsframework: negative limit in Config")
	}
	if c.Compression.Threshold < 0 {
		return c, errors.New("wsframework: negative limit in Config")
	}
	if c.Adapter != nil && c.Dispatcher.Workers == 0 {
		c.Dispatcher.Workers = ClusterWorkers
	}
	switch l := c.Compression.Level; {
	case l == 0:
		c.Compression.Level = DefaultCompressionLevel
	case l == flate.HuffmanOnly, l == flate.DefaultCompression, l >= flate.BestSpeed && l <= flate.BestCompression:
	default:
		return c, fmt.Errorf("wsframework: Compression.Level %d: want 1 to 9, flate.DefaultCompression or flate.HuffmanOnly", l)
	}
	if c.Compression.Threshold == 0 {
		c.Compression.Threshold = DefaultCompressionThreshold
	}
	if c.Reader >= numReaderModes {
		return c, fmt.Errorf("wsframework: unknown ReaderMode %d", c.Reader)
	}
	for _, p := range c.AllowedOrigins {
		if _, err := path.Match(p, ""); err != nil {
			return c, fmt.Errorf("wsframework: AllowedOrigins pattern %q: %w", p, err)
		}
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	switch {
	case c.MaxFragments == 0:
		c.MaxFragments = DefaultMaxFragments
	case c.MaxFragments < 0:
		c.MaxFragments = 0 // the parser's "no bound"
	}
	if c.MessageTimeout == 0 {
		c.MessageTimeout = DefaultMessageTimeout
	}
	if c.MessageRate > 0 && c.MessageBurst == 0 {
		c.MessageBurst = max(1, int(math.Ceil(c.MessageRate)))
	}
	if c.WriteQueueMessages == 0 {
		c.WriteQueueMessages = DefaultWriteQueueMessages
	}
	if c.WriteQueueBytes == 0 {
		c.WriteQueueBytes = DefaultWriteQueueBytes
	}
	if c.MaxRoomsPerConn == 0 {
		c.MaxRoomsPerConn = core.DefaultMaxRoomsPerConn
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	switch {
	case c.MaxHandshakes == 0:
		c.MaxHandshakes = defaultMaxHandshakes()
	case c.MaxHandshakes < 0:
		c.MaxHandshakes = 0 // no cap
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.CertCheckInterval == 0 {
		c.CertCheckInterval = DefaultCertCheckInterval
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.PingInterval == 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.IdleTimeout == 0 {
		if c.PingInterval > 0 {
			c.IdleTimeout = 2 * c.PingInterval
		} else {
			c.IdleTimeout = -1
		}
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = DefaultCloseTimeout
	}
	if c.PhaseTimeout == 0 {
		c.PhaseTimeout = DefaultPhaseTimeout
	}
	if c.MaxRequestBodyBytes == 0 {
		c.MaxRequestBodyBytes = DefaultMaxRequestBodyBytes
	}
	if c.MaxBodyFilterBytes == 0 {
		c.MaxBodyFilterBytes = DefaultMaxBodyFilterBytes
	}
	if c.Buffers == nil {
		c.Buffers = bufpool.New(bufpool.Config{})
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Subprotocols = append([]string(nil), c.Subprotocols...)
	c.TrustedProxies = append([]string(nil), c.TrustedProxies...)
	if c.Plugins != nil {
		m := make(map[string]PluginPolicy, len(c.Plugins))
		for k, v := range c.Plugins {
			m[k] = v
		}
		c.Plugins = m
	}
	c.AllowedOrigins = append([]string(nil), c.AllowedOrigins...)
	if c.TLS != nil {
		c.TLS = c.TLS.Clone()
	}
	return c, nil
}
