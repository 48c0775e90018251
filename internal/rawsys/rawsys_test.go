//go:build linux

package rawsys_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/strandws/strand/internal/rawsys"
)

func pair(t *testing.T) (a, b int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = unix.Close(fds[0]); _ = unix.Close(fds[1]) })
	return fds[0], fds[1]
}

func TestReadWrite(t *testing.T) {
	a, b := pair(t)
	buf := make([]byte, 16)
	_, err := rawsys.Read(b, buf)
	require.ErrorIs(t, err, unix.EAGAIN, "nothing written yet: a non-blocking read says so")

	n, err := rawsys.Write(a, []byte("hello"))
	require.NoError(t, err)
	require.Equal(t, 5, n)
	n, err = rawsys.Read(b, buf)
	require.NoError(t, err)
	require.Equal(t, "hello", string(buf[:n]))

	n, err = rawsys.Write(a, nil)
	require.NoError(t, err)
	require.Zero(t, n)

	require.NoError(t, unix.Close(a))
	n, err = rawsys.Read(b, buf)
	require.NoError(t, err)
	require.Zero(t, n, "end of stream")
	_, err = rawsys.Read(-1, buf)
	require.ErrorIs(t, err, unix.EBADF)
}

func TestWritevFillsUntilEAGAIN(t *testing.T) {
	a, b := pair(t)
	one, two := []byte("ab"), []byte("cde")
	iov := make([]unix.Iovec, 2)
	iov[0].Base, iov[1].Base = &one[0], &two[0]
	iov[0].SetLen(len(one))
	iov[1].SetLen(len(two))
	n, err := rawsys.Writev(a, iov)
	require.NoError(t, err)
	require.Equal(t, 5, n)
	buf := make([]byte, 8)
	n, err = rawsys.Read(b, buf)
	require.NoError(t, err)
	require.Equal(t, "abcde", string(buf[:n]))

	big := make([]byte, 1<<20)
	iov = iov[:1]
	iov[0].Base = &big[0]
	iov[0].SetLen(len(big))
	total := 0
	for {
		n, err := rawsys.Writev(a, iov)
		if err != nil {
			require.ErrorIs(t, err, unix.EAGAIN, "a full socket: the call returns instead of waiting")
			break
		}
		total += n
		require.Less(t, total, 64<<20, "the socket never filled")
	}
	require.Positive(t, total)
}

func TestEpollPoll(t *testing.T) {
	a, b := pair(t)
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	require.NoError(t, err)
	defer unix.Close(ep)
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(b)}
	require.NoError(t, unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, b, &ev))
	events := make([]unix.EpollEvent, 4)
	n, err := rawsys.EpollPoll(ep, events)
	require.NoError(t, err)
	require.Zero(t, n, "nothing ready: returns at once")
	_, err = rawsys.Write(a, []byte("x"))
	require.NoError(t, err)
	n, err = rawsys.EpollPoll(ep, events)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, int32(b), events[0].Fd)
	n, err = rawsys.EpollPoll(ep, nil)
	require.NoError(t, err)
	require.Zero(t, n)
	rawsys.Yield() // returns: nothing to check but that it does
}
