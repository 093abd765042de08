// Package slots is the counting semaphore with which the status sinks bound
// the events queued for or awaiting a broker's ack. Releases come once per
// batch, so waking every waiter on release (when there are any) stays
// cheap; a waiter gives up when its ctx ends or its own deadline passes.
//
// Imports nothing of ours.
package slots

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrExpired is Acquire's error when the waiter's deadline passed.
var ErrExpired = errors.New("slots: deadline passed while waiting for free slots")

// Slots is a counting semaphore of a fixed size, safe for concurrent use.
type Slots struct {
	size    int
	mu      sync.Mutex
	free    int
	waiters int
	changed chan struct{} // closed and replaced on release while waiters > 0
}

// New returns Slots of size n, all free.
func New(n int) *Slots {
	return &Slots{size: n, free: n, changed: make(chan struct{})}
}

// Size is the number of slots.
func (s *Slots) Size() int { return s.size }

// Acquire takes n slots (at most Size), blocking until they are free, ctx
// ends (its error) or the channel expired returns fires (ErrExpired).
// expired, which may be nil, is called only when Acquire has to wait, so a
// caller can create its timer lazily.
func (s *Slots) Acquire(ctx context.Context, expired func() <-chan time.Time, n int) error {
	s.mu.Lock()
	if s.free >= n {
		s.free -= n
		s.mu.Unlock()
		return nil
	}
	var deadline <-chan time.Time
	if expired != nil {
		deadline = expired()
	}
	s.waiters++
	for {
		ch := s.changed
		s.mu.Unlock()
		var err error
		select {
		case <-ch:
		case <-ctx.Done():
			err = ctx.Err()
		case <-deadline:
			err = ErrExpired
		}
		s.mu.Lock()
		if err == nil && s.free < n {
			continue
		}
		s.waiters--
		if err == nil {
			s.free -= n
		}
		s.mu.Unlock()
		return err
	}
}

// Release gives n slots back.
func (s *Slots) Release(n int) {
	s.mu.Lock()
	s.free += n
	if s.waiters > 0 {
		close(s.changed)
		s.changed = make(chan struct{})
	}
	s.mu.Unlock()
}
