package natssink_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/sinks/natssink"
	"github.com/qodbridge/qodbridge/sinks/sinktest"
)

// harness gives each case its own subject prefix and stream on one shared
// server, and reads back through a connection of its own.
func harness(srv *server.Server, reader *nats.Conn, structured bool) sinktest.Harness {
	return sinktest.HarnessFunc(func(ctx context.Context, t testing.TB) (sinktest.Sink, sinktest.Reader) {
		n := uniq()
		opts := natssink.Options{Prefix: "t" + n + ".qod", Stream: natssink.StreamOptions{Name: "S" + n}, Structured: structured}
		s, err := natssink.Open(ctx, connOpts(srv), opts)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s, sinktest.ReaderFunc(func(ctx context.Context, t testing.TB) []sinktest.Stored {
			t.Helper()
			out := stored(ctx, t, reader, opts.Stream.Name)
			for _, st := range out {
				if want := natssink.Subject(opts.Prefix, st.Event.SessionID); st.Key != want {
					t.Errorf("event of session %q on subject %q, want %q", st.Event.SessionID, st.Key, want)
				}
			}
			return out
		})
	})
}

func TestConformance(t *testing.T) {
	srv := runServer(t, "", t.TempDir())
	sinktest.Run(t, harness(srv, dial(t, srv), false))
}

func TestConformanceStructured(t *testing.T) {
	srv := runServer(t, "", t.TempDir())
	sinktest.Run(t, harness(srv, dial(t, srv), true))
}

func TestWireFormat(t *testing.T) {
	srv := runServer(t, "", t.TempDir())
	nc := dial(t, srv)
	for _, structured := range []bool{false, true} {
		n := uniq()
		s := open(t, srv, natssink.Options{Prefix: "w" + n, Stream: natssink.StreamOptions{Name: "W" + n}, Structured: structured})
		ev := event("a.b c", "wire-1")
		ev.TraceState = "k=v"
		if err := s.Publish(ctxT(t), ev); err != nil {
			t.Fatal(err)
		}
		got := stored(ctxT(t), t, nc, "W"+n)
		if len(got) != 1 {
			t.Fatalf("stored %d, want 1", len(got))
		}
		m := got[0]
		if want := "w" + n + ".status.a%2Eb%20c"; m.Key != want {
			t.Errorf("subject %q, want %q", m.Key, want)
		}
		if m.Headers["Nats-Msg-Id"] != ev.DedupKey() {
			t.Errorf("Nats-Msg-Id %q, want DedupKey %q", m.Headers["Nats-Msg-Id"], ev.DedupKey())
		}
		if _, ok := m.Headers["traceparent"]; ok {
			t.Error("plain traceparent header set: nats-server would parse every message's headers")
		}
		wantCT, wantBody := "application/json", ev.Data()
		if structured {
			wantCT, wantBody = "application/cloudevents+json", ev.StructuredJSON()
			if _, ok := m.Headers["ce-id"]; ok {
				t.Error("structured mode carries ce- headers")
			}
		} else if m.Headers["ce-subject"] != "a.b%20c" {
			t.Errorf("ce-subject %q, want percent-encoded sessionId", m.Headers["ce-subject"])
		}
		if m.Headers["Content-Type"] != wantCT || !bytes.Equal(m.Data, wantBody) {
			t.Errorf("structured=%v: Content-Type %q body %s; want %q %s", structured, m.Headers["Content-Type"], m.Data, wantCT, wantBody)
		}
	}
	if got, want := natssink.Subject("", "x.y"), "qod.status.x%2Ey"; got != want {
		t.Errorf("Subject default prefix = %q, want %q", got, want)
	}
}

