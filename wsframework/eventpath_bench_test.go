package wsframework

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/strandws/strand/internal/core"
	"github.com/strandws/strand/wsframework/internal/wsproto"
)

// replayConn is an in-memory net.Conn for benchmarks: reads replay one client
// frame n times, then EOF; writes are counted and discarded (no syscalls).
type replayConn struct {
	frame   []byte
	left    int // frames left to read
	off     int
	written atomic.Int64
	target  int64
	done    chan struct{}
	once    sync.Once
}

func (m *replayConn) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if m.off == len(m.frame) {
			if m.left == 0 {
				if n > 0 {
					return n, nil
				}
				<-m.done // hold the reader until the benchmark ends
				return 0, io.EOF
			}
			m.left--
			m.off = 0
		}
		c := copy(p[n:], m.frame[m.off:])
		m.off += c
		n += c
	}
	return n, nil
}

func (m *replayConn) Write(p []byte) (int, error) {
	if m.written.Add(int64(len(p))) >= m.target {
		m.once.Do(func() { close(m.done) })
	}
	return len(p), nil
}

func (m *replayConn) Close() error                     { m.once.Do(func() { close(m.done) }); return nil }
func (m *replayConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (m *replayConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (m *replayConn) SetDeadline(time.Time) error      { return nil }
func (m *replayConn) SetReadDeadline(time.Time) error  { return nil }
func (m *replayConn) SetWriteDeadline(time.Time) error { return nil }

func clientFrame(payload []byte) []byte {
	f := ws.NewBinaryFrame(payload)
	f = ws.MaskFrameInPlace(f)
	b, err := ws.CompileFrame(f)
	if err != nil {
		panic(err)
	}
	return b
}

// BenchmarkEventPath: from a fully read frame to the handler running to its
// Send being written into the connection's (in-memory) socket: header
// parse, unmask, dispatch on the ordered executor, the handler's pooled
// copy, the write queue and the vectored write. metrics=on is the same path
// with Config.Metrics set (the default sampling of handler timings), to
// compare with metrics=off in the same run.
func BenchmarkEventPath(b *testing.B) {
	const size = 64
	echo := &core.WebSocketHandlers{OnMessage: func(c *core.Conn, m core.Message) { _ = c.Send(m.Type, m.Data) }}
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("metrics=%s", map[bool]string{false: "off", true: "on"}[on]), func(b *testing.B) {
			var cfg Config
			if on {
				cfg.Metrics = prometheus.NewRegistry()
			}
			benchPathConfig(b, size, cfg, func(s *Server, m *replayConn) {
				p := core.NewPlugin("bench")
				rt, err := s.runtimeFor(p)
				if err != nil {
					b.Fatal(err)
				}
				c := newConn(s, 1, m, bufio.NewReaderSize(m, 4096), rt)
				s.connWG.Add(1)
				s.open.Add(1)
				c.serve(context.Background(), core.ConnInfo{ID: 1, Handlers: echo})
			})
		})
	}
}

// BenchmarkBaselineGoroutinePerEvent is the unordered design Strand
// replaces: the same frame parsing and write path, but each message is
// handled on a fresh goroutine (messages of one connection may reorder).
func BenchmarkBaselineGoroutinePerEvent(b *testing.B) {
	const size = 64
	benchPath(b, size, func(s *Server, m *replayConn) {
		p := core.NewPlugin("bench")
		rt, err := s.runtimeFor(p)
		if err != nil {
			b.Fatal(err)
		}
		c := newConn(s, 1, m, bufio.NewReaderSize(m, 4096), rt)
		bufs := s.cfg.Buffers
		for {
			c.waitOutbound(context.Background()) // the same write-queue pause as the real reader
			ev, err := readEvent(c.br, c.takeParser(), c)
			if err != nil || ev.Kind != wsproto.Message {
				return
			}
			buf := ev.Msg
			go func() {
				out := bufs.Get(len(buf.B))
				copy(out.B, buf.B)
				buf.Release()
				_ = c.Write(core.Binary, out)
			}()
		}
	})
}

func benchPath(b *testing.B, size int, run func(*Server, *replayConn)) {
	benchPathConfig(b, size, Config{}, run)
}

// benchPathConfig is benchPath on a Server configured by cfg, whose
// keepalive and write queue bounds it sets.
func benchPathConfig(b *testing.B, size int, cfg Config, run func(*Server, *replayConn)) {
	// Queues large enough that the unbounded go-per-event baseline, which
	// has no backpressure, is not closed as a slow consumer mid-run.
	cfg.PingInterval, cfg.IdleTimeout, cfg.WriteQueueMessages, cfg.WriteQueueBytes = -1, -1, 1<<24, 1<<32
	s, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, size)
	m := &replayConn{
		frame:  clientFrame(payload),
		left:   b.N,
		target: int64(b.N) * int64(size+2),
		done:   make(chan struct{}),
	}
	m.off = len(m.frame)
	b.ReportAllocs()
	b.SetBytes(int64(size))
	b.ResetTimer()
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		run(s, m)
	}()
	<-m.done
	b.StopTimer()
	<-finished
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.Shutdown(ctx)
}
