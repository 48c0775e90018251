//go:build !linux

package netpoll

import (
	"net"
	"time"

	"github.com/strandws/strand/internal/clock"
)

// Supported reports whether New can work on this platform.
const Supported = false

// Poller is unavailable on this platform.
type Poller struct{}

// Handle is unavailable on this platform.
type Handle struct{}

// New returns ErrUnsupported.
func New(int, *clock.Clock) (*Poller, error) { return nil, ErrUnsupported }

// Detach returns ErrUnsupported.
func (*Poller) Detach(*net.TCPConn, Handler) (*Handle, error) { return nil, ErrUnsupported }

// NewHandle returns ErrUnsupported.
func (*Poller) NewHandle(int, Handler) (*Handle, error) { return nil, ErrUnsupported }

// Close does nothing.
func (*Poller) Close() error { return nil }

// Arm returns ErrUnsupported.
func (*Handle) Arm() error { return ErrUnsupported }

// Disarm does nothing.
func (*Handle) Disarm() {}

// Deregister does nothing.
func (*Handle) Deregister() {}

// Trigger does nothing.
func (*Handle) Trigger() {}

// SetTimer does nothing.
func (*Handle) SetTimer(int64) {}

// Timer returns 0.
func (*Handle) Timer() int64 { return 0 }

// Read returns ErrUnsupported.
func (*Handle) Read([]byte) (int, error) { return 0, ErrUnsupported }

// Writev returns ErrUnsupported.
func (*Handle) Writev(*net.Buffers, time.Time) (int64, error) { return 0, ErrUnsupported }

// Close does nothing.
func (*Handle) Close() error { return nil }

// LoopReady returns 0.
func (*Handle) LoopReady() int { return 0 }
