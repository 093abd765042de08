package sinks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/bridge/ingress"
	"github.com/qodbridge/qodbridge/sinks"
	"github.com/qodbridge/qodbridge/sinks/kafkasink"
	"github.com/qodbridge/qodbridge/sinks/natssink"
	"github.com/qodbridge/qodbridge/sinks/natssink/natstest"
)

const (
	token    = "hostile-test-token-0123456789"
	topic    = "qod.status"
	deadline = 30 * time.Second // guards against hangs; no timing threshold
	goodTP   = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
)

// bridgeUnderTest is the ingress publishing through a Set to an embedded
// NATS server and a kfake cluster, served over HTTP.
type bridgeUnderTest struct {
	url string
	js  jetstream.JetStream
	kc  *kfake.Cluster
}

func startBridge(t *testing.T, natsMaxPayload int32, kafkaMaxBytes int64) *bridgeUnderTest {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	ns, err := natssink.StartEmbedded(natssink.EmbeddedOptions{Address: "127.0.0.1:0", StoreDir: t.TempDir(),
		Configure: func(o *server.Options) {
			if natsMaxPayload > 0 {
				o.MaxPayload = natsMaxPayload
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)

	nsink, err := natssink.Open(ctx, natssink.ConnOptions{URL: ns.ClientURL()}, natssink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ksink, err := kafkasink.Open(ctx, kafkasink.ConnOptions{Brokers: kc.ListenAddrs()}, kafkasink.Options{Topic: topic, MaxMessageBytes: kafkaMaxBytes})
	if err != nil {
		nsink.Close()
		t.Fatal(err)
	}
	set := sinks.NewSet(map[string]sinks.Sink{"nats": nsink, "kafka": ksink})
	t.Cleanup(func() { set.Close() })
	h, err := ingress.New(set, ingress.Options{Tokens: []string{token}, PublishTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	_, js := natstest.Connect(t, ns.ClientURL())
	return &bridgeUnderTest{url: srv.URL + "/notifications", js: js, kc: kc}
}

// post sends a notification and returns the status and problem, if any.
func (b *bridgeUnderTest) post(t *testing.T, ct, body string, header map[string]string) (int, ingress.Problem) {
	t.Helper()
	r, err := http.NewRequest(http.MethodPost, b.url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", ct)
	r.Header.Set("Authorization", "Bearer "+token)
	for k, v := range header {
		r.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p ingress.Problem
	if resp.StatusCode != http.StatusNoContent {
		json.NewDecoder(resp.Body).Decode(&p)
	}
	return resp.StatusCode, p
}

// natsMsgs reads every message of the status stream.
func (b *bridgeUnderTest) natsMsgs(t *testing.T) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	st, err := b.js.Stream(ctx, natssink.DefaultStreamName)
	if err != nil {
		t.Fatal(err)
	}
	info := st.CachedInfo().State
	var out []*jetstream.RawStreamMsg
	for seq := info.FirstSeq; info.Msgs > 0 && seq <= info.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// kafkaRecords reads every record of the topic, checking there are want.
// Every Publish returned before, so the partitions' end offsets are final:
// the count comes from them, and reading waits only for that many.
func (b *bridgeUnderTest) kafkaRecords(t *testing.T, want int) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.kc.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for p := range int32(3) {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp = p, -1 // the end
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if rp.ErrorCode != 0 {
				t.Fatalf("list offsets %s[%d]: error %d", topic, rp.Partition, rp.ErrorCode)
			}
			total += int(rp.Offset)
		}
	}
	if total != want {
		t.Fatalf("topic holds %d records, want %d", total, want)
	}
	var out []*kgo.Record
	for len(out) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records: %v", len(out), want, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

func eventJSON(id, source, session string, extra string) string {
	return fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":%q,"type":%q%s,"data":{"sessionId":%q,"qosStatus":"AVAILABLE"}}`,
		id, source, bridge.EventTypeV0, extra, session)
}

// TestHostileThroughBrokers runs hostile notifications through the whole
// status flow: HTTP, the ingress, a Set of a real NATS server and a kfake
// cluster. An event one broker cannot carry is 413 and stored by neither;
// bad input is never a 503; invalid trace context never reaches a broker;
// after every hostile request a good one is stored by both.
func TestHostileThroughBrokers(t *testing.T) {
	// An id of 1,024 spaces is 3,072 bytes as a NATS header (percent-
	// encoded) and 1,024 as a Kafka header: with a 1,000-byte source, too
	// large for NATS at max_payload 4096 and for Kafka at 2048 bytes.
	bigID, bigSource := strings.Repeat(" ", 1024), "https://qod.example/"+strings.Repeat("s", 980)
	for _, sc := range []struct {
		name           string
		natsMaxPayload int32
		kafkaMaxBytes  int64
		refusedBy      string
	}{
		{"NATS max_payload 4096", 4096, 0, "nats: "},
		{"Kafka writer limit 2048", 0, 2048, "kafka: "},
	} {
		t.Run(sc.name, func(t *testing.T) {
			b := startBridge(t, sc.natsMaxPayload, sc.kafkaMaxBytes)
			accepted := 0
			good := func(t *testing.T) {
				t.Helper()
				accepted++
				if st, p := b.post(t, "application/cloudevents+json", eventJSON(fmt.Sprintf("good-%d", accepted), "https://qod.example", "s-good", ""), nil); st != 204 {
					t.Fatalf("a good notification answered %d %+v", st, p)
				}
			}

			st, p := b.post(t, "application/cloudevents+json", eventJSON(bigID, bigSource, "s-big", ""), nil)
			if st != 413 || p.Code != "PAYLOAD_TOO_LARGE" || !strings.Contains(p.Detail, sc.refusedBy) || !strings.Contains(p.Detail, "too large") {
				t.Fatalf("an event too large for one broker: %d %+v", st, p)
			}
			if n := len(b.natsMsgs(t)); n != 0 {
				t.Fatalf("NATS stored %d messages of a refused event", n)
			}
			b.kafkaRecords(t, 0)
			good(t)

			// The same event in a batch with one that fits: neither stored.
			batch := "[" + eventJSON("fits", "https://qod.example", "s-1", "") + "," + eventJSON(bigID, bigSource, "s-big", "") + "]"
			if st, p := b.post(t, "application/cloudevents-batch+json", batch, nil); st != 413 {
				t.Fatalf("a batch with an event too large: %d %+v", st, p)
			}
			good(t)

			if st, p := b.post(t, "application/cloudevents+json", eventJSON(strings.Repeat(" ", 300_000), "https://qod.example", "s", ""), nil); st != 400 || p.Field != "id" {
				t.Fatalf("a 300 kB id of spaces: %d %+v", st, p)
			}
			good(t)

			var parts []string
			for i := range 5000 {
				parts = append(parts, eventJSON(fmt.Sprintf("b-%d", i), "s", "s", ""))
			}
			if st, p := b.post(t, "application/cloudevents-batch+json", "["+strings.Join(parts, ",")+"]", nil); st != 413 || p.Code != "PAYLOAD_TOO_LARGE" || !strings.Contains(p.Detail, "5000") {
				t.Fatalf("a 5,000-event batch: %d %+v", st, p)
			}
			good(t)

			for _, tc := range []struct {
				name, body string
				header     map[string]string
			}{
				{"in the event", eventJSON("trace-1", "https://qod.example", "s-trace", `,"traceparent":"00-bad","tracestate":"k=v"`), nil},
				{"in the HTTP header", eventJSON("trace-2", "https://qod.example", "s-trace", ""), map[string]string{"Traceparent": "ff" + goodTP[2:], "Tracestate": "k=v"}},
			} {
				if st, p := b.post(t, "application/cloudevents+json", tc.body, tc.header); st != 204 {
					t.Fatalf("invalid traceparent %s: %d %+v", tc.name, st, p)
				}
				accepted++
			}
			good(t)

			// Every accepted event is in both brokers once; the two with
			// invalid trace context carry none.
			msgs := b.natsMsgs(t)
			if len(msgs) != accepted {
				t.Fatalf("NATS holds %d messages, want %d", len(msgs), accepted)
			}
			for _, m := range msgs {
				if strings.HasPrefix(m.Header.Get("ce-id"), "trace-") && (m.Header.Get("ce-traceparent") != "" || m.Header.Get("ce-tracestate") != "") {
					t.Errorf("NATS message %s carries trace context %v", m.Header.Get("ce-id"), m.Header)
				}
			}
			for _, r := range b.kafkaRecords(t, accepted) {
				var id string
				for _, h := range r.Headers {
					if h.Key == "ce_id" {
						id = string(h.Value)
					}
				}
				for _, h := range r.Headers {
					if strings.HasPrefix(id, "trace-") && (h.Key == "ce_traceparent" || h.Key == "ce_tracestate") {
						t.Errorf("Kafka record %s carries %s", id, h.Key)
					}
				}
			}
		})
	}
}
