package wsframework

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strandws/strand/internal/core"
	"github.com/strandws/strand/sdk"
)

// What a clustered Adapter adds to the room API: positions in a room's
// message sequence, gaps, history and presence. The in-memory adapter has
// none of them; an adapter over a shared store (redisadapter) implements the
// optional interfaces below, and the Server's methods that need one return
// ErrNotSupported without it.

// ErrNotSupported is returned by RoomHistory, SetPresence and RoomPresence
// when the Server's adapter does not keep history or presence.
var ErrNotSupported = errors.New("wsframework: not supported by the room adapter")

// ErrPositionMoved is returned by JoinRoomAfter when its function refused
// the room's position: the connection did not join.
var ErrPositionMoved = errors.New("wsframework: the room's position moved")

// RoomPosition is a place in a room's message sequence: the offset of a
// message (1, 2, ...) within an epoch. The epoch names one life of the
// room's state in the shared store; it changes when the store lost that
// state (offsets then start over). The zero RoomPosition means "unknown".
type RoomPosition struct {
	Epoch  string
	Offset uint64
}

// RoomGap reports messages of a room that this node could not deliver to
// its members: they were published but are no longer in the room's history.
type RoomGap struct {
	Room string
	// After is the position of the last message delivered before the gap.
	After RoomPosition
	// Next is the position of the first message delivered after the gap
	// (its Offset is 0 when nothing is known to follow yet).
	Next RoomPosition
	// EpochChanged is true when the store lost the room's state: how many
	// messages were lost is unknown (possibly none).
	EpochChanged bool
}

// HistoryMessage is one message of a room's history.
type HistoryMessage struct {
	Pos  RoomPosition
	Type sdk.MessageType
	Data []byte
}

// PresenceMember is one member of a room on some node of the cluster.
type PresenceMember struct {
	// Node identifies the member's node; Conn is its connection ID there.
	Node string
	Conn uint64
	// Payload is what the member's plugin set (SetPresence).
	Payload []byte
}

// HistoryAdapter is an Adapter that keeps each room's recent messages.
type HistoryAdapter interface {
	Adapter
	// History returns up to n of room's messages at or before upTo (the
	// zero upTo: the newest), oldest first. If upTo.Epoch is not the
	// room's current epoch, the messages before upTo are gone: it returns
	// none, and no error.
	History(ctx context.Context, room string, upTo RoomPosition, n int) ([]HistoryMessage, error)
}

// PresenceAdapter is an Adapter that keeps each room's members across
// nodes. The Server calls RemovePresence when a connection leaves a room
// (or closes); entries of a node that stopped are dropped by the adapter.
type PresenceAdapter interface {
	Adapter
	SetPresence(room string, conn uint64, payload []byte) error
	RemovePresence(room string, conn uint64) error
	Presence(ctx context.Context, room string) ([]PresenceMember, error)
}

// GapHandler is implemented by the AdapterHandler the Server binds (its
// rooms): an adapter that detects gaps reports them here, from the
// goroutine that delivers the room's messages, between the last message
// before the gap and the first after it.
type GapHandler interface {
	Gap(g RoomGap)
}

// gapHook is the function set by OnRoomGap.
type gapHook = func(RoomGap)

// OnRoomGap sets fn to be called when the adapter reports a gap in a room
// this node has members in (see RoomGap): messages that were published but
// cannot be delivered here any more. fn runs on the goroutine that delivers
// the room's messages, after the last message before the gap and before the
// first one after it; a message it sends with BroadcastLocal lands between
// the two for every local member. fn must not block. A nil fn removes it.
// RoomStats.Gaps counts gaps whether or not fn is set.
func (s *Server) OnRoomGap(fn func(RoomGap)) {
	if fn == nil {
		s.rooms.gapFn.Store(nil)
		return
	}
	s.rooms.gapFn.Store(&fn)
}

