//go:build linux

package bench

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal has the kernel kill a verity-server process if the bench dies
// without stopping it, so that a crashed or killed bench leaves no server behind.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
