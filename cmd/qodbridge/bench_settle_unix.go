//go:build unix

package main

import (
	"syscall"
	"time"
)

// flushDirtyPages writes the page cache out, so the kernel's write-back of
// one phase's stream files does not run on the cores the next phase is
// measured on.
func flushDirtyPages() { syscall.Sync() }

// processCPU is the user + system CPU time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
