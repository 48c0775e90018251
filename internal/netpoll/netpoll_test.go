//go:build linux

package netpoll_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
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

// detach hands the server end of a loopback connection to p.
func detach(t *testing.T, p *netpoll.Poller, h netpoll.Handler) (*netpoll.Handle, net.Conn) {
	t.Helper()
	sc, cc := tcpPair(t)
	hd, err := p.Detach(sc, h)
	require.NoError(t, err)
	t.Cleanup(func() { _ = hd.Close() })
	return hd, cc
}

// chanHandler reports Ready calls on a channel, without blocking its loop:
// a call while an earlier one is still unreceived (and the channel full)
// is not reported again. (Level-triggered, a descriptor left unread is
// reported by every wait.)
type chanHandler chan struct{}

func (h chanHandler) Ready() {
	select {
	case h <- struct{}{}:
	default:
	}
}

// settle lets h's loop finish what it was doing (a Trigger sent now runs
// after it), then forgets h's reports so far.
func settle(t *testing.T, h chanHandler, p *netpoll.Poller) {
	t.Helper()
	probe := make(chanHandler, 1)
	ph, err := p.NewHandle(-1, probe)
	require.NoError(t, err)
	ph.Trigger()
	probe.wait(t)
	for len(h) > 0 {
		<-h
	}
}

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
	ph, err := p.NewHandle(-1, probe)
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
	t.Run("level_triggered_readiness", func(t *testing.T) {
		p, err := netpoll.New(1, nil)
		require.NoError(t, err)
		defer p.Close()
		h := make(chanHandler, 1)
		hd, cc := detach(t, p, h)
		require.NoError(t, hd.Arm())
		none(t, h, p) // nothing to read yet

		_, err = cc.Write([]byte("abc"))
		require.NoError(t, err)
		h.wait(t)
		h.wait(t) // left unread: reported again, with no Arm in between
		require.NoError(t, hd.Arm(), "arming an armed handle")
		_, err = cc.Write([]byte("more"))
		require.NoError(t, err)
		buf := make([]byte, 16)
		var got []byte
		require.Eventually(t, func() bool {
			if n, err := hd.Read(buf); err == nil {
				got = append(got, buf[:n]...)
			}
			return len(got) >= 7
		}, testTimeout, time.Millisecond)
		require.Equal(t, "abcmore", string(got))
		_, err = hd.Read(buf)
		require.ErrorIs(t, err, netpoll.ErrWouldBlock)
		settle(t, h, p)
		none(t, h, p) // all read: no more reports

		hd.Disarm() // paused: bytes that arrive are not reported
		_, err = cc.Write([]byte("x"))
		require.NoError(t, err)
		time.Sleep(10 * time.Millisecond) // let them arrive (none proves nothing otherwise)
		settle(t, h, p)
		none(t, h, p)
		require.NoError(t, hd.Arm()) // armed with bytes waiting: reported at once
		h.wait(t)
		hd.Deregister()
		settle(t, h, p)
		none(t, h, p) // deregistered with bytes unread: no more reports
	})

	t.Run("hangup_and_eof", func(t *testing.T) {
		p, err := netpoll.New(1, nil)
		require.NoError(t, err)
		defer p.Close()
		h := make(chanHandler, 4)
		hd, cc := detach(t, p, h)
		require.NoError(t, hd.Arm())
		require.NoError(t, cc.Close())
		h.wait(t)
		_, err = hd.Read(make([]byte, 8))
		require.ErrorIs(t, err, io.EOF)
		hd.Deregister()
	})

	t.Run("trigger", func(t *testing.T) {
		p, err := netpoll.New(2, nil)
		require.NoError(t, err)
		defer p.Close()
		h := make(chanHandler, 8)
		hd, err := p.NewHandle(-1, h)
		require.NoError(t, err)
		for range 3 {
			hd.Trigger()
			h.wait(t)
		}
	})

	t.Run("trigger_concurrent", func(t *testing.T) {
		// Many goroutines trigger at once; none may be lost.
		p, err := netpoll.New(1, nil)
		require.NoError(t, err)
		defer p.Close()
		var wg sync.WaitGroup
		for range 8 {
			h := make(chanHandler, 1)
			hd, err := p.NewHandle(-1, h)
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
		p, err := netpoll.New(1, nil)
		require.NoError(t, err)
		defer p.Close()
		hd, _ := detach(t, p, make(chanHandler, 1))
		require.NoError(t, hd.Close())
		require.NoError(t, hd.Close(), "Close is idempotent")
		require.ErrorIs(t, hd.Arm(), net.ErrClosed, "armed a closed descriptor")
		_, err = hd.Read(make([]byte, 8))
		require.ErrorIs(t, err, net.ErrClosed)
		_, err = hd.Writev(&net.Buffers{[]byte("x")}, time.Time{})
		require.ErrorIs(t, err, net.ErrClosed)
		hd.Deregister()
	})

	t.Run("close", func(t *testing.T) {
		p, err := netpoll.New(3, nil)
		require.NoError(t, err)
		hd, err := p.NewHandle(-1, make(chanHandler))
		require.NoError(t, err)
		require.NoError(t, p.Close()) // its loops are gone (goleak)
		require.NoError(t, p.Close(), "Close is idempotent")
		hd.Trigger() // ignored, never blocks
		_, err = p.NewHandle(-1, make(chanHandler))
		require.True(t, errors.Is(err, netpoll.ErrClosed))
	})
}