// The Sink reuses a message's header map and body buffer once the broker
// answered: nothing of one event may show in the next.
func TestReusedMessagesCarryNothingOver(t *testing.T) {
	srv := runServer(t, "", t.TempDir())
	nc := dial(t, srv)
	full := event("a-rather-long-session-id-0123456789abcdef", "reuse-1")
	full.TraceState, full.StatusInfo, full.QoSStatus = "k=v", bridge.InfoDurationExpired, bridge.StatusUnavailable
	bare := bridge.Event{ID: "reuse-2", Source: "https://qod.example.com", SessionID: "s", QoSStatus: bridge.StatusAvailable}
	escaped := event("s2", "reuse-3") // not plain: the body comes from the bridge package
	escaped.Source = "urn:x?a=1&b=<2>"
	evs := []bridge.Event{full, bare, escaped, bare}
	evs[3].ID = "reuse-4"
	for _, structured := range []bool{false, true} {
		n := uniq()
		s := open(t, srv, natssink.Options{Prefix: "r" + n, Stream: natssink.StreamOptions{Name: "R" + n}, Structured: structured})
		for _, ev := range evs { // one at a time: each publish reuses the last one's message
			if err := s.Publish(ctxT(t), ev); err != nil {
				t.Fatal(err)
			}
		}
		got := stored(ctxT(t), t, nc, "R"+n)
		if len(got) != len(evs) {
			t.Fatalf("structured=%v: stored %d, want %d", structured, len(got), len(evs))
		}
		for i, ev := range evs {
			m := got[i]
			if m.Event != ev {
				t.Errorf("structured=%v: event %d stored as\n%+v\nwant\n%+v", structured, i, m.Event, ev)
			}
			wantBody := ev.Data()
			if structured {
				wantBody = ev.StructuredJSON()
			}
			if !bytes.Equal(m.Data, wantBody) || m.Headers["Nats-Msg-Id"] != ev.DedupKey() || m.Key != natssink.Subject("r"+n, ev.SessionID) {
				t.Errorf("structured=%v: event %d: subject %s Nats-Msg-Id %s body %s; want %s %s %s", structured, i,
					m.Key, m.Headers["Nats-Msg-Id"], m.Data, natssink.Subject("r"+n, ev.SessionID), ev.DedupKey(), wantBody)
			}
			if !structured && ev.TraceParent == "" {
				for _, h := range []string{"ce-time", "ce-traceparent", "ce-tracestate"} {
					if v, ok := m.Headers[h]; ok {
						t.Errorf("event %d has no %s, but its message carries %q", i, h, v)
					}
				}
			}
		}
	}
}

func TestDeduplication(t *testing.T) {
	srv := runServer(t, "", t.TempDir())
	s := open(t, srv, natssink.Options{})
	ev := event("dup-session", "dup-1")
	for i := range 2 {
		if err := s.Publish(ctxT(t), ev); err != nil {
			t.Fatalf("publish %d of the same event: %v", i+1, err)
		}
	}
	// A resend with a changed body is still the same notification.
	resent := ev
	resent.QoSStatus = bridge.StatusUnavailable
	if err := s.Publish(ctxT(t), resent, event("dup-session", "dup-2"), ev); err != nil {
		t.Fatalf("batch with duplicates: %v", err)
	}
	got := stored(ctxT(t), t, dial(t, srv), natssink.DefaultStreamName)
	var ids []string
	for _, st := range got {
		ids = append(ids, st.Event.ID)
	}
	if strings.Join(ids, ",") != "dup-1,dup-2" {
		t.Errorf("stored %q, want [dup-1 dup-2]", ids)
	}
	if got[0].Event != ev {
		t.Errorf("first copy kept: got %+v, want %+v", got[0].Event, ev)
	}
}

func TestStreamCreatedAsConfigured(t *testing.T) {
	srv := runServer(t, "", t.TempDir())
	nc := dial(t, srv)
	s := open(t, srv, natssink.Options{})
	cfg := streamInfo(t, nc, natssink.DefaultStreamName).Config
	if s.StreamName() != "QOD_STATUS" || len(cfg.Subjects) != 1 || cfg.Subjects[0] != "qod.status.>" ||
		cfg.Storage != jetstream.FileStorage || cfg.Retention != jetstream.LimitsPolicy ||
		cfg.Duplicates != natssink.DefaultDuplicateWindow || cfg.Replicas != 1 || cfg.MaxAge != 0 {
		t.Errorf("default stream config %+v", cfg)
	}

	open(t, srv, natssink.Options{Prefix: "p.q", Stream: natssink.StreamOptions{
		Name: "CUSTOM", MaxAge: time.Hour, MaxBytes: 1 << 20, DuplicateWindow: 30 * time.Second, Memory: true,
	}})
	cfg = streamInfo(t, nc, "CUSTOM").Config
	if cfg.Subjects[0] != "p.q.status.>" || cfg.Storage != jetstream.MemoryStorage || cfg.MaxAge != time.Hour ||
		cfg.MaxBytes != 1<<20 || cfg.Duplicates != 30*time.Second {
		t.Errorf("custom stream config %+v", cfg)
	}
}

