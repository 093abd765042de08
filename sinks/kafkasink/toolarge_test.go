package kafkasink_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/sinks/kafkasink"
)

func bigEvent(id string, n int) bridge.Event {
	ev := event("s-big", id)
	ev.Source = "https://qod.example.com/" + strings.Repeat("x", n)
	return ev
}

// TestTooLargeForTheWriter: a record over MaxMessageBytes (the Writer's
// BatchBytes) is refused with bridge.ErrTooLarge before anything of its
// call is written, alone or in a batch, in either mode.
func TestTooLargeForTheWriter(t *testing.T) {
	for _, structured := range []bool{false, true} {
		topic := uniq("big")
		c := newCluster(t, 3, topic)
		s := open(t, c, kafkasink.Options{Topic: topic, MaxMessageBytes: 2048, Structured: structured})
		big := bigEvent("big", 2048)
		for name, evs := range map[string][]bridge.Event{
			"alone":           {big},
			"last of a batch": {event("s-1", "a"), event("s-2", "b"), big},
			"first of three":  {big, event("s-1", "c"), event("s-2", "d")},
		} {
			err := publishWithin(t, s, ctxT(t), evs...)
			if !errors.Is(err, bridge.ErrTooLarge) || errors.Is(err, kafkasink.ErrUnavailable) {
				t.Fatalf("structured=%v %s: Publish = %v, want ErrTooLarge", structured, name, err)
			}
			if !strings.Contains(err.Error(), "the limit is 2048") {
				t.Errorf("error %q does not say the limit", err)
			}
			if err := s.CheckSize(evs...); !errors.Is(err, bridge.ErrTooLarge) {
				t.Errorf("CheckSize = %v", err)
			}
		}
		if got := storedEvents(ctxT(t), t, c, topic); len(got) != 0 {
			t.Fatalf("structured=%v: %d records written from calls refused as too large", structured, len(got))
		}
		ok := []bridge.Event{event("s-1", "ok-1"), event("s-2", "ok-2")}
		if err := s.CheckSize(ok...); err != nil {
			t.Fatalf("CheckSize of events that fit: %v", err)
		}
		if err := publishWithin(t, s, ctxT(t), ok...); err != nil {
			t.Fatalf("after the refusals: %v", err)
		}
		if got := storedEvents(ctxT(t), t, c, topic); len(got) != 2 {
			t.Fatalf("stored %d, want 2", len(got))
		}
	}
}

// TestTopicLimitLowersTheBound: a topic whose max.message.bytes is below
// MaxMessageBytes bounds the records (less the batch framing), so records
// the broker would refuse are refused before writing.
func TestTopicLimitLowersTheBound(t *testing.T) {
	topic := uniq("small")
	c := newCluster(t, 1, topic)
	setTopicConfig(t, c, topic, "max.message.bytes", "3000")
	s := open(t, c, kafkasink.Options{Topic: topic})
	// About 2,900 bytes: under 3,000, but not with the batch around it.
	err := publishWithin(t, s, ctxT(t), bigEvent("big", 2700))
	if !errors.Is(err, bridge.ErrTooLarge) || !strings.Contains(err.Error(), "the limit is 2872") {
		t.Fatalf("Publish = %v, want ErrTooLarge against 3000 less the batch framing", err)
	}
	// Records that fit, many in one batch, are not refused by the broker:
	// the Writer's batches stay under the topic's limit too.
	evs := make([]bridge.Event, 20)
	for i := range evs {
		evs[i] = bigEvent(uniq("mid"), 400)
	}
	if err := publishWithin(t, s, ctxT(t), evs...); err != nil {
		t.Fatalf("records that fit, in batches the broker takes: %v", err)
	}
	if got := storedEvents(ctxT(t), t, c, topic); len(got) != len(evs) {
		t.Fatalf("stored %d, want %d", len(got), len(evs))
	}
}

// setTopicConfig sets one config of topic, as an operator would.
func setTopicConfig(t testing.TB, c *kfake.Cluster, topic, name, value string) {
	t.Helper()
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	r := kmsg.NewIncrementalAlterConfigsRequestResource()
	r.ResourceType, r.ResourceName = kmsg.ConfigResourceTypeTopic, topic
	cfg := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	cfg.Name, cfg.Value = name, kmsg.StringPtr(value)
	r.Configs = append(r.Configs, cfg)
	req.Resources = append(req.Resources, r)
	resp, err := req.RequestWith(ctxT(t), kgoClient(t, c))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp.Resources {
		if r.ErrorCode != 0 {
			t.Fatalf("alter %s config %s: error code %d", topic, name, r.ErrorCode)
		}
	}
}

// TestBrokerMessageTooLarge: the broker's MESSAGE_TOO_LARGE (a limit
// lowered after Open) is ErrTooLarge, not ErrUnavailable.
func TestBrokerMessageTooLarge(t *testing.T) {
	topic := uniq("refuse")
	c := newCluster(t, 1, topic)
	s := open(t, c, kafkasink.Options{Topic: topic})
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		return failProduce(req, 10 /* MESSAGE_TOO_LARGE */), nil, true
	})
	err := publishWithin(t, s, ctxT(t), event("s-1", "refused"))
	if !errors.Is(err, bridge.ErrTooLarge) || !errors.Is(err, kafka.MessageSizeTooLarge) || errors.Is(err, kafkasink.ErrUnavailable) {
		t.Fatalf("Publish = %v, want ErrTooLarge wrapping MESSAGE_TOO_LARGE", err)
	}
	if err := publishWithin(t, s, ctxT(t), event("s-1", "accepted")); err != nil {
		t.Fatalf("the next publish: %v", err)
	}
}
