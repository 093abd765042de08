package natssink_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/sinks/natssink"
)

// TestTooLargeForMaxPayload: against a server with a small max_payload, an
// event that cannot fit is refused with bridge.ErrTooLarge before anything
// of its call is published, alone or in a batch, in either mode; the Sink
// then publishes what fits.
func TestTooLargeForMaxPayload(t *testing.T) {
	srv, err := natssink.StartEmbedded(natssink.EmbeddedOptions{Address: "127.0.0.1:0", StoreDir: t.TempDir(),
		Configure: func(o *server.Options) { o.MaxPayload = 2048 }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopServer(srv) })
	nc := dial(t, srv)
	big := event("s-big", "big")
	big.Source = "https://qod.example.com/" + strings.Repeat("x", 2048)
	for _, structured := range []bool{false, true} {
		n := uniq()
		s := open(t, srv, natssink.Options{Prefix: "m" + n, Stream: natssink.StreamOptions{Name: "M" + n}, Structured: structured})
		for name, evs := range map[string][]bridge.Event{
			"alone":           {big},
			"last of a batch": {event("s-1", "a"), event("s-2", "b"), big},
			"first of three":  {big, event("s-1", "c"), event("s-2", "d")},
		} {
			err := publishWithin(t, s, ctxT(t), evs...)
			if !errors.Is(err, bridge.ErrTooLarge) || errors.Is(err, natssink.ErrUnavailable) {
				t.Fatalf("structured=%v %s: Publish = %v, want ErrTooLarge", structured, name, err)
			}
			if !strings.Contains(err.Error(), "max_payload is 2048") {
				t.Errorf("error %q does not say the limit", err)
			}
			if err := s.CheckSize(evs...); !errors.Is(err, bridge.ErrTooLarge) {
				t.Errorf("CheckSize = %v", err)
			}
		}
		if got := stored(ctxT(t), t, nc, "M"+n); len(got) != 0 {
			t.Fatalf("structured=%v: %d events stored from calls refused as too large", structured, len(got))
		}
		ok := []bridge.Event{event("s-1", "ok-1"), event("s-2", "ok-2")}
		if err := s.CheckSize(ok...); err != nil {
			t.Fatalf("CheckSize of events that fit: %v", err)
		}
		if err := publishWithin(t, s, ctxT(t), ok...); err != nil {
			t.Fatalf("after the refusals: %v", err)
		}
		if got := stored(ctxT(t), t, nc, "M"+n); len(got) != 2 {
			t.Fatalf("stored %d, want 2", len(got))
		}
	}
}

// TestTooLargeForTheStream: an operator's stream with max_msg_size is
// checked before publishing, and should it be lowered after the Sink
// looked, the server's refusal is ErrTooLarge as well.
func TestTooLargeForTheStream(t *testing.T) {
	srv := runServer(t, "", t.TempDir())
	nc := dial(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	n := uniq()
	cfg := jetstream.StreamConfig{Name: "X" + n, Subjects: []string{"x" + n + ".status.>"}, Storage: jetstream.FileStorage, MaxMsgSize: 1500}
	if _, err := js.CreateStream(ctxT(t), cfg); err != nil {
		t.Fatal(err)
	}
	s := open(t, srv, natssink.Options{Prefix: "x" + n, Stream: natssink.StreamOptions{Name: "X" + n}})
	big := event("s-big", "big")
	big.Source = "https://qod.example.com/" + strings.Repeat("x", 1500)
	err = publishWithin(t, s, ctxT(t), event("s-1", "a"), big)
	if !errors.Is(err, bridge.ErrTooLarge) || !strings.Contains(err.Error(), "takes at most 1500") {
		t.Fatalf("Publish over max_msg_size = %v", err)
	}
	mid := event("s-mid", "mid")
	mid.Source = "https://qod.example.com/" + strings.Repeat("x", 800)
	if err := publishWithin(t, s, ctxT(t), mid); err != nil {
		t.Fatalf("an event under max_msg_size: %v", err)
	}
	cfg.MaxMsgSize = 700
	if _, err := js.UpdateStream(ctxT(t), cfg); err != nil {
		t.Fatal(err)
	}
	mid.ID = "mid-2"
	err = publishWithin(t, s, ctxT(t), mid)
	var apiErr *jetstream.APIError
	if !errors.Is(err, bridge.ErrTooLarge) || !errors.As(err, &apiErr) {
		t.Fatalf("Publish over a max_msg_size lowered since = %v, want ErrTooLarge wrapping the server's answer", err)
	}
	// The refusal made the Sink look at the stream again: now it checks
	// before publishing.
	mid.ID = "mid-3"
	if err := publishWithin(t, s, ctxT(t), mid); !errors.Is(err, bridge.ErrTooLarge) || !strings.Contains(err.Error(), "takes at most 700") {
		t.Fatalf("Publish after the refusal = %v", err)
	}
	if got := stored(ctxT(t), t, nc, "X"+n); len(got) != 1 || got[0].Event.ID != "mid" {
		t.Fatalf("stored %d events, want only the one that fit", len(got))
	}
}
