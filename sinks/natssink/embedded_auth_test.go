package natssink

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestEmbeddedOffLoopbackNeedsUsers(t *testing.T) {
	_, err := StartEmbedded(EmbeddedOptions{Address: "0.0.0.0:0", StoreDir: t.TempDir()})
	if !errors.Is(err, ErrOpenEmbedded) {
		t.Fatalf("open server off loopback: %v, want ErrOpenEmbedded", err)
	}
}

// TestEmbeddedClientPermissions: with users, the bridge's own user may do
// everything and a client user exactly what an application needs: send
// commands, read status events and results; not write statuses, delete
// streams or read the key-value buckets.
func TestEmbeddedClientPermissions(t *testing.T) {
	s, err := StartEmbedded(EmbeddedOptions{Address: "127.0.0.1:0", StoreDir: t.TempDir(), Users: []EmbeddedUser{
		{Name: "qodbridge", Password: "bridge-pass-0123456789"},
		{Name: "qod", Password: "client-pass-0123456789", Permissions: ClientPermissions("qod", "QOD_STATUS", "QOD_RESULTS", "KV_QOD_SESSIONS")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := nats.Connect(s.ClientURL()); err == nil {
		t.Fatal("connected without credentials")
	}
	bridge, err := nats.Connect(s.ClientURL(), nats.UserInfo("qodbridge", "bridge-pass-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	defer bridge.Close()
	bjs, _ := jetstream.New(bridge)
	for _, sc := range []jetstream.StreamConfig{
		{Name: "QOD_STATUS", Subjects: []string{"qod.status.>"}, Storage: jetstream.MemoryStorage},
		{Name: "QOD_RESULTS", Subjects: []string{"qod.results.>"}, Storage: jetstream.MemoryStorage},
		{Name: "QOD_COMMANDS", Subjects: []string{"qod.commands.>"}, Storage: jetstream.MemoryStorage, Retention: jetstream.WorkQueuePolicy},
	} {
		if _, err := bjs.CreateStream(ctx, sc); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := bjs.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "QOD_REQUESTS", Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	sessions, err := bjs.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "QOD_SESSIONS", Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sessions.Put(ctx, "s-1", []byte(`{"sessionId":"s-1","qosStatus":"AVAILABLE"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := bjs.Publish(ctx, "qod.status.s-1", []byte(`{"sessionId":"s-1","qosStatus":"AVAILABLE"}`)); err != nil {
		t.Fatal(err)
	}

	var denied []error
	client, err := nats.Connect(s.ClientURL(), nats.UserInfo("qod", "client-pass-0123456789"),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { denied = append(denied, err) }))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	js, _ := jetstream.New(client)
	// Allowed: send a command through JetStream, read the status stream.
	if _, err := js.Publish(ctx, "qod.commands.create", []byte(`{}`)); err != nil {
		t.Fatalf("publishing a command: %v", err)
	}
	cons, err := js.OrderedConsumer(ctx, "QOD_STATUS", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("a consumer on the status stream: %v", err)
	}
	if m, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second)); err != nil || m.Subject() != "qod.status.s-1" {
		t.Fatalf("reading the status stream: %v", err)
	}
	// Allowed: read the session view (nats kv get / watch).
	view, err := js.KeyValue(ctx, "QOD_SESSIONS")
	if err != nil {
		t.Fatalf("opening the session view: %v", err)
	}
	if e, err := view.Get(ctx, "s-1"); err != nil || e.Revision() == 0 {
		t.Fatalf("reading the session view: %v", err)
	}
	w, err := view.WatchAll(ctx)
	if err != nil {
		t.Fatalf("watching the session view: %v", err)
	}
	if e := <-w.Updates(); e == nil || e.Key() != "s-1" {
		t.Fatalf("watch gave %v", e)
	}
	_ = w.Stop()
	// Refused: everything else. A publish the server refuses gets no
	// answer, so each attempt is bounded by a short deadline.
	refused := func(what string, try func(context.Context) error) {
		t.Helper()
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := try(c); err == nil {
			t.Errorf("a client could %s", what)
		}
	}
	refused("delete the status stream", func(c context.Context) error { return js.DeleteStream(c, "QOD_STATUS") })
	refused("write a status past the ingress", func(c context.Context) error {
		_, err := js.Publish(c, "qod.status.s-1", []byte(`{"sessionId":"s-1","qosStatus":"UNAVAILABLE"}`))
		return err
	})
	refused("write the session view", func(c context.Context) error {
		_, err := view.Put(c, "s-1", []byte(`{}`))
		return err
	})
	refused("open the command store", func(c context.Context) error { _, err := js.KeyValue(c, "QOD_REQUESTS"); return err })
	if st, _ := bjs.Stream(ctx, "QOD_STATUS"); st == nil || st.CachedInfo().State.Msgs != 1 {
		t.Error("the status stream changed")
	}
}

// TestEmbeddedSyncPolicy: the sync policy reaches the server.
func TestEmbeddedSyncPolicy(t *testing.T) {
	for _, o := range []EmbeddedOptions{{SyncAlways: true}, {SyncInterval: 5 * time.Second}, {}} {
		o.Address, o.StoreDir = "127.0.0.1:0", t.TempDir()
		s, err := StartEmbedded(o)
		if err != nil {
			t.Fatal(err)
		}
		jc := s.JetStreamConfig()
		s.Shutdown()
		s.WaitForShutdown()
		want := o.SyncInterval
		if want == 0 && !o.SyncAlways {
			want = DefaultSyncInterval
		}
		if jc.SyncAlways != o.SyncAlways || !o.SyncAlways && jc.SyncInterval != want {
			t.Errorf("options %+v: server has always=%v interval=%s", o, jc.SyncAlways, jc.SyncInterval)
		}
	}
}
