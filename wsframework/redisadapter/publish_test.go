package redisadapter_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/internal/redistest"
	"github.com/strandws/strand/wsframework"
	"github.com/strandws/strand/wsframework/redisadapter"
)

// Concurrent publishes to several rooms through one publisher goroutine are
// batched (fewer script runs than messages), and every room still gets
// offsets 1, 2, ... with no hole, one order on every node, and each
// sender's messages in the order sent.
func TestBatchedPublishKeepsOrder(t *testing.T) {
	rs := redistest.Start(t)
	pub, _ := newAdapter(t, rs.URL(), redisadapter.Config{Workers: 1})
	subA, recA := newAdapter(t, rs.URL(), redisadapter.Config{})
	subB, recB := newAdapter(t, rs.URL(), redisadapter.Config{})
	rooms := []string{"r0", "r1", "r2"}
	for _, r := range rooms {
		require.NoError(t, subA.Subscribe(r))
		require.NoError(t, subB.Subscribe(r))
	}
	const senders, each = 24, 100
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				room := rooms[(s+i)%len(rooms)]
				if err := publish(pub, room, fmt.Sprintf("%d:%d", s, i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	total := 0
	for _, room := range rooms {
		n := 0
		for s := range senders {
			for i := range each {
				if rooms[(s+i)%len(rooms)] == room {
					n++
				}
			}
		}
		total += n
		gotA := recA.waitLen(t, room, n)
		gotB := recB.waitLen(t, room, n)
		require.Len(t, gotA, n)
		require.Equal(t, gotA, gotB, "room %s: one order on both nodes", room)
		last := make(map[int]int)
		for _, m := range gotA {
			var s, i int
			_, err := fmt.Sscanf(m, "%d:%d", &s, &i)
			require.NoError(t, err)
			if prev, ok := last[s]; ok {
				require.Greater(t, i, prev, "room %s: sender %d's order", room, s)
			}
			last[s] = i
		}
		recA.mu.Lock()
		for i, m := range recA.msgs[room] {
			require.Equal(t, uint64(i+1), m.Pos.Offset, "room %s: offsets without holes", room)
		}
		recA.mu.Unlock()
	}
	st := pub.Stats()
	require.Equal(t, uint64(total), st.Published)
	require.Less(t, st.Batches, st.Published, "no batch had more than one message")
	require.Zero(t, subA.Stats().Gaps)
	t.Logf("%d messages in %d script runs", st.Published, st.Batches)
}

// With Redis gone, every one of many concurrent publishes (sharing batches)
// returns ErrPublish, and none is delivered on the publishing node.
func TestBatchedPublishErrorsEachMessage(t *testing.T) {
	rs := redistest.Start(t)
	a, rec := newAdapter(t, rs.URL(), redisadapter.Config{Workers: 1})
	require.NoError(t, a.Subscribe("r"))
	rs.Kill()
	const n = 64
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- publish(a, "r", fmt.Sprint(i))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.ErrorIs(t, err, redisadapter.ErrPublish)
	}
	require.Equal(t, uint64(n), a.Stats().PublishErrors)
	require.Empty(t, rec.texts("r"))
}

// Close while publishes are queued and in flight: each Publish returns
// (an error, or nil if Redis confirmed it first) and no goroutine is left
// behind (goleak in TestMain).
func TestCloseAnswersQueuedPublishes(t *testing.T) {
	rs := redistest.Start(t)
	a, _ := newAdapter(t, rs.URL(), redisadapter.Config{Workers: 1})
	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := publish(a, "r", fmt.Sprint(i)); err != nil && !errors.Is(err, wsframework.ErrAdapterClosed) {
				require.ErrorIs(t, err, redisadapter.ErrPublish)
			}
		}()
	}
	require.NoError(t, a.Close())
	wg.Wait()
	require.ErrorIs(t, publish(a, "r", "late"), wsframework.ErrAdapterClosed)
}
