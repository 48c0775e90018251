package supervise

import (
	"os"
	"syscall"
)

// sysProcAttr puts the child in a process group of its own (so that a kill
// reaches what it started) and has the kernel kill it when the host dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killGroup sends SIGKILL to the child's process group (the child and
// whatever it started), and to the child itself.
func killGroup(p *os.Process) {
	_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
	_ = p.Kill()
}
