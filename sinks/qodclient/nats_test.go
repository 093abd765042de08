package qodclient_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"testing"
	"time"

	"github.com/qodbridge/qodbridge/bridge/qodsim"
	"github.com/qodbridge/qodbridge/sinks/qodclient"
)

// testDeadline bounds every wait; it guards against hangs and is no timing
// threshold.
const testDeadline = 30 * time.Second

func newNATS(t *testing.T, sim qodsim.Options) (*testBridge, func(qodclient.NATSOptions) *qodclient.Client) {
	t.Helper()
	b, err := startBridge(false, sim)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b, func(o qodclient.NATSOptions) *qodclient.Client {
		t.Helper()
		nc, err := b.connect()
		if err != nil {
			t.Fatal(err)
		}
		c, err := qodclient.NewNATS(nc, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := c.Close(); err != nil {
				t.Error(err)
			}
			nc.Close()
		})
		return c
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), testDeadline)
	t.Cleanup(cancel)
	return ctx
}

func createReq(phone string) qodclient.CreateSession {
	return qodclient.CreateSession{
		Device:            &qodclient.Device{PhoneNumber: phone},
		ApplicationServer: qodclient.ApplicationServer{IPv4Address: "233.252.0.2"},
		QoSProfile:        "QOS_L",
		Duration:          600,
	}
}

// watcher steps through a watch.
type watcher struct {
	t    *testing.T
	next func() (qodclient.StatusEvent, error, bool)
}

func watch(t *testing.T, seq iter.Seq2[qodclient.StatusEvent, error]) *watcher {
	next, stop := iter.Pull2(seq)
	t.Cleanup(stop)
	return &watcher{t: t, next: next}
}

// want reads the next event and checks it.
func (w *watcher) want(session string, st qodclient.QoSStatus, info qodclient.StatusInfo) qodclient.StatusEvent {
	w.t.Helper()
	ev, err, ok := w.next()
	if !ok || err != nil {
		w.t.Fatalf("watch ended (%v) waiting for %s %s", err, session, st)
	}
	if ev.SessionID != session || ev.QoSStatus != st || ev.StatusInfo != info || ev.ID == "" || ev.Source == "" {
		w.t.Fatalf("event %+v, want %s %s %q", ev, session, st, info)
	}
	return ev
}

// until reads events of session up to the first with status st; the first
// event must not be live (the current status comes first).
func (w *watcher) until(session string, st qodclient.QoSStatus) qodclient.StatusEvent {
	w.t.Helper()
	for i := 0; ; i++ {
		ev, err, ok := w.next()
		if !ok || err != nil {
			w.t.Fatalf("watch ended (%v) waiting for %s %s", err, session, st)
		}
		if ev.SessionID != session || (i == 0 && ev.Live) {
			w.t.Fatalf("event %d: %+v, want session %s, the first not live", i, ev, session)
		}
		if ev.QoSStatus == st {
			return ev
		}
	}
}

// TestLifecycle drives a session's whole life through the client, on both
// NATS paths: create, watch it become AVAILABLE, get, extend, list, delete
// and watch it end; then the typed errors of a missing session.
func TestLifecycle(t *testing.T) {
	for _, async := range []bool{false, true} {
		name := map[bool]string{false: "request-reply", true: "async"}[async]
		t.Run(name, func(t *testing.T) {
			_, client := newNATS(t, qodsim.Options{})
			c := client(qodclient.NATSOptions{Async: async})
			ctx := ctxT(t)
			phone := "+3670000000" + map[bool]string{false: "1", true: "2"}[async]

			s, err := c.Create(ctx, createReq(phone))
			if err != nil {
				t.Fatal(err)
			}
			if s.SessionID == "" || s.QoSStatus != qodclient.StatusRequested || s.QoSProfile != "QOS_L" ||
				s.Duration != 600 || s.Device == nil || s.Device.PhoneNumber != phone || s.Sink == "" {
				t.Fatalf("created %+v", s)
			}
			// The watch begins after REQUESTED was stored: its current
			// status is REQUESTED, or already AVAILABLE.
			w := watch(t, c.Watch(ctx, s.SessionID))
			if ev := w.until(s.SessionID, qodclient.StatusAvailable); ev.Time.IsZero() {
				t.Errorf("AVAILABLE without a time: %+v", ev)
			}

			got, err := c.Get(ctx, s.SessionID)
			if err != nil || got.QoSStatus != qodclient.StatusAvailable || got.StartedAt.IsZero() || got.ExpiresAt.IsZero() {
				t.Fatalf("get: %+v, %v", got, err)
			}
			ext, err := c.Extend(ctx, s.SessionID, 60)
			if err != nil || ext.Duration != 660 || !ext.ExpiresAt.After(got.ExpiresAt) {
				t.Fatalf("extend: %+v, %v", ext, err)
			}
			list, err := c.List(ctx, qodclient.Device{PhoneNumber: phone})
			if err != nil || len(list) != 1 || list[0].SessionID != s.SessionID {
				t.Fatalf("list: %+v, %v", list, err)
			}
			if err := c.Delete(ctx, s.SessionID); err != nil {
				t.Fatal(err)
			}
			if ev := w.want(s.SessionID, qodclient.StatusUnavailable, qodclient.InfoDeleteRequested); !ev.Live {
				t.Errorf("a change after the watch began is not live: %+v", ev)
			}

			_, err = c.Get(ctx, s.SessionID)
			var qe *qodclient.Error
			if !errors.As(err, &qe) || qe.Status != 404 || qe.Code != "NOT_FOUND" || qe.Action != "get" || qe.RequestID == "" ||
				!errors.Is(err, qodclient.ErrNotFound) || errors.Is(err, qodclient.ErrInvalid) {
				t.Fatalf("get after delete: %#v", err)
			}
			if err := c.Delete(ctx, s.SessionID); !errors.Is(err, qodclient.ErrNotFound) {
				t.Fatalf("delete after delete: %v", err)
			}
			if list, err := c.List(ctx, qodclient.Device{PhoneNumber: phone}); err != nil || list == nil || len(list) != 0 {
				t.Fatalf("list after delete: %#v, %v", list, err)
			}
		})
	}
}

