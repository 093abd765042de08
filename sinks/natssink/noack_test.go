package natssink_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qodbridge/qodbridge/sinks/natssink"
)

// silentStream runs a core NATS server (no JetStream) on which a fake
// answers the stream lookup as if QOD_STATUS existed, and a subscriber takes
// every status message without ever acknowledging it: a broker that
// accepts publishes and never acks. Each received message is reported on
// the returned channel.
func silentStream(t *testing.T) (*server.Server, <-chan *nats.Msg) {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(testDeadline) {
		t.Fatal("server not ready")
	}
	nc := dial(t, srv)
	info := map[string]any{
		"type":    "io.nats.jetstream.api.v1.stream_info_response",
		"created": time.Now().UTC(),
		"config": jetstream.StreamConfig{
			Name: natssink.DefaultStreamName, Subjects: []string{"qod.status.>"},
			Retention: jetstream.LimitsPolicy, Storage: jetstream.FileStorage,
			Replicas: 1, Duplicates: 2 * time.Minute, MaxBytes: -1, MaxMsgs: -1,
		},
		"state": jetstream.StreamState{},
	}
	body, err := json.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Subscribe("$JS.API.STREAM.INFO."+natssink.DefaultStreamName, func(m *nats.Msg) { m.Respond(body) }); err != nil {
		t.Fatal(err)
	}
	got := make(chan *nats.Msg, 64)
	if _, err := nc.Subscribe("qod.status.>", func(m *nats.Msg) { got <- m }); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return srv, got
}

func received(t *testing.T, got <-chan *nats.Msg) *nats.Msg {
	t.Helper()
	select {
	case m := <-got:
		return m
	case <-time.After(testDeadline):
		t.Fatal("the publish never reached the server")
		return nil
	}
}

func TestNoAckTimesOut(t *testing.T) {
	srv, got := silentStream(t)
	s := open(t, srv, natssink.Options{PublishTimeout: 200 * time.Millisecond})
	err := publishWithin(t, s, context.Background(), event("silent", "1"))
	if !errors.Is(err, natssink.ErrUnavailable) || !errors.Is(err, jetstream.ErrAsyncPublishTimeout) ||
		!strings.Contains(err.Error(), "no ack within 200ms") {
		t.Fatalf("Publish with no ack = %v, want ErrUnavailable wrapping the ack timeout, naming the timeout", err)
	}
	received(t, got)
}

func TestCancelWhileAwaitingAck(t *testing.T) {
	srv, got := silentStream(t)
	s := open(t, srv, natssink.Options{PublishTimeout: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Publish(ctx, event("silent", "1"), event("silent", "2")) }()
	received(t, got)
	received(t, got) // both are in flight, awaiting acks
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Publish after cancel = %v, want context.Canceled", err)
		}
	case <-time.After(testDeadline):
		t.Fatal("Publish ignored the cancellation")
	}
	// The slots were given back: a new publish gets through to the server.
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	go func() { done <- s.Publish(ctx2, event("silent", "3")) }()
	if m := received(t, got); !strings.HasSuffix(m.Subject, ".silent") {
		t.Errorf("unexpected subject %s", m.Subject)
	}
	cancel2()
	<-done
}

func TestMaxPendingBoundsInFlight(t *testing.T) {
	srv, got := silentStream(t)
	s := open(t, srv, natssink.Options{PublishTimeout: time.Hour, MaxPending: 2})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 2)
	for _, id := range []string{"1", "2"} {
		go func() { done <- s.Publish(ctx, event("p"+id, id)) }()
	}
	received(t, got)
	received(t, got)

	// A third caller finds no slot and waits for one, within its ctx.
	ctx3, cancel3 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel3()
	err := publishWithin(t, s, ctx3, event("p3", "3"))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "pending slot") {
		t.Fatalf("third Publish = %v, want a deadline while waiting for a pending slot", err)
	}
	select {
	case m := <-got:
		t.Fatalf("a publish beyond MaxPending reached the server: %s", m.Subject)
	default:
	}
	cancel()
	for range 2 {
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("held publish = %v, want context.Canceled", err)
		}
	}
}
