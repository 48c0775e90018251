package redisadapter_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/internal/redistest"
	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/wsframework/redisadapter"
)

// checkSeq checks that got is n messages "0".."n-1" in order.
func checkSeq(t *testing.T, got []string, n int) {
	t.Helper()
	require.Len(t, got, n)
	for i, m := range got {
		require.Equal(t, fmt.Sprint(i), m)
	}
}

// A killed Pub/Sub connection (Redis keeps its state): everything published
// meanwhile is recovered from the history, in order, with no gap.
func TestRecoversAfterPubSubConnectionKilled(t *testing.T) {
	rs := redistest.Start(t)
	pub, _ := newAdapter(t, rs.URL(), redisadapter.Config{})
	sub, rec := newAdapter(t, rs.URL(), redisadapter.Config{ReconnectMin: 10 * time.Millisecond})
	require.NoError(t, sub.Subscribe("r"))
	const n = 2000
	for i := range n {
		if i == n/4 || i == n/2 {
			_, err := rs.Do("CLIENT", "KILL", "TYPE", "pubsub")
			require.NoError(t, err)
		}
		require.NoError(t, publish(pub, "r", fmt.Sprint(i)))
	}
	checkSeq(t, rec.waitLen(t, "r", n), n)
	st := sub.Stats()
	require.Zero(t, st.Gaps)
	require.GreaterOrEqual(t, st.Reconnects, uint64(1))
	require.Equal(t, uint64(n), st.Delivered)
	t.Logf("%+v", st)
}

// A full worker queue drops messages; they are recovered in order.
func TestRecoversAfterOverflow(t *testing.T) {
	rs := redistest.Start(t)
	pub, _ := newAdapter(t, rs.URL(), redisadapter.Config{})
	sub, rec := newAdapter(t, rs.URL(), redisadapter.Config{Workers: 1, BufferSize: 1})
	require.NoError(t, sub.Subscribe("r"))
	const n, senders = 3000, 8
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := s; i < n; i += senders {
				require.NoError(t, publish(pub, "r", fmt.Sprintf("%d:%d", s, i)))
			}
		}()
	}
	wg.Wait()
	got := rec.waitLen(t, "r", n)
	require.Len(t, got, n)
	next := make([]int, senders) // each sender's next message
	for s := range next {
		next[s] = s
	}
	for _, m := range got {
		var s, i int
		_, err := fmt.Sscanf(m, "%d:%d", &s, &i)
		require.NoError(t, err)
		require.Equal(t, next[s], i, "sender %d", s)
		next[s] += senders
	}
	st := sub.Stats()
	require.Zero(t, st.Gaps)
	require.NotZero(t, st.Overflows, "the queue of one never overflowed")
	require.NotZero(t, st.Recovered)
	t.Logf("%+v", st)
	// Offsets delivered were 1..n in order.
	rec.mu.Lock()
	for i, m := range rec.msgs["r"] {
		require.Equal(t, uint64(i+1), m.Pos.Offset)
	}
	rec.mu.Unlock()
}

// Redis killed and restarted empty mid-stream: every message is delivered
// in order, or its Publish failed, or the subscriber got a gap.
func TestRedisRestartLosesNothingSilently(t *testing.T) {
	rs := redistest.Start(t)
	pub, _ := newAdapter(t, rs.URL(), redisadapter.Config{})
	sub, rec := newAdapter(t, rs.URL(), redisadapter.Config{ReconnectMin: 10 * time.Millisecond, CheckInterval: 100 * time.Millisecond})
	require.NoError(t, sub.Subscribe("r"))
	const n = 600
	var failed []int
	for i := range n {
		if i == n/3 {
			rs.Restart()
		}
		if err := publish(pub, "r", fmt.Sprint(i)); err != nil {
			require.ErrorIs(t, err, redisadapter.ErrPublish)
			failed = append(failed, i)
		}
	}
	// The last messages were published after the restart: wait for them.
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := rec.texts("r")
		if len(got) > 0 && got[len(got)-1] == fmt.Sprint(n-1) {
			break
		}
		require.True(t, time.Now().Before(deadline), "last message never delivered: %d delivered, %+v", len(got), sub.Stats())
		time.Sleep(20 * time.Millisecond)
	}
	got := rec.texts("r")
	rec.mu.Lock()
	gaps := len(rec.gaps)
	rec.mu.Unlock()
	seen := map[string]bool{}
	prev := -1
	for _, m := range got {
		var i int
		_, err := fmt.Sscan(m, &i)
		require.NoError(t, err)
		require.Greater(t, i, prev, "order")
		prev = i
		seen[m] = true
	}
	isFailed := map[int]bool{}
	for _, i := range failed {
		isFailed[i] = true
	}
	lost := 0
	for i := range n {
		if !seen[fmt.Sprint(i)] && !isFailed[i] {
			lost++
		}
	}
	if lost > 0 {
		require.NotZero(t, gaps, "%d messages lost without a gap event", lost)
	}
	st := sub.Stats()
	t.Logf("publish errors %d, lost %d (covered by %d gap events), %+v", len(failed), lost, gaps, st)
	require.Equal(t, uint64(gaps), st.Gaps)
}

// A message that reached the room's history but never came over the
// channel, in a room where nothing follows it: the periodic position check
// notices and delivers it from the history, with no gap.
func TestPositionCheckRecoversQuietRoom(t *testing.T) {
	rs := redistest.Start(t)
	pub, _ := newAdapter(t, rs.URL(), redisadapter.Config{})
	sub, rec := newAdapter(t, rs.URL(), redisadapter.Config{CheckInterval: 50 * time.Millisecond})
	require.NoError(t, sub.Subscribe("r"))
	require.NoError(t, publish(pub, "r", "0"))
	rec.waitLen(t, "r", 1)
	// Offset 2 written as the publish script would, without PUBLISH.
	body := append([]byte{1, byte(sdk.Text), 0}, make([]byte, 16)...)
	body = append(body, "1"...)
	_, err := rs.Do("HSET", "strand:{r}:m", "o", "2")
	require.NoError(t, err)
	_, err = rs.Do("XADD", "strand:{r}:h", "2-0", "d", string(body))
	require.NoError(t, err)
	checkSeq(t, rec.waitLen(t, "r", 2), 2)
	st := sub.Stats()
	require.Zero(t, st.Gaps)
	require.Equal(t, uint64(1), st.Recovered)
}
