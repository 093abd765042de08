package sinks

import (
	"context"
	"testing"

	"github.com/qodbridge/qodbridge/bridge/command"
	"github.com/qodbridge/qodbridge/bridge/command/commandtest"
	"github.com/qodbridge/qodbridge/bridge/qodsim"
	"github.com/qodbridge/qodbridge/config"
)

// TestBrokersBuildWhatRunsOnNATS: from a configuration alone, Open starts
// the embedded server and the status sink, and the same Brokers give the
// command store, the intake and the console feed on that connection.
func TestBrokersBuildWhatRunsOnNATS(t *testing.T) {
	env := map[string]string{
		"QODBRIDGE_NATS_EMBEDDED_ADDRESS": "127.0.0.1:0",
		"QODBRIDGE_DATA_DIR":              t.TempDir(),
	}
	cfg, err := config.Load("", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b, err := Open(ctx, cfg, nil, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if b.NATSURL() == "" || b.EmbeddedNATS() == nil {
		t.Fatalf("NATS URL %q, embedded %v", b.NATSURL(), b.EmbeddedNATS())
	}
	if err := b.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	store, err := b.Store(ctx)
	if err != nil || store == nil {
		t.Fatalf("Store: %v, %v", store, err)
	}
	engine, err := command.New(commandtest.NewAPI(t, qodsim.Options{}).Client, command.Options{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	ins, err := b.Intakes(ctx, engine, IntakeHooks{})
	if err != nil || len(ins) != 1 || ins[0].Broker() != "nats" {
		t.Fatalf("Intakes: %v, %v", ins, err)
	}
	if b.Console(nil) == nil {
		t.Fatal("no console feed with NATS")
	}
	for _, in := range ins {
		if err := in.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
