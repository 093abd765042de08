package process

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qodbridge/qodbridge/sinks/natssink"
	"github.com/qodbridge/qodbridge/sinks/sinktest"
)

func newKafka(t *testing.T, port int) *kfake.Cluster {
	t.Helper()
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(3, "qod.status", "qod.commands", "qod.results", "qod.commands.dlq", "qod.sessions")}
	if port != 0 {
		opts = append(opts, kfake.Ports(port))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func readyz(t *testing.T, admin string) (int, string) {
	t.Helper()
	resp, err := http.Get(admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestNATSAndKafka: with both brokers configured every event goes to both
// and is answered 204 only when both acked; Kafka down → 503 within the
// publish timeout and /readyz says why; Kafka back → the same bridge
// publishes again, without a restart.
func TestNATSAndKafka(t *testing.T) {
	kc := newKafka(t, 0)
	addr := kc.ListenAddrs()[0]
	_, portS, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portS)
	cfgFile := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfgFile, []byte("ingress:\n  publish_timeout: 1s\n"), 0o600)
	b, _ := startBridge(t, map[string]string{"QODBRIDGE_KAFKA_BROKERS": addr}, "-config", cfgFile)

	nc, err := nats.Connect(b.nats)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, _ := nc.SubscribeSync("qod.status.>")
	flush(t, nc) // the server knows the subscriptions before anything is published
	if code, err := post(t, http.DefaultClient, b.notify, b.token, statusEvent("k-1", "sess-k", "AVAILABLE")); err != nil || code != 204 {
		t.Fatalf("POST: %d %v", code, err)
	}
	if m, err := sub.NextMsg(10 * time.Second); err != nil || m.Header.Get("ce-id") != "k-1" {
		t.Fatalf("NATS: %v %v", m, err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("qod.status"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var rec *kgo.Record
	for rec == nil && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { rec = r })
	}
	cl.Close()
	if rec == nil || string(rec.Key) != "sess-k" {
		t.Fatalf("Kafka record %+v", rec)
	}
	headers := map[string]string{}
	for _, h := range rec.Headers {
		headers[h.Key] = string(h.Value)
	}
	if headers["ce_id"] != "k-1" || headers["ce_type"] == "" || string(rec.Value) != `{"sessionId":"sess-k","qosStatus":"AVAILABLE"}` {
		t.Fatalf("Kafka headers %v value %s", headers, rec.Value)
	}
	if code, body := readyz(t, b.admin); code != 200 {
		t.Fatalf("readyz %d %s", code, body)
	}

	kc.Close() // Kafka goes away
	code, err := post(t, http.DefaultClient, b.notify, b.token, statusEvent("k-2", "sess-k", "UNAVAILABLE"))
	if err != nil || code != 503 {
		t.Fatalf("POST with Kafka down: %d %v", code, err)
	}
	if code, body := readyz(t, b.admin); code != 503 || !strings.Contains(body, "kafka") {
		t.Fatalf("readyz with Kafka down: %d %s", code, body)
	}

	kc2 := newKafka(t, port) // and comes back on the same address
	defer kc2.Close()
	sinktest.Poll(30*time.Second, 100*time.Millisecond, func() bool { // 100 ms: the platform's retry interval
		code, err = post(t, http.DefaultClient, b.notify, b.token, statusEvent("k-2", "sess-k", "UNAVAILABLE"))
		return code == 204
	})
	if code != 204 {
		t.Fatalf("after Kafka came back: %d %v", code, err)
	}
	if code, body := readyz(t, b.admin); code != 200 {
		t.Fatalf("readyz after recovery: %d %s", code, body)
	}
}

// TestNATSDownAnswers503AndRecovers: an external NATS server stops; the
// bridge answers 503 (within the publish timeout, not hanging) and readyz
// turns 503; the server restarts on the same address and store; the same
// bridge publishes again and the stream holds every event answered 204.
func TestNATSDownAnswers503AndRecovers(t *testing.T) {
	dir := t.TempDir()
	ns, err := natssink.StartEmbedded(natssink.EmbeddedOptions{Address: "127.0.0.1:0", StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	addr := ns.Addr().String()
	cfgFile := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfgFile, []byte("ingress:\n  publish_timeout: 1s\n"), 0o600)
	b, _ := startBridge(t, map[string]string{"QODBRIDGE_NATS_URL": ns.ClientURL()}, "-config", cfgFile)
	if code, err := post(t, http.DefaultClient, b.notify, b.token, statusEvent("n-1", "s", "AVAILABLE")); code != 204 {
		t.Fatalf("POST: %d %v", code, err)
	}
	ns.Shutdown()
	ns.WaitForShutdown()
	if code, err := post(t, http.DefaultClient, b.notify, b.token, statusEvent("n-2", "s", "UNAVAILABLE")); code != 503 {
		t.Fatalf("POST with NATS down: %d %v", code, err)
	}
	if code, body := readyz(t, b.admin); code != 503 || !strings.Contains(body, "nats") {
		t.Fatalf("readyz with NATS down: %d %s", code, body)
	}
	ns2, err := natssink.StartEmbedded(natssink.EmbeddedOptions{Address: addr, StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ns2.Shutdown(); ns2.WaitForShutdown() }()
	var code int
	sinktest.Poll(30*time.Second, 100*time.Millisecond, func() bool { // 100 ms: the platform's retry interval
		code, _ = post(t, http.DefaultClient, b.notify, b.token, statusEvent("n-2", "s", "UNAVAILABLE"))
		return code == 204
	})
	if code != 204 {
		t.Fatalf("after NATS came back: %d", code)
	}
	nc, err := nats.Connect(ns2.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	st, err := js.Stream(context.Background(), "QOD_STATUS")
	if err != nil {
		t.Fatal(err)
	}
	info, _ := st.Info(context.Background())
	if info.State.Msgs != 2 {
		t.Fatalf("stream holds %d events, want 2 (n-1 and n-2)", info.State.Msgs)
	}
}

// TestKafkaOnlyCommandRoundTrip: NATS off, Kafka only. A create command on
// qod.commands (action in the qod-action header) gives a result on
// qod.results keyed by the new sessionId, and the session's REQUESTED and
// AVAILABLE statuses arrive on qod.status keyed the same way.
func TestKafkaOnlyCommandRoundTrip(t *testing.T) {
	kc := newKafka(t, 0)
	defer kc.Close()
	addr := kc.ListenAddrs()[0]
	cfgFile := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfgFile, []byte("sim:\n  available_delay: 300ms\n"), 0o600)
	b, _ := startBridge(t, map[string]string{"QODBRIDGE_KAFKA_BROKERS": addr, "QODBRIDGE_NATS_URL": "off"}, "-config", cfgFile)
	if b.nats != "" {
		t.Fatalf("NATS is off but the banner names %s", b.nats)
	}
	// The topics config leaves to kafkasink and kafkacmd, as they run.
	if want := addr + " (status qod.status; commands qod.commands → results qod.results)"; b.kafka != want {
		t.Fatalf("banner Kafka line %q, want %q", b.kafka, want)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("qod.results", "qod.status"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := strings.Replace(demoCreate, `"requestId":"demo-1"`, `"requestId":"kafka-1"`, 1)
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "qod.commands", Value: []byte(cmd),
		Headers: []kgo.RecordHeader{{Key: "qod-action", Value: []byte("create")}}}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var result *kgo.Record
	var statuses []string
	for ctx.Err() == nil && (result == nil || len(statuses) < 2) {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			switch r.Topic {
			case "qod.results":
				result = r
			case "qod.status":
				statuses = append(statuses, string(r.Key)+" "+string(r.Value))
			}
		})
	}
	if result == nil {
		t.Fatal("no result on qod.results")
	}
	var res struct {
		RequestID string `json:"requestId"`
		OK        bool   `json:"ok"`
		Session   struct {
			SessionID string `json:"sessionId"`
		} `json:"session"`
	}
	if err := json.Unmarshal(result.Value, &res); err != nil || !res.OK || res.RequestID != "kafka-1" || string(result.Key) != res.Session.SessionID {
		t.Fatalf("result key %s value %s (%v)", result.Key, result.Value, err)
	}
	id := res.Session.SessionID
	want := []string{
		id + ` {"sessionId":"` + id + `","qosStatus":"REQUESTED"}`,
		id + ` {"sessionId":"` + id + `","qosStatus":"AVAILABLE"}`,
	}
	if len(statuses) < 2 || statuses[0] != want[0] || statuses[1] != want[1] {
		t.Fatalf("status records %q, want %q", statuses, want)
	}
}

// TestReadyzDetailNeedsATokenOffLoopback: off loopback a probe learns
// only that the bridge is not ready; the brokers' errors (hosts, settings)
// need an admin token.
func TestReadyzDetailNeedsATokenOffLoopback(t *testing.T) {
	kc := newKafka(t, 0)
	addr := kc.ListenAddrs()[0]
	const token = "admin-test-token-0123456789"
	b, _ := startBridge(t, map[string]string{"QODBRIDGE_KAFKA_BROKERS": addr, "QODBRIDGE_ADMIN_ADDRESS": "0.0.0.0:0",
		"QODBRIDGE_ADMIN_TOKENS": token, "QODBRIDGE_AUTH_TOKENS": "sender-test-token-0123456789"})
	kc.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(b.admin, "http://"))
	get := func(auth string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:"+port+"/readyz", nil)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get(""); code != 503 || strings.Contains(body, "kafka:") || strings.Contains(body, addr) {
		t.Fatalf("readyz without a token: %d %q", code, body)
	}
	if code, body := get(token); code != 503 || !strings.Contains(body, "kafka") {
		t.Fatalf("readyz with the admin token: %d %q", code, body)
	}
}
