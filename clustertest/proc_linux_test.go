//go:build cluster && linux

package clustertest

import "syscall"

// deathSignal makes a child process die with the test binary, even when a
// timeout panic skips every cleanup.
func deathSignal() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
