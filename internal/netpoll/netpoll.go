package netpoll

import "errors"

// Errors returned by the poller.
var (
	// ErrUnsupported is returned by New on platforms without epoll.
	ErrUnsupported = errors.New("netpoll: not supported on this platform")
	// ErrWouldBlock is returned by Read when nothing is available.
	ErrWouldBlock = errors.New("netpoll: read would block")
	// ErrClosed is returned by NewHandle after Close.
	ErrClosed = errors.New("netpoll: poller closed")
)

// Handler is told that its handle is ready: readable (after Arm), or
// triggered. It runs on the handle's loop and must not block.
type Handler interface {
	Ready()
}
