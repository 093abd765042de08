package process

import (
	"context"
	"errors"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/bridge/command"
)

// recordingTracing is tracing whose spans a SpanRecorder keeps.
func recordingTracing(t *testing.T) (*tracing, *tracetest.SpanRecorder) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return &tracing{tp: tp, tracer: tp.Tracer("test")}, sr
}

func spanAttrs(s sdktrace.ReadOnlySpan) map[attribute.Key]string {
	m := map[attribute.Key]string{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value.String()
	}
	return m
}

func checkAttrs(t *testing.T, s sdktrace.ReadOnlySpan, want map[attribute.Key]string) {
	t.Helper()
	got := spanAttrs(s)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("span %q: %s = %q, want %q (all: %v)", s.Name(), k, got[k], v, got)
		}
	}
}

// TestSpansCarryMessagingConventions: the ingress (create), per-broker
// send and command (process) spans carry OpenTelemetry's messaging
// attributes beside the qod.* ones, a send span is a child of the
// ingress span, and a command's trace continues from a traceparent header
// or, without one, from the CloudEvents extension header.
func TestSpansCarryMessagingConventions(t *testing.T) {
	tr, sr := recordingTracing(t)
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	evs := []bridge.Event{{ID: "ev-1", Source: "urn:s", SessionID: "s.1", QoSStatus: bridge.StatusAvailable,
		TraceParent: "00-" + traceID + "-00f067aa0ba902b7-01"}}
	ctx, endIngress := tr.ingress(context.Background(), evs)
	_, endSend := tr.send(ctx, bridge.Messaging{System: "nats", Destination: "qod.status.s%2E1",
		Template: "qod.status.{sessionToken}", MessageID: evs[0].DedupKey(), Count: 1}, evs)
	endSend(nil)
	_, endKafka := tr.send(ctx, bridge.Messaging{System: "kafka", Destination: "qod.status", MessageID: "ev-1", Key: "s.1", Count: 1}, evs)
	endKafka(errors.New("broker down"))
	endIngress(nil)

	header := map[string]string{"ce_traceparent": "00-5bf92f3577b34da6a3ce929d0e0e4737-10f067aa0ba902b8-01"}
	cctx := bridge.WithMessaging(context.Background(), bridge.Messaging{System: "kafka", Destination: "qod.commands",
		MessageID: "m-1", Key: "k", Consumed: true, Partition: 2, Offset: 7, ConsumerGroup: "qodbridge"})
	_, endCmd := tr.command(cctx, func(k string) string { return header[k] }, command.Create)
	endCmd(nil)

	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range sr.Ended() {
		byName[s.Name()] = s
	}
	in, nats, kafka, cmd := byName["qodbridge publish status"], byName["publish qod.status.{sessionToken}"], byName["send qod.status"], byName["qodbridge command create"]
	if in == nil || nats == nil || kafka == nil || cmd == nil {
		t.Fatalf("spans %v", byName)
	}
	checkAttrs(t, in, map[attribute.Key]string{
		"messaging.operation.type": "create", "messaging.message.id": "ev-1", "qod.session_id": "s.1", "qod.status": "AVAILABLE",
	})
	checkAttrs(t, nats, map[attribute.Key]string{
		"messaging.system": "nats", "messaging.destination.name": "qod.status.s%2E1", "messaging.destination.template": "qod.status.{sessionToken}",
		"messaging.operation.type": "send", "messaging.operation.name": "publish", "messaging.message.id": evs[0].DedupKey(), "qod.session_id": "s.1",
	})
	checkAttrs(t, kafka, map[attribute.Key]string{
		"messaging.system": "kafka", "messaging.destination.name": "qod.status", "messaging.operation.type": "send",
		"messaging.operation.name": "send", "messaging.message.id": "ev-1", "messaging.kafka.message.key": "s.1",
	})
	checkAttrs(t, cmd, map[attribute.Key]string{
		"messaging.system": "kafka", "messaging.destination.name": "qod.commands", "messaging.operation.type": "process",
		"messaging.message.id": "m-1", "messaging.destination.partition.id": "2", "messaging.kafka.offset": "7",
		"messaging.consumer.group.name": "qodbridge", "qod.action": "create",
	})
	for _, s := range []sdktrace.ReadOnlySpan{nats, kafka} {
		if s.Parent().SpanID() != in.SpanContext().SpanID() || s.SpanKind() != trace.SpanKindProducer {
			t.Errorf("span %q: parent %s kind %s; want a producer child of the ingress span %s", s.Name(), s.Parent().SpanID(), s.SpanKind(), in.SpanContext().SpanID())
		}
	}
	if in.SpanContext().TraceID().String() != traceID {
		t.Errorf("ingress span trace %s, want %s", in.SpanContext().TraceID(), traceID)
	}
	if got := cmd.Parent().TraceID().String(); got != "5bf92f3577b34da6a3ce929d0e0e4737" || cmd.Parent().SpanID().String() != "10f067aa0ba902b8" {
		t.Errorf("command span parent %s/%s: want the ce_traceparent's context", got, cmd.Parent().SpanID())
	}
	if cmd.SpanKind() != trace.SpanKindConsumer {
		t.Errorf("command span kind %s", cmd.SpanKind())
	}
}
