// Package memsink is the in-memory reference sink: it keeps every published
// event in a slice, in publish order. Tests of the ingress and the command
// flow use it in place of a broker; it can fail on demand (a broker outage)
// and hold publishes in flight (shutdown, 429 and timeout tests).
//
// Delivery semantics: Publish stores all events of a call or none of them,
// in call order, and returns nil once they are stored. Calls from several
// goroutines are stored in the order they take the lock, so the events of
// one session keep the order of the calls that published them one after
// another.
//
// Imports: bridge of ours only.
package memsink

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/qodbridge/qodbridge/bridge"
)

// Sink keeps published events in memory. The zero value is ready to use. It
// is safe for concurrent use.
type Sink struct {
	mu       sync.Mutex
	events   []bridge.Event
	closed   bool
	outage   error // SetErr: every Publish fails, Ready too
	fail     func(bridge.Event) error
	gate     chan struct{} // non-nil while held; closed on release
	held     int
	changed  chan struct{} // closed and replaced whenever held changes
	inflight sync.WaitGroup
}

var _ bridge.Publisher = (*Sink)(nil)

// New returns an empty Sink.
func New() *Sink { return &Sink{} }

// Publish stores events and returns nil, or stores none of them and returns
// an error: wrapping ctx.Err() when ctx is done before they are stored
// (also while held, see Hold), wrapping the SetErr error or the error of
// the SetFailure hook, or wrapping bridge.ErrClosed after Close. Publish with no
// events returns nil.
func (s *Sink) Publish(ctx context.Context, events ...bridge.Event) error {
	if len(events) == 0 {
		return nil
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("memsink: publish: %w", bridge.ErrClosed)
	}
	s.inflight.Add(1)
	gate, outage, fail := s.gate, s.outage, s.fail
	s.mu.Unlock()
	defer s.inflight.Done()

	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memsink: publish: %w", err)
	}
	if gate != nil {
		s.addHeld(1)
		select {
		case <-gate:
			s.addHeld(-1)
		case <-ctx.Done():
			s.addHeld(-1)
			return fmt.Errorf("memsink: publish held: %w", ctx.Err())
		}
		// Failures may have changed while the call was held; take the
		// ones in force on release, as a broker would answer then.
		s.mu.Lock()
		outage, fail = s.outage, s.fail
		s.mu.Unlock()
	}
	if outage != nil {
		return fmt.Errorf("memsink: publish: %w", outage)
	}
	if fail != nil {
		// Called without the lock so a hook may use the Sink.
		for _, ev := range events {
			if err := fail(ev); err != nil {
				return fmt.Errorf("memsink: publish event %q: %w", ev.ID, err)
			}
		}
	}
	s.mu.Lock()
	s.events = append(s.events, events...)
	s.mu.Unlock()
	return nil
}

// Close makes later Publish calls fail with bridge.ErrClosed and waits for
// the calls in flight, held ones included (release them, or cancel their
// contexts, first). It is idempotent and returns nil.
func (s *Sink) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.inflight.Wait()
	return nil
}

// SetFailure installs fn, called for each event of a Publish before it is
// stored; when it returns an error the whole call fails with an error
// wrapping it and stores nothing. nil removes the hook. Use it to simulate a
// broker outage or a broker that rejects certain events.
func (s *Sink) SetFailure(fn func(bridge.Event) error) {
	s.mu.Lock()
	s.fail = fn
	s.mu.Unlock()
}

// SetErr makes every Publish fail with an error wrapping err, and Ready
// report it, until SetErr(nil): a broker outage. It works alongside any
// SetFailure hook.
func (s *Sink) SetErr(err error) {
	s.mu.Lock()
	s.outage = err
	s.mu.Unlock()
}

// Ready returns nil when the Sink accepts events, an error wrapping the
// SetErr error during a simulated outage, or bridge.ErrClosed after Close.
func (s *Sink) Ready(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return fmt.Errorf("memsink: ready: %w", bridge.ErrClosed)
	case s.outage != nil:
		return fmt.Errorf("memsink: ready: %w", s.outage)
	}
	return nil
}

// Hold makes every Publish that starts from now on wait, before storing
// anything, until release is called or its ctx is done. release is
// idempotent; Publish calls starting after it are not held. Use Held or
// WaitHeld to know when calls are parked.
func (s *Sink) Hold() (release func()) {
	g := make(chan struct{})
	s.mu.Lock()
	s.gate = g
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			if s.gate == g {
				s.gate = nil
			}
			s.mu.Unlock()
			close(g)
		})
	}
}

// Held returns the number of Publish calls waiting in Hold.
func (s *Sink) Held() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held
}

// WaitHeld blocks until at least n Publish calls wait in Hold, or ctx is
// done.
func (s *Sink) WaitHeld(ctx context.Context, n int) error {
	for {
		s.mu.Lock()
		if s.held >= n {
			s.mu.Unlock()
			return nil
		}
		ch := s.changedLocked()
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("memsink: wait for %d held publishes: %w", n, ctx.Err())
		}
	}
}

func (s *Sink) addHeld(d int) {
	s.mu.Lock()
	s.held += d
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
	s.mu.Unlock()
}

func (s *Sink) changedLocked() chan struct{} {
	if s.changed == nil {
		s.changed = make(chan struct{})
	}
	return s.changed
}

// Events returns a copy of the stored events in the order they were stored.
func (s *Sink) Events() []bridge.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events)
}

// Len returns the number of stored events.
func (s *Sink) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.events)
}

// Reset forgets the stored events.
func (s *Sink) Reset() {
	s.mu.Lock()
	s.events = nil
	s.mu.Unlock()
}
