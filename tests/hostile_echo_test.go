package tests

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/wsframework"
)

const (
	// hostileConns is how many connections the held-open attacks use.
	hostileConns = 500
	// hostileRandomConns is how many connections send random bytes.
	hostileRandomConns = 200
	// heapPerConnLimit bounds the server's heap growth per connection that
	// declared a large frame and sent two bytes of it.
	heapPerConnLimit = 16 << 10
	// echoMaxMessage is the -max-message-bytes the program runs with.
	echoMaxMessage = wsframework.DefaultMaxMessageBytes
	// hostileCloseBound bounds how long the server may take to close a
	// connection that sent garbage: a frame whose declared payload never
	// arrives is closed after ReadTimeout (30 s by default).
	hostileCloseBound = wsframework.DefaultReadTimeout + 15*time.Second
)

// listeningLine is the example's line with its bound addresses.
var listeningLine = regexp.MustCompile(`echo: listening.* addr=(\S+).* debug_addr=(\S+)`)

// TestHostileEcho runs examples/echo as a program, built with go build, in
// this run's reader mode, and attacks it over loopback: oversized and
// overflowing frame lengths, large declared frames that never arrive, stalled
// handshakes and random bytes. After each attack a fresh client must still
// be served, and the program must exit cleanly on SIGTERM at the end.
func TestHostileEcho(t *testing.T) {
	e := startEchoProgram(t)

	t.Run("continuation length overflow", func(t *testing.T) {
		c := e.dial(t, "/echo")
		require.NoError(t, c.writeFrame(ws.OpText, false, []byte("a")))
		require.NoError(t, c.writeRaw(rawHeader(true, ws.OpContinuation, 1<<63-1)))
		c.expectClose(t, ws.StatusMessageTooBig)
		e.alive(t)
	})

	t.Run("declared lengths", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			length uint64
			code   ws.StatusCode
		}{
			{"2^63-1", 1<<63 - 1, ws.StatusMessageTooBig},
			{"2^64-1 (most significant bit set)", 1<<64 - 1, ws.StatusProtocolError},
			{"MaxMessageBytes+1", echoMaxMessage + 1, ws.StatusMessageTooBig},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := e.dial(t, "/echo")
				require.NoError(t, c.writeRaw(rawHeader(true, ws.OpBinary, tc.length)))
				c.expectClose(t, tc.code)
				e.alive(t)
			})
		}
	})

	t.Run("partial large frames held open", func(t *testing.T) {
		declared := min(int64(1<<20), int64(echoMaxMessage))
		base := e.stableHeap(t)
		conns := make([]*wsClient, hostileConns)
		for i := range conns {
			conns[i] = e.dial(t, "/echo")
		}
		e.waitOpen(t, hostileConns)
		idle := e.stableHeap(t)
		for _, c := range conns {
			h := ws.Header{Fin: true, OpCode: ws.OpBinary, Masked: true, Length: declared}
			require.NoError(t, c.writeHeaderAndPayload(h, []byte{1, 2}))
		}
		after := e.stableHeap(t)
		e.waitOpen(t, hostileConns) // all still held: none timed out yet

		growth := int64(after.HeapAlloc) - int64(base.HeapAlloc)
		t.Logf("%d connections, each declaring %d bytes and sending 2: HeapAlloc %d -> %d idle (%+d B/conn) -> %d with frames (%+d B/conn); HeapInuse %d -> %d -> %d",
			hostileConns, declared, base.HeapAlloc, idle.HeapAlloc, perConn(idle.HeapAlloc, base.HeapAlloc),
			after.HeapAlloc, perConn(after.HeapAlloc, idle.HeapAlloc), base.HeapInuse, idle.HeapInuse, after.HeapInuse)
		assert.LessOrEqual(t, growth, int64(hostileConns*heapPerConnLimit),
			"server heap grew %d B for %d connections (%d B each, limit %d): it holds far more than the 2 bytes each sent",
			growth, hostileConns, growth/hostileConns, heapPerConnLimit)

		for _, c := range conns {
			_ = c.nc.Close()
		}
		e.waitOpen(t, 0)
		e.alive(t)
	})

	t.Run("stalled handshakes", func(t *testing.T) {
		stalled := make([]net.Conn, 0, hostileConns)
		t.Cleanup(func() {
			for _, nc := range stalled {
				_ = nc.Close()
			}
		})
		head := "GET /echo HTTP/1.1\r\nHost: " + e.addr + "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
		for range hostileConns {
			nc, err := net.DialTimeout("tcp", e.addr, ioTimeout)
			require.NoError(t, err)
			stalled = append(stalled, nc)
			require.NoError(t, nc.SetWriteDeadline(time.Now().Add(ioTimeout)))
			_, err = io.WriteString(nc, head)
			require.NoError(t, err)
		}
		e.alive(t)

		// Each is dropped once HandshakeTimeout passes.
		bound := time.Now().Add(wsframework.DefaultHandshakeTimeout + 15*time.Second)
		for i, nc := range stalled {
			require.NoError(t, nc.SetReadDeadline(bound))
			_, err := io.Copy(io.Discard, nc)
			require.False(t, isTimeout(err), "stalled handshake %d still open %v after it started", i, wsframework.DefaultHandshakeTimeout+15*time.Second)
		}
		e.alive(t)
	})

	t.Run("random bytes after upgrade", func(t *testing.T) {
		rng := rand.New(rand.NewSource(6455))
		junk := make([][]byte, hostileRandomConns)
		for i := range junk {
			junk[i] = make([]byte, 2<<10+rng.Intn(4<<10))
			_, _ = rng.Read(junk[i])
		}
		conns := make([]*wsClient, hostileRandomConns)
		for i := range conns {
			conns[i] = e.dial(t, "/echo")
		}
		start := time.Now()
		for i, c := range conns {
			// The server may close before it read everything: a write
			// error is an answer too.
			_ = c.writeRaw(junk[i])
		}
		outcomes := make([]string, len(conns))
		took := make([]time.Duration, len(conns))
		var wg sync.WaitGroup
		for i, c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				outcomes[i] = serverEnded(c, hostileCloseBound)
				took[i] = time.Since(start)
			}()
		}
		wg.Wait()
		tally := map[string]int{}
		var slowest time.Duration
		for i, o := range outcomes {
			tally[o]++
			slowest = max(slowest, took[i])
			assert.NotEqual(t, "timeout", o, "connection %d (%d random bytes) not closed by the server within %v", i, len(junk[i]), hostileCloseBound)
		}
		t.Logf("random bytes on %d connections: %v; slowest close after %v", len(conns), sortedTally(tally), slowest.Round(time.Millisecond))
		for _, c := range conns {
			_ = c.nc.Close()
		}
		e.waitOpen(t, 0)
		e.alive(t)
	})

	// The program read every connection with the reader this run is about.
	st := e.vars(t, false).Strand
	t.Logf("server stats: accepted %d, polled %d, closes %v", st.Accepted, st.Polled, st.Closes)
	if readerMode == wsframework.ReaderPoll {
		assert.Equal(t, st.Accepted, st.Polled, "connections not read by the poll reader")
	} else {
		assert.Zero(t, st.Polled, "connections read by the poll reader")
	}
}

