package process

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/qodbridge/qodbridge/sinks/natssink/natstest"
	"github.com/qodbridge/qodbridge/sinks/sinktest"
)

// TestNoSecretInLogs runs the bridge at debug level through accepted and
// refused notifications, a wrong token in the URL, and commands that make
// per-session credentials, and checks no secret reaches the log.
func TestNoSecretInLogs(t *testing.T) {
	const (
		token   = "configured-token-ABCDEF0123456789"
		secret  = "session-secret-ABCDEF0123456789"
		apiTok  = "qod-api-token-ABCDEF0123456789"
		wrong   = "wrong-token-ABCDEF0123456789"
		inQuery = "query-token-ABCDEF0123456789"
	)
	var logs sinktest.Buffer
	b, stop := startBridgeLog(t, map[string]string{
		"QODBRIDGE_AUTH_TOKENS":     token,
		"QODBRIDGE_SESSION_SECRETS": secret,
		"QODBRIDGE_QOD_API_TOKEN":   apiTok,
		"QODBRIDGE_LOG_LEVEL":       "debug",
	}, &logs)
	post(t, http.DefaultClient, b.notify, token, statusEvent("l-1", "s", "AVAILABLE"))
	post(t, http.DefaultClient, b.notify, wrong, statusEvent("l-2", "s", "AVAILABLE"))
	post(t, http.DefaultClient, b.notify+"?access_token="+inQuery, "", statusEvent("l-3", "s", "AVAILABLE"))
	post(t, http.DefaultClient, b.notify, token, `{"specversion":"1.0","id":"l-4","source":"s","type":"nope","data":{}}`)

	nc, js := natstest.Connect(t, b.nats)
	results, _ := nc.SubscribeSync("qod.results.>")
	flush(t, nc) // the server knows the subscriptions before anything is published
	js.Publish(context.Background(), "qod.commands.create", []byte(demoCreate))
	m, err := results.NextMsg(20 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Session struct {
			Sink string `json:"sink"`
		} `json:"session"`
	}
	json.Unmarshal(m.Data, &res)
	js.Publish(context.Background(), "qod.commands.get", []byte(`{"sessionId":""}`)) // dead-lettered
	results.NextMsg(20 * time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	out := logs.String()
	if !strings.Contains(out, `"level":"INFO"`) || !strings.Contains(out, "notification rejected") {
		t.Fatalf("the log is not what this test expects (is logging on?):\n%s", out)
	}
	for _, s := range []string{token, secret, apiTok, wrong, inQuery, "Bearer "} {
		if strings.Contains(out, s) {
			t.Errorf("the log contains the secret %q", s)
		}
	}
	if res.Session.Sink == "" {
		t.Fatal("the create result has no sink")
	}
	if strings.Contains(m.Header.Get("ce-subject"), "sinkCredential") || strings.Contains(string(m.Data), "accessToken") {
		t.Errorf("the create result carries the sink credential: %s", m.Data)
	}
}

// TestNoCredentialInBannerOrLog: a NATS URL with credentials is printed
// and logged with its user info masked.
func TestNoCredentialInBannerOrLog(t *testing.T) {
	ns := natstest.Embedded(t)
	url := strings.Replace(ns.ClientURL(), "nats://", "nats://natsuser:nats-password-0123456789@", 1)
	var logs sinktest.Buffer
	b, _ := startBridgeLog(t, map[string]string{"QODBRIDGE_NATS_URL": url, "QODBRIDGE_LOG_LEVEL": "debug"}, &logs)
	if strings.Contains(b.nats, "password") || !strings.Contains(b.nats, "***@") {
		t.Fatalf("banner NATS URL %q", b.nats)
	}
	if strings.Contains(logs.String(), "nats-password") || strings.Contains(logs.String(), "natsuser") {
		t.Fatalf("the log holds the NATS credentials:\n%s", logs.String())
	}
}
