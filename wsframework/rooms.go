package wsframework

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/puzpuzpuz/xsync/v3"

	"github.com/strandws/strand/internal/core"
	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/sdk/bufpool"
)

// Errors of the room and send API.
var (
	// ErrNoConn is returned by SendTo, JoinRoom and LeaveRoom for a
	// connection ID that is not open on this Server.
	ErrNoConn = errors.New("wsframework: no such connection")
	// ErrMessageType is returned for a message type other than sdk.Text
	// and sdk.Binary. It is sdk.ErrMessageType, which every send path
	// (Conn.Send, Broadcast, SendTo) returns: test for either.
	ErrMessageType = sdk.ErrMessageType
)

// subLockCount is the number of subscription locks, picked by a hash of the
// room name; a few rooms share one.
const subLockCount = 64

// hub is a node's rooms: who is a member of what on this Server, and the
// delivery of room messages to members. It implements AdapterHandler.
//
// Locks, in the order they may be taken (see also doc.go):
// connRooms.mu → hub.subLocks[i] → adapter → room.mu → conn.mu.
// subLocks serialise membership changes of a room with its Subscribe and
// Unsubscribe (which a clustered adapter does over the network); room.mu
// serialises deliveries to a room, which is what gives every local member
// one order; it is held while queuing to each member, which never blocks.
type hub struct {
	srv      *Server
	adapter  Adapter
	rooms    *xsync.MapOf[string, *room]
	subLocks [subLockCount]sync.Mutex

	closeOnce sync.Once
	closeErr  error

	members      atomic.Int64
	published    atomic.Uint64
	delivered    atomic.Uint64
	dropped      atomic.Uint64
	tooManyRooms atomic.Uint64

	hubCluster // gaps (cluster.go)
}

// room is one room's local members.
type room struct {
	mu      sync.Mutex
	members []*conn
	index   map[*conn]int // position in members
	pos     RoomPosition  // of the last message delivered (clustered adapters)
}

// connRooms is the set of rooms a connection is in; conn points to it once
// it joined one (or closed).
type connRooms struct {
	mu     sync.Mutex
	closed bool // the connection left every room for good (teardown)
	names  map[string]struct{}
}

func newHub(s *Server, a Adapter) (*hub, error) {
	if a == nil {
		a = NewMemoryBus().NewAdapter()
	}
	h := &hub{srv: s, adapter: a, rooms: xsync.NewMapOf[string, *room]()}
	if err := a.Bind(h); err != nil {
		return nil, fmt.Errorf("wsframework: room adapter: %w", err)
	}
	return h, nil
}

func (h *hub) subLock(name string) *sync.Mutex {
	// FNV-1a, inline so that it allocates nothing.
	x := uint32(2166136261)
	for i := 0; i < len(name); i++ {
		x ^= uint32(name[i])
		x *= 16777619
	}
	return &h.subLocks[x%subLockCount]
}

// roomSet returns c's set of rooms, made on first use.
func (c *conn) roomSet() *connRooms {
	if cr := c.rooms.Load(); cr != nil {
		return cr
	}
	c.rooms.CompareAndSwap(nil, new(connRooms))
	return c.rooms.Load()
}

// join makes c a member of name, unless c is in MaxRoomsPerConn rooms
// already.
func (h *hub) join(c *conn, name string) error { return h.joinAt(c, name, nil) }

// joinOpts are what JoinRoomAt and JoinRoomAfter add to a join.
type joinOpts struct {
	pos   RoomPosition // set to the room's position when c was added
	first func(RoomPosition) (sdk.MessageType, []byte, bool)
}