// echoProgram is examples/echo running as a child process.
type echoProgram struct {
	*harness // the public listener (srv is nil: the server is in the child)
	debug    string
	client   *http.Client // for the public listener (over TLS with a cert) and the debug one
	child    *child
}

// startEchoProgram builds examples/echo (once per test binary run) and
// runs it in readerMode on free loopback ports, the debug listener on.
func startEchoProgram(t *testing.T) *echoProgram {
	t.Helper()
	return startEchoProgramWith(t, nil)
}

// startEchoProgramWith is startEchoProgram serving TLS with cert's files
// when cert is not nil, with extra flags.
func startEchoProgramWith(t *testing.T, cert *testCert, extra ...string) *echoProgram {
	t.Helper()
	bin := buildProgram(t, "github.com/strandws/strand/examples/echo")
	args := []string{"-addr", "127.0.0.1:0", "-debug-addr", "127.0.0.1:0",
		"-reader", readerMode.String(), "-max-message-bytes", strconv.Itoa(echoMaxMessage)}
	if cert != nil {
		args = append(args, "-tls-cert", cert.certFile, "-tls-key", cert.keyFile)
	}
	p := startChild(t, bin, append(args, extra...)...)
	m := p.waitLine(t, listeningLine, 2*time.Minute)
	tr := &http.Transport{DisableKeepAlives: true}
	e := &echoProgram{harness: &harness{addr: m[1]}, debug: m[2], child: p}
	if cert != nil {
		e.clientTLS = cert.clientConfig()
		tr.TLSClientConfig = cert.clientConfig()
	}
	t.Cleanup(tr.CloseIdleConnections)
	e.client = &http.Client{Transport: tr, Timeout: ioTimeout}
	return e
}

