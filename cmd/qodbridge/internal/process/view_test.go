package process

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/config"
	"github.com/qodbridge/qodbridge/sinks/sinktest"
)

func timedEvent(id, session, tm, status, info string) string {
	si := ""
	if info != "" {
		si = fmt.Sprintf(`,"statusInfo":%q`, info)
	}
	return fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"https://qod.example/v1","type":%q,"time":%q,"data":{"sessionId":%q,"qosStatus":%q%s}}`,
		id, bridge.EventType, tm, session, status, si)
}

// TestViewOutOfOrder is the case from outside: AVAILABLE (10:00),
// UNAVAILABLE/DELETE_REQUESTED (10:05), then a retried AVAILABLE (10:01)
// arrive in that order over HTTP; all three are answered 204 and stored,
// and the session view on NATS (KV) and on Kafka (compacted topic) says
// UNAVAILABLE; the stale one is counted.
func TestViewOutOfOrder(t *testing.T) {
	kc := newKafka(t, 0)
	t.Cleanup(kc.Close)
	cfgFile := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(cfgFile, []byte("ingress:\n  publish_timeout: 5s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := startBridge(t, map[string]string{"QODBRIDGE_KAFKA_BROKERS": kc.ListenAddrs()[0]}, "-config", cfgFile)
	const session = "sess.view-1" // a '.' so the key is escaped
	for _, ev := range []string{
		timedEvent("v-a", session, "2026-12-03T10:00:00Z", "AVAILABLE", ""),
		timedEvent("v-d", session, "2026-12-03T10:05:00Z", "UNAVAILABLE", "DELETE_REQUESTED"),
		timedEvent("v-a2", session, "2026-12-03T10:01:00Z", "AVAILABLE", ""),
	} {
		if code, err := post(t, http.DefaultClient, b.notify, b.token, ev); err != nil || code != http.StatusNoContent {
			t.Fatalf("POST: %d %v", code, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// NATS: the bucket, as `nats kv get QOD_SESSIONS sess%2Eview-1` (with '=') reads it.
	nc, err := nats.Connect(b.nats)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(ctx, "QOD_SESSIONS")
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(ctx, "sess=2Eview-1")
	if err != nil {
		t.Fatal(err)
	}
	var got bridge.ViewEntry
	if err := json.Unmarshal(e.Value(), &got); err != nil || got.QoSStatus != bridge.StatusUnavailable || got.ID != "v-d" || !got.Final || got.ReceivedAt.IsZero() {
		t.Fatalf("NATS view %s (%v)", e.Value(), err)
	}
	st, _ := js.Stream(ctx, "QOD_STATUS")
	if info, err := st.Info(ctx); err != nil || info.State.Msgs != 3 {
		t.Fatalf("history holds %v (%v), want all 3", info.State.Msgs, err)
	}

	// Kafka: the key's last record in the compacted topic.
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.ConsumeTopics("qod.sessions"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var last []byte
	for last == nil && ctx.Err() == nil {
		pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
		cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
			if string(r.Key) == session {
				last = r.Value
			}
		})
		pcancel()
	}
	if !strings.Contains(string(last), `"id":"v-d"`) {
		t.Fatalf("Kafka view %s", last)
	}

	// The stale retry is counted, per broker's view.
	if !sinktest.Poll(10*time.Second, 50*time.Millisecond, func() bool {
		body := getBody(t, b.admin+"/metrics")
		return strings.Contains(body, `qodbridge_view_stale_total{reason="final",view="nats"} 1`) &&
			strings.Contains(body, `qodbridge_view_stale_total{reason="final",view="kafka"} 1`)
	}) {
		t.Fatal("the stale event was not counted")
	}
}

func getBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			return sb.String()
		}
	}
}

// TestViewDisabled: view.disabled leaves only the stream: no bucket.
func TestViewDisabled(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(cfgFile, []byte("view:\n  disabled: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := startBridge(t, nil, "-config", cfgFile)
	if code, err := post(t, http.DefaultClient, b.notify, b.token, statusEvent("nv-1", "s-nv", "AVAILABLE")); err != nil || code != 204 {
		t.Fatalf("POST: %d %v", code, err)
	}
	nc, err := nats.Connect(b.nats)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.KeyValue(ctx, "QOD_SESSIONS"); err == nil {
		t.Fatal("the view bucket exists with the view off")
	}
}

// TestSessionsRebuild: a bridge that ran with the view off stored the
// out-of-order events in the history only; `qodbridge sessions rebuild`
// replays them into the view, which then says UNAVAILABLE.
func TestSessionsRebuild(t *testing.T) {
	dir := t.TempDir()
	off := filepath.Join(t.TempDir(), "off.yaml")
	if err := os.WriteFile(off, []byte("view:\n  disabled: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, stop := startBridge(t, map[string]string{"QODBRIDGE_DATA_DIR": dir}, "-config", off)
	for _, ev := range []string{
		timedEvent("r-a", "s-rb", "2026-12-03T10:00:00Z", "AVAILABLE", ""),
		timedEvent("r-d", "s-rb", "2026-12-03T10:05:00Z", "UNAVAILABLE", "DELETE_REQUESTED"),
		timedEvent("r-a2", "s-rb", "2026-12-03T10:01:00Z", "AVAILABLE", ""),
	} {
		if code, err := post(t, http.DefaultClient, b.notify, b.token, ev); err != nil || code != http.StatusNoContent {
			t.Fatalf("POST: %d %v", code, err)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	cfg, err := config.Load("", os.Getenv) // the same data dir, the view on
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out strings.Builder
	if err := RebuildSessions(ctx, cfg, slog.New(slog.DiscardHandler), &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "nats: replayed 3 messages of QOD_STATUS") {
		t.Fatalf("rebuild printed %q", out.String())
	}

	b, _ = startBridge(t, map[string]string{"QODBRIDGE_DATA_DIR": dir})
	nc, err := nats.Connect(b.nats)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(ctx, "QOD_SESSIONS")
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(ctx, "s-rb")
	if err != nil || !strings.Contains(string(e.Value()), `"id":"r-d"`) {
		t.Fatalf("view after rebuild: %v %v", e, err)
	}
}
