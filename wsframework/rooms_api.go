package wsframework

import (
	"slices"

	"github.com/strandws/strand/internal/core"
	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/sdk/bufpool"
)

// conn implements the runtime's RoomHost.
var _ core.RoomHost = (*conn)(nil)

// RoomStats are the room counters of one Server (one node).
type RoomStats struct {
	Rooms     int    // rooms with members on this node
	Members   int64  // memberships on this node (a connection in two rooms counts twice)
	Published uint64 // messages published to rooms from this node
	Delivered uint64 // messages queued to members on this node
	Dropped   uint64 // deliveries refused: the member was closing, its queue was full, or the message was too big for it
	// Gaps counts gaps the adapter reported: messages published to a room
	// with members here that could not be delivered here (OnRoomGap).
	Gaps uint64
	// TooManyRooms counts joins refused with sdk.ErrTooManyRooms
	// (Config.MaxRoomsPerConn).
	TooManyRooms uint64
}

// Join implements the runtime's RoomHost.
func (c *conn) Join(room string) error { return c.srv.rooms.join(c, room) }

// Leave implements the runtime's RoomHost.
func (c *conn) Leave(room string) error { return c.srv.rooms.leave(c, room) }

// Broadcast implements the runtime's RoomHost.
func (c *conn) Broadcast(room string, typ core.MessageType, b *bufpool.Buffer, opts core.BroadcastOptions) error {
	return c.srv.rooms.publish(RoomMessage{Room: room, Type: sdk.MessageType(typ), Data: b, From: c.id, ExcludeFrom: opts.ExcludeSelf})
}

// Broadcast queues a copy of data as one message of type typ to every member
// of room, on every node of the adapter. It never blocks on a member (a
// member whose write queue is full is closed with 1008); broadcasts made one
// after another reach each member in that order. It may be called from any
// goroutine, such as an HTTP handler or a timer. It returns
// sdk.ErrMessageType for a type other than sdk.Text and sdk.Binary,
// sdk.ErrInvalidRoom for a bad room name, and sdk.ErrTooBig for data larger
// than Config.WriteQueueBytes (nothing is published).
func (s *Server) Broadcast(room string, typ sdk.MessageType, data []byte) error {
	b := s.cfg.Buffers.Get(len(data))
	copy(b.B, data)
	return s.rooms.publish(RoomMessage{Room: room, Type: typ, Data: b})
}

// BroadcastBuffer is Broadcast without the copy: it takes ownership of b
// (from Config.Buffers, holding one reference), which is released once every
// member's copy was written, or on error.
func (s *Server) BroadcastBuffer(room string, typ sdk.MessageType, b *bufpool.Buffer) error {
	return s.rooms.publish(RoomMessage{Room: room, Type: typ, Data: b})
}

// SendTo queues a copy of data as one message to the connection with ID id
// on this Server. It never blocks; it returns ErrNoConn when no such
// connection is open, sdk.ErrMessageType for a type other than sdk.Text and
// sdk.Binary, sdk.ErrTooBig for data larger than Config.WriteQueueBytes (the
// connection stays open), sdk.ErrClosed when it is closing and
// sdk.ErrSlowConsumer when its write queue was full (it is then closed with
// 1008).
func (s *Server) SendTo(id uint64, typ sdk.MessageType, data []byte) error {
	c, ok := s.conns.Load(id)
	if !ok {
		return ErrNoConn
	}
	if typ != sdk.Text && typ != sdk.Binary {
		return core.ErrMessageType
	}
	b := s.cfg.Buffers.Get(len(data))
	copy(b.B, data)
	return c.Write(core.MessageType(typ), b)
}

// JoinRoom makes the connection with ID id (on this Server) a member of
// room, as its handler's Conn.Join would (Config.MaxRoomsPerConn applies).
func (s *Server) JoinRoom(id uint64, room string) error {
	c, ok := s.conns.Load(id)
	if !ok {
		return ErrNoConn
	}
	return s.rooms.join(c, room)
}

// LeaveRoom ends the membership of the connection with ID id in room.
func (s *Server) LeaveRoom(id uint64, room string) error {
	c, ok := s.conns.Load(id)
	if !ok {
		return ErrNoConn
	}
	return s.rooms.leave(c, room)
}

// RoomMembers returns the IDs of room's members on this Server, in
// ascending order.
func (s *Server) RoomMembers(room string) []uint64 {
	r, ok := s.rooms.rooms.Load(room)
	if !ok {
		return nil
	}
	r.mu.Lock()
	ids := make([]uint64, len(r.members))
	for i, m := range r.members {
		ids[i] = m.id
	}
	r.mu.Unlock()
	slices.Sort(ids)
	return ids
}

// RoomSize returns the number of room's members on this Server.
func (s *Server) RoomSize(room string) int {
	r, ok := s.rooms.rooms.Load(room)
	if !ok {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.members)
}

// Rooms returns the names of the rooms with members on this Server, sorted.
func (s *Server) Rooms() []string {
	var names []string
	s.rooms.rooms.Range(func(name string, _ *room) bool {
		names = append(names, name)
		return true
	})
	slices.Sort(names)
	return names
}

// RoomStats returns the Server's room counters.
func (s *Server) RoomStats() RoomStats {
	h := s.rooms
	return RoomStats{
		Rooms:        h.rooms.Size(),
		Members:      h.members.Load(),
		Published:    h.published.Load(),
		Delivered:    h.delivered.Load(),
		Dropped:      h.dropped.Load(),
		TooManyRooms: h.tooManyRooms.Load(),
		Gaps:         h.gaps.Load(),
	}
}
