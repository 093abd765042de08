//go:build unix

package process

import (
	"syscall"
	"time"
)

// CPUTime is the user and system CPU time this process has used so far:
// what the load tool and the benchmarks divide by the events they sent.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
