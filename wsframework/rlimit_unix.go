//go:build unix

package wsframework

import "golang.org/x/sys/unix"

// openFileLimit returns the process's soft limit on open files
// (RLIMIT_NOFILE; "unlimited" reads as a huge number), and false when it
// cannot be read.
func openFileLimit() (uint64, bool) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 0, false
	}
	return uint64(rl.Cur), true
}
