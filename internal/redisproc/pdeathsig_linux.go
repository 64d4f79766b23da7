package redisproc

import (
	"os/exec"
	"syscall"
)

// setPdeathsig makes the child stop with its parent (a test binary, or
// `easel serve` killed without a chance to stop it), so no redis-server
// outlives it; SIGTERM lets a durable one flush its AOF first.
func setPdeathsig(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
