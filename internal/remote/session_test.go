package remote_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/examples/echo/echoplugin"
	"github.com/strandws/strand/internal/pluglink"
	"github.com/strandws/strand/internal/remote"
	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/sdk/frame"
	"github.com/strandws/strand/sdk/serve"
)

// fakePlugin is a hand-driven plugin side: a raw link to the host's socket.
type fakePlugin struct {
	t    testing.TB
	link *pluglink.Link
}

func dialFake(t testing.TB, sock string) *fakePlugin {
	t.Helper()
	nc, err := net.Dial("unix", sock)
	require.NoError(t, err)
	l, err := pluglink.New(nc, pluglink.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return &fakePlugin{t: t, link: l}
}

func echoHello(name string) *frame.Frame {
	return &frame.Frame{
		Kind: frame.KindHandshake, Method: frame.MethodHello,
		Handshake: &frame.Handshake{Magic: frame.Magic, ABIMajor: frame.ABIMajor, ABIMinor: frame.ABIMinor},
		Hello: &frame.Hello{PluginName: name, MaxFrameSize: 1 << 20, InitialCredits: 64, Entries: []frame.EntryDecl{
			{Name: "echo", Phases: pluglink.BitWebSocket}, {Name: "broadcast", Phases: pluglink.BitWebSocket},
		}},
	}
}

// hello sends f and returns the host's answer.
func (p *fakePlugin) hello(f *frame.Frame) (method frame.Method, reason string) {
	p.t.Helper()
	require.NoError(p.t, p.link.Send(f))
	_ = p.link.Conn().SetReadDeadline(time.Now().Add(ioTimeout))
	v, err := p.link.Next()
	require.NoError(p.t, err)
	_ = p.link.Conn().SetReadDeadline(time.Time{})
	return v.Method(), string(v.Error())
}

// TestSessionDeathClosesWith1012: when the plugin goes away, its
// connections are closed with 1012, new ones get 1012 while it is down, and
// a new session serves again.
func TestSessionDeathClosesWith1012(t *testing.T) {
	e := startEnv(t, echoplugin.New(), envOpts{routes: map[string]string{"/echo": "echo"}})
	c := e.dial(t, "/echo")
	require.NoError(t, c.send(ws.OpText, []byte("a")))
	f, err := c.read(ioTimeout)
	require.NoError(t, err)
	require.Equal(t, "a", string(f.payload))

	require.NoError(t, e.stopPlugin())
	require.ErrorIs(t, e.waitEnd(), io.EOF) // the plugin closed its socket
	require.Equal(t, sdk.CloseServiceRestart, c.closeCode(t))
	require.False(t, e.host.Up())

	down := e.dial(t, "/echo")
	require.Equal(t, sdk.CloseServiceRestart, down.closeCode(t))

	e.startPlugin()
	e.waitUp()
	again := e.dial(t, "/echo")
	require.NoError(t, again.send(ws.OpText, []byte("b")))
	f, err = again.read(ioTimeout)
	require.NoError(t, err)
	require.Equal(t, "b", string(f.payload))
}

// TestHandshakeRefusals: a wrong name, another ABI major (the reason names
// both versions) and entries that differ from the first session's are
// refused, with the reason sent to the plugin and returned by Attach.
func TestHandshakeRefusals(t *testing.T) {
	e := startEnv(t, echoplugin.New(), envOpts{noPlugin: true})

	p := dialFake(t, e.sock)
	m, reason := p.hello(echoHello("other"))
	require.Equal(t, frame.MethodRefuse, m)
	require.Contains(t, reason, `"other"`)
	var he *remote.HandshakeError
	require.ErrorAs(t, e.waitEnd(), &he)
	require.Contains(t, he.Reason, `"echo"`)

	p = dialFake(t, e.sock)
	bad := echoHello("echo")
	bad.Handshake = &frame.Handshake{Magic: frame.Magic, ABIMajor: frame.ABIMajor + 1, ABIMinor: 0}
	m, reason = p.hello(bad)
	require.Equal(t, frame.MethodRefuse, m)
	require.Contains(t, reason, fmt.Sprintf("plugin speaks ABI 2.0, host 1.%d", frame.ABIMinor))
	require.ErrorAs(t, e.waitEnd(), &he)

	// The first accepted hello fixes the entries.
	p = dialFake(t, e.sock)
	m, _ = p.hello(echoHello("echo"))
	require.Equal(t, frame.MethodAccept, m)
	_ = p.link.Close()
	require.Error(t, e.waitEnd())

	p = dialFake(t, e.sock)
	changed := echoHello("echo")
	changed.Hello.Entries = append(changed.Hello.Entries, frame.EntryDecl{Name: "new", Phases: pluglink.BitWebSocket})
	m, reason = p.hello(changed)
	require.Equal(t, frame.MethodRefuse, m)
	require.Contains(t, reason, `entries changed since the first session: new entry "new"`)
	require.ErrorAs(t, e.waitEnd(), &he)

	// The real plugin (its entries are echo and broadcast) is accepted.
	var se *serve.RefusedError
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve.Dial(ctx, echoplugin.New(), e.sock) }()
	e.waitUp()
	cancel()
	require.False(t, errors.As(<-done, &se))
	e.waitEnd()
}

