package redisadapter_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/strandws/strand/internal/redistest"
	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/sdk/bufpool"
	"github.com/strandws/strand/wsframework"
	"github.com/strandws/strand/wsframework/redisadapter"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is an AdapterHandler that records what it is given.
type recorder struct {
	mu   sync.Mutex
	msgs map[string][]wsframework.RoomMessage // by room, Data copied into a string
	data map[string][]string
	pos  map[string]wsframework.RoomPosition
	gaps []wsframework.RoomGap
	grew chan struct{}
}

func newRecorder() *recorder {
	return &recorder{msgs: map[string][]wsframework.RoomMessage{}, data: map[string][]string{},
		pos: map[string]wsframework.RoomPosition{}, grew: make(chan struct{}, 1)}
}

func (r *recorder) Deliver(m wsframework.RoomMessage) {
	r.mu.Lock()
	r.pos[m.Room] = m.Pos
	if m.Data != nil {
		r.data[m.Room] = append(r.data[m.Room], string(m.Data.B))
		m.Data.Release()
		m.Data = nil
		r.msgs[m.Room] = append(r.msgs[m.Room], m)
	}
	r.mu.Unlock()
	select {
	case r.grew <- struct{}{}:
	default:
	}
}

func (r *recorder) Gap(g wsframework.RoomGap) {
	r.mu.Lock()
	r.gaps = append(r.gaps, g)
	r.mu.Unlock()
}

func (r *recorder) texts(room string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.data[room]...)
}

// waitLen waits until room has n messages.
func (r *recorder) waitLen(t *testing.T, room string, n int) []string {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		if got := r.texts(room); len(got) >= n {
			return got
		}
		select {
		case <-r.grew:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("room %s: %d messages, want %d", room, len(r.texts(room)), n)
		}
	}
}

func newAdapter(t *testing.T, url string, cfg redisadapter.Config) (*redisadapter.Adapter, *recorder) {
	t.Helper()
	cfg.URL = url
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a, err := redisadapter.New(cfg)
	require.NoError(t, err)
	rec := newRecorder()
	require.NoError(t, a.Bind(rec))
	t.Cleanup(func() { require.NoError(t, a.Close()) })
	return a, rec
}

var pool = bufpool.New(bufpool.Config{})

func publish(a *redisadapter.Adapter, room, text string) error {
	b := pool.Get(len(text))
	copy(b.B, text)
	return a.Publish(wsframework.RoomMessage{Room: room, Type: sdk.Text, Data: b})
}

func TestPublishSubscribeOrderAndHistory(t *testing.T) {
	rs := redistest.Start(t)
	a1, r1 := newAdapter(t, rs.URL(), redisadapter.Config{})
	a2, r2 := newAdapter(t, rs.URL(), redisadapter.Config{})
	require.NoError(t, a1.Subscribe("r"))
	require.NoError(t, a2.Subscribe("r"))
	const senders, each = 4, 50
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := a1
			if s%2 == 1 {
				a = a2
			}
			for i := range each {
				require.NoError(t, publish(a, "r", fmt.Sprintf("%d:%d", s, i)))
			}
		}()
	}
	wg.Wait()
	got1 := r1.waitLen(t, "r", senders*each)
	got2 := r2.waitLen(t, "r", senders*each)
	require.Equal(t, got1, got2, "one order on both nodes")
	next := make([]int, senders)
	for _, m := range got1 {
		var s, i int
		_, err := fmt.Sscanf(m, "%d:%d", &s, &i)
		require.NoError(t, err)
		require.Equal(t, next[s], i, "sender %d's order", s)
		next[s]++
	}
	r1.mu.Lock()
	for i, m := range r1.msgs["r"] {
		require.Equal(t, uint64(i+1), m.Pos.Offset)
	}
	pos := r1.pos["r"]
	r1.mu.Unlock()
	h, err := a2.History(t.Context(), "r", wsframework.RoomPosition{Epoch: pos.Epoch, Offset: 10}, 3)
	require.NoError(t, err)
	require.Len(t, h, 3)
	require.Equal(t, got1[7:10], []string{string(h[0].Data), string(h[1].Data), string(h[2].Data)})
	require.Equal(t, uint64(8), h[0].Pos.Offset)
	st := a1.Stats()
	require.Equal(t, uint64(senders*each/2), st.Published)
	require.Zero(t, st.Gaps)
}

func TestPresence(t *testing.T) {
	rs := redistest.Start(t)
	a1, _ := newAdapter(t, rs.URL(), redisadapter.Config{})
	a2, _ := newAdapter(t, rs.URL(), redisadapter.Config{})
	require.NoError(t, a1.SetPresence("r", 1, []byte("ada")))
	require.NoError(t, a2.SetPresence("r", 1, []byte("grace")))
	ms, err := a1.Presence(context.Background(), "r")
	require.NoError(t, err)
	require.Len(t, ms, 2)
	require.NoError(t, a2.RemovePresence("r", 1))
	ms, err = a2.Presence(context.Background(), "r") // a2's own removal written first
	require.NoError(t, err)
	require.Len(t, ms, 1)
	require.Equal(t, "ada", string(ms[0].Payload))
	require.Equal(t, a1.Node(), ms[0].Node)
}

// RemovePresence queues its write and returns without waiting for Redis
// (the Server calls it under a room lock); the writes of one entry keep
// their order, and Presence reads this node's own earlier writes.
func TestPresenceWritesQueuedInOrder(t *testing.T) {
	rs := redistest.Start(t)
	a, _ := newAdapter(t, rs.URL(), redisadapter.Config{})
	other, _ := newAdapter(t, rs.URL(), redisadapter.Config{})
	for i := range 50 {
		require.NoError(t, a.SetPresence("r", 1, []byte(fmt.Sprint("a", i))))
		require.NoError(t, a.RemovePresence("r", 1))
		require.NoError(t, a.SetPresence("r", 1, []byte(fmt.Sprint("b", i))))
		require.NoError(t, a.RemovePresence("r", 2)) // never set: nothing to do
		ms, err := a.Presence(t.Context(), "r")
		require.NoError(t, err)
		require.Len(t, ms, 1)
		require.Equal(t, fmt.Sprint("b", i), string(ms[0].Payload))
		require.NoError(t, a.RemovePresence("r", 1))
		ms, err = a.Presence(t.Context(), "r")
		require.NoError(t, err)
		require.Empty(t, ms)
	}
	// Another node sees the removal once written.
	require.NoError(t, a.SetPresence("r", 7, []byte("x")))
	require.NoError(t, a.RemovePresence("r", 7))
	require.Eventually(t, func() bool {
		ms, err := other.Presence(t.Context(), "r")
		return err == nil && len(ms) == 0
	}, 5*time.Second, 10*time.Millisecond)

	// With Redis gone, a removal does not wait for it (nor fail); a set
	// reports the failure.
	require.NoError(t, a.SetPresence("q", 1, []byte("y")))
	rs.Kill()
	require.NoError(t, a.RemovePresence("q", 1))
	require.Error(t, a.SetPresence("q", 2, []byte("z")))
}