// TestInvalidCommands: what the bridge or the API refuses as invalid, and
// a conflict, come back as typed errors on both paths.
func TestInvalidCommands(t *testing.T) {
	_, client := newNATS(t, qodsim.Options{})
	for _, async := range []bool{false, true} {
		c := client(qodclient.NATSOptions{Async: async})
		ctx := ctxT(t)
		// The bridge refuses an extend by 0 seconds (400, dead-lettered).
		_, err := c.Extend(ctx, "some-session", 0)
		var qe *qodclient.Error
		if !errors.As(err, &qe) || qe.Status != 400 || !errors.Is(err, qodclient.ErrInvalid) {
			t.Fatalf("async=%v extend 0: %v", async, err)
		}
		// The API refuses an unknown profile (400) and a create without a
		// device (422): both dead-lettered.
		req := createReq("+36700000010")
		req.QoSProfile = "QOS_NONE"
		if _, err := c.Create(ctx, req); !errors.Is(err, qodclient.ErrInvalid) || !errors.As(err, &qe) || qe.Status != 400 {
			t.Fatalf("async=%v unknown profile: %v", async, err)
		}
		req = createReq("")
		req.Device = nil
		if _, err := c.Create(ctx, req); !errors.Is(err, qodclient.ErrInvalid) || !errors.As(err, &qe) || qe.Status != 422 || qe.Code != "MISSING_IDENTIFIER" {
			t.Fatalf("async=%v no device: %v", async, err)
		}
	}
	// A session that ended cannot be extended: 409, an ordinary error.
	c := client(qodclient.NATSOptions{})
	ctx := ctxT(t)
	s, err := c.Create(ctx, createReq("+99999991001"))
	if err != nil {
		t.Fatal(err)
	}
	watch(t, c.Watch(ctx, s.SessionID)).until(s.SessionID, qodclient.StatusUnavailable)
	if _, err := c.Extend(ctx, s.SessionID, 60); !errors.Is(err, qodclient.ErrConflict) || errors.Is(err, qodclient.ErrInvalid) {
		t.Fatalf("extend of an ended session: %v", err)
	}
}

// TestSendAwait: the asynchronous building blocks. A result is found by
// another client later (the results stream keeps it), a command repeated
// with its requestId is applied once, and Await honours ctx's deadline.
func TestSendAwait(t *testing.T) {
	_, client := newNATS(t, qodsim.Options{})
	a, b := client(qodclient.NATSOptions{}), client(qodclient.NATSOptions{})
	ctx := ctxT(t)
	req := createReq("+36700000020")
	id, err := a.Send(ctx, qodclient.Command{Action: qodclient.ActionCreate, RequestID: "create-20", Session: &req})
	if err != nil || id != "create-20" {
		t.Fatalf("send: %q, %v", id, err)
	}
	r, err := b.Await(ctx, id)
	if err != nil || r.RequestID != id || r.Action != qodclient.ActionCreate || r.Status != 201 || r.Session == nil {
		t.Fatalf("await: %+v, %v", r, err)
	}
	// The same create again, on either path: the first outcome.
	for _, async := range []bool{false, true} {
		s, err := a.Create(ctx, req, qodclient.WithRequestID(id), qodclient.WithAsync(async))
		if err != nil || s.SessionID != r.Session.SessionID {
			t.Fatalf("repeated create (async %v): %+v, %v", async, s, err)
		}
	}
	// A generated requestId is returned.
	id2, err := a.Send(ctx, qodclient.Command{Action: qodclient.ActionGet, SessionID: r.Session.SessionID})
	if err != nil || len(id2) != 32 {
		t.Fatalf("send get: %q, %v", id2, err)
	}
	if r2, err := a.Await(ctx, id2); err != nil || r2.Session.SessionID != r.Session.SessionID {
		t.Fatalf("await get: %+v, %v", r2, err)
	}

	// A requestId reused for another command: the bridge answers a
	// delete of another session with a conflict, and the call does not
	// take the earlier result (a success) for its answer.
	victims := []string{r.Session.SessionID}
	for _, phone := range []string{"+36700000021", "+36700000022"} {
		s, err := a.Create(ctx, createReq(phone))
		if err != nil {
			t.Fatal(err)
		}
		victims = append(victims, s.SessionID)
	}
	for i, async := range []bool{false, true} {
		rid := qodclient.WithRequestID(fmt.Sprintf("delete-%d", i))
		if err := a.Delete(ctx, victims[i], rid, qodclient.WithAsync(async)); err != nil {
			t.Fatal(err)
		}
		if err := a.Delete(ctx, victims[i+1], rid, qodclient.WithAsync(async)); !errors.Is(err, qodclient.ErrConflict) {
			t.Fatalf("delete under a reused requestId (async %v): %v", async, err)
		}
	}

	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := a.Await(short, "never-sent"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("await of nothing: %v", err)
	}
	if _, err := a.Send(ctx, qodclient.Command{Action: "frobnicate"}); err == nil {
		t.Fatal("unknown action sent")
	}
}

