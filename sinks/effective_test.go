package sinks

import (
	"testing"

	"github.com/qodbridge/qodbridge/bridge/command"
	"github.com/qodbridge/qodbridge/config"
	"github.com/qodbridge/qodbridge/sinks/kafkacmd"
	"github.com/qodbridge/qodbridge/sinks/natscmd"
	"github.com/qodbridge/qodbridge/sinks/natssink"
)

// TestEffectiveFillsWhatIsLeftZero: what the configuration leaves zero is
// shown, and run, with the broker packages' defaults; what it sets stays.
func TestEffectiveFillsWhatIsLeftZero(t *testing.T) {
	var cfg config.Config
	cfg.Kafka.Topic = "mine"
	e := Effective(&cfg)
	if e.NATS.SubjectPrefix != natssink.DefaultPrefix || e.NATS.Stream.Name != natssink.DefaultStreamName ||
		e.NATS.Stream.Discard != discardOld || e.Ingress.PublishTimeout.D() != natssink.DefaultPublishTimeout {
		t.Errorf("nats %+v, publish timeout %s", e.NATS, e.Ingress.PublishTimeout)
	}
	if e.Kafka.Topic != "mine" || e.Kafka.CommandTopic != kafkacmd.DefaultTopic {
		t.Errorf("kafka topics %s, %s", e.Kafka.Topic, e.Kafka.CommandTopic)
	}
	if e.Commands.Lanes != command.DefaultLanes || e.Commands.AckWait.D() != natscmd.DefaultAckWait || !*e.Commands.Micro {
		t.Errorf("commands %+v", e.Commands)
	}
	if cfg.NATS.SubjectPrefix != "" || cfg.Commands.Micro != nil {
		t.Error("Effective changed its argument")
	}
}
