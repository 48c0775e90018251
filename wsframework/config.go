package wsframework

import (
	"errors"
	"fmt"
	"log/slog"
	"path"
	"time"

	"github.com/strandws/strand/dispatcher"
	"github.com/strandws/strand/sdk/bufpool"
)

// Defaults for zero Config fields.
const (
	DefaultMaxMessageBytes    = 1 << 20
	DefaultWriteQueueMessages = 4096
	DefaultWriteQueueBytes    = 16 << 20
	DefaultHandshakeTimeout   = 10 * time.Second
	DefaultWriteTimeout       = 10 * time.Second
	DefaultReadTimeout        = 30 * time.Second
	DefaultPingInterval       = 30 * time.Second
	DefaultCloseTimeout       = 5 * time.Second
)

// Config configures a Server. The zero value is valid; New copies it and
// fills the defaults.
type Config struct {
	// MaxMessageBytes is the largest message accepted from a client, after
	// reassembling fragments; a larger one closes the connection with 1009.
	// Zero means DefaultMaxMessageBytes (1 MiB).
	MaxMessageBytes int64
	// WriteQueueMessages and WriteQueueBytes bound a connection's write
	// queue. A Send that would exceed either closes the connection with 1008
	// (slow consumer). Zero means DefaultWriteQueueMessages (4096) and
	// DefaultWriteQueueBytes (16 MiB), sized so that a client that keeps
	// reading is never treated as slow.
	WriteQueueMessages int
	WriteQueueBytes    int64
	// MaxPendingBytes bounds a connection's inbound bytes handed to the
	// plugin but not yet handled; above it the reader pauses. Zero means
	// sdk.DefaultMaxPendingBytes (4 MiB).
	MaxPendingBytes int64
	// HandshakeTimeout bounds reading the upgrade request (when the Server
	// runs its own http.Server) and writing the handshake response. Zero
	// means DefaultHandshakeTimeout (10 s).
	HandshakeTimeout time.Duration
	// WriteTimeout bounds one write to a connection; a peer that stops
	// reading is closed when it passes. Zero means DefaultWriteTimeout (10 s).
	WriteTimeout time.Duration
	// ReadTimeout bounds reading the rest of a frame once its header has
	// arrived; a client that stalls mid-frame is closed with 1008. Zero
	// means DefaultReadTimeout (30 s).
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
	// Dispatcher configures the ordered executor of each plugin's runtime.
	// Zero means the dispatcher's defaults.
	Dispatcher dispatcher.ShardedConfig
	// Buffers is the buffer pool shared by connections and runtimes. Nil
	// means a new pool.
	Buffers *bufpool.Pool
	// Logger receives the server's logs. Nil means slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	if c.MaxMessageBytes < 0 || c.WriteQueueMessages < 0 || c.WriteQueueBytes < 0 ||
		c.MaxConns < 0 || c.MaxConnsPerIP < 0 || c.HandshakeTimeout < 0 ||
		c.WriteTimeout < 0 || c.ReadTimeout < 0 || c.CloseTimeout < 0 {
		return c, errors.New("wsframework: negative limit in Config")
	}
	for _, p := range c.AllowedOrigins {
		if _, err := path.Match(p, ""); err != nil {
			return c, fmt.Errorf("wsframework: AllowedOrigins pattern %q: %w", p, err)
		}
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.WriteQueueMessages == 0 {
		c.WriteQueueMessages = DefaultWriteQueueMessages
	}
	if c.WriteQueueBytes == 0 {
		c.WriteQueueBytes = DefaultWriteQueueBytes
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
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
	if c.Buffers == nil {
		c.Buffers = bufpool.New(bufpool.Config{})
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Subprotocols = append([]string(nil), c.Subprotocols...)
	c.AllowedOrigins = append([]string(nil), c.AllowedOrigins...)
	return c, nil
}
