// Package bufpool is Strand's pool of byte buffers, shared by the host and the
// plugin side: receive buffers handed to handlers, outgoing frames on write
// queues, and broadcast payloads shared by many receivers.
//
// Buffers come in power-of-two size classes from 64 B to 1 MiB, each class
// backed by its own sync.Pool. A request larger than 1 MiB is allocated and
// never pooled (counted as oversize). A buffer is obtained with [Pool.Get]
// holding one reference and is released exactly once per reference with
// [Buffer.Release]; [Buffer.Retain] adds a reference so several owners (the
// write queues of a broadcast's receivers) can share one buffer.
//
// # Concurrency
//
// A Pool is safe for concurrent use. A Buffer's reference count is atomic, so
// Retain and Release may be called from any goroutine; its bytes are not
// synchronised: whoever writes them must do so before handing the buffer on.
//
// # Validity
//
// The bytes of a Buffer are valid until its last reference is released. After
// that they belong to the pool and will be reused by another Get. With
// Config.Poison (on by default in binaries built with -tags strand_debug)
// released bytes are overwritten with 0xDB and a release past zero panics, so
// a use-after-release or double release shows up in tests.
package bufpool
