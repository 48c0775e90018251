package core

import (
	"errors"

	"github.com/strandws/strand/sdk/bufpool"
)

// MaxRoomNameBytes is the longest room name, in bytes.
const MaxRoomNameBytes = 256

// DefaultMaxRoomsPerConn is the default cap on the rooms one connection is
// a member of at once (wsframework's Config.MaxRoomsPerConn, strandtest's
// Options.MaxRoomsPerConn).
const DefaultMaxRoomsPerConn = 64

// Errors of the room methods.
var (
	// ErrRoomsUnsupported is returned by Join, Leave and Broadcast when the
	// connection's host does not implement RoomHost.
	ErrRoomsUnsupported = errors.New("sdk: rooms not supported by this host")
	// ErrInvalidRoom is returned for an empty room name or one longer than
	// MaxRoomNameBytes.
	ErrInvalidRoom = errors.New("sdk: invalid room name")
	// ErrTooManyRooms is returned by Join when the connection is already a
	// member of as many rooms as the host allows (DefaultMaxRoomsPerConn
	// unless configured). The connection stays open and in its rooms.
	ErrTooManyRooms = errors.New("sdk: too many rooms for one connection")
)

// BroadcastOptions are per-call settings of a broadcast. The zero value
// delivers to every member, the sender included.
type BroadcastOptions struct {
	// ExcludeSelf leaves out the sending connection, if it is a member.
	ExcludeSelf bool
}

// RoomHost is the optional part of a ConnHost that supports rooms. A host
// implements it on the same value as ConnHost; Conn's room methods return
// ErrRoomsUnsupported when it does not.
//
// All methods are safe for concurrent use and never block on the network
// to a peer (a clustered host may wait for its message bus in Join and
// Leave).
type RoomHost interface {
	// Join makes the connection a member of room. Joining a room twice is
	// not an error and counts once. It returns ErrTooManyRooms when the
	// connection is in as many rooms as the host allows, and ErrClosed once
	// it is closing.
	Join(room string) error
	// Leave ends the connection's membership of room; leaving a room it is
	// not in is not an error. Membership ends by itself when the connection
	// closes.
	Leave(room string) error
	// Broadcast queues b, one message of type typ, to every member of room
	// (on every node of a cluster) and takes ownership of b: the host
	// releases it when every member's copy has been written or dropped, or
	// at once on error. Messages broadcast one after the other by one
	// caller reach every member in that order, and the members of room on
	// one node all see the room's messages in one order. The sender need not
	// be a member. It never blocks on a slow member: each member's write
	// queue applies its own overflow policy. It returns ErrMessageType for a
	// type other than Text and Binary, and ErrTooBig (nothing delivered)
	// for a message larger than a member's write queue holds on its own; a
	// member that cannot take one for that reason is skipped, not closed.
	Broadcast(room string, typ MessageType, b *bufpool.Buffer, opts BroadcastOptions) error
}

// ValidRoomName reports whether room may be joined: 1 to MaxRoomNameBytes
// bytes.
func ValidRoomName(room string) bool {
	return room != "" && len(room) <= MaxRoomNameBytes
}

func (c *Conn) roomHost() (RoomHost, error) {
	rh, ok := c.host.(RoomHost)
	if !ok {
		return nil, ErrRoomsUnsupported
	}
	return rh, nil
}

// Join makes c a member of room, so that broadcasts to room reach it, until
// Leave or until c closes. Idempotent: joining a room c is in is not an
// error and does not count twice. It returns ErrRoomsUnsupported when the
// host has no rooms, ErrInvalidRoom for a bad name, ErrTooManyRooms when c
// is already in as many rooms as the host allows (DefaultMaxRoomsPerConn
// unless configured; Leave one first) and ErrClosed once c is closing.
func (c *Conn) Join(room string) error {
	if !ValidRoomName(room) {
		return ErrInvalidRoom
	}
	rh, err := c.roomHost()
	if err != nil {
		return err
	}
	return rh.Join(room)
}

// Leave ends c's membership of room. Leaving a room c is not in, or after c
// closed, is not an error.
func (c *Conn) Leave(room string) error {
	if !ValidRoomName(room) {
		return ErrInvalidRoom
	}
	rh, err := c.roomHost()
	if err != nil {
		return err
	}
	return rh.Leave(room)
}

// Broadcast queues a copy of data as one message of type typ to every member
// of room, c included unless opts.ExcludeSelf. It never blocks on a member:
// a member whose write queue is full is closed by its own slow-consumer
// policy. Messages c broadcasts one after another reach each member in that
// order. c need not be a member, and may broadcast from OnClose. The bytes
// are encoded once and shared by every receiver. It returns ErrMessageType
// for a type other than Text and Binary, ErrInvalidRoom for a bad name and
// ErrTooBig for a message larger than a write queue holds (see Send):
// nothing is then delivered.
func (c *Conn) Broadcast(room string, typ MessageType, data []byte, opts BroadcastOptions) error {
	if !typ.valid() {
		return ErrMessageType
	}
	if !ValidRoomName(room) {
		return ErrInvalidRoom
	}
	rh, err := c.roomHost()
	if err != nil {
		return err
	}
	b := c.rt.bufs.Get(len(data))
	copy(b.B, data)
	return rh.Broadcast(room, typ, b, opts)
}

// BroadcastBuffer is Broadcast without the copy: it takes ownership of b,
// which must come from Buffers and hold exactly one reference. b is released
// once every member's copy was written, or on error. Do not touch b
// afterwards.
func (c *Conn) BroadcastBuffer(room string, typ MessageType, b *bufpool.Buffer, opts BroadcastOptions) error {
	if !typ.valid() {
		b.Release()
		return ErrMessageType
	}
	if !ValidRoomName(room) {
		b.Release()
		return ErrInvalidRoom
	}
	rh, err := c.roomHost()
	if err != nil {
		b.Release()
		return err
	}
	return rh.Broadcast(room, typ, b, opts)
}
