package serve

import (
	"context"
	"errors"

	"github.com/strandws/strand/sdk"
)

// Dial connects to the host's Unix socket at path and serves p until the
// socket closes or ctx ends.
func Dial(ctx context.Context, p *sdk.Plugin, path string) error {
	return errors.New("serve: not implemented yet")
}

// Listen listens on the Unix socket path and serves p to one host
// connection at a time, until ctx ends. It removes a stale socket file at
// path first, and the socket file when it returns.
func Listen(ctx context.Context, p *sdk.Plugin, path string) error {
	return errors.New("serve: not implemented yet")
}
