package process

import (
	"context"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qodbridge/qodbridge/config"
)

// TestEmbeddedNATSOffLoopback: an embedded server others can reach needs
// nats.embedded.password, or the bridge does not start and says which
// setting; with it, clients connect as user qod and may send commands and
// read statuses and results, and nothing else.
func TestEmbeddedNATSOffLoopback(t *testing.T) {
	env := map[string]string{"QODBRIDGE_NATS_EMBEDDED_ADDRESS": "0.0.0.0:0", "QODBRIDGE_DATA_DIR": t.TempDir()}
	_, err := config.Load("", func(k string) string { return env[k] })
	if err == nil || !strings.Contains(err.Error(), "nats.embedded.password: ") || !strings.Contains(err.Error(), "not loopback") {
		t.Fatalf("an open embedded server off loopback: %v", err)
	}

	const password = "embedded-client-pass-0123456789"
	b, _ := startBridge(t, map[string]string{"QODBRIDGE_NATS_EMBEDDED_ADDRESS": "0.0.0.0:0", "QODBRIDGE_NATS_EMBEDDED_PASSWORD": password})
	if !strings.Contains(b.nats, "qod:***@") {
		t.Fatalf("banner NATS URL %q", b.nats)
	}
	url := strings.Replace(b.nats, "qod:***@", "", 1)
	if nc, err := nats.Connect(url); err == nil {
		nc.Close()
		t.Fatal("connected to the embedded server without credentials")
	}
	nc, err := nats.Connect(url, nats.UserInfo("qod", password))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	results, err := nc.SubscribeSync("qod.results.>")
	if err != nil {
		t.Fatal(err)
	}
	flush(t, nc)
	if _, err := js.Publish(context.Background(), "qod.commands.create", []byte(demoCreate)); err != nil {
		t.Fatalf("a client sending a command: %v", err)
	}
	if res := nextResult(t, results); !res.OK {
		t.Fatalf("create result %+v", res)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2e9)
	defer cancel()
	if err := js.DeleteStream(ctx, "QOD_STATUS"); err == nil {
		t.Fatal("a client deleted the status stream")
	}
}
