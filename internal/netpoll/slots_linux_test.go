//go:build linux

package netpoll

import (
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestSlots: a report still in flight for a removed handle never reaches
// the handle that took its slot.
func TestSlots(t *testing.T) {
	l := &loop{}
	a, b := &Handle{}, &Handle{}
	l.add(a)
	old := a.token
	require.Same(t, a, l.lookup(old))
	l.remove(a)
	require.Nil(t, l.lookup(old))
	l.add(b)
	require.Equal(t, uint32(old), uint32(b.token), "the slot is reused")
	require.NotEqual(t, old, b.token)
	require.Nil(t, l.lookup(old), "a stale token found the slot's new handle")
	require.Same(t, b, l.lookup(b.token))
	l.remove(a) // removing a gone handle leaves its successor alone
	require.Same(t, b, l.lookup(b.token))
	require.Nil(t, l.lookup(0), "the wake token is no handle's")
	require.Nil(t, l.lookup(1<<32|99), "a token past the slots")
}

// TestCloseFreesSlot: whatever registered the descriptor (the reader's Arm,
// a writer waiting after the reader ended), Close leaves no slot behind.
func TestCloseFreesSlot(t *testing.T) {
	p, err := New(1, nil)
	require.NoError(t, err)
	defer p.Close()
	l := p.loops[0]
	for _, armReader := range []bool{true, false} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		cc, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		sc, err := ln.Accept()
		require.NoError(t, err)
		require.NoError(t, ln.Close())
		hd, err := p.Detach(sc.(*net.TCPConn), noHandler{})
		require.NoError(t, err)
		if armReader {
			require.NoError(t, hd.Arm())
		}
		// A writer that has to wait registers the descriptor too.
		done := make(chan error, 1)
		go func() {
			_, err := hd.Writev(&net.Buffers{make([]byte, 32<<20)}, time.Now().Add(10*time.Second))
			done <- err
		}()
		// Nothing reads yet, so the writer fills the socket and waits.
		require.Eventually(t, func() bool {
			hd.mu.Lock()
			defer hd.mu.Unlock()
			return hd.added
		}, 10*time.Second, time.Millisecond, "the writer never waited for room")
		_, err = io.CopyN(io.Discard, cc, 32<<20)
		require.NoError(t, err)
		require.NoError(t, <-done)
		require.NoError(t, hd.Close())
		require.Nil(t, l.lookup(hd.token))
		l.mu.Lock()
		require.Len(t, l.free, len(l.slots), "a slot is still taken")
		l.mu.Unlock()
		require.NoError(t, cc.Close())
	}
}

type noHandler struct{}

func (noHandler) Ready() {}

// TestFailedAddFreesSlot: a descriptor epoll refuses leaves no slot taken.
func TestFailedAddFreesSlot(t *testing.T) {
	p, err := New(1, nil)
	require.NoError(t, err)
	defer p.Close()
	f, err := os.CreateTemp(t.TempDir(), "regular")
	require.NoError(t, err)
	defer f.Close()
	fd, err := unix.Dup(int(f.Fd()))
	require.NoError(t, err)
	hd, err := p.NewHandle(fd, noHandler{})
	require.NoError(t, err)
	defer hd.Close()
	require.Error(t, hd.Arm(), "epoll took a regular file") // EPERM
	l := p.loops[0]
	l.mu.Lock()
	defer l.mu.Unlock()
	require.Len(t, l.free, len(l.slots), "a slot is still taken")
}
