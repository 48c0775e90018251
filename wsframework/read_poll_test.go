package wsframework_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/wsframework"
)

const pollTestTimeout = 10 * time.Second

// echoServer serves an echo plugin on /echo with cfg and returns its URL.
func echoServer(tb testing.TB, cfg wsframework.Config) (*wsframework.Server, string) {
	tb.Helper()
	p := sdk.NewPlugin("echo")
	e := p.Entry("echo").WebSocket(sdk.WebSocketHandlers{
		OnMessage: func(c *sdk.Conn, m sdk.Message) { _ = c.Send(m.Type, m.Data) },
	})
	srv, err := wsframework.New(cfg)
	require.NoError(tb, err)
	require.NoError(tb, srv.Route("/echo", nil, e))
	hs := httptest.NewServer(srv)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), pollTestTimeout)
		defer cancel()
		require.NoError(tb, srv.Shutdown(ctx))
		hs.Close()
	})
	return srv, "ws" + strings.TrimPrefix(hs.URL, "http") + "/echo"
}

func dialEcho(tb testing.TB, url string) (net.Conn, *bufio.Reader) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), pollTestTimeout)
	defer cancel()
	nc, br, _, err := ws.Dial(ctx, url)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = nc.Close() })
	if br == nil {
		br = bufio.NewReader(nc)
	}
	return nc, br
}

// TestPollSlowClientsHoldNoLoop: clients that stall in the middle of a frame
// on every poll loop, then trickle it one byte at a time, do not keep
// another client from being served.
func TestPollSlowClientsHoldNoLoop(t *testing.T) {
	srv, url := echoServer(t, wsframework.Config{Reader: wsframework.ReaderPoll})
	frame := func(payload string) []byte {
		var b strings.Builder
		f := ws.NewTextFrame([]byte(payload))
		f = ws.MaskFrameInPlace(f)
		require.NoError(t, ws.WriteFrame(&b, f))
		return []byte(b.String())
	}
	type slow struct {
		nc   net.Conn
		br   *bufio.Reader
		rest []byte
	}
	// Twice the loops (one per GOMAXPROCS), assigned round robin.
	var slows []slow
	for i := range 2 * runtime.GOMAXPROCS(0) {
		nc, br := dialEcho(t, url)
		f := frame(fmt.Sprintf("slow %d", i))
		_, err := nc.Write(f[:5]) // the header and one payload byte
		require.NoError(t, err)
		slows = append(slows, slow{nc, br, f[5:]})
	}
	nc, br := dialEcho(t, url)
	for i := range 10 {
		msg := fmt.Sprintf("fast %d", i)
		require.NoError(t, wsutil.WriteClientText(nc, []byte(msg)))
		_ = nc.SetReadDeadline(time.Now().Add(pollTestTimeout))
		got, err := readText(nc, br)
		require.NoError(t, err)
		require.Equal(t, msg, string(got))
	}
	for i, s := range slows {
		for j := range s.rest {
			_, err := s.nc.Write(s.rest[j : j+1])
			require.NoError(t, err)
		}
		_ = s.nc.SetReadDeadline(time.Now().Add(pollTestTimeout))
		got, err := readText(s.nc, s.br)
		require.NoError(t, err)
		require.Equal(t, fmt.Sprintf("slow %d", i), string(got))
	}
	st := srv.Stats()
	require.Equal(t, st.Accepted, st.Polled)
}

// readText reads one server text message; br buffers nc.
func readText(nc net.Conn, br *bufio.Reader) ([]byte, error) {
	return wsutil.ReadServerText(struct {
		io.Reader
		io.Writer
	}{br, nc})
}

var readerModes = []wsframework.ReaderMode{wsframework.ReaderGoroutine, wsframework.ReaderPoll}

// BenchmarkPingPong is one client's round trip: a 16-byte text message
// echoed by the plugin, in each reader mode.
func BenchmarkPingPong(b *testing.B) {
	for _, mode := range readerModes {
		b.Run("mode="+mode.String(), func(b *testing.B) {
			b.ReportAllocs()
			_, url := echoServer(b, wsframework.Config{Reader: mode})
			nc, br := dialEcho(b, url)
			msg := []byte("0123456789abcdef")
			for b.Loop() {
				if err := wsutil.WriteClientText(nc, msg); err != nil {
					b.Fatal(err)
				}
				if _, err := readText(nc, br); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkIdleConns opens idle connections to an in-process server in each
// reader mode and reports the live heap and goroutines each one costs
// (client side included: one net.Conn and bufio.Reader per connection).
// Run with -benchtime=1x; IDLECONNS sets the count (default 5000).
func BenchmarkIdleConns(b *testing.B) {
	n := 5000
	if v, err := strconv.Atoi(os.Getenv("IDLECONNS")); err == nil {
		n = v
	}
	for _, mode := range readerModes {
		b.Run("mode="+mode.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				srv, url := echoServer(b, wsframework.Config{Reader: mode, PingInterval: -1})
				heap0, g0 := liveHeap()
				conns := make([]net.Conn, 0, n)
				for range n {
					ctx, cancel := context.WithTimeout(context.Background(), pollTestTimeout)
					nc, _, _, err := ws.Dial(ctx, url)
					cancel()
					if err != nil {
						b.Fatal(err)
					}
					conns = append(conns, nc)
				}
				for srv.Stats().Open < int64(n) {
					runtime.Gosched()
				}
				heap1, g1 := liveHeap()
				b.ReportMetric(float64(heap1-heap0)/float64(n), "heapB/conn")
				b.ReportMetric(float64(g1-g0)/float64(n), "goroutines/conn")
				for _, nc := range conns {
					_ = nc.Close()
				}
			}
		})
	}
}

// liveHeap returns the heap in use after a GC, and the goroutine count.
func liveHeap() (heap uint64, goroutines uint64) {
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/sched/goroutines:goroutines"}}
	metrics.Read(s)
	return s[0].Value.Uint64(), s[1].Value.Uint64()
}