func TestExistingStreamMismatch(t *testing.T) {
	srv := runServer(t, "", t.TempDir())
	nc := dial(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		cfg  jetstream.StreamConfig
		want []string
	}{
		{"subjects", jetstream.StreamConfig{Subjects: []string{"other.>"}}, []string{`subjects ["other.>"], want ["PFX.status.>"]`}},
		{"extra subject", jetstream.StreamConfig{Subjects: []string{"PFX.status.>", "more.>"}}, []string{"subjects"}},
		{"storage", jetstream.StreamConfig{Subjects: []string{"PFX.status.>"}, Storage: jetstream.MemoryStorage}, []string{"storage Memory, want File"}},
		{"retention and storage", jetstream.StreamConfig{Subjects: []string{"PFX.status.>"}, Retention: jetstream.InterestPolicy, Storage: jetstream.MemoryStorage},
			[]string{"retention Interest, want Limits", "storage Memory"}},
		{"no ack", jetstream.StreamConfig{Subjects: []string{"PFX.status.>"}, NoAck: true}, []string{"no_ack"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := uniq()
			pfx := "m" + n
			c.cfg.Name = "M" + n
			for i, s := range c.cfg.Subjects {
				c.cfg.Subjects[i] = strings.ReplaceAll(s, "PFX", pfx)
			}
			if _, err := js.CreateStream(ctxT(t), c.cfg); err != nil {
				t.Fatal(err)
			}
			before := streamInfo(t, nc, c.cfg.Name).Config
			_, err := natssink.New(ctxT(t), nc, natssink.Options{Prefix: pfx, Stream: natssink.StreamOptions{Name: c.cfg.Name}})
			if !errors.Is(err, natssink.ErrStreamMismatch) {
				t.Fatalf("New = %v, want ErrStreamMismatch", err)
			}
			for _, w := range c.want {
				if w = strings.ReplaceAll(w, "PFX", pfx); !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
			after := streamInfo(t, nc, c.cfg.Name).Config
			if !equalJSON(t, before, after) {
				t.Errorf("stream altered:\nbefore %+v\n after %+v", before, after)
			}
		})
	}

	t.Run("tunables differ: warn, keep", func(t *testing.T) {
		n := uniq()
		cfg := jetstream.StreamConfig{Name: "T" + n, Subjects: []string{"t" + n + ".status.>"}, Duplicates: time.Minute, MaxAge: time.Hour}
		if _, err := js.CreateStream(ctxT(t), cfg); err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		s, err := natssink.New(ctxT(t), nc, natssink.Options{
			Prefix: "t" + n, Stream: natssink.StreamOptions{Name: "T" + n},
			Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		})
		if err != nil {
			t.Fatalf("New with a stream differing in tunables: %v", err)
		}
		defer s.Close()
		if !strings.Contains(logs.String(), "duplicate_window=1m0s") || !strings.Contains(logs.String(), "max_age=1h0m0s") {
			t.Errorf("no warning naming the differences, log: %s", logs.String())
		}
		if got := streamInfo(t, nc, "T"+n).Config; got.Duplicates != time.Minute || got.MaxAge != time.Hour {
			t.Errorf("stream altered: %+v", got)
		}
	})
}

func equalJSON(t testing.TB, a, b any) bool {
	t.Helper()
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	return bytes.Equal(ja, jb)
}

func TestInvalidOptions(t *testing.T) {
	srv := runServer(t, "", t.TempDir())
	nc := dial(t, srv)
	for _, o := range []natssink.Options{
		{Prefix: "a.*"},
		{Prefix: "a..b"},
		{Prefix: "a b"},
		{Stream: natssink.StreamOptions{Name: "A.B"}},
		{Stream: natssink.StreamOptions{MaxAge: 5 * time.Second}}, // the default 10s window exceeds it
		{Stream: natssink.StreamOptions{Replicas: -1}},
		{MaxPending: -1},
		{PublishTimeout: -time.Second},
	} {
		if _, err := natssink.New(ctxT(t), nc, o); !errors.Is(err, natssink.ErrInvalidOptions) {
			t.Errorf("New(%+v) = %v, want ErrInvalidOptions", o, err)
		}
	}
	if _, err := natssink.New(ctxT(t), nil, natssink.Options{}); !errors.Is(err, natssink.ErrInvalidOptions) {
		t.Errorf("New(nil conn) = %v, want ErrInvalidOptions", err)
	}
}

func TestServerDownFailsWithinTimeout(t *testing.T) {
	srv := runServer(t, "", t.TempDir())
	s := open(t, srv, natssink.Options{PublishTimeout: 2 * time.Second})
	if err := s.Ready(ctxT(t)); err != nil {
		t.Fatalf("Ready with the server up: %v", err)
	}
	if err := s.Publish(ctxT(t), event("down", "before")); err != nil {
		t.Fatal(err)
	}
	stopServer(srv)

	for i, ev := range []bridge.Event{event("down", "during-1"), event("down", "during-2")} {
		err := publishWithin(t, s, context.Background(), ev)
		t.Logf("publish %d with the server down: %v", i, err)
		if !errors.Is(err, natssink.ErrUnavailable) {
			t.Errorf("publish %d with the server down = %v, want ErrUnavailable", i, err)
		}
	}
	if err := s.Ready(ctxT(t)); !errors.Is(err, natssink.ErrUnavailable) {
		t.Errorf("Ready with the server down = %v, want ErrUnavailable", err)
	}
	// Close does not hang on a dead connection either.
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(testDeadline):
		t.Fatal("Close hangs with the server down")
	}
}

