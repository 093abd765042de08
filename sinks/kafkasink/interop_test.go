package kafkasink_test

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/binding/format"
	"github.com/cloudevents/sdk-go/v2/binding/spec"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/qodbridge/qodbridge/sinks/kafkasink"
	"github.com/qodbridge/qodbridge/sinks/sinktest"
)

// sdkRecord reads a Kafka record as the CloudEvents SDK's Kafka protocol
// binding (sdk-go protocol/kafka_sarama/v2, NewMessageFromConsumerMessage)
// reads a consumed message; that module itself is not served by the module
// proxy this project builds with, so its reading rules are restated here
// over the SDK's own binding, spec and format packages, which decide
// everything else: header names lower-cased; the header "content-type"
// naming an event format (format.Lookup) makes it structured, else a
// "ce_specversion" header makes it binary; in binary mode every header
// named "ce_…" is the attribute of that name or else an extension,
// "content-type" is datacontenttype, values are taken as they are; and the
// binding adds the extensions kafkaoffset, kafkapartition and kafkatopic.
type sdkRecord struct {
	value       []byte
	contentType string
	headers     map[string][]byte
	format      format.Format
	version     spec.Version
}

var sdkKafka = spec.WithPrefix("ce_")

func newSDKRecord(r *kgo.Record) *sdkRecord {
	m := &sdkRecord{value: r.Value, headers: make(map[string][]byte, len(r.Headers)+3)}
	for _, h := range r.Headers {
		k := strings.ToLower(h.Key)
		if k == "content-type" {
			m.contentType = string(h.Value)
		}
		m.headers[k] = h.Value
	}
	m.headers["ce_kafkaoffset"] = []byte(strconv.FormatInt(r.Offset, 10))
	m.headers["ce_kafkapartition"] = []byte(strconv.FormatInt(int64(r.Partition), 10))
	m.headers["ce_kafkatopic"] = []byte(r.Topic)
	if m.format = format.Lookup(m.contentType); m.format == nil {
		m.version = sdkKafka.Version(string(m.headers[sdkKafka.PrefixedSpecVersionName()]))
	}
	return m
}

func (m *sdkRecord) ReadEncoding() binding.Encoding {
	switch {
	case m.version != nil:
		return binding.EncodingBinary
	case m.format != nil:
		return binding.EncodingStructured
	}
	return binding.EncodingUnknown
}

func (m *sdkRecord) ReadStructured(ctx context.Context, w binding.StructuredWriter) error {
	if m.format == nil {
		return binding.ErrNotStructured
	}
	return w.SetStructuredEvent(ctx, m.format, bytes.NewReader(m.value))
}

func (m *sdkRecord) ReadBinary(_ context.Context, w binding.BinaryWriter) error {
	if m.version == nil {
		return binding.ErrNotBinary
	}
	for k, v := range m.headers {
		var err error
		switch {
		case strings.HasPrefix(k, "ce_"):
			if attr := m.version.Attribute(k); attr != nil {
				err = w.SetAttribute(attr, string(v))
			} else {
				err = w.SetExtension(strings.TrimPrefix(k, "ce_"), string(v))
			}
		case k == "content-type":
			err = w.SetAttribute(m.version.AttributeFromKind(spec.DataContentType), string(v))
		}
		if err != nil {
			return err
		}
	}
	return w.SetData(bytes.NewReader(m.value))
}

// GetAttribute and GetExtension (binding.MessageMetadataReader) read a
// header "ce_<name>" as it is.
func (m *sdkRecord) GetAttribute(k spec.Kind) (spec.Attribute, any) {
	if m.version == nil {
		return nil, nil
	}
	attr := m.version.AttributeFromKind(k)
	return attr, string(m.headers[attr.PrefixedName()])
}

func (m *sdkRecord) GetExtension(name string) any { return string(m.headers["ce_"+name]) }

func (*sdkRecord) Finish(error) error { return nil }

// TestCloudEventsSDKReadsTheTopic: what the Sink writes, read off the topic
// by a consumer and turned into an event by the CloudEvents SDK, is the
// published event, attribute for attribute and data, in binary and in
// structured mode.
func TestCloudEventsSDKReadsTheTopic(t *testing.T) {
	for _, structured := range []bool{false, true} {
		name := "binary"
		if structured {
			name = "structured"
		}
		t.Run(name, func(t *testing.T) {
			ctx := ctxT(t)
			topic := uniq("ce")
			c := newCluster(t, 1, topic)
			s := open(t, c, kafkasink.Options{Topic: topic, Structured: structured})
			evs := sinktest.InteropEvents("sess 1.é")
			if err := publishWithin(t, s, ctx, evs...); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			recs := readTopic(ctx, t, c, topic)
			if len(recs) != len(evs) {
				t.Fatalf("read %d records, want %d", len(recs), len(evs))
			}
			for i, r := range recs {
				m := newSDKRecord(r)
				if want := map[bool]binding.Encoding{false: binding.EncodingBinary, true: binding.EncodingStructured}[structured]; m.ReadEncoding() != want {
					t.Errorf("record %d: the SDK reads encoding %v, want %v", i, m.ReadEncoding(), want)
				}
				got, err := binding.ToEvent(ctx, m)
				if err != nil {
					t.Fatalf("record %d: the SDK cannot read it: %v (headers %v)", i, err, r.Headers)
				}
				var extra map[string]string
				if !structured { // the binding's own extensions, binary mode only
					extra = map[string]string{
						"kafkaoffset": strconv.FormatInt(r.Offset, 10), "kafkapartition": "0", "kafkatopic": topic,
					}
				}
				for _, d := range sinktest.SDKDiff(got, evs[i], extra) {
					t.Errorf("record %d: %s", i, d)
				}
			}
		})
	}
}

// TestOTelPropagatorReadsTheRecord: OpenTelemetry's W3C propagator, as
// Kafka instrumentation runs it over a consumed record's headers, finds the
// event's trace context, in binary and in structured mode.
func TestOTelPropagatorReadsTheRecord(t *testing.T) {
	for _, structured := range []bool{false, true} {
		ctx := ctxT(t)
		topic := uniq("otel")
		c := newCluster(t, 1, topic)
		s := open(t, c, kafkasink.Options{Topic: topic, Structured: structured})
		ev := sinktest.InteropEvents("s-otel")[1]
		if err := publishWithin(t, s, ctx, ev); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		recs := readTopic(ctx, t, c, topic)
		if len(recs) != 1 {
			t.Fatalf("read %d records, want 1", len(recs))
		}
		carrier := propagation.MapCarrier{}
		for _, h := range recs[0].Headers {
			carrier.Set(h.Key, string(h.Value))
		}
		sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), carrier))
		want := strings.Split(ev.TraceParent, "-")
		if !sc.IsValid() || !sc.IsRemote() || sc.TraceID().String() != want[1] || sc.SpanID().String() != want[2] ||
			sc.TraceState().String() != ev.TraceState {
			t.Errorf("structured=%v: extracted %v (tracestate %q), want traceparent %s, tracestate %s",
				structured, sc, sc.TraceState().String(), ev.TraceParent, ev.TraceState)
		}
	}
}
