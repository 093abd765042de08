package process

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/qodbridge/qodbridge/sinks/kafkasink"
	"github.com/qodbridge/qodbridge/sinks/natssink/natstest"
	"github.com/qodbridge/qodbridge/sinks/qodclient"
)

// untilStatus ranges over a watch up to the first event with status st.
func untilStatus(t *testing.T, c *qodclient.Client, ctx context.Context, id string, st qodclient.QoSStatus) qodclient.StatusEvent {
	t.Helper()
	for ev, err := range c.Watch(ctx, id) {
		if err != nil {
			t.Fatalf("watch %s waiting for %s: %v", id, st, err)
		}
		if ev.SessionID != id {
			t.Fatalf("watch %s yielded %+v", id, ev)
		}
		if ev.QoSStatus == st {
			return ev
		}
	}
	t.Fatalf("watch %s ended before %s", id, st)
	return qodclient.StatusEvent{}
}

// clientLifecycle is a session's life through the Go client: create,
// AVAILABLE (the simulator's notification through the ingress and the
// status flow), delete, UNAVAILABLE / DELETE_REQUESTED, then 404.
func clientLifecycle(t *testing.T, c *qodclient.Client, phone string, opts ...qodclient.CallOption) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := c.Create(ctx, qodclient.CreateSession{
		Device:            &qodclient.Device{PhoneNumber: phone},
		ApplicationServer: qodclient.ApplicationServer{IPv4Address: "233.252.0.2"},
		QoSProfile:        "QOS_L",
		Duration:          60,
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	untilStatus(t, c, ctx, s.SessionID, qodclient.StatusAvailable)
	if got, err := c.Get(ctx, s.SessionID, opts...); err != nil || got.QoSStatus != qodclient.StatusAvailable {
		t.Fatalf("get: %+v, %v", got, err)
	}
	if err := c.Delete(ctx, s.SessionID, opts...); err != nil {
		t.Fatal(err)
	}
	if ev := untilStatus(t, c, ctx, s.SessionID, qodclient.StatusUnavailable); ev.StatusInfo != qodclient.InfoDeleteRequested {
		t.Fatalf("ended with %+v", ev)
	}
	if _, err := c.Get(ctx, s.SessionID, opts...); !errors.Is(err, qodclient.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
}

// TestGoClient drives the assembled zero-config bridge with the Go client:
// over NATS on the micro service and on the streams, and over Kafka only.
func TestGoClient(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(cfgFile, []byte("sim:\n  available_delay: 200ms\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("nats", func(t *testing.T) {
		b, _ := startBridge(t, nil, "-config", cfgFile)
		nc, _ := natstest.Connect(t, b.nats)
		c, err := qodclient.NewNATS(nc, qodclient.NATSOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clientLifecycle(t, c, "+36700000501")
		clientLifecycle(t, c, "+36700000502", qodclient.WithAsync(true))
	})
	t.Run("kafka", func(t *testing.T) {
		kc := newKafka(t, 0)
		defer kc.Close()
		startBridge(t, map[string]string{"QODBRIDGE_KAFKA_BROKERS": kc.ListenAddrs()[0], "QODBRIDGE_NATS_URL": "off"}, "-config", cfgFile)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := qodclient.NewKafka(ctx, kafkasink.ConnOptions{Brokers: kc.ListenAddrs()}, qodclient.KafkaOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clientLifecycle(t, c, "+36700000503")
	})
}

// TestGoClientWatchReadsTheView: after AVAILABLE (10:00), DELETE_REQUESTED
// (10:05) and a retried AVAILABLE (10:01), Watch starts from the session
// view (the session has ended) where the history's last message is the
// late retry; NATSOptions.History reads the history instead.
func TestGoClientWatchReadsTheView(t *testing.T) {
	b, _ := startBridge(t, nil)
	const session = "sess.client-view"
	for _, ev := range []string{
		timedEvent("cv-a", session, "2026-12-03T10:00:00Z", "AVAILABLE", ""),
		timedEvent("cv-d", session, "2026-12-03T10:05:00Z", "UNAVAILABLE", "DELETE_REQUESTED"),
		timedEvent("cv-a2", session, "2026-12-03T10:01:00Z", "AVAILABLE", ""),
	} {
		if code, err := post(t, http.DefaultClient, b.notify, b.token, ev); err != nil || code != http.StatusNoContent {
			t.Fatalf("POST: %d %v", code, err)
		}
	}
	nc, _ := natstest.Connect(t, b.nats)
	first := func(o qodclient.NATSOptions) qodclient.StatusEvent {
		t.Helper()
		c, err := qodclient.NewNATS(nc, o)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for ev, err := range c.Watch(ctx, session) {
			if err != nil {
				t.Fatal(err)
			}
			return ev
		}
		t.Fatal("the watch ended without an event")
		return qodclient.StatusEvent{}
	}
	if ev := first(qodclient.NATSOptions{}); ev.ID != "cv-d" || ev.QoSStatus != qodclient.StatusUnavailable ||
		ev.StatusInfo != qodclient.InfoDeleteRequested || ev.Live || !ev.Time.Equal(time.Date(2026, 12, 3, 10, 5, 0, 0, time.UTC)) {
		t.Fatalf("Watch began with %+v, want the view's UNAVAILABLE / DELETE_REQUESTED of 10:05", ev)
	}
	if ev := first(qodclient.NATSOptions{History: true}); ev.ID != "cv-a2" || ev.Live {
		t.Fatalf("Watch of the history began with %+v, want the late retry cv-a2", ev)
	}
}
