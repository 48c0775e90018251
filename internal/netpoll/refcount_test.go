package netpoll

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRefCount(t *testing.T) {
	t.Run("close_unreferenced", func(t *testing.T) {
		var r refCount
		require.True(t, r.close(), "no reference: close now")
		require.False(t, r.close(), "second close")
		require.False(t, r.acquire(), "acquire after close")
	})
	t.Run("close_while_referenced", func(t *testing.T) {
		var r refCount
		require.True(t, r.acquire())
		require.True(t, r.acquire())
		require.False(t, r.close(), "referenced: the last release closes")
		require.False(t, r.acquire())
		require.False(t, r.release())
		require.True(t, r.release(), "the last reference closes")
	})
	t.Run("concurrent", func(t *testing.T) {
		// However calls and Close interleave, the descriptor is closed
		// exactly once and never while referenced.
		for range 200 {
			var (
				r      refCount
				closes atomic.Int32
				inUse  atomic.Int32
				wg     sync.WaitGroup
			)
			for range 4 {
				wg.Go(func() {
					for range 100 {
						if !r.acquire() {
							return
						}
						inUse.Add(1)
						if closes.Load() != 0 {
							t.Error("descriptor closed while referenced")
						}
						inUse.Add(-1)
						if r.release() {
							closes.Add(1)
						}
					}
				})
			}
			wg.Go(func() {
				if r.close() {
					closes.Add(1)
				}
			})
			wg.Wait()
			require.EqualValues(t, 1, closes.Load())
		}
	})
}