// debugVars is what the program's /debug/vars holds that the test reads.
type debugVars struct {
	Memstats heapStats         `json:"memstats"`
	Strand   wsframework.Stats `json:"strand"`
}

type heapStats struct {
	HeapAlloc uint64
	HeapInuse uint64
}

// vars reads /debug/vars, after a garbage collection in the program if gc.
func (e *echoProgram) vars(t *testing.T, gc bool) debugVars {
	t.Helper()
	u := "http://" + e.debug + "/debug/vars"
	if gc {
		u += "?gc=1"
	}
	resp, err := e.client.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s", u)
	var v debugVars
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&v), "GET %s", u)
	return v
}

// stableHeap returns the program's heap after a collection, once two
// readings in a row are within 64 KiB of each other (or the last of them
// after 5 s).
func (e *echoProgram) stableHeap(t *testing.T) heapStats {
	t.Helper()
	const tolerance = 64 << 10
	prev := e.vars(t, true).Memstats
	for range 25 {
		time.Sleep(200 * time.Millisecond)
		cur := e.vars(t, true).Memstats
		if d := int64(cur.HeapAlloc) - int64(prev.HeapAlloc); d >= -tolerance && d <= tolerance {
			return cur
		}
		prev = cur
	}
	t.Logf("heap not stable within 5 s; last reading %+v", prev)
	return prev
}

// waitOpen waits until the program has n WebSocket connections open.
func (e *echoProgram) waitOpen(t *testing.T, n int64) {
	t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for {
		open := e.vars(t, false).Strand.Open
		if open == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server has %d connections open, want %d", open, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// alive checks that the program still serves: /healthz answers, and a new
// client upgrades on /echo, gets text and binary back, and closes cleanly.
func (e *echoProgram) alive(t *testing.T) {
	t.Helper()
	resp, err := e.client.Get("http://" + e.addr + "/healthz")
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "/healthz")
	c := e.dial(t, "/echo")
	c.echo(t, ws.OpText, []byte("still here"))
	c.echo(t, ws.OpBinary, []byte{0, 1, 2, 0xff})
	c.closeHandshake(t, ws.StatusNormalClosure, "")
}

// rawHeader returns a masked frame header with the 64-bit length form
// carrying length as is (even with its most significant bit set, which
// RFC 6455 forbids and ws.WriteHeader cannot express).
func rawHeader(fin bool, op ws.OpCode, length uint64) []byte {
	b := make([]byte, 14)
	b[0] = byte(op)
	if fin {
		b[0] |= 0x80
	}
	b[1] = 0x80 | 127
	binary.BigEndian.PutUint64(b[2:10], length)
	mask := ws.NewMask()
	copy(b[10:], mask[:])
	return b
}

// serverEnded reads c until the server ends it and says how: "close CODE"
// for a close frame, "EOF", "reset", "timeout" if nothing ended it within
// bound, or the read error.
func serverEnded(c *wsClient, bound time.Duration) string {
	code, sawClose, _, err := c.drainToClose(bound)
	switch {
	case sawClose:
		return fmt.Sprintf("close %d", code)
	case isTimeout(err):
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "EOF"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	}
	return err.Error()
}

func sortedTally(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k, n := range m {
		out = append(out, fmt.Sprintf("%s: %d", k, n))
	}
	sort.Strings(out)
	return out
}

// perConn is the change from before to after per hostile connection.
func perConn(after, before uint64) int64 {
	return (int64(after) - int64(before)) / hostileConns
}
