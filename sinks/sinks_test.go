package sinks

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/sinks/memsink"
)

func TestSetPublishesToEveryBroker(t *testing.T) {
	a, b := memsink.New(), memsink.New()
	var mu sync.Mutex
	seen := map[string]int{}
	s := NewSet(map[string]Sink{"a": a, "b": b})
	s.observe = func(sink string, _ time.Duration, _ error) { mu.Lock(); seen[sink]++; mu.Unlock() }
	ev := bridge.Event{ID: "1", Source: "s", SessionID: "x", QoSStatus: bridge.StatusAvailable}
	if err := s.Publish(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if a.Len() != 1 || b.Len() != 1 || seen["a"] != 1 || seen["b"] != 1 {
		t.Fatalf("a=%d b=%d observed=%v", a.Len(), b.Len(), seen)
	}

	// One broker failing fails the call and names it; the other still got it.
	b.SetErr(errors.New("down"))
	err := s.Publish(context.Background(), ev)
	if err == nil || !strings.Contains(err.Error(), "b: ") || strings.Contains(err.Error(), "a: ") {
		t.Fatalf("error %v", err)
	}
	if err := s.Ready(context.Background()); err == nil || !strings.Contains(err.Error(), "b: ") {
		t.Fatalf("Ready %v", err)
	}
	b.SetErr(nil)
	if err := s.Ready(context.Background()); err != nil {
		t.Fatalf("Ready after recovery: %v", err)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Publish(context.Background(), ev); !errors.Is(err, bridge.ErrClosed) {
		t.Fatalf("Publish after Close: %v", err)
	}
}

// sizedSink is a memsink with a message size: events whose ID is longer
// than limit do not fit. lie makes CheckSize pass what Publish refuses, as
// a broker whose limit was lowered after the check would.
type sizedSink struct {
	*memsink.Sink
	limit  int
	lie    bool
	checks atomic.Int64
}

func (s *sizedSink) CheckSize(events ...bridge.Event) error {
	s.checks.Add(1)
	if s.lie {
		return nil
	}
	return s.check(events)
}

func (s *sizedSink) check(events []bridge.Event) error {
	for _, ev := range events {
		if len(ev.ID) > s.limit {
			return fmt.Errorf("sized: %s: %w", ev.ID, bridge.ErrTooLarge)
		}
	}
	return nil
}

func (s *sizedSink) Publish(ctx context.Context, events ...bridge.Event) error {
	if err := s.check(events); err != nil {
		return err
	}
	return s.Sink.Publish(ctx, events...)
}

var _ SizeChecker = (*sizedSink)(nil)

// TestSetChecksEverySizeFirst: an event too large for one broker is
// refused before any broker stores it, wrapping bridge.ErrTooLarge; events
// that fit go everywhere.
func TestSetChecksEverySizeFirst(t *testing.T) {
	plain, sized := memsink.New(), &sizedSink{Sink: memsink.New(), limit: 4}
	s := NewSet(map[string]Sink{"plain": plain, "sized": sized})
	ok := bridge.Event{ID: "ok", Source: "s", SessionID: "x", QoSStatus: bridge.StatusAvailable}
	big := ok
	big.ID = "too-large"
	for _, evs := range [][]bridge.Event{{big}, {ok, big}, {big, ok}} {
		err := s.Publish(context.Background(), evs...)
		if !errors.Is(err, bridge.ErrTooLarge) || !strings.Contains(err.Error(), "sized: ") {
			t.Fatalf("Publish %d events = %v, want ErrTooLarge naming the broker", len(evs), err)
		}
	}
	if plain.Len() != 0 || sized.Len() != 0 {
		t.Fatalf("stored plain=%d sized=%d after refusals", plain.Len(), sized.Len())
	}
	if err := s.Publish(context.Background(), ok); err != nil {
		t.Fatal(err)
	}
	if plain.Len() != 1 || sized.Len() != 1 {
		t.Fatalf("stored plain=%d sized=%d, want 1 each", plain.Len(), sized.Len())
	}

	// One sink: its Publish checks; the Set adds no second check.
	one := &sizedSink{Sink: memsink.New(), limit: 4}
	if err := NewSet(map[string]Sink{"one": one}).Publish(context.Background(), big); !errors.Is(err, bridge.ErrTooLarge) || one.checks.Load() != 0 {
		t.Fatalf("single sink: %v, %d checks", err, one.checks.Load())
	}
}

// TestSetTooLargeAfterAnotherStored: a broker that refuses an event as too
// large only when publishing, after another stored it, is reported as a
// broker failure (503, resend), not ErrTooLarge (413, give up).
func TestSetTooLargeAfterAnotherStored(t *testing.T) {
	plain, liar := memsink.New(), &sizedSink{Sink: memsink.New(), limit: 4, lie: true}
	s := NewSet(map[string]Sink{"plain": plain, "liar": liar})
	big := bridge.Event{ID: "too-large", Source: "s", SessionID: "x", QoSStatus: bridge.StatusAvailable}
	err := s.Publish(context.Background(), big)
	if err == nil || errors.Is(err, bridge.ErrTooLarge) || !strings.Contains(err.Error(), "liar: ") {
		t.Fatalf("Publish = %v, want a failure naming liar that is not ErrTooLarge", err)
	}
	if plain.Len() != 1 {
		t.Fatalf("plain stored %d", plain.Len())
	}

	// Refused by every broker: nobody stored it, so it is still 413.
	s = NewSet(map[string]Sink{"a": &sizedSink{Sink: memsink.New(), limit: 4, lie: true}, "b": &sizedSink{Sink: memsink.New(), limit: 4, lie: true}})
	if err := s.Publish(context.Background(), big); !errors.Is(err, bridge.ErrTooLarge) {
		t.Fatalf("refused by all: %v", err)
	}
}
