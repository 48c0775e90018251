package pluglink_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/strandws/strand/internal/pluglink"
	"github.com/strandws/strand/sdk/frame"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// unixPair returns two ends of a real Unix socket.
func unixPair(t *testing.T) (net.Conn, net.Conn) {
	dir, err := os.MkdirTemp("", "plk")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	ln, err := net.Listen("unix", filepath.Join(dir, "s"))
	require.NoError(t, err)
	defer ln.Close()
	a, err := net.Dial("unix", ln.Addr().String())
	require.NoError(t, err)
	b, err := ln.Accept()
	require.NoError(t, err)
	return a, b
}

// TestOrderAcrossFullSocket: frames sent from many goroutines while the
// peer does not read (the socket fills: non-blocking writes leave the rest
// to the writer goroutine) all arrive, each goroutine's in its order, once
// the peer reads; Flush and Close return.
func TestOrderAcrossFullSocket(t *testing.T) {
	a, b := unixPair(t)
	la, err := pluglink.New(a, pluglink.Config{})
	require.NoError(t, err)
	lb, err := pluglink.New(b, pluglink.Config{})
	require.NoError(t, err)
	defer lb.Close()

	const senders, each = 8, 500
	payload := bytes.Repeat([]byte("p"), 2000) // 8 MB in all: over any socket buffer
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				f := frame.Frame{Kind: frame.KindCall, SessionID: uint64(s), Sequence: uint64(i), Payload: payload}
				if err := la.SendWait(&f); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	time.Sleep(50 * time.Millisecond) // let the socket fill before reading
	next := make([]uint64, senders)
	for range senders * each {
		v, err := lb.Next()
		require.NoError(t, err)
		s := v.SessionID()
		require.Equal(t, next[s], v.Sequence(), "sender %d", s)
		require.Len(t, v.Payload(), len(payload))
		next[s]++
	}
	wg.Wait()
	la.Flush()
	require.NoError(t, la.Close())
	require.NoError(t, la.Close()) // idempotent
	_, err = lb.Next()
	require.Error(t, err)
	require.ErrorIs(t, la.Send(&frame.Frame{}), pluglink.ErrClosed)
}

// TestPeerMax: a frame over the peer's cap is refused before it is queued.
func TestPeerMax(t *testing.T) {
	a, b := unixPair(t)
	defer b.Close()
	l, err := pluglink.New(a, pluglink.Config{})
	require.NoError(t, err)
	defer l.Close()
	l.SetPeerMax(100)
	err = l.Send(&frame.Frame{Payload: make([]byte, 200)})
	require.True(t, errors.Is(err, frame.ErrTooLarge), fmt.Sprint(err))
	require.NoError(t, l.Send(&frame.Frame{Payload: make([]byte, 10)}))
}
