package wsframework

import (
	"errors"

	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/sdk/bufpool"
)

// ErrAdapterClosed is returned by an Adapter used after Close.
var ErrAdapterClosed = errors.New("wsframework: room adapter closed")

// RoomMessage is one message published to a room.
type RoomMessage struct {
	// Room is the room's name.
	Room string
	// Type is the WebSocket message type.
	Type sdk.MessageType
	// Data holds the encoded payload. Whoever is handed a RoomMessage owns
	// one reference to Data and releases it exactly once (or passes it on).
	Data *bufpool.Buffer
	// From identifies the sender on the publishing node: a connection ID,
	// or 0 for the Server itself. An adapter that orders messages per
	// sender keys its ordering on (node, From).
	From uint64
	// ExcludeFrom asks that connection From not receive the message. It
	// only means something on the publishing node: an adapter that delivers
	// the message on another node clears it.
	ExcludeFrom bool
	// Pos is the message's place in the room's sequence, for an adapter
	// that numbers messages (zero otherwise). Delivered with nil Data, a
	// RoomMessage only tells the handler the room's position (the one a
	// subscription starts at).
	Pos RoomPosition
}

// AdapterHandler is a node's side of an Adapter: the Server implements it and
// hands it to Adapter.Bind.
type AdapterHandler interface {
	// Deliver fans msg out to this node's members of msg.Room and takes
	// ownership of msg.Data. It never blocks on a connection (each member's
	// write queue applies its own policy) and is safe for concurrent use;
	// messages of one room delivered one after another (not concurrently)
	// reach every local member in that order. msg.Data may be nil (a
	// position only; see RoomMessage.Pos). The Server's handler also
	// implements GapHandler.
	Deliver(msg RoomMessage)
}

// Adapter carries room messages between the nodes that serve one set of
// rooms. The in-memory implementation (MemoryBus) connects the Servers of one
// process; an implementation over a message bus would connect several.
//
// Subscriptions are per room: the Server subscribes its node to a room when
// the room gets its first local member and unsubscribes it when the last
// one leaves, so a node hears only the rooms it has members in. For one
// room, the Server never calls Subscribe and Unsubscribe concurrently, and
// they alternate (Subscribe first).
//
// Order: messages that one sender publishes one after another (each Publish
// returns before the next starts) must be delivered in publish order on
// every node; an adapter that publishes over several connections keys them
// by (node, From) to keep that. Messages of one room that an adapter
// delivers to one node are delivered one at a time, never concurrently, so
// every member on that node sees them in one order.
//
// Every method is safe for concurrent use. Subscribe, Unsubscribe and
// Publish may wait for the network (the Redis adapter's Publish waits for
// Redis's answer, so that it can return its error). The Server calls
// Publish on the goroutine of the handler that broadcasts, and Subscribe
// and Unsubscribe on the one that joins or leaves (or on a closing
// connection's teardown): while a handler's call waits, its dispatcher
// worker waits too (see Config.Dispatcher).
type Adapter interface {
	// Bind attaches the node's handler. The Server calls it once, in New,
	// before any other method; it returns an error if the adapter is
	// already bound.
	Bind(h AdapterHandler) error
	// Subscribe starts delivering room's messages, published by any node,
	// to the bound handler.
	Subscribe(room string) error
	// Unsubscribe stops delivering room's messages to this node. Messages
	// already in flight may still be delivered.
	Unsubscribe(room string) error
	// Publish sends msg to every node subscribed to msg.Room, this one
	// included, and takes ownership of msg.Data (released at once on
	// error).
	Publish(msg RoomMessage) error
	// Close unbinds the adapter and releases what it holds; Publish,
	// Subscribe and Unsubscribe return ErrAdapterClosed afterwards. The
	// Server that the adapter was given to calls it at the end of
	// Shutdown. Idempotent.
	Close() error
}
