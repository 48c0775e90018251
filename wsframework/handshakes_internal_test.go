package wsframework

import (
	"net"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

// addrConn is a net.Conn with only a remote address.
type addrConn struct {
	net.Conn
	addr net.Addr
}

func (c addrConn) RemoteAddr() net.Addr { return c.addr }

func tcpHandshake(a *acceptor, ip string, port int) *handshake {
	nc := addrConn{addr: &net.TCPAddr{IP: net.ParseIP(ip), Port: port}}
	return &handshake{nc: nc, a: a, ip: peerIP(nc)}
}

// listed returns the listed handshakes, oldest first, checking the links
// both ways and the count.
func listed(t *testing.T, l *handshakeList) []*handshake {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*handshake
	for h := l.root.next; h != &l.root; h = h.next {
		require.Same(t, h, h.next.prev, "broken link")
		out = append(out, h)
	}
	require.EqualValues(t, len(out), l.n.Load())
	return out
}

// TestHandshakeListEvictsOldest: at the cap each new handshake evicts the
// one listed longest; a handshake unlisted first (done, or evicted) is
// not unlisted again.
func TestHandshakeListEvictsOldest(t *testing.T) {
	var st serverCounters
	l := newHandshakeList(3, 0, &st)
	a := &acceptor{}
	hs := make([]*handshake, 6)
	for i := range hs {
		hs[i] = tcpHandshake(a, "127.0.0.1", 1000+i)
	}
	for _, h := range hs[:3] {
		ev, ok := l.add(h)
		require.True(t, ok)
		require.Nil(t, ev, "evicted below the cap")
	}
	require.Equal(t, hs[:3], listed(t, l))

	ev, ok := l.add(hs[3])
	require.True(t, ok)
	require.Same(t, hs[0], ev, "not the oldest evicted")
	require.False(t, l.remove(hs[0]), "an evicted handshake unlisted again")
	require.Equal(t, hs[1:4], listed(t, l))

	// One finishing makes room: the next one evicts nobody.
	require.True(t, l.remove(hs[2]))
	require.False(t, l.remove(hs[2]))
	ev, ok = l.add(hs[4])
	require.True(t, ok)
	require.Nil(t, ev)
	require.Equal(t, []*handshake{hs[1], hs[3], hs[4]}, listed(t, l))

	ev, _ = l.add(hs[5])
	require.Same(t, hs[1], ev)
	require.Equal(t, []*handshake{hs[3], hs[4], hs[5]}, listed(t, l))
	require.EqualValues(t, 2, st.handshakesEvicted.Load())
	require.EqualValues(t, 3, l.len())
}

// TestHandshakeListPerIP: a handshake beyond the per-IP cap is refused
// without evicting anything, other IPs are not affected, and every way out
// of the list (done, evicted, dropped) gives its IP's slot back.
func TestHandshakeListPerIP(t *testing.T) {
	var st serverCounters
	l := newHandshakeList(4, 2, &st)
	a, b := &acceptor{}, &acceptor{}
	h1 := tcpHandshake(a, "10.0.0.1", 1)
	h2 := tcpHandshake(b, "::ffff:10.0.0.1", 2) // the same IP, mapped
	for _, h := range []*handshake{h1, h2} {
		_, ok := l.add(h)
		require.True(t, ok)
	}
	_, ok := l.add(tcpHandshake(a, "10.0.0.1", 3))
	require.False(t, ok, "over the per-IP cap")
	require.EqualValues(t, 1, st.rejectedHandshakeIP.Load())
	require.Equal(t, []*handshake{h1, h2}, listed(t, l))

	h3 := tcpHandshake(a, "10.0.0.2", 4)
	h4 := tcpHandshake(a, "10.0.0.2", 5)
	for _, h := range []*handshake{h3, h4} {
		ev, ok := l.add(h)
		require.True(t, ok)
		require.Nil(t, ev)
	}
	// At the overall cap, an IP at its own cap is still refused (nothing
	// is evicted for it)...
	_, ok = l.add(tcpHandshake(a, "10.0.0.1", 6))
	require.False(t, ok)
	require.Zero(t, st.handshakesEvicted.Load())
	// ...another makes the oldest (h1) give room, and its IP's slot with it.
	h5 := tcpHandshake(a, "10.0.0.3", 7)
	ev, ok := l.add(h5)
	require.True(t, ok)
	require.Same(t, h1, ev)
	require.Equal(t, map[netip.Addr]int{
		netip.MustParseAddr("10.0.0.1"): 1, netip.MustParseAddr("10.0.0.2"): 2, netip.MustParseAddr("10.0.0.3"): 1,
	}, l.perIP)

	// Dropping an acceptor's handshakes frees their slots; b's stays.
	require.ElementsMatch(t, []*handshake{h3, h4, h5}, l.drop(a))
	require.Equal(t, []*handshake{h2}, listed(t, l))
	require.Equal(t, map[netip.Addr]int{netip.MustParseAddr("10.0.0.1"): 1}, l.perIP)
	require.EqualValues(t, 2, st.rejectedHandshakeIP.Load())
	require.True(t, l.remove(h2))
	require.Empty(t, l.perIP)
	require.Zero(t, l.len())

	// A peer without an IP is not counted per IP.
	nc := addrConn{addr: &net.UnixAddr{Name: "@x", Net: "unix"}}
	for range 3 {
		_, ok := l.add(&handshake{nc: nc, a: a, ip: peerIP(nc)})
		require.True(t, ok)
	}
	require.Empty(t, l.perIP)
}

// TestHandshakeListNoCap: zero caps list everything.
func TestHandshakeListNoCap(t *testing.T) {
	var st serverCounters
	l := newHandshakeList(0, 0, &st)
	a := &acceptor{}
	for i := range 100 {
		ev, ok := l.add(tcpHandshake(a, "127.0.0.1", i))
		require.True(t, ok)
		require.Nil(t, ev)
	}
	require.Len(t, listed(t, l), 100)
	require.Len(t, l.drop(a), 100)
	require.Zero(t, l.len())
}

// TestHandshakeConfig: the defaults and the meaning of negative values.
func TestHandshakeConfig(t *testing.T) {
	c, err := Config{}.withDefaults()
	require.NoError(t, err)
	require.Equal(t, DefaultMaxHeaderBytes, c.MaxHeaderBytes)
	require.Zero(t, c.MaxHandshakesPerIP)
	want := DefaultMaxHandshakes
	if limit, ok := openFileLimit(); ok {
		want = int(min(max(limit/4, 1024), 1<<20))
	}
	require.Equal(t, want, c.MaxHandshakes)
	require.GreaterOrEqual(t, c.MaxHandshakes, 1024)

	c, err = Config{MaxHandshakes: -1}.withDefaults()
	require.NoError(t, err)
	require.Zero(t, c.MaxHandshakes, "negative is no cap")
	c, err = Config{MaxHandshakes: 7, MaxHandshakesPerIP: 2, MaxHeaderBytes: 100}.withDefaults()
	require.NoError(t, err)
	require.Equal(t, [3]int{7, 2, 100}, [3]int{c.MaxHandshakes, c.MaxHandshakesPerIP, c.MaxHeaderBytes})

	for _, bad := range []Config{{MaxHandshakesPerIP: -1}, {MaxHeaderBytes: -1}} {
		_, err := New(bad)
		require.Error(t, err, "%+v", bad)
	}
}
