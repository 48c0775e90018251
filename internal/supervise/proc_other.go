//go:build unix && !linux

package supervise

import (
	"os"
	"syscall"
)

// sysProcAttr puts the child in a process group of its own. Without
// Pdeathsig (Linux only) a child outlives a host that is killed until its
// socket closes, when the plugin side exits.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// killGroup sends SIGKILL to the child's process group (the child and
// whatever it started), and to the child itself.
func killGroup(p *os.Process) {
	_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
	_ = p.Kill()
}
