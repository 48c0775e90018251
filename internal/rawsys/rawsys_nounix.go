//go:build !unix

package rawsys

// Yield does nothing here: sched_yield(2) is used on Linux only. Off Unix
// the package has no Read or Write: its callers read and write through
// the net package there.
func Yield() {}
