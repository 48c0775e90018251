package netpoll

import "sync/atomic"

// refCount guards a descriptor that any goroutine may close while another
// is in a system call on it: the descriptor is closed only once the last
// reference is gone, so its number cannot be reused under a call.
type refCount struct {
	v atomic.Uint64 // references in the low 32 bits; refClosed once closed
}

const refClosed = 1 << 32

// acquire takes a reference; false once closed.
func (r *refCount) acquire() bool {
	for {
		v := r.v.Load()
		if v&refClosed != 0 {
			return false
		}
		if r.v.CompareAndSwap(v, v+1) {
			return true
		}
	}
}

// release drops a reference and reports whether the caller must close the
// descriptor now (it was closed while referenced, and this was the last).
func (r *refCount) release() bool { return r.v.Add(^uint64(0)) == refClosed }

// close marks it closed and reports whether the caller must close the
// descriptor now (no reference is held); false also for a second close.
func (r *refCount) close() bool {
	for {
		v := r.v.Load()
		if v&refClosed != 0 {
			return false
		}
		if r.v.CompareAndSwap(v, v|refClosed) {
			return v == 0
		}
	}
}
