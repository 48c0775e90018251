package serve_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/strandws/strand/examples/echo/echoplugin"
	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/sdk/frame"
	"github.com/strandws/strand/sdk/serve"
)

func streamOf(fs ...*frame.Frame) []byte {
	enc := frame.NewEncoder()
	var b []byte
	for _, f := range fs {
		b = enc.AppendFrame(b, f)
	}
	return b
}

// fuzzPlugin has every kind of handler, so that events reach them.
func fuzzPlugin() *sdk.Plugin {
	p := echoplugin.New()
	p.Entry("all").
		RequestFilter(func(ctx *sdk.RequestContext) { ctx.Upgrade(nil) }).
		ResponseFilter(func(ctx *sdk.ResponseContext) { ctx.SetHeader("X", "y") }).
		ResponseBodyFilter(func(ctx *sdk.BodyContext) { ctx.SetBody(ctx.Body()) }).
		Logging(func(*sdk.LogEntry) {}).
		WebSocket(sdk.WebSocketHandlers{OnMessage: func(c *sdk.Conn, m sdk.Message) { _ = c.Send(m.Type, m.Data) }})
	return p
}

// FuzzPluginSession feeds arbitrary bytes to a plugin's session reader after
// the host's accept: the plugin never panics, and serve.Conn returns once
// the stream closes.
func FuzzPluginSession(f *testing.F) {
	f.Add([]byte{})
	f.Add(streamOf(&frame.Frame{Kind: frame.KindCall, Method: frame.MethodPing, CallID: 1}))
	f.Add(streamOf(
		&frame.Frame{Kind: frame.KindEvent, Phase: frame.PhaseWebSocket, Method: frame.MethodEventWebSocketOpen, SessionID: 1, Entry: "echo",
			Request: &frame.Request{Path: "/"}},
		&frame.Frame{Kind: frame.KindEvent, Phase: frame.PhaseWebSocket, Method: frame.MethodEventTextMessage, SessionID: 1, Payload: []byte("x")},
		&frame.Frame{Kind: frame.KindEvent, Phase: frame.PhaseWebSocket, Method: frame.MethodEventClose, SessionID: 1, CloseCode: 1000},
	))
	f.Add(streamOf(&frame.Frame{Kind: frame.KindEvent, Phase: frame.PhaseRequestFilter, SessionID: 1, CallID: 1, Entry: "all",
		Request: &frame.Request{Method: "GET", Path: "/", Headers: []frame.Header{{Name: "A", Value: "b"}}}}))
	f.Add(streamOf(&frame.Frame{Kind: frame.KindEvent, Phase: frame.PhaseResponseBodyFilter, SessionID: 2, CallID: 2, Entry: "all", Payload: []byte("body")}))
	f.Add(streamOf(&frame.Frame{Kind: frame.KindEvent, Phase: frame.PhaseLogging, Entry: "all", Error: "e"}))
	f.Add(streamOf(&frame.Frame{Kind: frame.KindReply, CallID: 7}))
	f.Add(streamOf(&frame.Frame{Kind: frame.KindCall, Method: frame.MethodGoodbye}))

	accept := streamOf(&frame.Frame{Kind: frame.KindHandshake, Method: frame.MethodAccept,
		Handshake: &frame.Handshake{Magic: frame.Magic, ABIMajor: frame.ABIMajor, ABIMinor: frame.ABIMinor},
		Hello:     &frame.Hello{MaxFrameSize: 1 << 20}})
	quiet := slog.New(slog.DiscardHandler)
	f.Fuzz(func(t *testing.T, data []byte) {
		hostEnd, plugEnd := net.Pipe()
		done := make(chan error, 1)
		go func() {
			done <- serve.Conn(context.Background(), fuzzPlugin(), plugEnd, serve.Options{Logger: quiet, MaxFrameSize: 1 << 16})
		}()
		drained := make(chan struct{})
		go func() {
			defer close(drained)
			_, _ = io.Copy(io.Discard, hostEnd)
		}()
		_, _ = hostEnd.Write(accept)
		_, _ = hostEnd.Write(data)
		_ = hostEnd.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("serve.Conn did not return after the stream closed")
		}
		<-drained
	})
}
