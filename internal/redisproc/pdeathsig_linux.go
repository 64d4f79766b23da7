package redisproc

import (
	"os/exec"
	"syscall"
)

// setPdeathsig makes the child die with the test binary, so no redis-server
// outlives a test run.
func setPdeathsig(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
