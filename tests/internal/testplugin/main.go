// Command testplugin is a plugin for the strand tests that misbehaves on
// request. It serves the echo plugin (entries "echo" and "broadcast")
// under the name given by -name, through sdk/serve, unless the file named
// by -misbehave exists when it starts; then, by -mode:
//
//	garbage  dial the socket, write bytes that are no frame, then wait
//	abi      dial the socket and say hello with ABI major ABIMajor+1
//
// With -stdout it prints a line on stdout at start and for every message
// it echoes (the protocol never uses stdout).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/strandws/strand/examples/echo/echoplugin"
	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/sdk/frame"
	"github.com/strandws/strand/sdk/serve"
)

func main() {
	name := flag.String("name", "echo", "the plugin's name")
	misbehave := flag.String("misbehave", "", "misbehave (-mode) when this file exists")
	mode := flag.String("mode", "", "garbage or abi")
	stdout := flag.Bool("stdout", false, "print to stdout")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *misbehave != "" {
		if _, err := os.Stat(*misbehave); err == nil {
			os.Exit(misbehaveNow(*mode, *name))
		}
	}
	p := echoplugin.New()
	if *name != "echo" || *stdout {
		p = echoAs(*name, *stdout)
	}
	if *stdout {
		fmt.Println("testplugin: hello on stdout")
	}
	if err := serve.Run(ctx, p); err != nil {
		fmt.Fprintln(os.Stderr, "testplugin:", err)
		os.Exit(1)
	}
}

// echoAs is an echo plugin named name (entry "echo"), printing each
// message to stdout if asked.
func echoAs(name string, print bool) *sdk.Plugin {
	p := sdk.NewPlugin(name)
	p.Entry("echo").WebSocket(sdk.WebSocketHandlers{
		OnMessage: func(c *sdk.Conn, m sdk.Message) {
			if print {
				fmt.Printf("testplugin: echo %d bytes\n", len(m.Data))
			}
			_ = c.Send(m.Type, m.Data)
		},
	})
	return p
}

func misbehaveNow(mode, name string) int {
	c, err := net.Dial("unix", os.Getenv(serve.EnvSocket))
	if err != nil {
		fmt.Fprintln(os.Stderr, "testplugin:", err)
		return 1
	}
	defer c.Close()
	switch mode {
	case "garbage":
		junk := make([]byte, 4096)
		for i := range junk {
			junk[i] = byte(0xff - i%7)
		}
		_, _ = c.Write(junk)
	case "abi":
		w, err := frame.NewWriter(c, frame.WriterConfig{})
		if err != nil {
			fmt.Fprintln(os.Stderr, "testplugin:", err)
			return 1
		}
		f := &frame.Frame{
			Kind:      frame.KindHandshake,
			Method:    frame.MethodHello,
			Handshake: &frame.Handshake{Magic: frame.Magic, ABIMajor: frame.ABIMajor + 1, ABIMinor: 0},
			Hello:     &frame.Hello{PluginName: name, Entries: []frame.EntryDecl{{Name: "echo", Phases: 1 << frame.PhaseWebSocket}}, MaxFrameSize: 1 << 20, InitialCredits: 64},
		}
		if err := w.WriteFrame(f); err == nil {
			_ = w.Flush()
		}
	default:
		fmt.Fprintln(os.Stderr, "testplugin: unknown -mode", mode)
		return 2
	}
	fmt.Fprintf(os.Stderr, "testplugin: misbehaved (%s); waiting for the host to hang up\n", mode)
	_, _ = io.Copy(io.Discard, c) // until the host closes (or kills us)
	return 0
}
