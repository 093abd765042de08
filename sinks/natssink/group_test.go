package natssink_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/sinks/natssink"
	"github.com/qodbridge/qodbridge/sinks/natssink/natstest"
	"github.com/qodbridge/qodbridge/sinks/sinktest"
)

// groupStream creates the status stream as an operator would, with
// fast-ingest batches allowed or not, and, with onePerSubject, at most one
// message per session subject (DiscardNew per subject): a second event of
// a session is refused by the stream, and only that event.
func groupStream(t *testing.T, js jetstream.JetStream, batched, onePerSubject bool) {
	t.Helper()
	cfg := jetstream.StreamConfig{
		Name: natssink.DefaultStreamName, Subjects: []string{"qod.status.>"}, Storage: jetstream.FileStorage,
		AllowBatchPublish: batched,
	}
	if onePerSubject {
		cfg.MaxMsgsPerSubject, cfg.Discard, cfg.DiscardNewPerSubject = 1, jetstream.DiscardNew, true
	}
	if _, err := js.CreateStream(ctxT(t), cfg); err != nil {
		t.Fatal(err)
	}
}

func storedIDs(t *testing.T, s *natssink.Sink) []string {
	t.Helper()
	var ids []string
	for _, st := range stored(ctxT(t), t, s.Conn(), natssink.DefaultStreamName) {
		ids = append(ids, st.Event.ID)
	}
	return ids
}

// TestGroupCommitStream: a stream the Sink creates takes batches; one an
// operator made without them is left as it is, and the Sink publishes to
// it all the same.
func TestGroupCommitStream(t *testing.T) {
	srv := runServer(t, "", t.TempDir())
	s := open(t, srv, natssink.Options{})
	if !streamInfo(t, s.Conn(), natssink.DefaultStreamName).Config.AllowBatchPublish {
		t.Error("the stream the Sink created does not allow batch publishing")
	}

	srv2 := runServer(t, "", t.TempDir())
	_, js := connectJS(t, srv2)
	groupStream(t, js, false, false)
	s2 := open(t, srv2, natssink.Options{})
	publishConcurrently(t, s2, 4, 20)
	if streamInfo(t, s2.Conn(), natssink.DefaultStreamName).Config.AllowBatchPublish {
		t.Error("the Sink altered an existing stream")
	}
}

// TestGroupCommitRefusedEventAlone: an event the stream refuses gets its
// own error; the events batched with it, before and after it, are stored
// in order.
func TestGroupCommitRefusedEventAlone(t *testing.T) {
	for _, batched := range []bool{true, false} {
		t.Run(fmt.Sprintf("batched=%v", batched), func(t *testing.T) {
			srv := runServer(t, "", t.TempDir())
			_, js := connectJS(t, srv)
			groupStream(t, js, batched, true)
			s := open(t, srv, natssink.Options{})
			if err := s.Publish(ctxT(t), event("full", "first")); err != nil {
				t.Fatal(err)
			}
			err := publishWithin(t, s, ctxT(t), event("a", "a1"), event("full", "refused"), event("b", "b1"), event("c", "c1"))
			var apiErr *jetstream.APIError
			if err == nil || !strings.Contains(err.Error(), `"refused"`) || !errors.As(err, &apiErr) ||
				apiErr.ErrorCode != 10077 { // JSStreamMaxMsgsPerSubjectErr: maximum messages per subject exceeded
				t.Fatalf("publish with a refused event = %v, want the stream's error naming it", err)
			}
			if got, want := strings.Join(storedIDs(t, s), ","), "first,a1,b1,c1"; got != want {
				t.Errorf("stored %s, want %s", got, want)
			}

			// Concurrent calls, batched together: only the one with the
			// refused event fails.
			var wg sync.WaitGroup
			var failed atomic.Int32
			for i := range 32 {
				wg.Go(func() {
					evs := []bridge.Event{event(fmt.Sprintf("s%d", i), fmt.Sprintf("e%d", i)), event(fmt.Sprintf("t%d", i), fmt.Sprintf("f%d", i))}
					if i == 7 {
						evs[0] = event("full", "refused-again")
					}
					if err := publishWithin(t, s, ctxT(t), evs...); err != nil {
						failed.Add(1)
						if i != 7 {
							t.Errorf("publish %d: %v", i, err)
						}
					}
				})
			}
			wg.Wait()
			if failed.Load() != 1 {
				t.Errorf("%d calls failed, want the one refused", failed.Load())
			}
			if n := len(storedIDs(t, s)); n != 4+63 {
				t.Errorf("%d events stored, want %d", n, 4+63)
			}
		})
	}
}

// TestGroupCommitDuplicates: an event sent twice in one batch, or again in
// a later one, or alone (pipelined), is stored once and acknowledged each
// time.
func TestGroupCommitDuplicates(t *testing.T) {
	srv := runServer(t, "", t.TempDir())
	var dups atomic.Int32
	s := open(t, srv, natssink.Options{OnDuplicate: func() { dups.Add(1) }})
	x, y := event("dx", "x"), event("dy", "y")
	if err := s.Publish(ctxT(t), x, x, y); err != nil {
		t.Fatalf("publish with a duplicate inside: %v", err)
	}
	if err := s.Publish(ctxT(t), y, x); err != nil {
		t.Fatalf("publish again: %v", err)
	}
	if err := s.Publish(ctxT(t), x); err != nil {
		t.Fatalf("publish again, alone: %v", err)
	}
	if got := strings.Join(storedIDs(t, s), ","); got != "x,y" {
		t.Errorf("stored %s, want x,y", got)
	}
	if dups.Load() < 1 {
		t.Error("a lone duplicate was not reported to OnDuplicate")
	}
}

