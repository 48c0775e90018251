//go:build !linux

package netpoll

import "syscall"

// Supported reports whether New can work on this platform.
const Supported = false

// Poller is unavailable on this platform.
type Poller struct{}

// Handle is unavailable on this platform.
type Handle struct{}

// New returns ErrUnsupported.
func New(int) (*Poller, error) { return nil, ErrUnsupported }

// NewHandle returns ErrUnsupported.
func (*Poller) NewHandle(syscall.RawConn, Handler) (*Handle, error) { return nil, ErrUnsupported }

// Close does nothing.
func (*Poller) Close() error { return nil }

// Arm returns ErrUnsupported.
func (*Handle) Arm() error { return ErrUnsupported }

// Deregister does nothing.
func (*Handle) Deregister() {}

// Trigger does nothing.
func (*Handle) Trigger() {}

// Read returns ErrUnsupported.
func (*Handle) Read([]byte) (int, error) { return 0, ErrUnsupported }
