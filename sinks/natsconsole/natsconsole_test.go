package natsconsole

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/bridge/command"
	"github.com/qodbridge/qodbridge/bridge/command/commandtest"
	"github.com/qodbridge/qodbridge/bridge/console"
	"github.com/qodbridge/qodbridge/bridge/qodsim"
	"github.com/qodbridge/qodbridge/sinks/natscmd"
	"github.com/qodbridge/qodbridge/sinks/natssink"
	"github.com/qodbridge/qodbridge/sinks/natssink/natstest"
)

type fixture struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	sink *natssink.Sink
}

// newFixture starts a JetStream server and the bridge's status sink on
// it (which creates QOD_STATUS as the bridge does).
func newFixture(t *testing.T, structured bool) *fixture {
	t.Helper()
	nc, js := natstest.Server(t)
	sink, err := natssink.New(context.Background(), nc, natssink.Options{Structured: structured})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	return &fixture{nc: nc, js: js, sink: sink}
}

func (f *fixture) publish(t *testing.T, id, session string, st bridge.QoSStatus, info bridge.StatusInfo) {
	t.Helper()
	err := f.sink.Publish(context.Background(), bridge.Event{ID: id, Source: "https://qod.example", Time: "2026-11-23T12:00:00Z",
		SessionID: session, QoSStatus: st, StatusInfo: info})
	if err != nil {
		t.Fatal(err)
	}
}

// collector gathers what Follow delivers.
type collector struct {
	mu       sync.Mutex
	statuses []console.Status
	results  []console.Result
	changed  chan struct{}
}

func newCollector() *collector { return &collector{changed: make(chan struct{}, 1)} }

func (c *collector) onStatus(s console.Status) {
	c.mu.Lock()
	c.statuses = append(c.statuses, s)
	c.mu.Unlock()
	c.poke()
}

func (c *collector) onResult(r console.Result) {
	c.mu.Lock()
	c.results = append(c.results, r)
	c.mu.Unlock()
	c.poke()
}

func (c *collector) poke() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// wait blocks until cond holds on the collected data, for at most 20 s.
func (c *collector) wait(t *testing.T, what string, cond func(st []console.Status, rs []console.Result) bool) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		ok := cond(c.statuses, c.results)
		c.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-c.changed:
		case <-deadline.C:
			c.mu.Lock()
			defer c.mu.Unlock()
			t.Fatalf("timed out waiting for %s; have statuses %+v results %+v", what, c.statuses, c.results)
		}
	}
}

// follow runs feed.Follow in the background until the end of the test.
func follow(t *testing.T, feed *Feed, c *collector) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- feed.Follow(ctx, c.onStatus, c.onResult) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Follow: %v", err)
		}
	})
}

// TestFollowLastPerSessionThenLive: Follow starts with the current status
// of every session (not their histories), then delivers new ones, in both
// wire modes; History gives one session's statuses in order.
func TestFollowLastPerSessionThenLive(t *testing.T) {
	for _, structured := range []bool{false, true} {
		t.Run(fmt.Sprintf("structured=%v", structured), func(t *testing.T) {
			f := newFixture(t, structured)
			f.publish(t, "e1", "s.1", bridge.StatusRequested, "")
			f.publish(t, "e2", "s.1", bridge.StatusAvailable, "")
			f.publish(t, "e3", "s 2", bridge.StatusRequested, "")
			feed := New(f.js, Options{})
			c := newCollector()
			follow(t, feed, c)
			c.wait(t, "the current statuses", func(st []console.Status, _ []console.Result) bool { return len(st) == 2 })
			f.publish(t, "e4", "s.1", bridge.StatusUnavailable, bridge.InfoDeleteRequested)
			c.wait(t, "the live status", func(st []console.Status, _ []console.Result) bool { return len(st) == 3 })
			c.mu.Lock()
			got := append([]console.Status(nil), c.statuses...)
			c.mu.Unlock()
			want := []struct {
				id   string
				st   bridge.QoSStatus
				info bridge.StatusInfo
			}{{"s.1", bridge.StatusAvailable, ""}, {"s 2", bridge.StatusRequested, ""}, {"s.1", bridge.StatusUnavailable, bridge.InfoDeleteRequested}}
			for i, w := range want {
				if got[i].SessionID != w.id || got[i].QoSStatus != w.st || got[i].StatusInfo != w.info {
					t.Errorf("status %d: %+v, want %+v", i, got[i], w)
				}
				if !got[i].Time.Equal(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)) {
					t.Errorf("status %d time %v: want the event's time", i, got[i].Time)
				}
			}

			hist, err := feed.History(context.Background(), "s.1")
			if err != nil {
				t.Fatal(err)
			}
			if len(hist) != 3 || hist[0].QoSStatus != bridge.StatusRequested || hist[1].QoSStatus != bridge.StatusAvailable || hist[2].StatusInfo != bridge.InfoDeleteRequested {
				t.Fatalf("history %+v", hist)
			}
			if hist, err := feed.History(context.Background(), "unknown"); err != nil || len(hist) != 0 {
				t.Fatalf("history of an unknown session: %v, %v", hist, err)
			}
		})
	}
}