// Gap implements GapHandler.
func (h *hub) Gap(g RoomGap) {
	h.gaps.Add(1)
	if fn := h.gapFn.Load(); fn != nil {
		(*fn)(g)
	}
}

var _ GapHandler = (*hub)(nil)

// BroadcastLocal queues a copy of data to room's members on this Server
// only, as a delivery from the adapter would: in order with the room's
// other deliveries. It is meant for notices about the room that concern
// this node's members, such as a gap (OnRoomGap).
func (s *Server) BroadcastLocal(room string, typ sdk.MessageType, data []byte) error {
	if typ != sdk.Text && typ != sdk.Binary {
		return core.ErrMessageType
	}
	if !core.ValidRoomName(room) {
		return core.ErrInvalidRoom
	}
	b := s.cfg.Buffers.Get(len(data))
	copy(b.B, data)
	s.rooms.deliver(RoomMessage{Room: room, Type: typ, Data: b}, false)
	return nil
}

// JoinRoomAt is JoinRoom that also returns the room's position at the
// moment the connection joined: it gets every message after that position
// and none at or before it. With RoomHistory(room, pos, n) this gives a
// joiner the room's recent messages with nothing missed or repeated between
// them and the live ones. The position is zero when the adapter does not
// number messages (MemoryBus) or nothing was delivered yet.
func (s *Server) JoinRoomAt(id uint64, room string) (RoomPosition, error) {
	s.rooms.sweepRefused(s.clock.Now())
	c, ok := s.conns.Load(id)
	if !ok {
		return RoomPosition{}, ErrNoConn
	}
	var o joinOpts
	err := s.rooms.joinAt(c, room, &o)
	return o.pos, err
}

// JoinRoomAfter is JoinRoomAt that also queues a first message to the
// connection, atomically with the join: first is called with the room's
// position, under the lock that orders the room's deliveries, and what it
// returns is queued before any message after that position. This is how a
// joiner gets a room's history and then its live messages, in order, with
// nothing missed or repeated: read the newest history (RoomHistory with
// the zero position; the store is ahead of what this node delivered), then
// JoinRoomAfter with a first that encodes the messages at or before the
// position it is given. If that position is past what was read (or in
// another epoch), first returns ok = false: the connection does not join
// and JoinRoomAfter returns the position with ErrPositionMoved, to read
// again and retry (the room stays subscribed for it, even with no member).
// first must not block: it runs under the room's lock. A room kept
// subscribed this way that still has no member refusedGrace (10 s) later is
// unsubscribed by a later JoinRoomAt or JoinRoomAfter on the Server, so a
// caller that gives up leaves nothing behind for long.
func (s *Server) JoinRoomAfter(id uint64, room string, first func(pos RoomPosition) (typ sdk.MessageType, data []byte, ok bool)) (RoomPosition, error) {
	s.rooms.sweepRefused(s.clock.Now())
	c, ok := s.conns.Load(id)
	if !ok {
		return RoomPosition{}, ErrNoConn
	}
	o := joinOpts{first: first}
	err := s.rooms.joinAt(c, room, &o)
	if errors.Is(err, ErrPositionMoved) {
		s.rooms.markRefused(room, s.clock.Now())
	}
	return o.pos, err
}

// refusedGrace is how long a room refused by JoinRoomAfter's first stays
// subscribed without a member, for the caller's next try.
const refusedGrace = 10 * time.Second

// markRefused notes that room was kept subscribed, maybe with no member,
// after a refused JoinRoomAfter, at now (a reading of the Server's clock).
func (h *hub) markRefused(room string, now int64) {
	h.refusedMu.Lock()
	defer h.refusedMu.Unlock()
	if h.refused == nil {
		h.refused = make(map[string]int64)
	}
	h.refused[room] = now
}

