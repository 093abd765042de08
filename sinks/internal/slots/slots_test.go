package slots

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestAcquireWaitsForRelease(t *testing.T) {
	s := New(3)
	ctx := context.Background()
	if err := s.Acquire(ctx, nil, 3); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() { got <- s.Acquire(ctx, nil, 2) }()
	s.Release(1) // one free: not enough for 2
	s.Release(1)
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Acquire did not return after two releases")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.free != 0 || s.waiters != 0 {
		t.Fatalf("free %d, waiters %d; want 0, 0", s.free, s.waiters)
	}
}

func TestAcquireGivesUp(t *testing.T) {
	s := New(1)
	if err := s.Acquire(context.Background(), nil, 1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Acquire(ctx, nil, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("ended ctx: %v", err)
	}
	fired := make(chan time.Time, 1)
	fired <- time.Now()
	called := false
	if err := s.Acquire(context.Background(), func() <-chan time.Time { called = true; return fired }, 1); !errors.Is(err, ErrExpired) || !called {
		t.Fatalf("expired: %v (called %v)", err, called)
	}
	// The fast path does not ask for the deadline.
	s.Release(1)
	if err := s.Acquire(context.Background(), func() <-chan time.Time { t.Fatal("expired called on the fast path"); return nil }, 1); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.free != 0 || s.waiters != 0 {
		t.Fatalf("free %d, waiters %d; want 0, 0", s.free, s.waiters)
	}
}
