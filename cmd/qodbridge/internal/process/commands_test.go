package process

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/bridge/command"
	"github.com/qodbridge/qodbridge/sinks/natssink/natstest"
	"github.com/qodbridge/qodbridge/sinks/sinktest"
)

// TestCommandRoundTrip is the README's round trip on the zero-config
// bridge: a create command on NATS → a session on the built-in simulator
// whose notifications come back through the ingress (per-session token) as
// REQUESTED and AVAILABLE on qod.status.<id>; a delete → UNAVAILABLE /
// DELETE_REQUESTED; the results on qod.results.<requestId>; and the micro
// service answering directly.
func TestCommandRoundTrip(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(cfgFile, []byte("sim:\n  available_delay: 300ms\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := startBridge(t, nil, "-config", cfgFile)
	if b.api == "" {
		t.Fatal("banner names no QoD API")
	}
	nc, js := natstest.Connect(t, b.nats)
	status, err := nc.SubscribeSync("qod.status.>")
	if err != nil {
		t.Fatal(err)
	}
	results, err := nc.SubscribeSync("qod.results.>")
	if err != nil {
		t.Fatal(err)
	}
	flush(t, nc) // the server knows the subscriptions before anything is published
	ctx := context.Background()
	if _, err := js.Publish(ctx, "qod.commands.create", []byte(demoCreate)); err != nil {
		t.Fatal(err)
	}
	res := nextResult(t, results)
	if !res.OK || res.Status != 201 || res.RequestID != "demo-1" {
		t.Fatalf("create result %+v", res)
	}
	var info struct {
		SessionID string `json:"sessionId"`
	}
	json.Unmarshal(res.Session, &info)
	wantStatus(t, status, info.SessionID, bridge.StatusRequested, "")
	wantStatus(t, status, info.SessionID, bridge.StatusAvailable, "")

	if _, err := js.Publish(ctx, "qod.commands.delete", []byte(`{"requestId":"demo-2","sessionId":"`+info.SessionID+`"}`)); err != nil {
		t.Fatal(err)
	}
	if res := nextResult(t, results); !res.OK || res.Status != 204 || res.RequestID != "demo-2" {
		t.Fatalf("delete result %+v", res)
	}
	wantStatus(t, status, info.SessionID, bridge.StatusUnavailable, bridge.InfoDeleteRequested)

	// The micro service answers a request directly.
	msg, err := nc.Request("qod.api.get", []byte(`{"sessionId":"`+info.SessionID+`"}`), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var got command.Result
	if err := json.Unmarshal(msg.Data, &got); err != nil || got.OK || got.Status != 404 {
		t.Fatalf("micro get after delete: %s", msg.Data)
	}

	// An invalid command: error result and a dead letter.
	if _, err := js.Publish(ctx, "qod.commands.extend", []byte(`{"requestId":"demo-3","sessionId":"x"}`)); err != nil {
		t.Fatal(err)
	}
	if res := nextResult(t, results); res.OK || res.Status != 400 || res.RequestID != "demo-3" {
		t.Fatalf("invalid command result %+v", res)
	}

	// The metrics moved with all of it.
	waitMetrics(t, b.admin,
		`qodbridge_commands_total{action="create",outcome="ok"} 1`,
		`qodbridge_commands_total{action="delete",outcome="ok"} 1`,
		`qodbridge_commands_total{action="get",outcome="error"} 1`,
		`qodbridge_commands_total{action="extend",outcome="dead_letter"} 1`,
		`qodbridge_dead_letters_total 1`,
		`qodbridge_qod_api_requests_total{action="create",code="201"} 1`,
		`qodbridge_qod_api_requests_total{action="get",code="404"} 1`,
		`qodbridge_qod_api_duration_seconds_count{action="create"} 1`,
		`qodbridge_ingress_requests_total{code="204",shape="structured"} 2`,
		`qodbridge_ingress_events_published_total 2`,
		`qodbridge_publish_duration_seconds_count{sink="nats"} 3`,
		`qodbridge_commands_in_flight 0`,
		`qodbridge_ingress_in_flight_requests 0`,
		`go_goroutines`,
		`process_resident_memory_bytes`,
	)
}

// waitMetrics scrapes /metrics until every line is there (counters are
// updated just after the answers the test waited for).
func waitMetrics(t *testing.T, admin string, want ...string) {
	t.Helper()
	var body string
	sinktest.Poll(10*time.Second, 20*time.Millisecond, func() bool {
		resp, err := http.Get(admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		for _, w := range want {
			if !strings.Contains(body, w) {
				return false
			}
		}
		return true
	})
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("metrics lack %q", w)
		}
	}
}

func nextResult(t *testing.T, sub *nats.Subscription) command.Result {
	t.Helper()
	m, err := sub.NextMsg(20 * time.Second)
	if err != nil {
		t.Fatalf("no result: %v", err)
	}
	var r command.Result
	if err := json.Unmarshal(m.Data, &r); err != nil {
		t.Fatalf("result %s: %v", m.Data, err)
	}
	return r
}

func wantStatus(t *testing.T, sub *nats.Subscription, session string, st bridge.QoSStatus, info bridge.StatusInfo) {
	t.Helper()
	m, err := sub.NextMsg(20 * time.Second)
	if err != nil {
		t.Fatalf("no %s status event: %v", st, err)
	}
	var d bridge.StatusData
	if err := json.Unmarshal(m.Data, &d); err != nil {
		t.Fatal(err)
	}
	if d.SessionID != session || d.QoSStatus != st || d.StatusInfo != info || m.Subject != "qod.status."+bridge.SessionToken(session) {
		t.Fatalf("status event %s %+v, want %s %s/%s", m.Subject, d, session, st, info)
	}
}

// TestMicroServiceAnswersAtBanner: once "qodbridge is ready" is printed,
// the micro service answers at once, from any connection.
func TestMicroServiceAnswersAtBanner(t *testing.T) {
	b, _ := startBridge(t, nil)
	nc, _ := natstest.Connect(t, b.nats)
	msg, err := nc.Request("qod.api.get", []byte("{"), 10*time.Second)
	if err != nil {
		t.Fatalf("qod.api.get right after the banner: %v", err)
	}
	var got command.Result
	if err := json.Unmarshal(msg.Data, &got); err != nil || got.OK || got.Status != 400 {
		t.Fatalf("invalid request answered %s", msg.Data)
	}
}

// TestPerSessionCredentialHoldsForItsSessionOnly: the sink and token the
// bridge gives a session it creates carry an expiry, and once the create's
// result named the session, a notification on that sink about any other
// session is refused with 403, while the session's own are accepted.
func TestPerSessionCredentialHoldsForItsSessionOnly(t *testing.T) {
	const secret = "session-secret-ABCDEF0123456789"
	b, _ := startBridge(t, map[string]string{"QODBRIDGE_SESSION_SECRETS": secret})
	nc, js := natstest.Connect(t, b.nats)
	results, _ := nc.SubscribeSync("qod.results.>")
	flush(t, nc)
	if _, err := js.Publish(context.Background(), "qod.commands.create", []byte(demoCreate)); err != nil {
		t.Fatal(err)
	}
	res := nextResult(t, results)
	var info struct {
		SessionID string `json:"sessionId"`
		Sink      string `json:"sink"`
	}
	if err := json.Unmarshal(res.Session, &info); err != nil || !res.OK || info.Sink == "" {
		t.Fatalf("create result %+v (%v)", res, err)
	}
	key := info.Sink[strings.LastIndex(info.Sink, "/")+1:]
	expires, err := bridge.SinkKeyExpiry(key)
	if err != nil || expires.Before(time.Now().Add(24*time.Hour)) || expires.After(time.Now().Add(26*time.Hour)) {
		t.Fatalf("key %s expires %v (%v), want the session's end (60 s) plus 24 h", key, expires, err)
	}
	tok := bridge.SinkToken([]byte(secret), key)
	sink := strings.Replace(b.notify, "/notifications", "/notifications/"+key, 1)
	if code, _ := post(t, http.DefaultClient, sink, tok, statusEvent("forged-1", "someone-else", "UNAVAILABLE")); code != http.StatusForbidden {
		t.Fatalf("another session on this sink: %d, want 403", code)
	}
	if code, _ := post(t, http.DefaultClient, sink, tok, statusEvent("own-1", info.SessionID, "AVAILABLE")); code != http.StatusNoContent {
		t.Fatalf("its own session: %d, want 204", code)
	}
}

// TestBuiltInSimulatorOffLoopback: a built-in simulator others can reach
// takes only this bridge's requests and notifies only allowed sinks; the
// command flow works as on loopback.
func TestBuiltInSimulatorOffLoopback(t *testing.T) {
	b, _ := startBridge(t, map[string]string{"QODBRIDGE_SIM_ADDRESS": "0.0.0.0:0"})
	nc, js := natstest.Connect(t, b.nats)
	results, _ := nc.SubscribeSync("qod.results.>")
	flush(t, nc)
	if _, err := js.Publish(context.Background(), "qod.commands.create", []byte(demoCreate)); err != nil {
		t.Fatal(err)
	}
	if res := nextResult(t, results); !res.OK || res.Status != 201 {
		t.Fatalf("create through the bridge: %+v", res)
	}
	body := `{"device":{"phoneNumber":"+36721601234567"},"applicationServer":{"ipv4Address":"233.252.0.2"},"qosProfile":"QOS_L","duration":60,` +
		`"sink":"https://attacker.example/x","sinkCredential":{"credentialType":"ACCESSTOKEN","accessToken":"t","accessTokenExpiresUtc":"2030-01-01T00:00:00Z","accessTokenType":"bearer"}}`
	resp, err := http.Post(b.api+"/sessions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a create without the bridge's token: %d, want 401", resp.StatusCode)
	}
}
