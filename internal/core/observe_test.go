package core_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/internal/core"
)

// recObserver records what an Observer is told.
type recObserver struct {
	mu         sync.Mutex
	dispatched []time.Duration
	handled    map[core.HandlerEvent][]time.Duration
}

func (o *recObserver) Dispatched(d time.Duration) {
	o.mu.Lock()
	o.dispatched = append(o.dispatched, d)
	o.mu.Unlock()
}

func (o *recObserver) Handled(ev core.HandlerEvent, d time.Duration) {
	o.mu.Lock()
	if o.handled == nil {
		o.handled = make(map[core.HandlerEvent][]time.Duration)
	}
	o.handled[ev] = append(o.handled[ev], d)
	o.mu.Unlock()
}

// TestObserverSamplesMessages: one message in ObserveEvery per connection
// (its first, then every ObserveEvery-th) is timed, through both submit
// paths; open and close are always timed; an event without a handler is
// timed for its dispatch delay only.
func TestObserverSamplesMessages(t *testing.T) {
	obs := &recObserver{}
	closed := make(chan struct{})
	rt, h := newRuntime(t, core.WebSocketHandlers{
		OnOpen: func(*core.Conn) {},
		OnText: func(*core.Conn, []byte) { time.Sleep(time.Millisecond) },
		// No OnBinary: binary messages run no handler.
		OnClose: func(*core.Conn, core.CloseCode, string) { close(closed) },
	}, core.RuntimeConfig{Observer: obs, ObserveEvery: 4})
	ctx := context.Background()
	c, err := rt.Open(ctx, &recHost{}, core.ConnInfo{ID: 1, Handlers: h})
	require.NoError(t, err)
	// Messages 0, 4 and 8 are timed: 0 and 8 text, 4 binary.
	for i := range 10 {
		typ := core.Text
		if i == 4 {
			typ = core.Binary
		}
		if i%2 == 0 {
			require.NoError(t, rt.Message(ctx, c, typ, msg(rt, "m")))
		} else {
			require.NoError(t, rt.TryMessage(c, typ, msg(rt, "m"), nil))
		}
	}
	rt.Closed(c, core.CloseNormal, "")
	<-closed
	done := make(chan struct{})
	require.NoError(t, rt.Sync(c, func() { close(done) }))
	<-done

	obs.mu.Lock()
	defer obs.mu.Unlock()
	require.Len(t, obs.dispatched, 3, "messages 0, 4 and 8 are sampled")
	require.Len(t, obs.handled[core.HandlerOpen], 1)
	require.Len(t, obs.handled[core.HandlerClose], 1)
	require.Len(t, obs.handled[core.HandlerMessage], 2, "message 4 has no handler")
	for _, d := range obs.handled[core.HandlerMessage] {
		require.GreaterOrEqual(t, d, time.Millisecond, "the handler's run time")
	}
	require.Empty(t, obs.handled[core.HandlerError])
}

// TestObserverPanickingHandler: a handler that panics is still timed, and
// the connection is closed as without an Observer.
func TestObserverPanickingHandler(t *testing.T) {
	obs := &recObserver{}
	host := &recHost{}
	rt, h := newRuntime(t, core.WebSocketHandlers{
		OnMessage: func(*core.Conn, core.Message) { panic("boom") },
	}, core.RuntimeConfig{Observer: obs, ObserveEvery: 1})
	ctx := context.Background()
	c, err := rt.Open(ctx, host, core.ConnInfo{ID: 1, Handlers: h})
	require.NoError(t, err)
	require.NoError(t, rt.Message(ctx, c, core.Text, msg(rt, "m")))
	done := make(chan struct{})
	require.NoError(t, rt.Sync(c, func() { close(done) }))
	<-done
	obs.mu.Lock()
	require.Len(t, obs.handled[core.HandlerMessage], 1)
	require.Len(t, obs.dispatched, 1)
	obs.mu.Unlock()
	host.mu.Lock()
	require.Len(t, host.panics, 1)
	host.mu.Unlock()
	require.Equal(t, uint64(1), rt.Stats().Panics)
}

func TestHandlerEventString(t *testing.T) {
	names := []string{"open", "message", "error", "close"}
	for i, n := range names {
		require.Equal(t, n, core.HandlerEvent(i).String())
	}
	require.Equal(t, "unknown", core.NumHandlerEvents.String())
}