// TestWatchAll: the current status of every session first (not live), then
// live changes, of sessions the watch did not know; a scenario device's
// NETWORK_TERMINATED comes through typed.
func TestWatchAll(t *testing.T) {
	_, client := newNATS(t, qodsim.Options{})
	c := client(qodclient.NATSOptions{})
	ctx := ctxT(t)
	var ids []string
	for _, phone := range []string{"+36700000030", "+36700000031"} {
		s, err := c.Create(ctx, createReq(phone))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, s.SessionID)
	}
	// Both AVAILABLE before the watch starts.
	for _, id := range ids {
		watch(t, c.Watch(ctx, id)).until(id, qodclient.StatusAvailable)
	}
	w := watch(t, c.WatchAll(ctx))
	var current []string
	for range ids {
		ev, err, ok := w.next()
		if !ok || err != nil || ev.Live || ev.QoSStatus != qodclient.StatusAvailable {
			t.Fatalf("current status: %+v %v %v", ev, err, ok)
		}
		current = append(current, ev.SessionID)
	}
	slices.Sort(current)
	slices.Sort(ids)
	if !slices.Equal(current, ids) {
		t.Fatalf("current sessions %q, want %q", current, ids)
	}
	s, err := c.Create(ctx, createReq("+99999991002"))
	if err != nil {
		t.Fatal(err)
	}
	if ev := w.want(s.SessionID, qodclient.StatusRequested, ""); !ev.Live {
		t.Errorf("not live: %+v", ev)
	}
	w.want(s.SessionID, qodclient.StatusUnavailable, qodclient.InfoNetworkTerminated)
}

// TestDeadlinesAndClose: a call honours ctx; Close ends watches and calls
// in flight, is idempotent, and later calls fail with ErrClosed.
func TestDeadlinesAndClose(t *testing.T) {
	_, client := newNATS(t, qodsim.Options{})
	c := client(qodclient.NATSOptions{})
	ctx := ctxT(t)
	expired, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Get(expired, "x"); !errors.Is(err, context.Canceled) {
		t.Fatalf("get with a cancelled ctx: %v", err)
	}
	for _, ev := range c.Watch(expired, "x") {
		_ = ev
	}
	var werr error
	for _, err := range c.Watch(expired, "x") {
		werr = err
	}
	if !errors.Is(werr, context.Canceled) {
		t.Fatalf("watch with a cancelled ctx: %v", werr)
	}

	// A watch waiting for an event that never comes ends at Close.
	ended := make(chan error, 1)
	go func() {
		var last error
		for _, err := range c.Watch(ctx, "no-such-session") {
			last = err
		}
		ended <- last
	}()
	pending := make(chan error, 1)
	go func() {
		_, err := c.Await(ctx, "never-sent")
		pending <- err
	}()
	// Close while both wait (whether they reached the server yet or not,
	// each must end with ErrClosed or the ctx Close cancelled).
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for what, ch := range map[string]chan error{"watch": ended, "await": pending} {
		select {
		case err := <-ch:
			if !errors.Is(err, qodclient.ErrClosed) && !errors.Is(err, context.Canceled) {
				t.Errorf("%s after Close: %v", what, err)
			}
		case <-ctx.Done():
			t.Fatalf("%s did not end at Close", what)
		}
	}
	if _, err := c.Get(ctx, "x"); !errors.Is(err, qodclient.ErrClosed) {
		t.Fatalf("get after Close: %v", err)
	}
	for _, err := range c.WatchAll(ctx) {
		if !errors.Is(err, qodclient.ErrClosed) {
			t.Fatalf("watch after Close: %v", err)
		}
	}
}
