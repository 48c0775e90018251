// Command plugin is the echo example's plugin (examples/echo/echoplugin) as
// a process of its own, for strand to run (examples/echo/strand.yaml):
//
//	go build -o bin/ ./cmd/strand && go build -o bin/echo-plugin ./examples/echo/plugin
//	./bin/strand -config examples/echo/strand.yaml
//
// strand starts it with STRAND_PLUGIN_SOCKET set and it dials that socket;
// run by someone else, STRAND_PLUGIN_LISTEN=/path/echo.sock makes it
// listen there for a strand configured with socket: /path/echo.sock. With
// -token, /echo upgrades without the token get 401. Its log goes to stderr,
// which strand logs as its own lines tagged plugin=echo.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/strandws/strand/examples/echo/echoplugin"
	"github.com/strandws/strand/sdk/serve"
)

func main() {
	token := flag.String("token", "", "if set, /echo upgrades need ?token=TOKEN or Authorization: Bearer TOKEN (401 otherwise)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve.Run(ctx, echoplugin.WithToken(*token)); err != nil {
		fmt.Fprintln(os.Stderr, "echo plugin:", err)
		os.Exit(1)
	}
}
