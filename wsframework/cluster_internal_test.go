package wsframework

import (
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/sdk"
)

// subCounter counts an adapter's unsubscriptions.
type subCounter struct {
	Adapter
	unsubs atomic.Int64
}

func (a *subCounter) Unsubscribe(room string) error {
	a.unsubs.Add(1)
	return a.Adapter.Unsubscribe(room)
}

// A room kept subscribed for a refused JoinRoomAfter is unsubscribed by a
// later join once refusedGrace has passed with no member; one that got a
// member meanwhile stays.
func TestRefusedJoinLeavesNoSubscriptionBehind(t *testing.T) {
	ad := &subCounter{Adapter: NewMemoryBus().NewAdapter()}
	s := newRoomServer(t, Config{Adapter: ad})
	c := memberConn(t, s, newMemConn())
	refuse := func(RoomPosition) (sdk.MessageType, []byte, bool) { return 0, nil, false }
	accept := func(RoomPosition) (sdk.MessageType, []byte, bool) { return sdk.Text, []byte("history"), true }
	subscribed := func(room string) bool {
		_, ok := s.rooms.rooms.Load(room)
		return ok
	}

	_, err := s.JoinRoomAfter(c.id, "a", refuse)
	require.ErrorIs(t, err, ErrPositionMoved)
	require.True(t, subscribed("a"), "kept for the caller's next try")
	s.rooms.sweepRefused(s.clock.Now())
	require.True(t, subscribed("a"), "within the grace")
	s.rooms.sweepRefused(s.clock.Now() + int64(refusedGrace))
	require.False(t, subscribed("a"), "the caller gave up: unsubscribed")
	require.Equal(t, int64(1), ad.unsubs.Load())

	// Refused, then joined by someone: it stays.
	_, err = s.JoinRoomAfter(c.id, "b", refuse)
	require.ErrorIs(t, err, ErrPositionMoved)
	c2 := memberConn(t, s, newMemConn())
	require.NoError(t, s.JoinRoom(c2.id, "b"))
	s.rooms.sweepRefused(s.clock.Now() + int64(refusedGrace))
	require.True(t, subscribed("b"))
	require.Equal(t, int64(1), ad.unsubs.Load())

	// Refused, then the retry succeeds: a member, nothing dropped.
	_, err = s.JoinRoomAfter(c.id, "c", refuse)
	require.ErrorIs(t, err, ErrPositionMoved)
	_, err = s.JoinRoomAfter(c.id, "c", accept)
	require.NoError(t, err)
	s.rooms.sweepRefused(s.clock.Now() + int64(refusedGrace))
	require.True(t, subscribed("c"))
	require.Equal(t, int64(1), ad.unsubs.Load())
}
