//go:build unix

package bench

import "syscall"

// flushDirtyPages writes the page cache out, so the kernel's write-back of
// one phase's stream files does not run on the cores the next phase is
// measured on.
func flushDirtyPages() { syscall.Sync() }
