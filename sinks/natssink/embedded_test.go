package natssink_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/sinks/natssink"
	"github.com/qodbridge/qodbridge/sinks/sinktest"
)

func TestStartEmbeddedPortBusy(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := l.Addr().String()
	s, err := natssink.StartEmbedded(natssink.EmbeddedOptions{Address: addr, StoreDir: t.TempDir()})
	if err == nil {
		stopServer(s)
		t.Fatal("StartEmbedded on a busy port succeeded")
	}
	want := "natssink: embedded NATS server: listen " + addr + ": address already in use"
	if err.Error() != want || !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("error %q, want %q wrapping EADDRINUSE", err, want)
	}
}

func TestStartEmbeddedBadAddress(t *testing.T) {
	for _, a := range []string{"nohostport", "127.0.0.1:x", "127.0.0.1:70000"} {
		if s, err := natssink.StartEmbedded(natssink.EmbeddedOptions{Address: a, StoreDir: t.TempDir()}); err == nil {
			stopServer(s)
			t.Errorf("StartEmbedded(%q) succeeded", a)
		}
	}
}

// The server's notices (its banner) come at debug level.
func TestStartEmbeddedLogsToSlog(t *testing.T) {
	var buf sinktest.Buffer
	s, err := natssink.StartEmbedded(natssink.EmbeddedOptions{
		Address: "127.0.0.1:0", StoreDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	stopServer(s)
	if out := buf.String(); !strings.Contains(out, "component=nats-server") || !strings.Contains(out, "Server is ready") {
		t.Errorf("server log not routed to slog: %s", out)
	}
}

// StartEmbedded with port 0 and a temporary directory is all a test of
// another package needs for a real JetStream server.
func ExampleStartEmbedded() {
	dir, err := os.MkdirTemp("", "nats-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	srv, err := natssink.StartEmbedded(natssink.EmbeddedOptions{Address: "127.0.0.1:0", StoreDir: dir})
	if err != nil {
		panic(err)
	}
	defer srv.WaitForShutdown()
	defer srv.Shutdown()

	ctx := context.Background()
	sink, err := natssink.Open(ctx, natssink.ConnOptions{URL: srv.ClientURL()}, natssink.Options{})
	if err != nil {
		panic(err)
	}
	defer sink.Close()

	err = sink.Publish(ctx, bridge.Event{
		ID: "1", Source: "urn:example", SessionID: "3fa85f64-5717-4562-b3fc-2c963f66afa6",
		QoSStatus: bridge.StatusAvailable,
	})
	fmt.Println("published:", err)
	fmt.Println("subject:", natssink.Subject("", "3fa85f64-5717-4562-b3fc-2c963f66afa6"))
	// Output:
	// published: <nil>
	// subject: qod.status.3fa85f64-5717-4562-b3fc-2c963f66afa6
}

// ConnOptions.InProcess connects to an embedded server through memory: the
// sink publishes and is acknowledged with no socket, and a subscriber on
// the network reads the stored event.
func TestOpenInProcess(t *testing.T) {
	srv, err := natssink.StartEmbedded(natssink.EmbeddedOptions{Address: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer stopServer(srv)
	ctx := context.Background()
	// The URL is unused: nothing listens there.
	sink, err := natssink.Open(ctx, natssink.ConnOptions{URL: "nats://127.0.0.1:1", InProcess: srv}, natssink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	if addr := sink.Conn().ConnectedAddr(); addr != "pipe" {
		t.Errorf("connected to %q, want the in-memory pipe", addr)
	}
	id := "3fa85f64-5717-4562-b3fc-2c963f66afa6"
	if err := sink.Publish(ctx, bridge.Event{ID: "1", Source: "urn:example", SessionID: id, QoSStatus: bridge.StatusAvailable}); err != nil {
		t.Fatalf("publish: %v", err)
	}
	nc, err := natssink.Dial(ctx, natssink.ConnOptions{URL: srv.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, natssink.DefaultStreamName)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(ctx, natssink.Subject("", id))
	if err != nil || m.Header.Get("ce-id") != "1" {
		t.Fatalf("stored: %v, %v", m, err)
	}
}
