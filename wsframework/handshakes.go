package wsframework

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// Handshakes in progress on the accept path (accept.go): connections
// accepted whose request head has not been read whole yet. A client
// decides how long that takes (up to HandshakeTimeout), so they are what a
// client that opens connections and stalls mid-head piles up. They are
// listed in arrival order, so that at Config.MaxHandshakes the one that has
// been reading longest is closed to make room, and counted per peer IP for
// Config.MaxHandshakesPerIP. Listing, unlisting and evicting are O(1)
// under one mutex; the handshake's own goroutine (the one that reads its
// head) is the only one it has.

// handshake is one connection in its head read, an element of the
// handshakeList it was added to while listed.
type handshake struct {
	nc net.Conn
	a  *acceptor  // the acceptor that accepted it
	ip netip.Addr // the peer's IP; invalid when the peer has none (not TCP)

	prev, next *handshake // in arrival order; nil while not listed
}

// handshakeList is the Server's handshakes in progress, oldest first.
type handshakeList struct {
	max      int // overall cap; 0 means none
	maxPerIP int // per-IP cap; 0 means none

	stats *serverCounters // evictions and per-IP refusals are counted here

	mu    sync.Mutex
	root  handshake          // sentinel: root.next is the oldest, root.prev the newest
	perIP map[netip.Addr]int // listed handshakes by IP, while maxPerIP > 0
	n     atomic.Int64       // listed handshakes; written under mu
}

func newHandshakeList(max, maxPerIP int, stats *serverCounters) *handshakeList {
	l := &handshakeList{max: max, maxPerIP: maxPerIP, stats: stats}
	l.root.next, l.root.prev = &l.root, &l.root
	if maxPerIP > 0 {
		l.perIP = make(map[netip.Addr]int)
	}
	return l
}

// peerIP returns a connection's peer IP, or the invalid Addr when its
// address is not an IP one.
func peerIP(nc net.Conn) netip.Addr {
	switch a := nc.RemoteAddr().(type) {
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// add lists h as the newest handshake. When its IP is at MaxHandshakesPerIP
// it is not listed, and add returns false (it evicts nobody, even at
// MaxHandshakes). Otherwise, when the list is at MaxHandshakes, the oldest
// handshake is unlisted to make room and returned as evicted, for the
// caller to close (outside any lock).
func (l *handshakeList) add(h *handshake) (evicted *handshake, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.maxPerIP > 0 && h.ip.IsValid() {
		if l.perIP[h.ip] >= l.maxPerIP {
			l.stats.rejectedHandshakeIP.Add(1)
			return nil, false
		}
		l.perIP[h.ip]++
	}
	if l.max > 0 && l.n.Load() >= int64(l.max) {
		evicted = l.root.next
		l.unlink(evicted)
		l.stats.handshakesEvicted.Add(1)
	}
	last := l.root.prev
	h.prev, h.next = last, &l.root
	last.next = h
	l.root.prev = h
	l.n.Add(1)
	return evicted, true
}

// remove unlists h; false when it was no longer listed: evicted, or
// dropped by its acceptor's close. Whoever unlists a handshake owns
// closing it, so it is closed once the owner decides, and only then.
func (l *handshakeList) remove(h *handshake) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if h.next == nil {
		return false
	}
	l.unlink(h)
	return true
}

// drop unlists every handshake a accepted and returns them, for the caller
// to close. O(listed), once per acceptor.
func (l *handshakeList) drop(a *acceptor) []*handshake {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*handshake
	for h := l.root.next; h != &l.root; {
		next := h.next
		if h.a == a {
			l.unlink(h)
			out = append(out, h)
		}
		h = next
	}
	return out
}

// unlink takes h out of the list; l.mu is held.
func (l *handshakeList) unlink(h *handshake) {
	h.prev.next = h.next
	h.next.prev = h.prev
	h.prev, h.next = nil, nil
	l.n.Add(-1)
	if l.perIP != nil && h.ip.IsValid() {
		if n := l.perIP[h.ip] - 1; n > 0 {
			l.perIP[h.ip] = n
		} else {
			delete(l.perIP, h.ip)
		}
	}
}

// len returns how many handshakes are listed now.
func (l *handshakeList) len() int64 { return l.n.Load() }
