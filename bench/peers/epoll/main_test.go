//go:build linux

package main

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

func start(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	s, err := newServer(2)
	if err != nil {
		t.Fatal(err)
	}
	go s.serve(ln)
	return "ws://" + ln.Addr().String()
}

func dial(t *testing.T, url string) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, _, err := ws.Dial(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

func TestEcho(t *testing.T) {
	c := dial(t, start(t)+"/echo?x=1")
	msgs := []struct {
		op ws.OpCode
		p  []byte
	}{
		{ws.OpText, []byte("hello")},
		{ws.OpBinary, bytes.Repeat([]byte{7}, 300)},
		{ws.OpBinary, bytes.Repeat([]byte("abcdefg"), 100000)}, // 700 KB: several reads
	}
	for _, m := range msgs {
		if err := wsutil.WriteClientMessage(c, m.op, m.p); err != nil {
			t.Fatal(err)
		}
	}
	// A fragmented message and a ping between its fragments.
	frag := []ws.Frame{
		ws.MaskFrameInPlace(ws.NewFrame(ws.OpText, false, []byte("frag-"))),
		ws.MaskFrameInPlace(ws.NewPingFrame([]byte("p"))),
		ws.MaskFrameInPlace(ws.NewFrame(ws.OpContinuation, true, []byte("ment"))),
	}
	for _, f := range frag {
		if err := ws.WriteFrame(c, f); err != nil {
			t.Fatal(err)
		}
	}
	msgs = append(msgs, struct {
		op ws.OpCode
		p  []byte
	}{ws.OpText, []byte("frag-ment")})
	pongs := 0
	for _, m := range msgs {
		for {
			h, err := ws.ReadHeader(c)
			if err != nil {
				t.Fatal(err)
			}
			p := make([]byte, h.Length)
			if _, err := readFull(c, p); err != nil {
				t.Fatal(err)
			}
			if h.OpCode == ws.OpPong {
				pongs++
				continue
			}
			if h.OpCode != m.op || !bytes.Equal(p, m.p) || !h.Fin {
				t.Fatalf("got op %v fin %v %d bytes, want op %v %d bytes", h.OpCode, h.Fin, len(p), m.op, len(m.p))
			}
			break
		}
	}
	if pongs != 1 {
		t.Fatalf("%d pongs, want 1", pongs)
	}
	// Close: the server answers with the same code.
	if err := ws.WriteFrame(c, ws.MaskFrameInPlace(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "")))); err != nil {
		t.Fatal(err)
	}
	h, err := ws.ReadHeader(c)
	if err != nil || h.OpCode != ws.OpClose {
		t.Fatalf("close answer: %v %v", h.OpCode, err)
	}
}

func readFull(c net.Conn, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := c.Read(p[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func TestBroadcast(t *testing.T) {
	url := start(t) + "/broadcast"
	a, b := dial(t, url), dial(t, url)
	time.Sleep(100 * time.Millisecond) // both registered
	for i, from := range []net.Conn{a, b} {
		want := []byte{byte('a' + i)}
		if err := wsutil.WriteClientMessage(from, ws.OpBinary, want); err != nil {
			t.Fatal(err)
		}
		for _, to := range []net.Conn{a, b} {
			p, op, err := wsutil.ReadServerData(to)
			if err != nil || op != ws.OpBinary || !bytes.Equal(p, want) {
				t.Fatalf("got %q %v %v, want %q", p, op, err, want)
			}
		}
	}
}

func TestUnknownPath(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, _, err := ws.Dial(ctx, start(t)+"/nope"); err == nil {
		t.Fatal("dial /nope succeeded")
	}
}