// TestGroupCommitOrder: concurrent callers, each publishing its own
// session's events one after another, some calls alone (pipelined) and
// some in twos (group commit), find them stored in that order.
func TestGroupCommitOrder(t *testing.T) {
	srv := runServer(t, "", t.TempDir())
	s := open(t, srv, natssink.Options{MaxPending: 8}) // callers also wait for slots
	publishConcurrently(t, s, 16, 25)
}

func publishConcurrently(t *testing.T, s *natssink.Sink, sessions, each int) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range sessions {
		wg.Go(func() {
			for j := range each {
				evs := []bridge.Event{event(fmt.Sprintf("o%d", i), fmt.Sprintf("o%d-%03d", i, j))}
				if j%5 == 4 { // some calls carry two events
					evs = append(evs, event(fmt.Sprintf("o%d", i), fmt.Sprintf("o%d-%03db", i, j)))
				}
				if err := publishWithin(t, s, ctxT(t), evs...); err != nil {
					t.Errorf("session %d event %d: %v", i, j, err)
					return
				}
			}
		})
	}
	wg.Wait()
	last := map[string]string{}
	n := 0
	for _, id := range storedIDs(t, s) {
		sess, _, _ := strings.Cut(id, "-")
		if id <= last[sess] {
			t.Errorf("%s stored after %s", id, last[sess])
		}
		last[sess] = id
		n++
	}
	if want := sessions * (each + each/5); n != want {
		t.Errorf("%d events stored, want %d", n, want)
	}
}

func connectJS(t *testing.T, srv interface{ ClientURL() string }) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// TestGroupCommitCluster: on a three-server cluster with a replicated
// stream, group-committed calls are stored once each, in order per
// session.
func TestGroupCommitCluster(t *testing.T) {
	c := natstest.NewCluster(t, 3)
	s := func() *natssink.Sink {
		sink, err := natssink.Open(ctxT(t), natssink.ConnOptions{URL: c.URLs(), ReconnectWait: 20 * time.Millisecond},
			natssink.Options{Stream: natssink.StreamOptions{Replicas: 3}})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { sink.Close() })
		return sink
	}()
	if !streamInfo(t, s.Conn(), natssink.DefaultStreamName).Config.AllowBatchPublish {
		t.Fatal("the replicated stream does not allow batch publishing")
	}
	// A stream just created on a cluster answers once its replicas elected
	// a leader and caught up; until then a publish gets no response (the
	// bridge answers 503 and the platform retries).
	js, err := jetstream.New(s.Conn())
	if err != nil {
		t.Fatal(err)
	}
	ready := func() bool {
		st, err := js.Stream(ctxT(t), natssink.DefaultStreamName)
		if err != nil {
			return false
		}
		cl := st.CachedInfo().Cluster
		if cl == nil || cl.Leader == "" || len(cl.Replicas) != 2 {
			return false
		}
		for _, r := range cl.Replicas {
			if !r.Current {
				return false
			}
		}
		return true
	}
	if !sinktest.Poll(testDeadline, 10*time.Millisecond, ready) {
		t.Fatal("the replicated stream has no leader with current replicas")
	}
	publishConcurrently(t, s, 8, 15)
}

// TestGroupCommitOlderServer: a server that checks requests strictly and
// does not know allow_batched (2.11 to 2.13) refuses a stream create
// carrying it; the Sink creates the stream without it and publishes
// pipelined. The server here answers the JetStream API itself.
func TestGroupCommitOlderServer(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(testDeadline) {
		t.Fatal("server not ready")
	}
	api, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Close)
	var creates []string
	var mu sync.Mutex
	if _, err := api.Subscribe("$JS.API.>", func(m *nats.Msg) {
		switch {
		case strings.HasPrefix(m.Subject, "$JS.API.STREAM.INFO."):
			_ = m.Respond([]byte(`{"type":"io.nats.jetstream.api.v1.stream_info_response","error":{"code":404,"err_code":10059,"description":"stream not found"}}`))
		case strings.HasPrefix(m.Subject, "$JS.API.STREAM.CREATE."):
			mu.Lock()
			creates = append(creates, string(m.Data))
			mu.Unlock()
			if strings.Contains(string(m.Data), "allow_batched") {
				_ = m.Respond([]byte(`{"type":"io.nats.jetstream.api.v1.stream_create_response","error":{"code":400,"err_code":10025,"description":"invalid JSON: json: unknown field \"allow_batched\""}}`))
				return
			}
			_ = m.Respond([]byte(`{"type":"io.nats.jetstream.api.v1.stream_create_response","config":` + string(m.Data) +
				`,"created":"2026-01-01T00:00:00Z","state":{"messages":0,"bytes":0,"first_seq":0,"last_seq":0,"consumer_count":0}}`))
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := api.Flush(); err != nil {
		t.Fatal(err)
	}
	s, err := natssink.Open(ctxT(t), natssink.ConnOptions{URL: srv.ClientURL()}, natssink.Options{})
	if err != nil {
		t.Fatalf("Open against a server that does not know allow_batched: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	mu.Lock()
	defer mu.Unlock()
	if len(creates) != 2 || strings.Contains(creates[1], "allow_batched") {
		t.Errorf("stream creates %q, want one with allow_batched and one without", creates)
	}
}
