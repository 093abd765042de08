package process

import (
	"io/fs"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// memLimitShare is the part of the container's memory limit the Go runtime
// is asked to stay under: the rest is for what the runtime does not
// count (stacks above it, cgo, the page cache of the embedded server's
// files) and the garbage collector's lag.
const memLimitShare = 0.9

// SetMemoryLimitFromCgroup gives the Go runtime a soft memory limit of 90 %
// of the container's memory limit when GOMEMLIMIT is not set, as the
// automemlimit package does: without one, a heap that grows towards the
// container's limit (the embedded server's duplicate window at a high
// rate) is killed by the kernel instead of being collected harder. It
// returns the limit set, 0 when it set none (GOMEMLIMIT given, no cgroup
// limit, not Linux).
func SetMemoryLimitFromCgroup(getenv func(string) string) int64 {
	if getenv("GOMEMLIMIT") != "" {
		return 0
	}
	limit := cgroupMemoryLimit(os.DirFS("/sys/fs/cgroup"))
	if limit <= 0 {
		return 0
	}
	soft := int64(float64(limit) * memLimitShare)
	debug.SetMemoryLimit(soft)
	return soft
}

// cgroupMemoryLimit reads the memory limit of the cgroup the process runs
// in, from cgroup v2's memory.max or v1's memory/memory.limit_in_bytes; 0
// when there is none ("max", or v1's page-rounded "unlimited").
func cgroupMemoryLimit(root fs.FS) int64 {
	for _, name := range []string{"memory.max", "memory/memory.limit_in_bytes"} {
		b, err := fs.ReadFile(root, name)
		if err != nil {
			continue
		}
		v := strings.TrimSpace(string(b))
		if v == "max" {
			return 0
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 || n >= math.MaxInt64/2 { // v1 writes 9223372036854771712 for none
			return 0
		}
		return n
	}
	return 0
}
