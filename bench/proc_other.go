//go:build !linux

package bench

import (
	"fmt"
	"runtime"
)

// processUsage is not measured here: natter's CPU and RSS are read from
// /proc, which this system lacks.
func processUsage(pid int) (Usage, error) {
	return Usage{}, fmt.Errorf("%w: /proc is read on Linux only, not on %s", ErrNoUsage, runtime.GOOS)
}

// openFiles is not known here.
func openFiles(pid int) (limit, open int, err error) {
	return 0, 0, fmt.Errorf("open files are read from /proc on Linux only, not on %s", runtime.GOOS)
}

// localPorts assumes Linux's default range.
func localPorts() int { return defaultLocalPorts }
