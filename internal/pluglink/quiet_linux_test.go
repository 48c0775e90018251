//go:build linux

package pluglink

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// quietPair returns a quietConn and the plain net.Conn at the other end of
// a real Unix socket.
func quietPair(t *testing.T) (*quietConn, net.Conn) {
	t.Helper()
	dir, err := os.MkdirTemp("", "plq")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	ln, err := net.Listen("unix", filepath.Join(dir, "s"))
	require.NoError(t, err)
	defer ln.Close()
	a, err := net.Dial("unix", ln.Addr().String())
	require.NoError(t, err)
	b, err := ln.Accept()
	require.NoError(t, err)
	q, ok := quiet(a).(*quietConn)
	require.True(t, ok, "a Unix socket becomes a quietConn")
	_, err = a.Write([]byte("x"))
	require.ErrorIs(t, err, net.ErrClosed, "the original left the runtime's poller, closed (q has a duplicate)")
	t.Cleanup(func() { _ = q.Close(); _ = b.Close() })
	return q, b
}

// ready returns how many events f's epoll instance has ready now.
func ready(t *testing.T, f *os.File) int {
	t.Helper()
	rc, err := f.SyscallConn()
	require.NoError(t, err)
	var n int
	var werr error
	require.NoError(t, rc.Control(func(efd uintptr) {
		n, werr = unix.EpollWait(int(efd), make([]unix.EpollEvent, 4), 0)
	}))
	require.NoError(t, werr)
	return n
}

// TestQuietPeerReadWakesNoOne: what quiet is for. The peer reading what
// this side wrote makes the socket report "writable" to its waiters; the
// quiet socket's instances take no such report (the read instance asks
// for input only, the write instance for nothing while no write waits),
// so no waiting goroutine or thread of this side is woken. Data from the
// peer does ready the read instance.
func TestQuietPeerReadWakesNoOne(t *testing.T) {
	q, peer := quietPair(t)
	_, err := q.Write([]byte("event"))
	require.NoError(t, err)
	buf := make([]byte, 16)
	n, err := peer.Read(buf)
	require.NoError(t, err)
	require.Equal(t, "event", string(buf[:n]))
	require.Zero(t, ready(t, q.rd), "the peer's read readied the read instance")
	require.Zero(t, ready(t, q.wr), "the peer's read readied the write instance")

	_, err = peer.Write([]byte("answer"))
	require.NoError(t, err)
	require.Equal(t, 1, ready(t, q.rd), "data from the peer readies the read instance")
	n, err = q.Read(buf)
	require.NoError(t, err)
	require.Equal(t, "answer", string(buf[:n]))
}

// TestQuietReadWaitsAndEnds: a read waits for data, times out at its
// deadline with a timeout error, returns io.EOF when the peer closes, and
// net.ErrClosed after Close, which also ends a read that waits.
func TestQuietReadWaitsAndEnds(t *testing.T) {
	q, peer := quietPair(t)
	go func() {
		time.Sleep(20 * time.Millisecond)
		_, _ = peer.Write([]byte("late"))
	}()
	buf := make([]byte, 8)
	n, err := q.Read(buf)
	require.NoError(t, err)
	require.Equal(t, "late", string(buf[:n]))

	require.NoError(t, q.SetReadDeadline(time.Now().Add(20*time.Millisecond)))
	_, err = q.Read(buf)
	var ne net.Error
	require.True(t, errors.As(err, &ne) && ne.Timeout(), "a deadline gives a timeout error: %v", err)
	require.NoError(t, q.SetReadDeadline(time.Time{}))

	done := make(chan error, 1)
	go func() {
		_, err := q.Read(buf)
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	require.NoError(t, q.Close())
	select {
	case err := <-done:
		require.ErrorIs(t, err, net.ErrClosed)
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the waiting read")
	}
	require.ErrorIs(t, q.Close(), net.ErrClosed, "a second Close says it was closed, and does nothing")
	_, err = q.Write([]byte("x"))
	require.ErrorIs(t, err, net.ErrClosed)

	// The peer saw the end.
	require.NoError(t, peer.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = io.ReadAll(peer)
	require.NoError(t, err)
}

// TestQuietWriteWaitsForRoom: a write larger than the socket's buffers
// waits until the peer reads, then completes in order; a write deadline
// ends a wait with a timeout; Close ends a waiting write.
func TestQuietWriteWaitsForRoom(t *testing.T) {
	q, peer := quietPair(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB: more than the socket holds
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(peer, int64(len(big))))
		got <- b
	}()
	n, err := q.Write(big)
	require.NoError(t, err)
	require.Equal(t, len(big), n)
	require.Equal(t, big, <-got)
	require.Zero(t, ready(t, q.wr), "writability is asked for only while a write waits")

	// Nobody reads now: the write fills the socket and waits.
	require.NoError(t, q.SetWriteDeadline(time.Now().Add(30*time.Millisecond)))
	_, err = q.Write(big)
	var ne net.Error
	require.True(t, errors.As(err, &ne) && ne.Timeout(), "a write deadline gives a timeout error: %v", err)
	require.NoError(t, q.SetWriteDeadline(time.Time{}))

	done := make(chan error, 1)
	go func() {
		_, err := q.Write(big)
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	require.NoError(t, q.Close())
	select {
	case err := <-done:
		require.Error(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the waiting write")
	}
}

// TestQuietOnlyUnixSockets: other connections stay as they are.
func TestQuietOnlyUnixSockets(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	require.Equal(t, a, quiet(a))
}
