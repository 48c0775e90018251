package remote_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/strandws/strand/internal/remote"
	"github.com/strandws/strand/sdk/frame"
)

// streamOf returns frames in the stream form.
func streamOf(fs ...*frame.Frame) []byte {
	enc := frame.NewEncoder()
	var b []byte
	for _, f := range fs {
		b = enc.AppendFrame(b, f)
	}
	return b
}

// FuzzHostSession feeds arbitrary bytes to a host's session reader after a
// valid handshake: whatever they are, the session ends (or goes on) with an
// error, never a panic, and Attach returns once the stream closes.
func FuzzHostSession(f *testing.F) {
	f.Add([]byte{})
	f.Add(streamOf(&frame.Frame{Kind: frame.KindReply, Method: frame.MethodPong, CallID: 1}))
	f.Add(streamOf(&frame.Frame{Kind: frame.KindCall, Method: frame.MethodCredits, Credits: 1}))
	f.Add(streamOf(&frame.Frame{Kind: frame.KindCall, Method: frame.MethodWebSocketSendText, SessionID: 1, Payload: []byte("x")}))
	f.Add(streamOf(&frame.Frame{Kind: frame.KindCall, Method: frame.MethodRoomJoin, SessionID: 1, Room: "r"}))
	f.Add(streamOf(&frame.Frame{Kind: frame.KindReply, Method: frame.MethodNext, CallID: 1}))
	f.Add(streamOf(&frame.Frame{Kind: frame.KindReply, Method: frame.MethodEventClose, SessionID: 3}))
	f.Add(streamOf(&frame.Frame{Kind: frame.KindCall, Method: frame.MethodReadRequestFullBody, SessionID: 1, CallID: 1}))
	f.Add(streamOf(&frame.Frame{Kind: frame.KindHandshake, Hello: &frame.Hello{PluginName: "x"}}))
	f.Add([]byte{4, 0, 0, 0, 1, 2, 3, 4})
	f.Add(binary.LittleEndian.AppendUint32(nil, 1<<31))

	hello := streamOf(echoHello("echo"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := remote.New(remote.Config{Name: "echo", MaxFrameSize: 1 << 16, Logger: quiet(),
			PingInterval: time.Hour, PingTimeout: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		hostEnd, plugEnd := net.Pipe()
		done := make(chan error, 1)
		go func() { done <- h.Attach(context.Background(), hostEnd) }()
		drained := make(chan struct{})
		go func() {
			defer close(drained)
			_, _ = io.Copy(io.Discard, plugEnd)
		}()
		_, _ = plugEnd.Write(hello)
		_, _ = plugEnd.Write(data)
		_ = plugEnd.Close()
		select {
		case err := <-done:
			if err == nil {
				t.Fatal("Attach returned nil")
			}
			var he *remote.HandshakeError
			if errors.As(err, &he) {
				t.Fatalf("valid hello refused: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Attach did not return after the stream closed")
		}
		<-drained
	})
}
