package natsconsole

import (
	"context"
	"testing"
	"time"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/bridge/console"
	"github.com/qodbridge/qodbridge/sinks/natsview"
)

// TestFollowView: with the session view, Follow delivers each session's
// view entry (when it was received included), then its changes; a late
// retried AVAILABLE after the end changes nothing, so the console never
// shows an ended session as AVAILABLE.
func TestFollowView(t *testing.T) {
	f := newFixture(t, false)
	ctx := context.Background()
	view, err := natsview.Open(ctx, f.js, natsview.Options{Memory: true})
	if err != nil {
		t.Fatal(err)
	}
	received := time.Date(2026, 12, 3, 10, 0, 1, 0, time.UTC)
	ev := func(id, tm string, st bridge.QoSStatus, info bridge.StatusInfo) bridge.Event {
		return bridge.Event{ID: id, Source: "p", Time: tm, SessionID: "s.v", QoSStatus: st, StatusInfo: info}
	}
	if err := view.UpdateView(ctx, received, ev("a", "2026-12-03T10:00:00Z", bridge.StatusAvailable, "")); err != nil {
		t.Fatal(err)
	}
	feed := New(f.js, Options{ViewBucket: natsview.DefaultBucket})
	c := newCollector()
	follow(t, feed, c)
	c.wait(t, "the view entry", func(st []console.Status, _ []console.Result) bool { return len(st) == 1 })
	if err := view.UpdateView(ctx, received.Add(5*time.Minute), ev("d", "2026-12-03T10:05:00Z", bridge.StatusUnavailable, bridge.InfoDeleteRequested),
		ev("a2", "2026-12-03T10:01:00Z", bridge.StatusAvailable, "")); err != nil {
		t.Fatal(err)
	}
	c.wait(t, "the end", func(st []console.Status, _ []console.Result) bool { return len(st) == 2 })
	c.mu.Lock()
	defer c.mu.Unlock()
	first, last := c.statuses[0], c.statuses[1]
	if first.QoSStatus != bridge.StatusAvailable || !first.Received.Equal(received) || !first.Time.Equal(received.Add(-time.Second)) {
		t.Errorf("first %+v", first)
	}
	if last.QoSStatus != bridge.StatusUnavailable || last.StatusInfo != bridge.InfoDeleteRequested || !last.Received.Equal(received.Add(5*time.Minute)) {
		t.Errorf("last %+v", last)
	}
}
