package qodclient_test

import (
	"errors"
	"testing"

	"github.com/qodbridge/qodbridge/bridge/qodsim"
	"github.com/qodbridge/qodbridge/sinks/kafkasink"
	"github.com/qodbridge/qodbridge/sinks/qodclient"
)

func newKafka(t *testing.T) (*testBridge, *qodclient.Client) {
	t.Helper()
	b, err := startBridge(true, qodsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	c, err := qodclient.NewKafka(ctxT(t), kafkasink.ConnOptions{Brokers: b.Kafka}, qodclient.KafkaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	return b, c
}

// TestKafkaLifecycle is TestLifecycle on the Kafka command flow: commands
// on qod.commands, results awaited on qod.results, statuses watched on
// qod.status by key.
func TestKafkaLifecycle(t *testing.T) {
	_, c := newKafka(t)
	ctx := ctxT(t)
	const phone = "+36700000101"
	s, err := c.Create(ctx, createReq(phone))
	if err != nil {
		t.Fatal(err)
	}
	if s.SessionID == "" || s.QoSStatus != qodclient.StatusRequested {
		t.Fatalf("created %+v", s)
	}
	w := watch(t, c.Watch(ctx, s.SessionID))
	w.until(s.SessionID, qodclient.StatusAvailable)
	if got, err := c.Get(ctx, s.SessionID); err != nil || got.QoSStatus != qodclient.StatusAvailable {
		t.Fatalf("get: %+v, %v", got, err)
	}
	if ext, err := c.Extend(ctx, s.SessionID, 60); err != nil || ext.Duration != 660 {
		t.Fatalf("extend: %+v, %v", ext, err)
	}
	if list, err := c.List(ctx, qodclient.Device{PhoneNumber: phone}); err != nil || len(list) != 1 || list[0].SessionID != s.SessionID {
		t.Fatalf("list: %+v, %v", list, err)
	}
	if err := c.Delete(ctx, s.SessionID); err != nil {
		t.Fatal(err)
	}
	if ev := w.want(s.SessionID, qodclient.StatusUnavailable, qodclient.InfoDeleteRequested); !ev.Live {
		t.Errorf("not live: %+v", ev)
	}
	var qe *qodclient.Error
	if _, err := c.Get(ctx, s.SessionID); !errors.As(err, &qe) || qe.Code != "NOT_FOUND" || !errors.Is(err, qodclient.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if _, err := c.Extend(ctx, s.SessionID, 0); !errors.Is(err, qodclient.ErrInvalid) {
		t.Fatalf("extend by 0: %v", err)
	}
	if _, err := c.Get(ctx, s.SessionID, qodclient.WithAsync(false)); err == nil {
		t.Fatal("request/reply on Kafka did not fail")
	}

	// Send, then Await; a repeated create answers with the first outcome.
	req := createReq("+36700000102")
	id, err := c.Send(ctx, qodclient.Command{Action: qodclient.ActionCreate, Session: &req})
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Await(ctx, id)
	if err != nil || r.Status != 201 || r.Session == nil {
		t.Fatalf("await: %+v, %v", r, err)
	}
	if again, err := c.Create(ctx, req, qodclient.WithRequestID(id)); err != nil || again.SessionID != r.Session.SessionID {
		t.Fatalf("repeated create: %+v, %v", again, err)
	}

	// WatchAll: the current status of both sessions first, then live.
	watch(t, c.Watch(ctx, r.Session.SessionID)).until(r.Session.SessionID, qodclient.StatusAvailable)
	all := watch(t, c.WatchAll(ctx))
	seen := map[string]qodclient.StatusEvent{}
	for len(seen) < 2 {
		ev, err, ok := all.next()
		if !ok || err != nil || ev.Live {
			t.Fatalf("current status: %+v %v %v", ev, err, ok)
		}
		seen[ev.SessionID] = ev
	}
	if seen[s.SessionID].QoSStatus != qodclient.StatusUnavailable || seen[r.Session.SessionID].QoSStatus != qodclient.StatusAvailable {
		t.Fatalf("current statuses %+v", seen)
	}
	if err := c.Delete(ctx, r.Session.SessionID, qodclient.WithRequestID("kafka-delete")); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, s.SessionID, qodclient.WithRequestID("kafka-delete")); !errors.Is(err, qodclient.ErrConflict) {
		t.Fatalf("delete under a reused requestId: %v", err)
	}
	if ev := all.want(r.Session.SessionID, qodclient.StatusUnavailable, qodclient.InfoDeleteRequested); !ev.Live {
		t.Errorf("not live: %+v", ev)
	}
}
