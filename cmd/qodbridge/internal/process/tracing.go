package process

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/bridge/command"
)

// tracing is OpenTelemetry tracing, on only when the standard OTEL_*
// variables ask for an OTLP exporter; when off, nothing of it runs on the
// hot path (the hooks stay nil).
type tracing struct {
	tp     *sdktrace.TracerProvider
	tracer trace.Tracer
	prop   propagation.TraceContext
}

// tracingEnabled follows the OpenTelemetry SDK environment specification:
// OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none turn it off; an
// OTLP endpoint or OTEL_TRACES_EXPORTER=otlp turn it on.
func tracingEnabled(getenv func(string) string) bool {
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		return false
	}
	switch strings.ToLower(getenv("OTEL_TRACES_EXPORTER")) {
	case "none":
		return false
	case "otlp":
		return true
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// setupTracing returns nil when tracing is off. The exporter is OTLP over
// HTTP, configured by the OTEL_EXPORTER_OTLP_* variables; the service name
// is OTEL_SERVICE_NAME, default "qodbridge".
func setupTracing(ctx context.Context, getenv func(string) string, version string) (*tracing, error) {
	if !tracingEnabled(getenv) {
		return nil, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceVersion(version)))
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	if getenv("OTEL_SERVICE_NAME") == "" {
		res, _ = resource.Merge(res, resource.NewSchemaless(semconv.ServiceName("qodbridge")))
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return &tracing{tp: tp, tracer: tp.Tracer("github.com/qodbridge/qodbridge")}, nil
}

// ingress is the ingress.Options.Trace hook: a producer span, child of the
// notification's traceparent, whose context replaces it in the events, so
// consumers continue the trace from the bridge's span. It is the messages'
// creation context (messaging.operation.type create); each broker's
// publish is a send span under it (send).
func (t *tracing) ingress(ctx context.Context, evs []bridge.Event) (context.Context, func(error)) {
	if len(evs) > 0 && evs[0].TraceParent != "" {
		ctx = t.prop.Extract(ctx, propagation.MapCarrier{"traceparent": evs[0].TraceParent, "tracestate": evs[0].TraceState})
	}
	attrs := []attribute.KeyValue{
		attribute.Int("qodbridge.events", len(evs)),
		semconv.MessagingOperationTypeCreate, semconv.MessagingOperationName("create"),
	}
	if len(evs) > 1 {
		attrs = append(attrs, semconv.MessagingBatchMessageCount(len(evs)))
	}
	if len(evs) > 0 {
		attrs = append(attrs, attribute.String("qod.session_id", evs[0].SessionID), attribute.String("cloudevents.event_id", evs[0].ID),
			attribute.String("qod.status", string(evs[0].QoSStatus)))
		if len(evs) == 1 {
			attrs = append(attrs, semconv.MessagingMessageID(evs[0].ID))
		}
	}
	ctx, span := t.tracer.Start(ctx, "qodbridge publish status", trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
	c := propagation.MapCarrier{}
	t.prop.Inject(ctx, c)
	for i := range evs {
		evs[i].TraceParent, evs[i].TraceState = c["traceparent"], c["tracestate"]
	}
	return ctx, func(err error) { endSpan(span, err) }
}

// send is the brokers' Send hook: a producer span per broker and publish
// call, named as the messaging conventions name a send span ("publish
// <prefix>.status.{sessionToken}" on NATS, "send <topic>" on Kafka), under
// the ingress span.
func (t *tracing) send(ctx context.Context, m bridge.Messaging, evs []bridge.Event) (context.Context, func(error)) {
	op := "send"
	if m.System == "nats" {
		op = "publish"
	}
	attrs := append(messagingAttrs(m), semconv.MessagingOperationTypeSend, semconv.MessagingOperationName(op))
	if len(evs) > 0 {
		attrs = append(attrs, attribute.String("qod.session_id", evs[0].SessionID))
	}
	ctx, span := t.tracer.Start(ctx, op+" "+cmp.Or(m.Template, m.Destination), trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
	return ctx, func(err error) { endSpan(span, err) }
}

// command is the intakes' Trace hook: a consumer span, child of the
// command message's trace context when it has one (the W3C traceparent
// header, else the CloudEvents extension ce-traceparent or
// ce_traceparent); QoD API calls made under it are its children (the
// client's transport is instrumented). It carries the messaging
// attributes of the message the intake put in ctx (process).
func (t *tracing) command(ctx context.Context, header func(string) string, action command.Action) (context.Context, func(error)) {
	for _, prefix := range []string{"", "ce-", "ce_"} {
		if tp := header(prefix + "traceparent"); tp != "" {
			ctx = t.prop.Extract(ctx, propagation.MapCarrier{"traceparent": tp, "tracestate": header(prefix + "tracestate")})
			break
		}
	}
	attrs := []attribute.KeyValue{
		semconv.MessagingOperationTypeProcess, semconv.MessagingOperationName("process"),
		attribute.String("qod.action", string(action)),
	}
	if m, ok := bridge.MessagingFrom(ctx); ok {
		attrs = append(attrs, messagingAttrs(m)...)
	}
	ctx, span := t.tracer.Start(ctx, "qodbridge command "+string(action), trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...))
	return ctx, func(err error) { endSpan(span, err) }
}

// messagingAttrs are the OpenTelemetry messaging attributes of m that it
// knows.
func messagingAttrs(m bridge.Messaging) []attribute.KeyValue {
	attrs := make([]attribute.KeyValue, 0, 9)
	if m.System != "" {
		attrs = append(attrs, semconv.MessagingSystemKey.String(m.System))
	}
	if m.Destination != "" {
		attrs = append(attrs, semconv.MessagingDestinationName(m.Destination))
	}
	if m.Template != "" {
		attrs = append(attrs, semconv.MessagingDestinationTemplate(m.Template))
	}
	if m.MessageID != "" {
		attrs = append(attrs, semconv.MessagingMessageID(m.MessageID))
	}
	if m.Count > 1 {
		attrs = append(attrs, semconv.MessagingBatchMessageCount(m.Count))
	}
	if m.Key != "" {
		attrs = append(attrs, semconv.MessagingKafkaMessageKey(m.Key))
	}
	if m.Consumed {
		attrs = append(attrs, semconv.MessagingDestinationPartitionID(strconv.Itoa(m.Partition)), semconv.MessagingKafkaOffset(int(m.Offset)))
	}
	if m.ConsumerGroup != "" {
		attrs = append(attrs, semconv.MessagingConsumerGroupName(m.ConsumerGroup))
	}
	return attrs
}

func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// transport instruments the QoD API client: a client span per call and a
// traceparent header to the platform.
func (t *tracing) transport() *http.Client {
	return &http.Client{Transport: otelhttp.NewTransport(http.DefaultTransport,
		otelhttp.WithTracerProvider(t.tp), otelhttp.WithPropagators(t.prop))}
}

// shutdown flushes the spans still buffered.
func (t *tracing) shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.tp.Shutdown(ctx)
}
