package sinktest

import (
	"bytes"
	"sync"
)

// Buffer collects what is written to it, safe for concurrent Write and
// String: tests hand it to a logger whose lines come from other goroutines
// (a client's reconnect handler, a consumer loop) and poll it for a line.
// The zero value is ready to use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
