//go:build linux

package netpoll_test

import (
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/internal/netpoll"
)

const testTimeout = 10 * time.Second

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server *net.TCPConn, client net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	client, err = net.Dial("tcp", l.Addr().String())
	require.NoError(t, err)
	sc, err := l.Accept()
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close(); _ = sc.Close() })
	return sc.(*net.TCPConn), client
}

func rawConn(t *testing.T, c *net.TCPConn) syscall.RawConn {
	t.Helper()
	rc, err := c.SyscallConn()
	require.NoError(t, err)
	return rc
}

// chanHandler reports each Ready call on a channel.
type chanHandler chan struct{}

func (h chanHandler) Ready() { h <- struct{}{} }

func (h chanHandler) wait(t *testing.T) {
	t.Helper()
	select {
	case <-h:
	case <-time.After(testTimeout):
		t.Fatal("handler not run")
	}
}

// none checks that the handler has not run (again) by the time a Trigger
// sent after it has: both run on one loop, in order.
func none(t *testing.T, h chanHandler, p *netpoll.Poller) {
	t.Helper()
	probe := make(chanHandler, 1)
	// A handle on the same loop: with one loop, every handle is.
	ph, err := p.NewHandle(nil, probe)
	require.NoError(t, err)
	ph.Trigger()
	probe.wait(t)
	select {
	case <-h:
		t.Fatal("handler ran unexpectedly")
	default:
	}
}

func TestPoller(t *testing.T) {
	t.Run("oneshot_readiness", func(t *testing.T) {
		p, err := netpoll.New(1)
		require.NoError(t, err)
		defer p.Close()
		sc, cc := tcpPair(t)
		h := make(chanHandler, 4)
		hd, err := p.NewHandle(rawConn(t, sc), h)
		require.NoError(t, err)
		require.NoError(t, hd.Arm())
		none(t, h, p) // nothing to read yet

		_, err = cc.Write([]byte("abc"))
		require.NoError(t, err)
		h.wait(t)
		_, err = cc.Write([]byte("more")) // not armed: no report
		require.NoError(t, err)
		none(t, h, p)

		buf := make([]byte, 16)
		n, err := hd.Read(buf)
		require.NoError(t, err)
		require.Equal(t, "abcmore", string(buf[:n]))
		_, err = hd.Read(buf)
		require.ErrorIs(t, err, netpoll.ErrWouldBlock)

		require.NoError(t, hd.Arm()) // re-armed: the next bytes are reported
		_, err = cc.Write([]byte("x"))
		require.NoError(t, err)
		h.wait(t)
		require.NoError(t, hd.Arm()) // armed with bytes waiting: reported at once
		h.wait(t)
		hd.Deregister()
	})

	t.Run("hangup_and_eof", func(t *testing.T) {
		p, err := netpoll.New(1)
		require.NoError(t, err)
		defer p.Close()
		sc, cc := tcpPair(t)
		h := make(chanHandler, 4)
		hd, err := p.NewHandle(rawConn(t, sc), h)
		require.NoError(t, err)
		require.NoError(t, hd.Arm())
		require.NoError(t, cc.Close())
		h.wait(t)
		_, err = hd.Read(make([]byte, 8))
		require.ErrorIs(t, err, io.EOF)
		hd.Deregister()
	})

	t.Run("trigger", func(t *testing.T) {
		p, err := netpoll.New(2)
		require.NoError(t, err)
		defer p.Close()
		h := make(chanHandler, 8)
		hd, err := p.NewHandle(nil, h)
		require.NoError(t, err)
		for range 3 {
			hd.Trigger()
			h.wait(t)
		}
	})

	t.Run("trigger_concurrent", func(t *testing.T) {
		// Many goroutines trigger at once; none may be lost.
		p, err := netpoll.New(1)
		require.NoError(t, err)
		defer p.Close()
		var wg sync.WaitGroup
		for range 8 {
			h := make(chanHandler, 1)
			hd, err := p.NewHandle(nil, h)
			require.NoError(t, err)
			wg.Go(func() {
				for range 2000 {
					hd.Trigger()
					select {
					case <-h:
					case <-time.After(testTimeout):
						t.Error("a Trigger was lost")
						return
					}
				}
			})
		}
		wg.Wait()
	})

	t.Run("closed_conn", func(t *testing.T) {
		p, err := netpoll.New(1)
		require.NoError(t, err)
		defer p.Close()
		sc, _ := tcpPair(t)
		rc := rawConn(t, sc)
		hd, err := p.NewHandle(rc, make(chanHandler, 1))
		require.NoError(t, err)
		require.NoError(t, sc.Close())
		require.Error(t, hd.Arm(), "armed a closed descriptor")
		_, err = hd.Read(make([]byte, 8))
		require.ErrorIs(t, err, net.ErrClosed)
		hd.Deregister()
	})

	t.Run("close", func(t *testing.T) {
		p, err := netpoll.New(3)
		require.NoError(t, err)
		hd, err := p.NewHandle(nil, make(chanHandler))
		require.NoError(t, err)
		require.NoError(t, p.Close()) // its loops are gone (goleak)
		require.NoError(t, p.Close(), "Close is idempotent")
		hd.Trigger() // ignored, never blocks
		_, err = p.NewHandle(nil, make(chanHandler))
		require.True(t, errors.Is(err, netpoll.ErrClosed))
	})
}

// BenchmarkTrigger measures handing a handle to its loop and back.
func BenchmarkTrigger(b *testing.B) {
	b.ReportAllocs()
	p, err := netpoll.New(1)
	require.NoError(b, err)
	defer p.Close()
	h := make(chanHandler, 1)
	hd, err := p.NewHandle(nil, h)
	require.NoError(b, err)
	for b.Loop() {
		hd.Trigger()
		<-h
	}
}