// restart stops srv and starts a server on the same address with dir,
// returning once the sink's connection is back.
func restart(t *testing.T, srv *server.Server, nc *nats.Conn, dir string, during func()) *server.Server {
	t.Helper()
	addr := serverAddr(srv)
	reconnected := nc.StatusChanged(nats.CONNECTED)
	defer nc.RemoveStatusListener(reconnected)
	stopServer(srv)
	if during != nil {
		during()
	}
	srv2 := runServer(t, addr, dir)
	select {
	case <-reconnected:
	case <-time.After(testDeadline):
		t.Fatal("sink did not reconnect")
	}
	return srv2
}

func TestRecoveryAfterRestartSameStore(t *testing.T) {
	dir := t.TempDir()
	srv := runServer(t, "", dir)
	s := open(t, srv, natssink.Options{PublishTimeout: 2 * time.Second})
	if err := s.Publish(ctxT(t), event("r", "before")); err != nil {
		t.Fatal(err)
	}
	srv = restart(t, srv, s.Conn(), dir, func() {
		if err := publishWithin(t, s, context.Background(), event("r", "during")); !errors.Is(err, natssink.ErrUnavailable) {
			t.Errorf("publish during the outage = %v, want ErrUnavailable", err)
		}
	})
	if err := s.Publish(ctxT(t), event("r", "after")); err != nil {
		t.Fatalf("first publish after the restart: %v", err)
	}
	var ids []string
	for _, st := range stored(ctxT(t), t, dial(t, srv), natssink.DefaultStreamName) {
		ids = append(ids, st.Event.ID)
	}
	if strings.Join(ids, ",") != "before,after" {
		t.Errorf("stored %q, want [before after]", ids)
	}
}