// joinAt is join with opts (nil for none).
func (h *hub) joinAt(c *conn, name string, opts *joinOpts) error {
	if !core.ValidRoomName(name) {
		return core.ErrInvalidRoom
	}
	cr := c.roomSet()
	cr.mu.Lock()
	defer cr.mu.Unlock()
	if cr.closed || c.isClosing() {
		return core.ErrClosed
	}
	if _, ok := cr.names[name]; ok {
		if opts != nil {
			return errors.New("wsframework: already a member of the room")
		}
		return nil
	}
	if len(cr.names) >= h.srv.cfg.MaxRoomsPerConn {
		h.tooManyRooms.Add(1)
		return core.ErrTooManyRooms
	}
	if err := h.add(c, name, opts); err != nil {
		return err
	}
	if cr.names == nil {
		cr.names = make(map[string]struct{}, 1)
	}
	cr.names[name] = struct{}{}
	return nil
}

// leave ends c's membership of name, if any.
func (h *hub) leave(c *conn, name string) error {
	if !core.ValidRoomName(name) {
		return core.ErrInvalidRoom
	}
	cr := c.rooms.Load()
	if cr == nil {
		return nil // never joined one
	}
	cr.mu.Lock()
	defer cr.mu.Unlock()
	if _, ok := cr.names[name]; !ok {
		return nil
	}
	delete(cr.names, name)
	h.remove(c, name)
	return nil
}

// leaveAll removes c from every room for good; conn.teardown calls it,
// after marking c closing. A connection that never joined has no set and
// gets none: a join that makes one now checks isClosing under it and
// fails, and one that passed that check before the teardown made its set
// before, so it is seen here.
func (h *hub) leaveAll(c *conn) {
	cr := c.rooms.Load()
	if cr == nil {
		return
	}
	cr.mu.Lock()
	cr.closed = true
	names := cr.names
	cr.names = nil
	cr.mu.Unlock()
	for name := range names {
		h.remove(c, name)
	}
}

func (h *hub) add(c *conn, name string, opts *joinOpts) error {
	l := h.subLock(name)
	l.Lock()
	defer l.Unlock()
	r, ok := h.rooms.Load(name)
	if !ok {
		// The room is in place before the adapter subscribes: what it
		// delivers from then on (a position, messages) is recorded, and a
		// member added below gets everything after r.pos.
		r = &room{index: make(map[*conn]int)}
		h.rooms.Store(name, r)
		if err := h.adapter.Subscribe(name); err != nil {
			h.rooms.Delete(name)
			return fmt.Errorf("wsframework: subscribe to room %q: %w", name, err)
		}
	}
	r.mu.Lock()
	if opts != nil {
		opts.pos = r.pos
		if opts.first != nil {
			typ, data, ok := opts.first(r.pos)
			if !ok {
				// The room stays subscribed, even without a member, for
				// the caller's next try.
				r.mu.Unlock()
				return ErrPositionMoved
			}
			b := h.srv.cfg.Buffers.Get(len(data))
			copy(b.B, data)
			_ = c.Write(core.MessageType(typ), b) // a closing conn is seen by its handlers
		}
	}
	r.index[c] = len(r.members)
	r.members = append(r.members, c)
	r.mu.Unlock()
	h.members.Add(1)
	return nil
}

func (h *hub) remove(c *conn, name string) {
	l := h.subLock(name)
	l.Lock()
	defer l.Unlock()
	r, ok := h.rooms.Load(name)
	if !ok {
		return
	}
	r.mu.Lock()
	i, ok := r.index[c]
	if !ok {
		r.mu.Unlock()
		return
	}
	last := len(r.members) - 1
	if i != last {
		moved := r.members[last]
		r.members[i] = moved
		r.index[moved] = i
	}
	r.members[last] = nil
	r.members = r.members[:last]
	delete(r.index, c)
	empty := last == 0
	r.mu.Unlock()
	h.members.Add(-1)
	if pa, ok := h.adapter.(PresenceAdapter); ok {
		if err := pa.RemovePresence(name, c.id); err != nil && !errors.Is(err, ErrAdapterClosed) {
			h.srv.cfg.Logger.Warn("strand: room presence removal failed", "room", name, "err", err)
		}
	}
	if !empty {
		return
	}
	// Deliveries that loaded r find no member; the next join makes a new room.
	h.rooms.Delete(name)
	if err := h.adapter.Unsubscribe(name); err != nil && !errors.Is(err, ErrAdapterClosed) {
		h.srv.cfg.Logger.Warn("strand: room unsubscribe failed", "room", name, "err", err)
	}
}

