package frame

import "errors"

// Errors returned by the codec. Decode and the stream Reader wrap them with
// detail; test with errors.Is.
var (
	// ErrMalformed reports bytes that are not a well-formed frame: a bad
	// root, vtable, offset or length, or a wrong file identifier.
	ErrMalformed = errors.New("frame: malformed frame")
	// ErrTooLarge reports a frame over the configured MaxFrameSize, read
	// from a stream or about to be written to one.
	ErrTooLarge = errors.New("frame: frame too large")
	// ErrHandshake reports a handshake that is missing, has the wrong
	// magic, or another ABI major version.
	ErrHandshake = errors.New("frame: handshake refused")
)
