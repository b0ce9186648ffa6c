//go:build !linux

package bench

import "os/exec"

// setParentDeathSignal does nothing where the kernel has no parent-death signal: a bench
// killed outright leaves its verity-server running.
func setParentDeathSignal(*exec.Cmd) {}
