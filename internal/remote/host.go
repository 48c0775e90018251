package remote

import (
	"context"
	"errors"
	"net"

	"github.com/strandws/strand/sdk"
)

// Host is the host's end of one configured out-of-process plugin. It serves
// one session (one plugin connection) at a time; a session that ends (the
// plugin crashed, was killed, stopped answering pings, or sent a bad frame)
// can be followed by another Attach, and the proxy plugin serves again.
type Host struct {
	cfg Config
}

// New returns a Host for the plugin cfg describes.
func New(cfg Config) (*Host, error) {
	if cfg.Name == "" {
		return nil, errors.New("remote: Config.Name is empty")
	}
	return &Host{cfg: cfg}, nil
}

// Attach performs the handshake on conn and runs the session until it
// ends; it returns why it ended (io.EOF when the plugin closed, a
// *HandshakeError, ErrPingTimeout, a malformed-frame error, ctx.Err()). At
// most one session at a time: a second concurrent Attach returns ErrBusy at
// once. Attach closes conn before returning.
func (h *Host) Attach(ctx context.Context, conn net.Conn) error {
	_ = conn.Close()
	return errors.New("remote: not implemented yet")
}

// Plugin returns the proxy plugin to mount on routes. It exists after the
// first successful handshake; Plugin blocks until then or until ctx is done.
func (h *Host) Plugin(ctx context.Context) (*sdk.Plugin, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// Up reports whether a session is attached and past its handshake.
func (h *Host) Up() bool { return false }

// Goodbye asks the attached plugin, if any, to finish and exit: it stops
// taking new events, answers what it has, and closes. It does not wait.
func (h *Host) Goodbye() {}

// Close ends any session, closes the proxy's WebSocket connections with
// 1012 and stops every goroutine of the Host. Idempotent.
func (h *Host) Close() error { return nil }
