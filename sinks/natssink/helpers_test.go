package natssink_test

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/sinks/natssink"
	"github.com/qodbridge/qodbridge/sinks/sinktest"
)

// testDeadline bounds every wait of these tests; it guards against hangs
// and is no timing threshold.
const testDeadline = 30 * time.Second

// runServer starts an embedded server with JetStream on addr ("" = random
// port) storing in dir, shut down at cleanup.
func runServer(t testing.TB, addr, dir string) *server.Server {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	s, err := natssink.StartEmbedded(natssink.EmbeddedOptions{Address: addr, StoreDir: dir})
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

func stopServer(s *server.Server) {
	s.Shutdown()
	s.WaitForShutdown()
}

func serverAddr(s *server.Server) string {
	return s.Addr().(*net.TCPAddr).String()
}

// connOpts reconnects quickly so recovery tests do not wait for the
// production ReconnectWait.
func connOpts(s *server.Server) natssink.ConnOptions {
	return natssink.ConnOptions{URL: s.ClientURL(), ReconnectWait: 20 * time.Millisecond}
}

func dial(t testing.TB, s *server.Server) *nats.Conn {
	t.Helper()
	nc, err := natssink.Dial(context.Background(), connOpts(s))
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	t.Cleanup(cancel)
	return ctx
}

func open(t testing.TB, s *server.Server, o natssink.Options) *natssink.Sink {
	t.Helper()
	sink, err := natssink.Open(ctxT(t), connOpts(s), o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { sink.Close() })
	return sink
}

func event(session, id string) bridge.Event {
	return bridge.Event{
		ID: id, Source: "https://qod.example.com", Time: "2024-06-01T12:00:00Z",
		SessionID: session, QoSStatus: bridge.StatusAvailable,
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	}
}

// stored reads every message of stream through nc, decoded.
func stored(ctx context.Context, t testing.TB, nc *nats.Conn, stream string) []sinktest.Stored {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	state := st.CachedInfo().State
	var out []sinktest.Stored
	for seq := state.FirstSeq; state.Msgs > 0 && seq <= state.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("stream %s message %d: %v", stream, seq, err)
		}
		h := make(map[string]string, len(m.Header))
		for k, v := range m.Header {
			if len(v) > 0 {
				h[k] = v[0]
			}
		}
		ev, err := sinktest.Decode(h, m.Data)
		if err != nil {
			t.Fatalf("stream %s message %d on %s: %v", stream, seq, m.Subject, err)
		}
		out = append(out, sinktest.Stored{Event: ev, Key: m.Subject, Headers: h, Data: m.Data})
	}
	return out
}

func streamInfo(t testing.TB, nc *nats.Conn, name string) *jetstream.StreamInfo {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctxT(t), name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	return st.CachedInfo()
}

// publishWithin runs Publish and fails t if it does not return within
// testDeadline.
func publishWithin(t testing.TB, s *natssink.Sink, ctx context.Context, evs ...bridge.Event) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.Publish(ctx, evs...) }()
	select {
	case err := <-done:
		return err
	case <-time.After(testDeadline):
		t.Fatal("Publish hangs")
		return nil
	}
}

var uniqN atomic.Int64

// uniq returns a process-unique suffix for stream names and prefixes.
func uniq() string { return fmt.Sprint(uniqN.Add(1)) }