// sweepRefused unsubscribes the rooms refused more than refusedGrace
// before now (a reading of the Server's clock) that still have no member.
func (h *hub) sweepRefused(now int64) {
	h.refusedMu.Lock()
	if len(h.refused) == 0 {
		h.refusedMu.Unlock()
		return
	}
	var old []string
	for name, at := range h.refused {
		if now-at >= int64(refusedGrace) {
			old = append(old, name)
			delete(h.refused, name)
		}
	}
	h.refusedMu.Unlock()
	for _, name := range old {
		h.dropIfEmpty(name)
	}
}

// dropIfEmpty unsubscribes room if it has no member, as the last member's
// leave would have.
func (h *hub) dropIfEmpty(name string) {
	l := h.subLock(name)
	l.Lock()
	defer l.Unlock()
	r, ok := h.rooms.Load(name)
	if !ok {
		return
	}
	r.mu.Lock()
	empty := len(r.members) == 0
	r.mu.Unlock()
	if !empty {
		return
	}
	h.rooms.Delete(name)
	if err := h.adapter.Unsubscribe(name); err != nil && !errors.Is(err, ErrAdapterClosed) {
		h.srv.cfg.Logger.Warn("strand: room unsubscribe failed", "room", name, "err", err)
	}
}

// RoomPosition returns the position of the last message of room delivered
// on this Server (zero if it has no members here or its adapter does not
// number messages).
func (s *Server) RoomPosition(room string) RoomPosition {
	r, ok := s.rooms.rooms.Load(room)
	if !ok {
		return RoomPosition{}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pos
}

// RoomHistory returns up to n of room's messages at or before upTo (the
// zero upTo: the newest), oldest first, from the adapter's history
// (ErrNotSupported if it has none).
func (s *Server) RoomHistory(ctx context.Context, room string, upTo RoomPosition, n int) ([]HistoryMessage, error) {
	ha, ok := s.rooms.adapter.(HistoryAdapter)
	if !ok {
		return nil, ErrNotSupported
	}
	return ha.History(ctx, room, upTo, n)
}

// SetPresence sets the presence payload of the connection with ID id in
// room, which it must be a member of; other nodes see it in RoomPresence.
// The entry goes when the connection leaves the room or closes.
func (s *Server) SetPresence(id uint64, room string, payload []byte) error {
	pa, ok := s.rooms.adapter.(PresenceAdapter)
	if !ok {
		return ErrNotSupported
	}
	c, ok := s.conns.Load(id)
	if !ok {
		return ErrNoConn
	}
	cr := c.rooms.Load()
	if cr == nil {
		return ErrNoConn
	}
	cr.mu.Lock()
	defer cr.mu.Unlock() // a leave waits, so it removes what we set
	if _, in := cr.names[room]; !in {
		return ErrNoConn
	}
	return pa.SetPresence(room, id, payload)
}

// RoomPresence returns room's members on every node, with their payloads,
// ordered by node and connection ID.
func (s *Server) RoomPresence(ctx context.Context, room string) ([]PresenceMember, error) {
	pa, ok := s.rooms.adapter.(PresenceAdapter)
	if !ok {
		return nil, ErrNotSupported
	}
	ms, err := pa.Presence(ctx, room)
	slices.SortFunc(ms, func(a, b PresenceMember) int {
		if a.Node != b.Node {
			if a.Node < b.Node {
				return -1
			}
			return 1
		}
		switch {
		case a.Conn < b.Conn:
			return -1
		case a.Conn > b.Conn:
			return 1
		}
		return 0
	})
	return ms, err
}

// Adapter returns the Server's room adapter (Config.Adapter, or the
// in-memory one it made).
func (s *Server) Adapter() Adapter { return s.rooms.adapter }

// gapCounter and hook live in hub (rooms.go).
type hubCluster struct {
	gaps  atomic.Uint64
	gapFn atomic.Pointer[gapHook]

	refusedMu sync.Mutex
	refused   map[string]int64 // rooms kept after a refused JoinRoomAfter, and when (clock readings)
}