func TestRecoveryAfterRestartWithoutStore(t *testing.T) {
	srv := runServer(t, "", t.TempDir())
	s := open(t, srv, natssink.Options{PublishTimeout: 2 * time.Second})
	if err := s.Publish(ctxT(t), event("r", "before")); err != nil {
		t.Fatal(err)
	}
	// The server comes back with an empty store: the stream is gone, and
	// no publish failed in between to hint at it.
	srv = restart(t, srv, s.Conn(), t.TempDir(), nil)
	err := s.Publish(ctxT(t), event("r", "lost"))
	if !errors.Is(err, natssink.ErrUnavailable) || !errors.Is(err, jetstream.ErrNoStreamResponse) {
		t.Fatalf("publish with the stream gone = %v, want ErrUnavailable wrapping no responders", err)
	}
	if err := s.Publish(ctxT(t), event("r", "after")); err != nil {
		t.Fatalf("next publish: %v (the stream was not re-created)", err)
	}
	got := stored(ctxT(t), t, dial(t, srv), natssink.DefaultStreamName)
	if len(got) != 1 || got[0].Event.ID != "after" {
		t.Errorf("stored %+v, want only the event published after recovery", got)
	}
}

func TestRecoveryAfterOutageWithoutStore(t *testing.T) {
	srv := runServer(t, "", t.TempDir())
	s := open(t, srv, natssink.Options{PublishTimeout: 2 * time.Second})
	// A publish failing during the outage makes the sink look at the
	// stream first thing after: the first publish after it succeeds.
	srv = restart(t, srv, s.Conn(), t.TempDir(), func() {
		if err := publishWithin(t, s, context.Background(), event("r", "during")); !errors.Is(err, natssink.ErrUnavailable) {
			t.Errorf("publish during the outage = %v, want ErrUnavailable", err)
		}
	})
	if err := s.Publish(ctxT(t), event("r", "after")); err != nil {
		t.Fatalf("first publish after the restart: %v", err)
	}
	if got := stored(ctxT(t), t, dial(t, srv), natssink.DefaultStreamName); len(got) != 1 {
		t.Errorf("stored %d, want 1", len(got))
	}
}

func TestReadyRecreatesDeletedStream(t *testing.T) {
	srv := runServer(t, "", t.TempDir())
	nc := dial(t, srv)
	s := open(t, srv, natssink.Options{})
	js, _ := jetstream.New(nc)
	if err := js.DeleteStream(ctxT(t), natssink.DefaultStreamName); err != nil {
		t.Fatal(err)
	}
	// The server may refuse to create a file store of the same name while
	// it still removes the deleted one ("error creating store for stream");
	// readiness probes repeat, so Ready must succeed soon, not at once.
	var err error
	sinktest.Poll(10*time.Second, 20*time.Millisecond, func() bool { err = s.Ready(ctxT(t)); return err == nil })
	if err != nil {
		t.Fatalf("Ready after the stream was deleted: %v", err)
	}
	streamInfo(t, nc, natssink.DefaultStreamName) // fails t when missing
	if err := s.Publish(ctxT(t), event("x", "1")); err != nil {
		t.Fatal(err)
	}
}