func TestHistoryKeepsTheLast(t *testing.T) {
	f := newFixture(t, false)
	for i := range 30 {
		st := bridge.StatusRequested
		if i%2 == 1 {
			st = bridge.StatusAvailable
		}
		f.publish(t, fmt.Sprintf("e%d", i), "s-1", st, "")
		f.publish(t, fmt.Sprintf("o%d", i), "other", st, "")
	}
	f.publish(t, "last", "s-1", bridge.StatusUnavailable, bridge.InfoDurationExpired)
	hist, err := New(f.js, Options{HistoryLimit: 5}).History(context.Background(), "s-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 5 || hist[4].StatusInfo != bridge.InfoDurationExpired || hist[0].SessionID != "s-1" {
		t.Fatalf("history %+v", hist)
	}
}

// TestSubmitRunsThroughTheCommandFlow: a submitted command is a JetStream
// message on qod.commands.<action> that the real intake and engine run;
// its result reaches Follow. The latest results come first, at most
// Options.Results of them.
func TestSubmitRunsThroughTheCommandFlow(t *testing.T) {
	f := newFixture(t, false)
	api := commandtest.NewAPI(t, qodsim.Options{})
	in, err := natscmd.New(context.Background(), f.nc, api.Engine(t, nil), natscmd.Options{Memory: true})
	if err != nil {
		t.Fatal(err)
	}
	commandtest.Start(t, in.Run)
	// Older results: only the last 2 are replayed.
	for i := range 4 {
		r := command.Result{RequestID: fmt.Sprintf("old-%d", i), Action: command.Get, Status: 404}
		if _, err := f.js.Publish(context.Background(), "qod.results.old-"+fmt.Sprint(i), r.JSON()); err != nil {
			t.Fatal(err)
		}
	}
	feed := New(f.js, Options{Results: 2})
	c := newCollector()
	follow(t, feed, c)
	c.wait(t, "the 2 latest results", func(_ []console.Status, rs []console.Result) bool { return len(rs) == 2 })
	if c.results[0].RequestID != "old-2" || c.results[1].RequestID != "old-3" {
		t.Fatalf("replayed %+v", c.results)
	}

	body, _ := json.Marshal(command.Command{Action: command.Create, RequestID: "console-1",
		Session: json.RawMessage(`{"device":{"phoneNumber":"+36721601234567"},"applicationServer":{"ipv4Address":"233.252.0.2"},"qosProfile":"QOS_L","duration":60}`)})
	id, err := feed.Submit(context.Background(), command.Create, body)
	if err != nil || id != "console-1" {
		t.Fatalf("Submit: %q, %v", id, err)
	}
	// The same requestId again (a double click): stored once, run once.
	if _, err := feed.Submit(context.Background(), command.Create, body); err != nil {
		t.Fatal(err)
	}
	c.wait(t, "the create result", func(_ []console.Status, rs []console.Result) bool { return len(rs) == 3 })
	r := c.results[2]
	var s struct{ SessionID string }
	json.Unmarshal(r.Session, &s)
	if !r.OK || r.Status != 201 || r.RequestID != "console-1" || r.SessionID == "" || r.SessionID != s.SessionID || r.Time.IsZero() {
		t.Fatalf("result %+v", r)
	}
	// Without a requestId, Submit sends the one it returns.
	id, err = feed.Submit(context.Background(), command.Delete, []byte(`{"sessionId":"`+s.SessionID+`"}`))
	if err != nil || id == "" {
		t.Fatalf("Submit delete: %q, %v", id, err)
	}
	c.wait(t, "the delete result", func(_ []console.Status, rs []console.Result) bool { return len(rs) == 4 })
	if r := c.results[3]; r.RequestID != id || !r.OK || r.Status != 204 {
		t.Fatalf("delete result %+v", r)
	}
	st, _ := f.js.Stream(context.Background(), "QOD_RESULTS")
	if info, _ := st.Info(context.Background()); info.State.Msgs != 6 {
		t.Fatalf("QOD_RESULTS holds %d messages, want 6 (the double submit ran once)", info.State.Msgs)
	}

	if _, err := feed.Submit(context.Background(), command.Delete, []byte(`{}`)); !errors.Is(err, command.ErrInvalid) {
		t.Fatalf("invalid command: %v", err)
	}
	f.nc.Close()
	if _, err := feed.Submit(context.Background(), command.Delete, []byte(`{"sessionId":"x"}`)); !errors.Is(err, console.ErrUnavailable) {
		t.Fatalf("NATS closed: %v, want ErrUnavailable", err)
	}
}

// TestFollowWithoutResultStream: with the command flow off everywhere
// there is no QOD_RESULTS; statuses are still followed.
func TestFollowWithoutResultStream(t *testing.T) {
	f := newFixture(t, false)
	f.publish(t, "e1", "s-1", bridge.StatusAvailable, "")
	c := newCollector()
	follow(t, New(f.js, Options{}), c)
	c.wait(t, "the status", func(st []console.Status, _ []console.Result) bool { return len(st) == 1 })
}

func TestFollowFailsWithoutStatusStream(t *testing.T) {
	_, js := natstest.Server(t)
	c := newCollector()
	err := New(js, Options{}).Follow(context.Background(), c.onStatus, c.onResult)
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("Follow without QOD_STATUS: %v", err)
	}
}
