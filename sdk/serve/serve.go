package serve

import (
	"context"
	"errors"
	"os"

	"github.com/strandws/strand/sdk"
)

// Environment variables Run reads.
const (
	// EnvSocket is set by strand when it starts the plugin: Run dials this
	// Unix socket.
	EnvSocket = "STRAND_PLUGIN_SOCKET"
	// EnvListen is set by whoever runs the plugin alone: Run listens on
	// this Unix socket path and strand dials it.
	EnvListen = "STRAND_PLUGIN_LISTEN"
)

// Run serves p: it dials EnvSocket if set (and returns when that socket
// closes or ctx ends: a plugin started by strand exits with its host),
// else listens on EnvListen (serving one host connection at a time, until
// ctx ends), else returns an error saying which variable to set.
func Run(ctx context.Context, p *sdk.Plugin) error {
	if path := os.Getenv(EnvSocket); path != "" {
		return Dial(ctx, p, path)
	}
	if path := os.Getenv(EnvListen); path != "" {
		return Listen(ctx, p, path)
	}
	return errors.New("serve: neither " + EnvSocket + " (set by strand when it starts the plugin) nor " +
		EnvListen + " (a socket path to listen on, for a plugin you run yourself) is set")
}