func TestBorrowedConnection(t *testing.T) {
	srv := runServer(t, "", t.TempDir())
	nc := dial(t, srv)
	// The connection's shared request inbox is made by its first request;
	// make it now so that only the sink's own subscriptions are counted.
	js, _ := jetstream.New(nc)
	if _, err := js.AccountInfo(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	subsBefore := nc.NumSubscriptions()
	s, err := natssink.New(ctxT(t), nc, natssink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Conn() != nc {
		t.Error("Conn() is not the borrowed connection")
	}
	if err := s.Publish(ctxT(t), event("b", "1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !nc.IsConnected() {
		t.Fatal("Close closed a borrowed connection")
	}
	if got := nc.NumSubscriptions(); got != subsBefore {
		t.Errorf("borrowed connection left with %d subscriptions, had %d", got, subsBefore)
	}
	if err := s.Publish(ctxT(t), event("b", "2")); !errors.Is(err, bridge.ErrClosed) {
		t.Errorf("Publish after Close = %v, want bridge.ErrClosed", err)
	}
	// The connection still serves a new sink.
	s2, err := natssink.New(ctxT(t), nc, natssink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := s2.Publish(ctxT(t), event("b", "3")); err != nil {
		t.Fatal(err)
	}
}

func TestOwnedConnection(t *testing.T) {
	srv := runServer(t, "", t.TempDir())
	s := open(t, srv, natssink.Options{})
	if err := s.Publish(ctxT(t), event("o", "1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !s.Conn().IsClosed() {
		t.Error("Close left an owned connection open")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if err := s.Ready(ctxT(t)); !errors.Is(err, bridge.ErrClosed) {
		t.Errorf("Ready after Close = %v, want bridge.ErrClosed", err)
	}
}

func TestOpenClosesConnectionOnStreamError(t *testing.T) {
	srv := runServer(t, "", t.TempDir())
	nc := dial(t, srv)
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(ctxT(t), jetstream.StreamConfig{Name: "QOD_STATUS", Subjects: []string{"elsewhere.>"}}); err != nil {
		t.Fatal(err)
	}
	before := srv.NumClients()
	if _, err := natssink.Open(ctxT(t), connOpts(srv), natssink.Options{}); !errors.Is(err, natssink.ErrStreamMismatch) {
		t.Fatalf("Open = %v, want ErrStreamMismatch", err)
	}
	// The server may take a moment to notice the closed connection.
	waitFor(t, "connection closed", func() bool { return srv.NumClients() == before })
}

// waitFor polls cond until it holds or testDeadline passes. Only for state
// that has no event to wait on.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	if !sinktest.Poll(testDeadline, 5*time.Millisecond, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

func TestBatchLargerThanMaxPending(t *testing.T) {
	srv := runServer(t, "", t.TempDir())
	for _, pending := range []int{1, 2, 5} {
		n := uniq()
		s := open(t, srv, natssink.Options{Prefix: "b" + n, Stream: natssink.StreamOptions{Name: "B" + n}, MaxPending: pending})
		var batch []bridge.Event
		for i := range 40 {
			batch = append(batch, event("batch", "e"+strings.Repeat("x", i)))
		}
		if err := publishWithin(t, s, ctxT(t), batch...); err != nil {
			t.Fatalf("MaxPending %d: batch of %d: %v", pending, len(batch), err)
		}
		got := stored(ctxT(t), t, dial(t, srv), "B"+n)
		if len(got) != len(batch) {
			t.Fatalf("MaxPending %d: stored %d, want %d", pending, len(got), len(batch))
		}
		for i := range got {
			if got[i].Event != batch[i] {
				t.Fatalf("MaxPending %d: event %d is %s, want %s (call order)", pending, i, got[i].Event.ID, batch[i].ID)
			}
		}
	}
}

func TestEmptySessionIDRejected(t *testing.T) {
	srv := runServer(t, "", t.TempDir())
	s := open(t, srv, natssink.Options{})
	err := publishWithin(t, s, ctxT(t), event("", "no-session"))
	if !errors.Is(err, natssink.ErrInvalidEvent) || errors.Is(err, natssink.ErrUnavailable) {
		t.Fatalf("Publish with an empty sessionId = %v, want ErrInvalidEvent, not a broker error", err)
	}
	// The sink is unharmed.
	if err := s.Publish(ctxT(t), event("s", "ok")); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentBatchesShareFewSlots: many concurrent batches, together
// wanting far more pending slots than there are, all go through: a caller
// never waits for a slot while holding one, so none stalls another.
func TestConcurrentBatchesShareFewSlots(t *testing.T) {
	srv := runServer(t, "", t.TempDir())
	s := open(t, srv, natssink.Options{MaxPending: 8})
	const callers, batch = 16, 6
	errs := make(chan error, callers)
	for g := range callers {
		go func() {
			evs := make([]bridge.Event, batch)
			for i := range evs {
				evs[i] = event(fmt.Sprintf("s%d", g), fmt.Sprintf("%d-%d", g, i))
			}
			errs <- s.Publish(ctxT(t), evs...)
		}()
	}
	for range callers {
		if err := <-errs; err != nil {
			t.Fatalf("batch publish: %v", err)
		}
	}
	if got := stored(ctxT(t), t, dial(t, srv), natssink.DefaultStreamName); len(got) != callers*batch {
		t.Fatalf("stored %d, want %d", len(got), callers*batch)
	}
}
