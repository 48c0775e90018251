package strandtest_test

import (
	"context"
	"testing"

	"github.com/strandws/strand/internal/core"
	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/sdk/bufpool"
	"github.com/strandws/strand/sdk/strandtest"
)

// BenchmarkKitEcho is one message through the kit and the echo back, read
// with NextSent: what a plugin test pays per message.
func BenchmarkKitEcho(b *testing.B) {
	kit := strandtest.New(b, echoEntry())
	c := kit.Open()
	msg := []byte("hello, strand")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Send(sdk.Binary, msg); err != nil {
			b.Fatal(err)
		}
		if _, err := c.NextSent(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// chanHost is the least a host can do: hand each written buffer to a
// channel. It is the baseline for BenchmarkKitEcho.
type chanHost chan *bufpool.Buffer

func (h chanHost) Write(_ core.MessageType, b *bufpool.Buffer) error { h <- b; return nil }
func (chanHost) Close(core.CloseCode, string) error                  { return nil }
func (chanHost) ClosePanic(string) error                             { return nil }

// BenchmarkBaselineRuntimeEcho is the same round trip on the bare runtime.
func BenchmarkBaselineRuntimeEcho(b *testing.B) {
	entry := (*core.Entry)(echoEntry())
	rt, err := core.NewRuntime(entry.Plugin(), core.RuntimeConfig{})
	if err != nil {
		b.Fatal(err)
	}
	host := make(chanHost, 1)
	ctx := context.Background()
	c, err := rt.Open(ctx, host, core.ConnInfo{ID: 1, Handlers: entry.WebSocketHandlers()})
	if err != nil {
		b.Fatal(err)
	}
	msg := []byte("hello, strand")
	b.ReportAllocs()
	for b.Loop() {
		buf := rt.Buffers().Get(len(msg))
		copy(buf.B, msg)
		if err := rt.Message(ctx, c, core.Binary, buf); err != nil {
			b.Fatal(err)
		}
		(<-host).Release()
	}
	b.StopTimer()
	rt.Closed(c, core.CloseNormal, "")
	if err := rt.Close(ctx); err != nil {
		b.Fatal(err)
	}
}
