//go:build !unix

package supervise

import (
	"os"
	"syscall"
)

// sysProcAttr sets nothing off Unix: there are no process groups to put
// the child in, and no Pdeathsig. A child outlives a host that is killed
// until its socket closes, when the plugin side exits, and what the child
// started is not killed with it.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// killGroup kills the child alone (see sysProcAttr).
func killGroup(p *os.Process) { _ = p.Kill() }
