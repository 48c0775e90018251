//go:build unix

package supervise

import (
	"os"
	"syscall"
)

// killGroup sends SIGKILL to the child's process group (the child and
// whatever it started), and to the child itself.
func killGroup(p *os.Process) {
	_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
	_ = p.Kill()
}
