package wsframework

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/puzpuzpuz/xsync/v3"
)

// MemoryBus is an in-process room message bus: each adapter made by
// NewAdapter is one node, and a message published by any of them reaches the
// nodes subscribed to its room. A Server whose Config.Adapter is nil uses a
// bus of its own with a single node; a bus shared by several Servers in one
// process lets them serve one set of rooms.
//
// Publishing to a room is serialised on the bus, so every member on every
// node sees one order per room, and it runs on the publisher's goroutine:
// Publish returns after every node queued the message to its members.
// A MemoryBus is safe for concurrent use. Its zero value is not usable.
type MemoryBus struct {
	mu    sync.Mutex // serialises subscription changes
	rooms *xsync.MapOf[string, *busRoom]
}

// busRoom is one room's subscribers on the bus.
type busRoom struct {
	mu    sync.Mutex // held while a message is handed to every node: one order
	nodes []*MemoryAdapter
}

// NewMemoryBus returns an empty bus.
func NewMemoryBus() *MemoryBus {
	return &MemoryBus{rooms: xsync.NewMapOf[string, *busRoom]()}
}

// NewAdapter returns a new node on the bus, to be given to one Server as
// Config.Adapter.
func (b *MemoryBus) NewAdapter() *MemoryAdapter {
	return &MemoryAdapter{bus: b, subs: make(map[string]struct{})}
}

// MemoryAdapter is one node of a MemoryBus. It implements Adapter; Publish
// delivers synchronously and allocates nothing.
type MemoryAdapter struct {
	bus    *MemoryBus
	closed atomic.Bool

	mu   sync.Mutex // guards h and subs; taken before bus.mu
	h    AdapterHandler
	subs map[string]struct{}
}

var _ Adapter = (*MemoryAdapter)(nil)

// Bind implements Adapter.
func (a *MemoryAdapter) Bind(h AdapterHandler) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.closed.Load():
		return ErrAdapterClosed
	case a.h != nil:
		return errors.New("wsframework: MemoryAdapter already bound to a server")
	case h == nil:
		return errors.New("wsframework: MemoryAdapter.Bind: nil handler")
	}
	a.h = h
	return nil
}

// Subscribe implements Adapter.
func (a *MemoryAdapter) Subscribe(room string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed.Load() || a.h == nil {
		return ErrAdapterClosed
	}
	if _, ok := a.subs[room]; ok {
		return nil
	}
	a.subs[room] = struct{}{}
	b := a.bus
	b.mu.Lock()
	r, _ := b.rooms.LoadOrCompute(room, func() *busRoom { return new(busRoom) })
	r.mu.Lock()
	r.nodes = append(r.nodes, a)
	r.mu.Unlock()
	b.mu.Unlock()
	return nil
}

// Unsubscribe implements Adapter.
func (a *MemoryAdapter) Unsubscribe(room string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed.Load() {
		return ErrAdapterClosed
	}
	a.unsubscribeLocked(room)
	return nil
}

func (a *MemoryAdapter) unsubscribeLocked(room string) {
	if _, ok := a.subs[room]; !ok {
		return
	}
	delete(a.subs, room)
	b := a.bus
	b.mu.Lock()
	defer b.mu.Unlock()
	r, ok := b.rooms.Load(room)
	if !ok {
		return
	}
	r.mu.Lock()
	for i, n := range r.nodes {
		if n == a {
			last := len(r.nodes) - 1
			r.nodes[i] = r.nodes[last]
			r.nodes[last] = nil
			r.nodes = r.nodes[:last]
			break
		}
	}
	if len(r.nodes) == 0 {
		// A Publish that loaded r already finds no node; the next
		// Subscribe makes a new busRoom.
		b.rooms.Delete(room)
	}
	r.mu.Unlock()
}

// Publish implements Adapter: it hands msg to every subscribed node in turn,
// holding the room's bus lock so that all nodes see one order. Nodes other
// than the publisher get msg with ExcludeFrom cleared.
func (a *MemoryAdapter) Publish(msg RoomMessage) error {
	if a.closed.Load() {
		msg.Data.Release()
		return ErrAdapterClosed
	}
	r, ok := a.bus.rooms.Load(msg.Room)
	if !ok {
		msg.Data.Release()
		return nil
	}
	r.mu.Lock()
	last := len(r.nodes) - 1
	if last < 0 {
		r.mu.Unlock()
		msg.Data.Release()
		return nil
	}
	for i, n := range r.nodes {
		m := msg
		if n != a {
			m.ExcludeFrom = false
		}
		if i < last {
			// One reference per node; the last node gets ours. Retain
			// before handing on: a node may release its reference at once.
			msg.Data.Retain()
		}
		n.h.Deliver(m)
	}
	r.mu.Unlock()
	return nil
}

// Close implements Adapter: the node leaves every room on the bus.
func (a *MemoryAdapter) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed.Swap(true) {
		return nil
	}
	for room := range a.subs {
		a.unsubscribeLocked(room)
	}
	a.h = nil
	return nil
}

// Subscriptions returns the number of rooms this node is subscribed to.
func (a *MemoryAdapter) Subscriptions() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.subs)
}
