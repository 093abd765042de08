package sinks

import (
	"context"
	"errors"
	"strings"
	"sync"
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
