package main

import (
	"bytes"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/strandws/strand/bench/internal/result"
)

// fault rewrites what a test server sends back: given the n-th message
// (from 0) it returns the frames to send in its place.
type fault func(n int, op ws.OpCode, p []byte) []frame

type frame struct {
	op   ws.OpCode
	p    []byte
	more bool // not the final fragment
}

func pass(_ int, op ws.OpCode, p []byte) []frame { return []frame{{op: op, p: p}} }

// echoServer is a gobwas echo server whose replies go through f.
func echoServer(t *testing.T, f fault) string {
	t.Helper()
	srv := httptest.NewServer(echoHandler(f))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// tlsEchoServer is echoServer over TLS: its wss:// URL and a PEM file with
// its certificate, for -ca.
func tlsEchoServer(t *testing.T) (url, ca string) {
	t.Helper()
	srv := httptest.NewTLSServer(echoHandler(pass))
	t.Cleanup(srv.Close)
	ca = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return "wss" + strings.TrimPrefix(srv.URL, "https"), ca
}

func echoHandler(f fault) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		nc, rw, _, err := ws.UpgradeHTTP(r, w)
		if err != nil {
			return
		}
		defer nc.Close()
		for n := 0; ; n++ {
			p, op, err := wsutil.ReadClientData(rw)
			if err != nil {
				return
			}
			for _, fr := range f(n, op, p) {
				if err := ws.WriteFrame(nc, ws.NewFrame(fr.op, !fr.more, fr.p)); err != nil {
					return
				}
			}
		}
	})
}

// broadcastServer relays every message to every connection.
func broadcastServer(t *testing.T) string {
	t.Helper()
	var mu sync.Mutex
	conns := map[*lockedConn]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		nc, rw, _, err := ws.UpgradeHTTP(r, w)
		if err != nil {
			return
		}
		c := &lockedConn{w: nc}
		mu.Lock()
		conns[c] = true
		mu.Unlock()
		defer func() {
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
			nc.Close()
		}()
		for {
			p, op, err := wsutil.ReadClientData(rw)
			if err != nil {
				return
			}
			mu.Lock()
			for m := range conns {
				m.write(op, p)
			}
			mu.Unlock()
		}
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

type lockedConn struct {
	mu sync.Mutex
	w  interface{ Write([]byte) (int, error) }
}

func (c *lockedConn) write(op ws.OpCode, p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = wsutil.WriteServerMessage(c.w, op, p)
}

func runLoadgen(t *testing.T, args ...string) (int, *result.Result, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "r.json")
	var out, errOut bytes.Buffer
	args = append([]string{"-quiet", "-duration", "300ms", "-warmup", "50ms", "-drain", "300ms", "-json", path}, args...)
	code := run(args, &out, &errOut)
	if code == 2 {
		return code, nil, errOut.String()
	}
	r, err := result.Read(path)
	if err != nil {
		t.Fatalf("exit %d, no result: %v\nstdout:\n%s\nstderr:\n%s", code, err, out.String(), errOut.String())
	}
	return code, r, out.String()
}

func TestIntegrityChecks(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fault    fault
		args     []string
		wantKind string // "" = a clean run
	}{
		{name: "clean-binary", fault: pass, args: []string{"-conns", "4", "-depth", "8"}},
		{name: "clean-text", fault: pass, args: []string{"-conns", "2", "-text", "-size", "100"}},
		{name: "clean-fragmented-with-ping", fault: func(_ int, op ws.OpCode, p []byte) []frame {
			return []frame{
				{op: op, p: p[:10], more: true},
				{op: ws.OpPing, p: []byte("hi")},
				{op: ws.OpContinuation, p: p[10:30], more: true},
				{op: ws.OpContinuation, p: p[30:]},
			}
		}, args: []string{"-conns", "2", "-depth", "3"}},
		{
			name: "swapped-pair",
			fault: func() fault {
				var held []byte
				return func(n int, op ws.OpCode, p []byte) []frame {
					if n == 5 {
						held = append([]byte(nil), p...)
						return nil
					}
					if n == 6 {
						return []frame{{op: op, p: p}, {op: op, p: held}}
					}
					return []frame{{op: op, p: p}}
				}
			}(),
			args:     []string{"-conns", "1", "-depth", "4"},
			wantKind: kindOrder,
		},
		{
			name: "dropped-message",
			fault: func(n int, op ws.OpCode, p []byte) []frame {
				if n == 3 {
					return nil
				}
				return []frame{{op: op, p: p}}
			},
			args:     []string{"-conns", "1", "-depth", "4"},
			wantKind: kindLost,
		},
		{
			name: "duplicated-message",
			fault: func(n int, op ws.OpCode, p []byte) []frame {
				if n == 3 {
					return []frame{{op: op, p: p}, {op: op, p: p}}
				}
				return []frame{{op: op, p: p}}
			},
			args:     []string{"-conns", "1"},
			wantKind: kindOrder,
		},
		{
			name: "flipped-byte",
			fault: func(n int, op ws.OpCode, p []byte) []frame {
				if n == 2 {
					p[len(p)-1] ^= 0x40
				}
				return []frame{{op: op, p: p}}
			},
			args:     []string{"-conns", "1", "-size", "256"},
			wantKind: kindCorrupt,
		},
		{
			name: "binary-returned-as-text",
			fault: func(_ int, _ ws.OpCode, p []byte) []frame {
				return []frame{{op: ws.OpText, p: p}}
			},
			args:     []string{"-conns", "1"},
			wantKind: kindOpcode,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := echoServer(t, tc.fault)
			code, r, out := runLoadgen(t, append([]string{"-url", url + "/echo"}, tc.args...)...)
			if tc.wantKind == "" {
				if code != 0 || r.ErrorTotal != 0 || r.Delivered == 0 {
					t.Fatalf("clean run: exit %d, %d errors, %d delivered\n%s", code, r.ErrorTotal, r.Delivered, out)
				}
				if r.Sent != r.Delivered {
					t.Fatalf("sent %d != delivered %d in the measured window", r.Sent, r.Delivered)
				}
				if r.Latency.Count != int64(r.Delivered) || r.Latency.P50 <= 0 || r.Latency.P99 < r.Latency.P50 {
					t.Fatalf("latency summary %+v for %d deliveries", r.Latency, r.Delivered)
				}
				return
			}
			if code != 1 || r.Errors[tc.wantKind] == 0 {
				t.Fatalf("exit %d, errors %v, want exit 1 with %s\n%s", code, r.Errors, tc.wantKind, out)
			}
		})
	}
}

