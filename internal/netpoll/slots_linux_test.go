//go:build linux

package netpoll

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSlots: a report still in flight for a removed handle never reaches
// the handle that took its slot.
func TestSlots(t *testing.T) {
	l := &loop{}
	a, b := &Handle{}, &Handle{}
	l.add(a)
	old := a.token
	require.Same(t, a, l.lookup(old))
	l.remove(a)
	require.Nil(t, l.lookup(old))
	l.add(b)
	require.Equal(t, uint32(old), uint32(b.token), "the slot is reused")
	require.NotEqual(t, old, b.token)
	require.Nil(t, l.lookup(old), "a stale token found the slot's new handle")
	require.Same(t, b, l.lookup(b.token))
	l.remove(a) // removing a gone handle leaves its successor alone
	require.Same(t, b, l.lookup(b.token))
	require.Nil(t, l.lookup(0), "the wake token is no handle's")
	require.Nil(t, l.lookup(1<<32|99), "a token past the slots")
}
