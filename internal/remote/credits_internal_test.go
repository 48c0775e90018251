package remote

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// waitQueued waits until n callers wait in c's queue.
func waitQueued(t *testing.T, c *credits, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.queue) == n
	}, 5*time.Second, time.Millisecond)
}

// TestCreditsServeWaitersInTurn: callers that find the window empty are
// served in arrival order, and a caller that arrives while others wait
// does not overtake them even when a credit is free at that instant.
func TestCreditsServeWaitersInTurn(t *testing.T) {
	c := newCredits(2)
	dead := make(chan struct{})
	require.True(t, c.take(time.Minute, dead))
	require.True(t, c.take(time.Minute, dead))

	served := make(chan int, 4)
	for i := range 3 {
		go func() {
			if c.take(time.Minute, dead) {
				served <- i
			}
		}()
		waitQueued(t, c, i+1)
	}
	require.True(t, c.grant(1))
	require.Equal(t, 0, <-served, "the first waiter goes first")
	select {
	case i := <-served:
		t.Fatalf("waiter %d served without a credit", i)
	case <-time.After(20 * time.Millisecond):
	}

	// A newcomer queues behind waiters 1 and 2.
	go func() {
		if c.take(time.Minute, dead) {
			served <- 3
		}
	}()
	waitQueued(t, c, 3)
	require.True(t, c.grant(1))
	require.Equal(t, 1, <-served)
	require.True(t, c.grant(1))
	require.Equal(t, 2, <-served)
	c.giveBack()
	require.Equal(t, 3, <-served)
	require.Zero(t, c.available())
}

// TestCreditsTimeoutOnlyWithoutProgress: a waiter gives up after a timeout
// with no grant at all, not while the plugin grants credits to others
// (here, to the callers queued ahead of it, for as long as its timeout).
func TestCreditsTimeoutOnlyWithoutProgress(t *testing.T) {
	c := newCredits(1)
	dead := make(chan struct{})
	require.True(t, c.take(time.Minute, dead))

	const timeout = 200 * time.Millisecond
	ahead := make(chan bool, 4)
	for i := range 4 {
		go func() { ahead <- c.take(time.Minute, dead) }()
		waitQueued(t, c, i+1)
	}
	got := make(chan bool, 1)
	go func() { got <- c.take(timeout, dead) }()
	waitQueued(t, c, 5)
	for range 4 {
		time.Sleep(timeout / 4)
		require.True(t, c.grant(1))
		require.True(t, <-ahead)
	}
	select {
	case <-got:
		t.Fatal("the waiter gave up while the plugin progressed")
	default:
	}
	require.False(t, <-got, "no grant for a timeout: the waiter gives up")
	waitQueued(t, c, 0)

	// A session that ends releases its waiters.
	done := make(chan bool, 1)
	go func() { done <- c.take(time.Minute, dead) }()
	waitQueued(t, c, 1)
	close(dead)
	require.False(t, <-done)
	waitQueued(t, c, 0)
}

func TestCreditsOverflow(t *testing.T) {
	c := newCredits(4)
	require.False(t, c.grant(1), "more than the window")
	require.True(t, c.take(time.Minute, nil))
	require.True(t, c.grant(1))
	require.False(t, c.grant(1))
	require.Equal(t, int64(4), c.available())
}