func TestBroadcastChecksEverySender(t *testing.T) {
	url := broadcastServer(t)
	code, r, out := runLoadgen(t, "-url", url+"/broadcast", "-mode", "broadcast", "-conns", "5", "-depth", "2")
	if code != 0 || r.ErrorTotal != 0 {
		t.Fatalf("exit %d errors %v\n%s", code, r.Errors, out)
	}
	// Every message reaches all 5 clients.
	if r.Delivered != 5*r.Sent || r.Sent == 0 {
		t.Fatalf("sent %d, delivered %d, want 5x", r.Sent, r.Delivered)
	}
}

// TestSeveralURLs: with a comma-separated -url the connections are spread
// over the servers in turn.
func TestSeveralURLs(t *testing.T) {
	var n [2]atomic.Int32
	var urls []string
	for i := range n {
		h := echoHandler(pass)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n[i].Add(1)
			h.ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		urls = append(urls, "ws"+strings.TrimPrefix(srv.URL, "http")+"/echo")
	}
	code, r, out := runLoadgen(t, "-url", strings.Join(urls, ","), "-conns", "4", "-depth", "2")
	if code != 0 || r.ErrorTotal != 0 || r.Delivered == 0 {
		t.Fatalf("exit %d errors %v delivered %d\n%s", code, r.Errors, r.Delivered, out)
	}
	if n[0].Load() != 2 || n[1].Load() != 2 {
		t.Fatalf("connections per server %d and %d, want 2 and 2", n[0].Load(), n[1].Load())
	}
	if code, _, _ := runLoadgen(t, "-url", urls[0]+",ws://192.0.2.1:80/echo"); code != 2 {
		t.Fatalf("a remote URL in the list: exit %d, want 2", code)
	}
}

// TestWSS: echo and idle runs over TLS, trusting the server's
// certificate through -ca; without it the system's roots refuse it.
func TestWSS(t *testing.T) {
	url, ca := tlsEchoServer(t)
	code, r, out := runLoadgen(t, "-url", url+"/echo", "-ca", ca, "-conns", "3", "-depth", "4")
	if code != 0 || r.ErrorTotal != 0 || r.Delivered == 0 {
		t.Fatalf("exit %d errors %v delivered %d\n%s", code, r.Errors, r.Delivered, out)
	}
	code, r, out = runLoadgen(t, "-url", url+"/echo", "-ca", ca, "-mode", "idle", "-conns", "3", "-hold", "100ms")
	if code != 0 || r.ErrorTotal != 0 || r.Connected != 3 {
		t.Fatalf("idle: exit %d errors %v connected %d\n%s", code, r.Errors, r.Connected, out)
	}
	code, r, _ = runLoadgen(t, "-url", url+"/echo", "-conns", "1")
	if code != 1 || r.Errors["dial"] != 1 {
		t.Fatalf("without -ca: exit %d errors %v, want a dial error", code, r.Errors)
	}
}

func TestRefusesUnsafeRuns(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"remote-host", []string{"-url", "ws://192.0.2.1:80/echo"}},
		{"hostname", []string{"-url", "ws://example.com/echo"}},
		{"http", []string{"-url", "http://127.0.0.1:1/echo"}},
		{"remote-tls", []string{"-url", "wss://example.com/echo"}},
		{"missing-ca", []string{"-url", "wss://127.0.0.1:1/echo", "-ca", "/nonexistent/ca.pem"}},
		{"too-many-conns", []string{"-conns", "19001"}},
		{"non-loopback-source", []string{"-src-ips", "10.0.0.1"}},
		{"size-below-header", []string{"-size", "8"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, _, _ := runLoadgen(t, tc.args...); code != 2 {
				t.Fatalf("exit %d, want 2 (refused)", code)
			}
		})
	}
}

func TestParseSrcIPs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"3", []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}},
		{"127.0.0.9-127.0.0.10", []string{"127.0.0.9", "127.0.0.10"}},
		{"127.0.0.5,127.1.2.3", []string{"127.0.0.5", "127.1.2.3"}},
	} {
		got, err := parseSrcIPs(tc.in)
		if err != nil {
			t.Fatalf("%q: %v", tc.in, err)
		}
		var s []string
		for _, ip := range got {
			s = append(s, ip.String())
		}
		if strings.Join(s, ",") != strings.Join(tc.want, ",") {
			t.Fatalf("%q: got %v want %v", tc.in, s, tc.want)
		}
	}
	for _, bad := range []string{"0", "255", "127.0.0.9-127.0.0.1", "::1", "192.168.0.1"} {
		if _, err := parseSrcIPs(bad); err == nil {
			t.Fatalf("%q accepted", bad)
		}
	}
}
