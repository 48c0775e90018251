package tests

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/internal/redistest"
)

// examples/echo -redis (the benchmark kit's cluster nodes): /broadcast's
// room is shared by two processes through Redis, each sender's messages
// reaching every member on both, in order.
func TestEchoClusterBroadcast(t *testing.T) {
	rs := redistest.Start(t)
	bin := buildProgram(t, "github.com/strandws/strand/examples/echo")
	listening := regexp.MustCompile(`echo: listening.* addr=(\S+)`)
	var addrs []string
	for range 2 {
		p := startChild(t, bin, "-addr", "127.0.0.1:0", "-reader", readerMode.String(), "-redis", rs.URL())
		addrs = append(addrs, p.waitLine(t, listening, 2*time.Minute)[1])
	}
	ctx, cancel := context.WithTimeout(context.Background(), chatTimeout)
	defer cancel()
	var ms []net.Conn
	for i := range 4 {
		nc, _, _, err := ws.Dial(ctx, "ws://"+addrs[i%2]+"/broadcast")
		require.NoError(t, err)
		t.Cleanup(func() { _ = nc.Close() })
		ms = append(ms, nc)
	}
	// Joins propagate to Redis at the first member of each node: wait until
	// a probe from node 0 reaches a member of node 1.
	require.Eventually(t, func() bool {
		if wsutil.WriteClientText(ms[0], []byte("probe")) != nil {
			return false
		}
		_ = ms[1].SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		for {
			b, err := wsutil.ReadServerText(ms[1])
			if err != nil {
				return false
			}
			if string(b) == "probe" {
				return true
			}
		}
	}, chatTimeout, 10*time.Millisecond)
	for _, m := range ms { // drain the probes
		for {
			_ = m.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if _, err := wsutil.ReadServerText(m); err != nil {
				break
			}
		}
	}
	const n = 50
	for i := range n {
		for s := range 2 {
			require.NoError(t, wsutil.WriteClientText(ms[s], fmt.Appendf(nil, "%d:%d", s, i)))
		}
	}
	for k, m := range ms {
		_ = m.SetReadDeadline(time.Now().Add(chatTimeout))
		next := [2]int{}
		for next[0] < n || next[1] < n {
			b, err := wsutil.ReadServerText(m)
			require.NoError(t, err, "member %d after %v", k, next)
			var s, i int
			_, err = fmt.Sscanf(string(b), "%d:%d", &s, &i)
			require.NoError(t, err, "member %d: %q", k, b)
			require.Equal(t, next[s], i, "member %d: sender %d's order", k, s)
			next[s]++
		}
	}
}
