package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/lxzan/gws"
)

type gwsEcho struct{ gws.BuiltinEventHandler }

func (gwsEcho) OnMessage(c *gws.Conn, m *gws.Message) {
	defer m.Close()
	_ = c.WriteMessage(m.Opcode, m.Bytes())
}

// gwsServer is a gws echo server with permessage-deflate, with or without
// context takeover on both sides. Its window sizes are set to 15 bits: by
// default gws answers client_max_window_bits=12 to offers that did not
// include it, which RFC 7692 (section 7.1.2.2) does not allow, and the load
// generator refuses.
func gwsServer(t *testing.T, takeover bool) string {
	t.Helper()
	u := gws.NewUpgrader(gwsEcho{}, &gws.ServerOption{
		PermessageDeflate: gws.PermessageDeflate{Enabled: true, Threshold: 1, ServerContextTakeover: takeover, ClientContextTakeover: takeover,
			ServerMaxWindowBits: 15, ClientMaxWindowBits: 15},
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := u.Upgrade(w, r)
		if err != nil {
			return
		}
		go c.ReadLoop()
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// gorillaServer is a gorilla echo server with permessage-deflate (gorilla
// supports no context takeover only).
func gorillaServer(t *testing.T) string {
	t.Helper()
	u := websocket.Upgrader{EnableCompression: true}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := u.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			op, p, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(op, p); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

func TestCompression(t *testing.T) {
	const conns = 4
	for _, tc := range []struct {
		name         string
		url          string
		args         []string
		wantComp     int // connections that negotiated
		wantTakeover int // ... with the server keeping its context
	}{
		{"gorilla", gorillaServer(t), []string{"-compress"}, conns, 0},
		{"gorilla-offer-takeover", gorillaServer(t), []string{"-compress", "-compress-takeover"}, conns, 0},
		{"gws", gwsServer(t, false), []string{"-compress"}, conns, 0},
		{"gws-takeover", gwsServer(t, true), []string{"-compress", "-compress-takeover"}, conns, conns},
		{"not-offered", gwsServer(t, true), nil, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"-url", tc.url, "-conns", "4", "-depth", "4", "-size", "4096", "-payload", "json"}, tc.args...)
			code, r, out := runLoadgen(t, args...)
			if code != 0 || r.ErrorTotal != 0 || r.Delivered == 0 {
				t.Fatalf("exit %d, %d errors, %d delivered:\n%s", code, r.ErrorTotal, r.Delivered, out)
			}
			if r.CompressedConns != tc.wantComp || r.ServerTakeoverConns != tc.wantTakeover {
				t.Fatalf("compressed on %d, server takeover on %d connections; want %d, %d", r.CompressedConns, r.ServerTakeoverConns, tc.wantComp, tc.wantTakeover)
			}
			t.Logf("wire bytes per message: sent %.0f, received %.0f", r.WireBytesPerMsgSent, r.WireBytesPerMsgRecv)
			perMsg := func(v float64) bool { return v > 4096 && v < 4096+64 } // header + mask, plus a handful of control frames
			if tc.wantComp > 0 {
				// The JSON payload deflates about 2.3x on its own, a little
				// more with context takeover.
				perMsg = func(v float64) bool { return v > 500 && v < 2500 }
			}
			if !perMsg(r.WireBytesPerMsgSent) || !perMsg(r.WireBytesPerMsgRecv) {
				t.Fatalf("wire bytes per message: sent %.1f, received %.1f", r.WireBytesPerMsgSent, r.WireBytesPerMsgRecv)
			}
		})
	}
}

func TestCompressBroadcastAndIdle(t *testing.T) {
	url := gwsServer(t, true)
	code, r, out := runLoadgen(t, "-url", url, "-mode", "idle", "-conns", "8", "-hold", "100ms", "-prime",
		"-size", "2048", "-payload", "json", "-compress", "-compress-takeover")
	if code != 0 || r.Delivered != 16 || r.ServerTakeoverConns != 8 {
		t.Fatalf("idle -prime: exit %d, delivered %d (want 2 per connection), takeover on %d:\n%s", code, r.Delivered, r.ServerTakeoverConns, out)
	}
	for _, bad := range [][]string{
		{"-compress-takeover"},
		{"-prime"},
		{"-payload", "xml"},
		{"-text", "-payload", "json"},
		{"-payload", "json", "-size", "64"},
	} {
		if code, _, _ := runLoadgen(t, append([]string{"-url", url}, bad...)...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage)", bad, code)
		}
	}
}

func TestInflateCache(t *testing.T) {
	c := newInflateCache()
	if _, ok := c.get([]byte("z0"), nil); ok {
		t.Fatal("hit in an empty cache")
	}
	for i := range cacheSize + 1 {
		c.put(fmt.Appendf(nil, "z%d", i), fmt.Appendf(nil, "out%d", i))
	}
	if _, ok := c.get([]byte("z0"), nil); ok {
		t.Fatal("the oldest entry was not evicted")
	}
	if len(c.byKey) != cacheSize {
		t.Fatalf("%d entries indexed, want %d", len(c.byKey), cacheSize)
	}
	out, ok := c.get([]byte("z1"), []byte("x"))
	if !ok || string(out) != "xout1" {
		t.Fatalf("get z1 = %q, %v", out, ok)
	}
}
