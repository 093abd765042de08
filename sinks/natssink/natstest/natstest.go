// Package natstest gives tests a JetStream server and client connections
// to it, closed when the test ends.
package natstest

import (
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qodbridge/qodbridge/sinks/natssink"
)

// Server starts an empty embedded JetStream server (see Embedded) and
// connects to it.
func Server(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return Connect(t, Embedded(t).ClientURL())
}

// Embedded starts an empty embedded JetStream server on a random loopback
// port, with its store in t.TempDir(), shut down when the test ends: for a
// test whose broker must outlive a client or a bridge.
func Embedded(t testing.TB) *server.Server {
	t.Helper()
	s, err := natssink.StartEmbedded(natssink.EmbeddedOptions{Address: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// Connect connects to the NATS server at url, with a JetStream context.
func Connect(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url)
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
