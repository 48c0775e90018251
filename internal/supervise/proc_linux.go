package supervise

import "syscall"

// sysProcAttr puts the child in a process group of its own (so that a kill
// reaches what it started) and has the kernel kill it when the host dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
