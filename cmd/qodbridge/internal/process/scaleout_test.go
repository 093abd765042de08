package process

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qodbridge/qodbridge/bridge/qodsim"
	"github.com/qodbridge/qodbridge/sinks/natssink/natstest"
	"github.com/qodbridge/qodbridge/sinks/sinktest"
)

// TestTwoInstances runs two bridges against one NATS server, one Kafka
// cluster and one QoD API, the way users scale out behind a load balancer:
// notifications spread over both are all stored, on NATS once each; the
// commands are shared, each ending with one result and one session; one
// instance stops mid-run and the other finishes its work.
func TestTwoInstances(t *testing.T) {
	be := newSharedBackends(t, 0)
	ns, kc, api, env := be.nats, be.kafka, be.api, be.env
	const token = sharedToken
	cfgFile := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfgFile, []byte("shutdown_timeout: 20s\n"), 0o600)
	a, stopA := startBridge(t, env, "-config", cfgFile)
	b, _ := startBridge(t, env, "-config", cfgFile)

	// Notifications, spread over both instances.
	events := scaled(400, 100)
	var wg sync.WaitGroup
	errs := make(chan error, events)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < events; i += 8 {
				target := a.notify
				if i%2 == 1 {
					target = b.notify
				}
				code, err := post(t, http.DefaultClient, target, token, statusEvent(fmt.Sprintf("scale-%d", i), fmt.Sprintf("s-%d", i%20), "AVAILABLE"))
				switch {
				case err != nil:
					errs <- fmt.Errorf("event %d: %w", i, err)
				case code != http.StatusNoContent:
					errs <- fmt.Errorf("event %d: status %d", i, code)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := streamCount(t, ns.ClientURL(), "QOD_STATUS"); got != uint64(events) {
		t.Fatalf("NATS stream holds %d events, want %d", got, events)
	}
	kcl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.ConsumeTopics("qod.status"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	for len(seen) < events && ctx.Err() == nil {
		kcl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == "ce_id" {
					seen[string(h.Value)] = true
				}
			}
		})
	}
	cancel()
	kcl.Close()
	if len(seen) != events {
		t.Fatalf("Kafka holds %d distinct events, want %d", len(seen), events)
	}

	// Commands shared by both; instance a stops (SIGTERM) mid-run.
	creates := scaled(200, 80)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	phone := func(i int) string { return fmt.Sprintf("+3672170%07d", i) }
	for i := range creates {
		cmd := fmt.Sprintf(`{"requestId":"scale-%d","session":{"device":{"phoneNumber":%q},"applicationServer":{"ipv4Address":"233.252.0.2"},"qosProfile":"QOS_L","duration":3600}}`, i, phone(i))
		if _, err := js.Publish(context.Background(), "qod.commands.create", []byte(cmd)); err != nil {
			t.Fatal(err)
		}
		if i == creates/4 {
			if err := stopA(); err != nil {
				t.Fatalf("stopping instance a: %v", err)
			}
		}
	}
	sinktest.Poll(2*time.Minute, 50*time.Millisecond, func() bool { // instance b is still working
		return streamCount(t, ns.ClientURL(), "QOD_RESULTS") >= uint64(creates)
	})
	if got := streamCount(t, ns.ClientURL(), "QOD_RESULTS"); got != uint64(creates) {
		t.Fatalf("%d results for %d commands", got, creates)
	}
	checkOneSessionEach(t, js, api.URL+qodsim.BasePathV1, "scale", creates, phone)
	// The surviving instance still answers.
	if code, err := post(t, http.DefaultClient, b.notify, token, statusEvent("after", "s", "AVAILABLE")); err != nil || code != 204 {
		t.Fatalf("instance b after a stopped: %d %v", code, err)
	}
}

// sharedBackends are what several bridge instances share when they scale
// out behind a load balancer: one NATS server, one Kafka cluster, one QoD
// API (the simulator, answering after apiPause), and the environment that
// points an instance at them.
type sharedBackends struct {
	nats  *server.Server
	kafka *kfake.Cluster
	api   *httptest.Server
	env   map[string]string
}

// sharedToken is the bearer token of the instances newSharedBackends sets up.
const sharedToken = "scale-out-token-0123456789"

func newSharedBackends(t *testing.T, apiPause time.Duration) *sharedBackends {
	t.Helper()
	ns := natstest.Embedded(t)
	kc := newKafka(t, 0)
	t.Cleanup(kc.Close)
	sim, err := qodsim.New(qodsim.Options{AvailableDelay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	h := sim.Handler()
	if apiPause > 0 {
		h = slowAPI{next: h, pause: apiPause}
	}
	api := httptest.NewServer(h)
	t.Cleanup(api.Close)
	return &sharedBackends{nats: ns, kafka: kc, api: api, env: map[string]string{
		"QODBRIDGE_NATS_URL":        ns.ClientURL(),
		"QODBRIDGE_KAFKA_BROKERS":   kc.ListenAddrs()[0],
		"QODBRIDGE_QOD_API_URL":     api.URL + qodsim.BasePathV1,
		"QODBRIDGE_AUTH_TOKENS":     sharedToken,
		"QODBRIDGE_SESSION_SECRETS": "shared-secret-0123456789abcdef",
		// Behind a load balancer every instance gives the QoD platform the
		// balancer's URL as the sink, so that one recognises (and adopts) a
		// session another created. The simulator notifies nothing within
		// these tests (AvailableDelay).
		"QODBRIDGE_PUBLIC_URL": "http://qodbridge-lb.test:8080",
	}}
}