// publish hands msg to the adapter, which takes ownership of msg.Data.
func (h *hub) publish(msg RoomMessage) error {
	if msg.Type != sdk.Text && msg.Type != sdk.Binary {
		msg.Data.Release()
		return core.ErrMessageType
	}
	if !core.ValidRoomName(msg.Room) {
		msg.Data.Release()
		return core.ErrInvalidRoom
	}
	if int64(len(msg.Data.B)) > h.srv.cfg.WriteQueueBytes {
		// No member on this node could take it (conn.Write): refuse it
		// here, where the sender hears of it, rather than drop it at every
		// member.
		msg.Data.Release()
		h.srv.stats.sendsTooBig.Add(1)
		return core.ErrTooBig
	}
	h.published.Add(1)
	return h.adapter.Publish(msg)
}

var _ AdapterHandler = (*hub)(nil)

// Deliver implements AdapterHandler: msg.Data is queued, shared and not
// copied, on every local member's write queue (one reference each), under
// the room's lock so that every member sees the room's messages in one
// order. Queuing never blocks: a member whose queue is full is closed by its
// own slow-consumer policy, which releases what it had queued. A message
// larger than WriteQueueBytes (published by a node with a larger bound) is
// skipped by every member, which stays open, and counted in Dropped. A
// message with a Pos records it as the room's position (JoinRoomAt); one
// with nil Data only does that.
//
// Members that negotiated permessage-deflate without context takeover get
// one compressed copy, made once (by the first of them) and shared the
// same way; a member with context takeover gets msg.Data, which its writer
// compresses.
func (h *hub) Deliver(msg RoomMessage) { h.deliver(msg, true) }

// deliver is Deliver; setPos is false for a local notice (BroadcastLocal),
// which is not part of the room's sequence.
func (h *hub) deliver(msg RoomMessage, setPos bool) {
	r, ok := h.rooms.Load(msg.Room)
	if !ok {
		if msg.Data != nil {
			msg.Data.Release()
		}
		return
	}
	if msg.Data == nil {
		r.mu.Lock()
		r.pos = msg.Pos
		r.mu.Unlock()
		return
	}
	var sent, failed uint64
	typeOK := msg.Type == sdk.Text || msg.Type == sdk.Binary
	raw := len(msg.Data.B)
	var z *bufpool.Buffer // msg.Data compressed, for pmdShared members
	zMade := false
	r.mu.Lock()
	if setPos && msg.Pos != (RoomPosition{}) {
		r.pos = msg.Pos
	}
	for _, m := range r.members {
		if msg.ExcludeFrom && m.id == msg.From {
			continue
		}
		if !typeOK {
			failed++
			continue
		}
		b, op, deflate := msg.Data, byte(msg.Type), false
		if m.compresses(raw) {
			if m.pmd == pmdOwn {
				deflate = true
			} else {
				if !zMade {
					z, zMade = h.srv.deflater.compress(msg.Data.B), true // nil: not smaller
					if z != nil {
						h.srv.metrics.compressed(raw, len(z.B)) // once per broadcast
					}
				}
				if z != nil {
					b, op = z, op|rsv1
				}
			}
		}
		b.Retain()
		if m.enqueue(op, deflate, b, int64(raw)) != nil {
			failed++
		} else {
			sent++
		}
	}
	r.mu.Unlock()
	if z != nil {
		z.Release()
	}
	msg.Data.Release()
	if sent > 0 {
		h.delivered.Add(sent)
	}
	if failed > 0 {
		h.dropped.Add(failed)
	}
}

// close closes the adapter once.
func (h *hub) close() error {
	h.closeOnce.Do(func() { h.closeErr = h.adapter.Close() })
	return h.closeErr
}