func TestDetach(t *testing.T) {
	p, err := netpoll.New(1, nil)
	require.NoError(t, err)
	defer p.Close()
	sc, cc := tcpPair(t)
	hd, err := p.Detach(sc, make(chanHandler, 1))
	require.NoError(t, err)
	defer hd.Close()
	_, err = sc.Write([]byte("x"))
	require.ErrorIs(t, err, net.ErrClosed, "the net.Conn is closed")

	// The connection itself lives on, in both directions.
	n, err := hd.Writev(&net.Buffers{[]byte("he"), nil, []byte("llo")}, time.Time{})
	require.NoError(t, err)
	require.EqualValues(t, 5, n)
	buf := make([]byte, 5)
	_, err = io.ReadFull(cc, buf)
	require.NoError(t, err)
	require.Equal(t, "hello", string(buf))
	_, err = cc.Write([]byte("back"))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		n, err := hd.Read(buf)
		return err == nil && string(buf[:n]) == "back"
	}, testTimeout, time.Millisecond)

	// Closing the handle closes the connection.
	require.NoError(t, hd.Close())
	require.NoError(t, cc.SetReadDeadline(time.Now().Add(testTimeout)))
	_, err = cc.Read(buf)
	require.ErrorIs(t, err, io.EOF)
}

func TestWritev(t *testing.T) {
	p, err := netpoll.New(1, nil)
	require.NoError(t, err)
	defer p.Close()

	t.Run("waits_for_room", func(t *testing.T) {
		// Far more than the socket buffers hold, in many vectors (more
		// than one writev's 1024): the writer waits for the reader.
		hd, cc := detach(t, p, make(chanHandler, 1))
		var want []byte
		var v net.Buffers
		for i := range 3000 {
			b := bytes.Repeat([]byte{byte(i)}, 1+i%4000)
			want = append(want, b...)
			v = append(v, b)
		}
		done := make(chan error, 1)
		go func() {
			n, err := hd.Writev(&v, time.Now().Add(testTimeout))
			if err == nil && n != int64(len(want)) {
				err = io.ErrShortWrite
			}
			done <- err
		}()
		got := make([]byte, len(want))
		require.NoError(t, cc.SetReadDeadline(time.Now().Add(testTimeout)))
		_, err := io.ReadFull(cc, got)
		require.NoError(t, err)
		require.NoError(t, <-done)
		require.Empty(t, v, "Writev consumes what it wrote")
		require.True(t, bytes.Equal(want, got), "bytes arrived out of order or changed")
	})

	t.Run("deadline", func(t *testing.T) {
		hd, _ := detach(t, p, make(chanHandler, 1)) // nobody reads
		big := make([]byte, 1<<20)
		var err error
		for range 256 { // 256 MiB: more than any socket buffer
			_, err = hd.Writev(&net.Buffers{big}, time.Now().Add(50*time.Millisecond))
			if err != nil {
				break
			}
		}
		require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	})

	t.Run("close_wakes_writer", func(t *testing.T) {
		hd, _ := detach(t, p, make(chanHandler, 1))
		done := make(chan error, 1)
		go func() {
			big := make([]byte, 1<<20)
			for {
				if _, err := hd.Writev(&net.Buffers{big}, time.Time{}); err != nil {
					done <- err
					return
				}
			}
		}()
		// Whether the writer is waiting already or not, Close ends it.
		require.NoError(t, hd.Close())
		select {
		case err := <-done:
			require.ErrorIs(t, err, net.ErrClosed)
		case <-time.After(testTimeout):
			t.Fatal("a writer waiting for room was not woken by Close")
		}
	})

	t.Run("after_deregister", func(t *testing.T) {
		// A reader that ended (Deregister) leaves the descriptor to a
		// writer still flushing, until Close.
		ended := make(chan struct{})
		var hd *netpoll.Handle
		h := funcHandler(func() { hd.Deregister(); close(ended) })
		hd, cc := detach(t, p, h)
		require.NoError(t, hd.Arm())
		hd.Trigger()
		<-ended
		require.ErrorIs(t, hd.Arm(), net.ErrClosed, "armed after Deregister")
		done := make(chan error, 1)
		go func() {
			_, err := hd.Writev(&net.Buffers{make([]byte, 32<<20)}, time.Now().Add(testTimeout))
			done <- err
		}()
		_, err := io.CopyN(io.Discard, cc, 32<<20)
		require.NoError(t, err)
		require.NoError(t, <-done)
	})

	t.Run("read_and_write_interest", func(t *testing.T) {
		// A writer waiting for room and a reader armed at the same time:
		// each report reaches its side and the other stays armed.
		h := make(chanHandler, 4)
		hd, cc := detach(t, p, h)
		require.NoError(t, hd.Arm())
		big := make([]byte, 1<<20)
		wrote := make(chan int64, 1)
		go func() {
			var total int64
			for range 64 {
				n, err := hd.Writev(&net.Buffers{big}, time.Now().Add(testTimeout))
				total += n
				if err != nil {
					break
				}
			}
			wrote <- total
		}()
		_, err := cc.Write([]byte("r"))
		require.NoError(t, err)
		h.wait(t) // readable, although the writer's EPOLLOUT is armed too
		_, err = io.CopyN(io.Discard, cc, 64<<20)
		require.NoError(t, err)
		require.EqualValues(t, 64<<20, <-wrote)
	})
}

