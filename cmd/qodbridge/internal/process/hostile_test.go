package process

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qodbridge/qodbridge/sinks/sinktest"
)

// TestHostileInputKeepsTheBridgeServing sends every class of input no
// well-behaved client sends through NATS, Kafka and HTTP to one running
// bridge, checks each outcome, and that the same process then still
// serves good commands and notifications.
func TestHostileInputKeepsTheBridgeServing(t *testing.T) {
	kc := newKafka(t, 0)
	t.Cleanup(kc.Close)
	var log sinktest.Buffer
	b, _ := startBridgeLog(t, map[string]string{"QODBRIDGE_KAFKA_BROKERS": kc.ListenAddrs()[0], "QODBRIDGE_LOG_LEVEL": "info"}, &log)
	nc, err := nats.Connect(b.nats)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	huge := strings.Repeat("r", 600<<10)

	// NATS: an action that is not UTF-8 (it used to panic the metrics and
	// the process), an oversized requestId (its dead letter used to exceed
	// max_payload and loop), a JetStream expectation header that holds for
	// QOD_COMMANDS only (copied onto the dead letter, it failed every
	// time).
	for _, m := range []*nats.Msg{
		{Subject: "qod.commands.\xff\xfe", Data: []byte(`{"requestId":"hn-1","sessionId":"s"}`)},
		{Subject: "qod.commands.get", Data: []byte(`{"requestId":"` + huge + `","sessionId":"s"}`)},
		{Subject: "qod.commands.get", Data: []byte(`not json`), Header: nats.Header{"Nats-Expected-Stream": {"QOD_COMMANDS"}}},
	} {
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatalf("publish %q: %v", m.Subject, err)
		}
	}
	// Kafka: the same through the qod-action header and the value.
	kcl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kcl.Close)
	for _, r := range []*kgo.Record{
		{Topic: "qod.commands", Value: []byte(`{"requestId":"hk-1","sessionId":"s"}`), Headers: []kgo.RecordHeader{{Key: "qod-action", Value: []byte("\xff\xfe")}}},
		{Topic: "qod.commands", Value: []byte(`{"action":"get","requestId":"` + huge + `","sessionId":"s"}`)},
	} {
		if err := kcl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	// Every one ends in a dead letter, counted under closed label values.
	t.Cleanup(func() {
		if t.Failed() {
			resp, _ := http.Get(b.admin + "/metrics")
			body, _ := io.ReadAll(resp.Body)
			for l := range strings.Lines(string(body)) {
				if strings.Contains(l, "commands_total") {
					t.Log(l)
				}
			}
		}
	})
	waitMetrics(t, b.admin,
		`qodbridge_commands_total{action="invalid",outcome="dead_letter"} 3`,
		`qodbridge_commands_total{action="get",outcome="dead_letter"} 2`,
		`qodbridge_dead_letters_total 5`,
	)
	dlq, err := js.Stream(ctx, "QOD_DLQ")
	if err != nil {
		t.Fatal(err)
	}
	if info, err := dlq.Info(ctx); err != nil || info.State.Msgs != 3 {
		t.Fatalf("QOD_DLQ: %+v %v", info, err)
	}
	cmds, _ := js.Stream(ctx, "QOD_COMMANDS")
	if !sinktest.Poll(10*time.Second, 10*time.Millisecond, func() bool {
		info, err := cmds.Info(ctx)
		return err == nil && info.State.Msgs == 0
	}) {
		t.Fatal("hostile commands left in QOD_COMMANDS")
	}

	// HTTP: each class gets its exact 4xx, never a 5xx.
	hostileHTTP := []struct {
		name, ctype, body string
		header            http.Header
		want              int
		detail            string
	}{
		{"body not UTF-8", "application/cloudevents+json", strings.Replace(statusEvent("hh-1", "s\xff", "AVAILABLE"), `s\xff`, "s\xff", 1), nil, 400, "invalid UTF-8 at byte"},
		{"300 kB id of spaces", "application/cloudevents+json", statusEvent(strings.Repeat(" ", 300<<10), "s", "AVAILABLE"), nil, 400, "longer than 1024 bytes"},
		{"5,000-event batch", "application/cloudevents-batch+json", "[" + strings.TrimSuffix(strings.Repeat(statusEvent("hh-b", "s", "AVAILABLE")+",", 5000), ",") + "]", nil, 413, "batch of 5000 events"},
		{"token without a scheme", "application/cloudevents+json", statusEvent("hh-2", "s", "AVAILABLE"), http.Header{"Authorization": {"secret-token-value-0123456789"}}, 401, `must be \"Bearer <token>\"`},
		{"1 MB header", "application/cloudevents+json", statusEvent("hh-3", "s", "AVAILABLE"), http.Header{"Authorization": {"Basic " + strings.Repeat("a", 1<<20-4096)}}, 401, `must be \"Bearer <token>\"`},
	}
	for _, h := range hostileHTTP {
		req, _ := http.NewRequest(http.MethodPost, b.notify, strings.NewReader(h.body))
		req.Header.Set("Content-Type", h.ctype)
		req.Header.Set("Authorization", "Bearer "+b.token)
		for k, v := range h.header {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", h.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != h.want || len(body) > 4<<10 || !strings.Contains(string(body), h.detail) {
			t.Errorf("%s: %d %.300s (%d bytes), want %d with %q", h.name, resp.StatusCode, body, len(body), h.want, h.detail)
		}
	}
	// An invalid traceparent is dropped: accepted, not carried onto the broker.
	status, _ := nc.SubscribeSync("qod.status.sess-trace")
	flush(t, nc)
	req, _ := http.NewRequest(http.MethodPost, b.notify, strings.NewReader(statusEvent("hh-4", "sess-trace", "AVAILABLE")))
	req.Header.Set("Content-Type", "application/cloudevents+json")
	req.Header.Set("Authorization", "Bearer "+b.token)
	req.Header.Set("Traceparent", "00-not-a-trace")
	req.Header.Set("Tracestate", "k=v")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 204 {
		t.Fatalf("invalid traceparent: %v %v", resp, err)
	}
	if m, err := status.NextMsg(10 * time.Second); err != nil || m.Header.Get("ce-traceparent") != "" || m.Header.Get("ce-tracestate") != "" {
		t.Fatalf("status message %v, %v: the invalid trace context was carried over", m, err)
	}
	logs := log.String()
	if strings.Contains(logs, "secret-token-value") {
		t.Error("a token sent without a scheme is in the log")
	}
	for line := range strings.Lines(logs) {
		if len(line) > 8<<10 {
			t.Errorf("a log line of %d bytes: %.200s…", len(line), line)
		}
	}

	// The same process still serves.
	sub, _ := nc.SubscribeSync("qod.results.after")
	flush(t, nc)
	if _, err := js.Publish(ctx, "qod.commands.list", []byte(`{"requestId":"after","device":{"phoneNumber":"+36721601234567"}}`)); err != nil {
		t.Fatal(err)
	}
	if r := nextResult(t, sub); !r.OK {
		t.Fatalf("a good command after hostile ones: %+v", r)
	}
	if code, err := post(t, http.DefaultClient, b.notify, b.token, statusEvent("after-1", "sess-after", "AVAILABLE")); err != nil || code != 204 {
		t.Fatalf("a good notification after hostile input: %d %v", code, err)
	}
	if strings.Contains(logs, huge[:4096]) {
		t.Error("the log echoes the oversized requestId")
	}
}
