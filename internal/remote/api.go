package remote

import (
	"errors"
	"log/slog"
	"time"
)

// Defaults of Config.
const (
	DefaultMaxFrameSize     = 16 << 20
	DefaultHandshakeTimeout = 5 * time.Second
	DefaultPingInterval     = time.Second
	DefaultPingTimeout      = 3 * time.Second
	// DefaultCallTimeout is below wsframework's default phase timeout (5
	// s), so that a plugin that does not answer gets this package's 502
	// (or fail-open Next) rather than the server's 504.
	DefaultCallTimeout = 4 * time.Second
)

// Config configures a Host.
type Config struct {
	Name             string        // the plugin name from strand.yaml; the hello must say the same
	Settings         []byte        // the plugin's `config:` map as JSON (nil: none); sent in the accept
	MaxFrameSize     int           // cap on one frame from the plugin; 0: DefaultMaxFrameSize (16 MiB)
	HandshakeTimeout time.Duration // 0: 5s
	PingInterval     time.Duration // 0: 1s
	PingTimeout      time.Duration // 0: 3s
	CallTimeout      time.Duration // per HTTP-phase call, and the longest wait for a credit; keep it below the server's PhaseTimeout; 0: DefaultCallTimeout (4s)
	FailOpen         bool          // HTTP phases while down: Next instead of 502
	Logger           *slog.Logger  // nil: discard
}

// ErrPingTimeout ends a session whose plugin did not answer a ping within
// Config.PingTimeout.
var ErrPingTimeout = errors.New("remote: plugin did not answer a ping in time")

// ErrBusy is returned by Attach while another session is attached.
var ErrBusy = errors.New("remote: a session is already attached")

// ErrClosed is returned by Attach and Plugin after Close.
var ErrClosed = errors.New("remote: host closed")

// HandshakeError is a refused handshake: a wrong plugin name, another ABI
// major version, or entries that differ from the first session's. Attach
// returns it after sending Reason to the plugin.
type HandshakeError struct{ Reason string }

func (e *HandshakeError) Error() string { return "remote: handshake refused: " + e.Reason }
