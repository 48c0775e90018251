//go:build unix && !linux

package supervise

import "syscall"

// sysProcAttr puts the child in a process group of its own. Without
// Pdeathsig (Linux only) a child outlives a host that is killed until its
// socket closes, when the plugin side exits.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
