package natssink_test

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/binding/format"
	"github.com/cloudevents/sdk-go/v2/binding/spec"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qodbridge/qodbridge/sinks/natssink"
	"github.com/qodbridge/qodbridge/sinks/sinktest"
)

// sdkMessage reads a JetStream message as the CloudEvents SDK's NATS
// JetStream protocol binding (sdk-go protocol/nats_jetstream/v3, Message)
// reads it; that module itself is not served by the module proxy this
// project builds with, so its reading rules are restated here over the SDK's
// own binding, spec and format packages, which decide everything else:
// binary mode when a "ce-specversion" header is there, else structured
// (the JSON event format); in binary mode every header named "ce-…" is the
// attribute of that name or else an extension, and the header
// "content-type" is datacontenttype. One rule differs from that module:
// header values are percent-decoded once, as the NATS protocol binding
// (v1.0.3, 3.1.3.2 "NATS Header Values") requires of a reader and the
// bridge's contract promises; sdk-go's module predates that section and
// takes values as they are, so a consumer using it sees %XX escapes in
// values that hold a space, '"', '%' or non-ASCII text.
type sdkMessage struct{ msg jetstream.Msg }

var sdkNATS = spec.WithPrefix("ce-")

func (m sdkMessage) ReadEncoding() binding.Encoding {
	if m.msg.Headers().Get(sdkNATS.PrefixedSpecVersionName()) != "" {
		return binding.EncodingBinary
	}
	return binding.EncodingStructured
}

func (m sdkMessage) ReadStructured(ctx context.Context, w binding.StructuredWriter) error {
	if m.ReadEncoding() != binding.EncodingStructured {
		return binding.ErrNotStructured
	}
	return w.SetStructuredEvent(ctx, format.JSON, bytes.NewReader(m.msg.Data()))
}

func (m sdkMessage) ReadBinary(_ context.Context, w binding.BinaryWriter) error {
	if m.ReadEncoding() != binding.EncodingBinary {
		return binding.ErrNotBinary
	}
	version := sdkNATS.Version(m.msg.Headers().Get(sdkNATS.PrefixedSpecVersionName()))
	if version == nil {
		return binding.ErrNotBinary
	}
	for k, v := range m.msg.Headers() {
		var err error
		switch {
		case strings.HasPrefix(k, "ce-"):
			val, derr := url.PathUnescape(v[0])
			if derr != nil {
				return fmt.Errorf("header %s: %w", k, derr)
			}
			if attr := version.Attribute(k); attr != nil {
				err = w.SetAttribute(attr, val)
			} else {
				err = w.SetExtension(strings.TrimPrefix(k, "ce-"), val)
			}
		case k == "content-type":
			err = w.SetAttribute(version.AttributeFromKind(spec.DataContentType), v[0])
		}
		if err != nil {
			return err
		}
	}
	return w.SetData(bytes.NewReader(m.msg.Data()))
}

// GetAttribute and GetExtension (binding.MessageMetadataReader) read a
// header "ce-<name>", percent-decoded.
func (m sdkMessage) GetAttribute(k spec.Kind) (spec.Attribute, any) {
	version := sdkNATS.Version(m.msg.Headers().Get(sdkNATS.PrefixedSpecVersionName()))
	if version == nil {
		return nil, nil
	}
	attr := version.AttributeFromKind(k)
	if v, err := url.PathUnescape(m.msg.Headers().Get("ce-" + k.String())); err == nil && v != "" {
		return attr, v
	}
	return attr, nil
}

func (m sdkMessage) GetExtension(name string) any {
	if v, err := url.PathUnescape(m.msg.Headers().Get("ce-" + name)); err == nil && v != "" {
		return v
	}
	return nil
}

func (sdkMessage) Finish(error) error { return nil }

// TestCloudEventsSDKReadsTheStream: what the Sink stores, read off the
// stream by a JetStream consumer and turned into an event by the
// CloudEvents SDK, is the published event, attribute for attribute and
// data, in binary and in structured mode.
func TestCloudEventsSDKReadsTheStream(t *testing.T) {
	srv := runServer(t, "", t.TempDir())
	for _, structured := range []bool{false, true} {
		name := "binary"
		if structured {
			name = "structured"
		}
		t.Run(name, func(t *testing.T) {
			ctx := ctxT(t)
			n := uniq()
			s := open(t, srv, natssink.Options{Prefix: "ce" + n, Stream: natssink.StreamOptions{Name: "CE" + n}, Structured: structured})
			evs := sinktest.InteropEvents("sess 1.é")
			if err := publishWithin(t, s, ctx, evs...); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			js, err := jetstream.New(dial(t, srv))
			if err != nil {
				t.Fatal(err)
			}
			cons, err := js.OrderedConsumer(ctx, "CE"+n, jetstream.OrderedConsumerConfig{})
			if err != nil {
				t.Fatal(err)
			}
			batch, err := cons.FetchNoWait(len(evs))
			if err != nil {
				t.Fatal(err)
			}
			i := 0
			for msg := range batch.Messages() {
				if i >= len(evs) {
					t.Fatalf("more messages than the %d published", len(evs))
				}
				m := sdkMessage{msg}
				if want := map[bool]binding.Encoding{false: binding.EncodingBinary, true: binding.EncodingStructured}[structured]; m.ReadEncoding() != want {
					t.Errorf("event %d: the SDK reads encoding %v, want %v", i, m.ReadEncoding(), want)
				}
				got, err := binding.ToEvent(ctx, m)
				if err != nil {
					t.Fatalf("event %d: the SDK cannot read it: %v (headers %v)", i, err, msg.Headers())
				}
				for _, d := range sinktest.SDKDiff(got, evs[i], nil) {
					t.Errorf("event %d: %s", i, d)
				}
				i++
			}
			if batch.Error() != nil || i != len(evs) {
				t.Fatalf("read %d of %d events: %v", i, len(evs), batch.Error())
			}
		})
	}
}