// timerHandler records the order its handles' timers ran in.
type timerHandler struct {
	name string
	ran  chan string
}

func (h *timerHandler) Ready() { h.ran <- h.name }

func TestTimers(t *testing.T) {
	p, err := netpoll.New(1, nil)
	require.NoError(t, err)
	defer p.Close()
	ran := make(chan string, 16)
	names := []string{"a", "b", "c", "d"}
	hds := map[string]*netpoll.Handle{}
	for _, n := range names {
		hd, err := p.NewHandle(-1, &timerHandler{name: n, ran: ran})
		require.NoError(t, err)
		hds[n] = hd
	}
	// Timers are set from a Handler: from a handle's Ready on the loop.
	set := make(chan func(), 1)
	ctl, err := p.NewHandle(-1, funcHandler(func() { (<-set)() }))
	require.NoError(t, err)
	onLoop := func(f func()) {
		done := make(chan struct{})
		set <- func() { f(); close(done) }
		ctl.Trigger()
		<-done
	}

	now := p.Now()
	ms := int64(time.Millisecond)
	var pending int64
	onLoop(func() {
		hds["c"].SetTimer(now + 60*ms)
		hds["a"].SetTimer(now + 20*ms)
		hds["d"].SetTimer(now + 10*ms)
		hds["d"].SetTimer(now + 80*ms) // replaced: later
		hds["b"].SetTimer(now + 40*ms)
		hds["c"].SetTimer(0) // stopped
		pending = hds["b"].Timer()
	})
	require.Equal(t, now+40*ms, pending)
	var order []string
	for range 3 {
		select {
		case n := <-ran:
			order = append(order, n)
		case <-time.After(testTimeout):
			t.Fatalf("timers ran %v, want 3", order)
		}
	}
	require.Equal(t, []string{"a", "b", "d"}, order)
	onLoop(func() { pending = hds["a"].Timer() })
	require.Zero(t, pending, "a timer that ran is not set any more")
	select {
	case n := <-ran:
		t.Fatalf("stopped timer %s ran", n)
	default:
	}
	// A timer of a deregistered handle never runs.
	onLoop(func() {
		hds["a"].SetTimer(p.Now())
		hds["a"].Deregister()
	})
	none(t, make(chanHandler), p)
	select {
	case n := <-ran:
		t.Fatalf("timer of deregistered handle %s ran", n)
	default:
	}
}

type funcHandler func()

func (f funcHandler) Ready() { f() }

// BenchmarkTrigger measures handing a handle to its loop and back.
func BenchmarkTrigger(b *testing.B) {
	b.ReportAllocs()
	p, err := netpoll.New(1, nil)
	require.NoError(b, err)
	defer p.Close()
	h := make(chanHandler, 1)
	hd, err := p.NewHandle(-1, h)
	require.NoError(b, err)
	for b.Loop() {
		hd.Trigger()
		<-h
	}
}

// readyHandler reports, on each Ready, how many descriptors its loop's
// wait reported.
type readyHandler struct {
	hd *netpoll.Handle
	ch chan int
}

func (h *readyHandler) Ready() {
	select {
	case h.ch <- h.hd.LoopReady():
	default:
	}
}

// TestLoopReady: a handler learns how many descriptors its loop's wait
// reported, itself included.
func TestLoopReady(t *testing.T) {
	p, err := netpoll.New(1, nil)
	require.NoError(t, err)
	defer p.Close()
	a, b := &readyHandler{ch: make(chan int, 1)}, &readyHandler{ch: make(chan int, 1)}
	var ca, cb net.Conn
	a.hd, ca = detach(t, p, a)
	b.hd, cb = detach(t, p, b)
	require.NoError(t, a.hd.Arm())
	require.NoError(t, b.hd.Arm())

	_, err = ca.Write([]byte("x"))
	require.NoError(t, err)
	select {
	case n := <-a.ch:
		require.Equal(t, 1, n, "a alone is ready")
	case <-time.After(testTimeout):
		t.Fatal("a's handler not run")
	}

	// Both left unread and level-triggered: every wait reports both, so
	// some report of a's says 2.
	_, err = cb.Write([]byte("y"))
	require.NoError(t, err)
	deadline := time.After(testTimeout)
	for {
		select {
		case n := <-a.ch:
			if n == 2 {
				a.hd.Deregister()
				b.hd.Deregister()
				return
			}
			require.Equal(t, 1, n)
		case <-deadline:
			t.Fatal("no wait reported both descriptors")
		}
	}
}
