package natssink

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/qodbridge/qodbridge/bridge"
)

// TestSizeCountedAsTheClientDoes: an event whose message is exactly the
// server's max_payload passes fits and the client's own check; one byte
// more fails both, so Publish refuses exactly what the client would.
func TestSizeCountedAsTheClientDoes(t *testing.T) {
	const maxPayload = 4096
	srv, err := StartEmbedded(EmbeddedOptions{Address: "127.0.0.1:0", StoreDir: t.TempDir(),
		Configure: func(o *server.Options) { o.MaxPayload = maxPayload }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, err := Dial(ctx, ConnOptions{URL: srv.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for _, structured := range []bool{false, true} {
		s, err := New(ctx, nc, Options{Structured: structured})
		if err != nil {
			t.Fatal(err)
		}
		ev := bridge.Event{ID: "x", Source: "https://qod.example.com", SessionID: "s", QoSStatus: bridge.StatusAvailable,
			TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
		m := s.message(&ev)
		base := m.msg.Size() - len(m.msg.Subject)
		s.msgs.Put(m)
		// The id is plain ASCII: each byte adds one to the header value
		// or the body, and the Nats-Msg-Id digest keeps its length.
		for _, extra := range []int{0, 1} {
			ev.ID = strings.Repeat("x", 1+maxPayload-base+extra)
			m := s.message(&ev)
			if got := m.msg.Size() - len(m.msg.Subject); got != maxPayload+extra {
				t.Fatalf("structured=%v: message of %d bytes, want %d", structured, got, maxPayload+extra)
			}
			fitsErr := s.fits(m, &ev)
			m.msg.Subject = "size.probe" // a subject no stream captures: core NATS only
			clientErr := nc.PublishMsg(&m.msg)
			if extra == 0 && (fitsErr != nil || clientErr != nil) {
				t.Fatalf("structured=%v: at max_payload: fits %v, client %v", structured, fitsErr, clientErr)
			}
			if extra == 1 && (!errors.Is(fitsErr, bridge.ErrTooLarge) || !errors.Is(clientErr, nats.ErrMaxPayload)) {
				t.Fatalf("structured=%v: one byte over: fits %v, client %v", structured, fitsErr, clientErr)
			}
			err := s.Publish(ctx, ev)
			if (extra == 0) != (err == nil) || extra == 1 && !errors.Is(err, bridge.ErrTooLarge) {
				t.Fatalf("structured=%v, %d bytes over: Publish %v", structured, extra, err)
			}
		}
		s.Close()
	}
}

// TestClientMaxPayloadIsTooLarge: should the client refuse a message that
// fits let through (the server changed), the answer is still ErrTooLarge.
func TestClientMaxPayloadIsTooLarge(t *testing.T) {
	s := &Sink{nc: &nats.Conn{}}
	ev := &bridge.Event{ID: "e"}
	if err := s.publishErr(ev, nats.ErrMaxPayload); !errors.Is(err, bridge.ErrTooLarge) || !errors.Is(err, nats.ErrMaxPayload) {
		t.Fatalf("publishErr(ErrMaxPayload) = %v", err)
	}
	if err := s.publishErr(ev, nats.ErrNoResponders); errors.Is(err, bridge.ErrTooLarge) {
		t.Fatalf("publishErr(ErrNoResponders) = %v", err)
	}
}
