package process

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/qodbridge/qodbridge/sinks/natssink/natstest"
)

type gotSpan struct {
	name, trace, span, parent string
	attrs                     map[string]string // string and int values
}

// otlpReceiver is an OTLP/HTTP trace endpoint that keeps what it gets.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []gotSpan
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		body = zr
	}
	b, _ := io.ReadAll(body)
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	o.mu.Lock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				attrs := map[string]string{}
				for _, kv := range s.Attributes {
					if v := kv.Value.GetStringValue(); v != "" {
						attrs[kv.Key] = v
					} else {
						attrs[kv.Key] = fmt.Sprint(kv.Value.GetIntValue())
					}
				}
				o.spans = append(o.spans, gotSpan{s.Name, hex.EncodeToString(s.TraceId), hex.EncodeToString(s.SpanId), hex.EncodeToString(s.ParentSpanId), attrs})
			}
		}
	}
	o.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(nil)
}

func (o *otlpReceiver) find(name string) []gotSpan {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []gotSpan
	for _, s := range o.spans {
		if strings.HasPrefix(s.name, name) {
			out = append(out, s)
		}
	}
	return out
}

// TestTracingContinuesTraceparent: with an OTLP endpoint configured, the
// traceparent of a notification continues into the bridge's span, whose
// context is what the broker message carries; a command's traceparent
// header continues into the command span and its QoD API call.
func TestTracingContinuesTraceparent(t *testing.T) {
	recv := &otlpReceiver{}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
	b, stop := startBridge(t, nil)

	nc, js := natstest.Connect(t, b.nats)
	sub, _ := nc.SubscribeSync("qod.status.>")
	flush(t, nc) // the server knows the subscriptions before anything is published
	const traceID, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	req, _ := http.NewRequest(http.MethodPost, b.notify, strings.NewReader(statusEvent("tr-1", "s", "AVAILABLE")))
	req.Header.Set("Authorization", "Bearer "+b.token)
	req.Header.Set("Content-Type", "application/cloudevents+json")
	req.Header.Set("traceparent", "00-"+traceID+"-"+parent+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 204 {
		t.Fatalf("POST: %v %v", resp, err)
	}
	resp.Body.Close()
	m, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	tp := strings.Split(m.Header.Get("ce-traceparent"), "-")
	if len(tp) != 4 || tp[1] != traceID || tp[2] == parent {
		t.Fatalf("ce-traceparent %q does not continue trace %s from a new span", m.Header.Get("ce-traceparent"), traceID)
	}

	const cmdTrace, cmdParent = "5bf92f3577b34da6a3ce929d0e0e4737", "10f067aa0ba902b8"
	results, _ := nc.SubscribeSync("qod.results.>")
	flush(t, nc) // the server knows the subscriptions before anything is published
	cmd := nats.NewMsg("qod.commands.create")
	cmd.Data = []byte(demoCreate)
	cmd.Header.Set("traceparent", "00-"+cmdTrace+"-"+cmdParent+"-01")
	if _, err := js.PublishMsg(context.Background(), cmd); err != nil {
		t.Fatal(err)
	}
	if _, err := results.NextMsg(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil { // flushes the spans
		t.Fatal(err)
	}

	pub := recv.find("qodbridge publish status")
	if len(pub) == 0 || pub[0].trace != traceID || pub[0].parent != parent || pub[0].span != tp[2] {
		t.Fatalf("publish spans %+v; want trace %s, parent %s, span %s", pub, traceID, parent, tp[2])
	}
	send := recv.find("publish qod.status.{sessionToken}")
	if len(send) == 0 || send[0].parent != pub[0].span || send[0].attrs["messaging.system"] != "nats" ||
		send[0].attrs["messaging.destination.name"] != "qod.status.s" || send[0].attrs["messaging.operation.type"] != "send" {
		t.Fatalf("send spans %+v; want a NATS send span under the publish span %s", send, pub[0].span)
	}
	cs := recv.find("qodbridge command create")
	if len(cs) != 1 || cs[0].trace != cmdTrace || cs[0].parent != cmdParent {
		t.Fatalf("command spans %+v", cs)
	}
	if a := cs[0].attrs; a["messaging.system"] != "nats" || a["messaging.destination.name"] != "qod.commands.create" || a["messaging.operation.type"] != "process" {
		t.Fatalf("command span attributes %v", a)
	}
	var apiCall bool
	for _, s := range recv.find("") {
		if s.trace == cmdTrace && s.parent == cs[0].span && strings.Contains(s.name, "POST") {
			apiCall = true
		}
	}
	if !apiCall {
		t.Fatalf("no QoD API client span under the command span; spans: %+v", recv.find(""))
	}
}
