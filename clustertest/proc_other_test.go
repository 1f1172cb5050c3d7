//go:build cluster && !linux

package clustertest

import "syscall"

// deathSignal: only Linux can tie a child's life to its parent's; elsewhere
// the cleanups alone stop the processes.
func deathSignal() *syscall.SysProcAttr { return nil }