// TestServeReportsRefusal: serve.Dial returns the host's reason.
func TestServeReportsRefusal(t *testing.T) {
	e := startEnv(t, echoplugin.New(), envOpts{noPlugin: true, cfg: remote.Config{Name: "configured"}})
	err := serve.Dial(context.Background(), echoplugin.New(), e.sock)
	var se *serve.RefusedError
	require.ErrorAs(t, err, &se)
	require.Contains(t, se.Reason, `plugin calls itself "echo", the configuration expects "configured"`)
	e.waitEnd()
}

// TestPingTimeout: a plugin that stops answering ends its session with
// ErrPingTimeout.
func TestPingTimeout(t *testing.T) {
	e := startEnv(t, echoplugin.New(), envOpts{noPlugin: true, cfg: remote.Config{PingInterval: 20 * time.Millisecond, PingTimeout: 100 * time.Millisecond}})
	p := dialFake(t, e.sock)
	m, _ := p.hello(echoHello("echo"))
	require.Equal(t, frame.MethodAccept, m)
	// Never read, never answer.
	require.ErrorIs(t, e.waitEnd(), remote.ErrPingTimeout)
}

// TestPongsKeepTheSessionUp: a plugin that answers pings stays up.
func TestPongsKeepTheSessionUp(t *testing.T) {
	e := startEnv(t, echoplugin.New(), envOpts{routes: map[string]string{"/echo": "echo"},
		cfg: remote.Config{PingInterval: 5 * time.Millisecond, PingTimeout: 500 * time.Millisecond}})
	time.Sleep(1500 * time.Millisecond) // three timeouts: only pongs keep it up
	require.True(t, e.host.Up())
	select {
	case err := <-e.ends:
		t.Fatalf("session ended: %v", err)
	default:
	}
}

// TestBadFramesEndTheSession: garbage, an oversized frame and frames out
// of protocol end the session with an error, never a panic, and the host
// serves the next session.
func TestBadFramesEndTheSession(t *testing.T) {
	cases := map[string]func(p *fakePlugin){
		"garbage": func(p *fakePlugin) {
			_, _ = p.link.Conn().Write([]byte{8, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8})
		},
		"oversized": func(p *fakePlugin) {
			var b [4]byte
			binary.LittleEndian.PutUint32(b[:], 1<<30)
			_, _ = p.link.Conn().Write(b[:])
		},
		"unknown connection": func(p *fakePlugin) {
			_ = p.link.Send(&frame.Frame{Kind: frame.KindCall, Method: frame.MethodWebSocketSendText, SessionID: 99, Payload: []byte("x")})
		},
		"event from plugin": func(p *fakePlugin) {
			_ = p.link.Send(&frame.Frame{Kind: frame.KindEvent, Method: frame.MethodEventTextMessage})
		},
		"reply to no call": func(p *fakePlugin) {
			_ = p.link.Send(&frame.Frame{Kind: frame.KindReply, Method: frame.MethodNext, CallID: 1 << 40})
		},
		"status out of range": func(p *fakePlugin) {
			_ = p.link.Send(&frame.Frame{Kind: frame.KindReply, Method: frame.MethodEnd, CallID: 1, ResponseStatus: 1000})
		},
		"header with a line break": func(p *fakePlugin) {
			_ = p.link.Send(&frame.Frame{Kind: frame.KindReply, Method: frame.MethodNext, CallID: 1,
				HeaderEdits: []frame.HeaderEdit{{Op: frame.HeaderSet, Name: "X", Value: "a\r\nSet-Cookie: x"}}})
		},
		"header name not a token": func(p *fakePlugin) {
			_ = p.link.Send(&frame.Frame{Kind: frame.KindReply, Method: frame.MethodNext, CallID: 1,
				HeaderEdits: []frame.HeaderEdit{{Op: frame.HeaderSet, Name: "X Y:", Value: "a"}}})
		},
		"credits overflow": func(p *fakePlugin) {
			_ = p.link.Send(&frame.Frame{Kind: frame.KindCall, Method: frame.MethodCredits, Credits: 1})
		},
		"unknown call": func(p *fakePlugin) {
			_ = p.link.Send(&frame.Frame{Kind: frame.KindCall, Method: frame.Method(9999)})
		},
	}
	e := startEnv(t, echoplugin.New(), envOpts{noPlugin: true, cfg: remote.Config{MaxFrameSize: 1 << 16}})
	for name, bad := range cases {
		p := dialFake(t, e.sock)
		m, _ := p.hello(echoHello("echo"))
		require.Equal(t, frame.MethodAccept, m, name)
		bad(p)
		err := e.waitEnd()
		require.ErrorIs(t, err, remote.ErrProtocol, name)
		t.Logf("%s: %v", name, err)
		_ = p.link.Close()
	}
}
