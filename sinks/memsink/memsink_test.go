package memsink_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/sinks/memsink"
	"github.com/qodbridge/qodbridge/sinks/sinktest"
)

func TestConformance(t *testing.T) {
	sinktest.Run(t, sinktest.HarnessFunc(func(_ context.Context, t testing.TB) (sinktest.Sink, sinktest.Reader) {
		s := memsink.New()
		t.Cleanup(func() { s.Close() })
		return s, sinktest.ReaderFunc(func(context.Context, testing.TB) []sinktest.Stored {
			var out []sinktest.Stored
			for _, ev := range s.Events() {
				out = append(out, sinktest.Stored{Event: ev, Key: ev.SessionID})
			}
			return out
		})
	}))
}

func ev(id string) bridge.Event {
	return bridge.Event{ID: id, Source: "urn:test", SessionID: "s1", QoSStatus: bridge.StatusAvailable}
}

var errOutage = errors.New("broker down")

func TestSetErr(t *testing.T) {
	s := memsink.New()
	if err := s.Ready(t.Context()); err != nil {
		t.Fatalf("Ready = %v", err)
	}
	s.SetErr(errOutage)
	if err := s.Publish(t.Context(), ev("a")); !errors.Is(err, errOutage) {
		t.Fatalf("Publish during outage = %v, want errOutage", err)
	}
	if err := s.Ready(t.Context()); !errors.Is(err, errOutage) {
		t.Fatalf("Ready during outage = %v, want errOutage", err)
	}
	s.SetErr(nil)
	if err := s.Ready(t.Context()); err != nil {
		t.Fatalf("Ready after outage = %v", err)
	}
	if err := s.Publish(t.Context(), ev("b")); err != nil {
		t.Fatalf("Publish after outage: %v", err)
	}
	if got := s.Events(); len(got) != 1 || got[0].ID != "b" {
		t.Fatalf("stored %+v, want only b", got)
	}
}

func TestSetFailureFailsWholeCall(t *testing.T) {
	s := memsink.New()
	s.SetFailure(func(e bridge.Event) error {
		if e.ID == "bad" {
			return errOutage
		}
		return nil
	})
	err := s.Publish(t.Context(), ev("ok1"), ev("bad"), ev("ok2"))
	if !errors.Is(err, errOutage) {
		t.Fatalf("Publish = %v, want errOutage", err)
	}
	if s.Len() != 0 {
		t.Fatalf("a failed call stored %d events, want none", s.Len())
	}
	if err := s.Publish(t.Context(), ev("ok3")); err != nil {
		t.Fatal(err)
	}
	if s.Len() != 1 {
		t.Fatalf("Len = %d, want 1", s.Len())
	}
	s.Reset()
	if s.Len() != 0 {
		t.Fatalf("Len after Reset = %d", s.Len())
	}
}

func TestHoldAndRelease(t *testing.T) {
	s := memsink.New()
	release := s.Hold()
	const n = 3
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- s.Publish(context.Background(), ev(fmt.Sprint(i))) }()
	}
	if err := s.WaitHeld(t.Context(), n); err != nil {
		t.Fatal(err)
	}
	if s.Len() != 0 {
		t.Fatalf("held publishes stored %d events", s.Len())
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	// Close must wait for the held calls: it cannot have returned yet.
	select {
	case <-closed:
		t.Fatal("Close returned while publishes were held")
	default:
	}
	release()
	release() // idempotent
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("held Publish = %v after release", err)
		}
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if err := s.Ready(t.Context()); !errors.Is(err, bridge.ErrClosed) {
		t.Errorf("Ready after Close = %v, want bridge.ErrClosed", err)
	}
	if s.Len() != n || s.Held() != 0 {
		t.Fatalf("Len = %d, Held = %d; want %d, 0", s.Len(), s.Held(), n)
	}
}

func TestHeldPublishHonoursContext(t *testing.T) {
	s := memsink.New()
	release := s.Hold()
	defer release()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Publish(ctx, ev("x")) }()
	if err := s.WaitHeld(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("held Publish after cancel = %v, want context.Canceled", err)
	}
	if s.Len() != 0 || s.Held() != 0 {
		t.Fatalf("Len = %d, Held = %d after cancel; want 0, 0", s.Len(), s.Held())
	}
}

func TestWaitHeldHonoursContext(t *testing.T) {
	s := memsink.New()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.WaitHeld(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitHeld = %v, want context.Canceled", err)
	}
}

func TestZeroValue(t *testing.T) {
	var s memsink.Sink
	if err := s.Publish(t.Context(), ev("z")); err != nil {
		t.Fatal(err)
	}
	if s.Len() != 1 {
		t.Fatal("zero Sink did not store")
	}
}

// Hold parks publishes so a test can observe the ingress while they are in
// flight (429 when too many, 503 on shutdown).
func ExampleSink_Hold() {
	s := memsink.New()
	release := s.Hold()
	done := make(chan error)
	go func() {
		done <- s.Publish(context.Background(), bridge.Event{ID: "1", Source: "urn:x", SessionID: "s", QoSStatus: bridge.StatusAvailable})
	}()
	_ = s.WaitHeld(context.Background(), 1)
	fmt.Println("held:", s.Held(), "stored:", s.Len())
	release()
	fmt.Println("publish:", <-done, "stored:", s.Len())
	// Output:
	// held: 1 stored: 0
	// publish: <nil> stored: 1
}
