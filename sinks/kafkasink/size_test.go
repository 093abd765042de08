package kafkasink

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/sinks/internal/kafkaproduce"
)

// TestSizeCountedAsKafkaGoDoes: a record of exactly MaxMessageBytes passes
// fits and a kafka-go Writer's own check of its BatchBytes; one byte more
// fails both.
func TestSizeCountedAsKafkaGoDoes(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "size"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const limit = 4096
	for _, structured := range []bool{false, true} {
		s, err := Open(ctx, ConnOptions{Brokers: c.ListenAddrs()}, Options{Topic: "size", MaxMessageBytes: limit, Structured: structured})
		if err != nil {
			t.Fatal(err)
		}
		if s.maxBytes != limit {
			t.Fatalf("bound %d, want %d", s.maxBytes, limit)
		}
		w := &kafka.Writer{Addr: kafka.TCP(c.ListenAddrs()...), Topic: "size", BatchBytes: limit, BatchTimeout: time.Millisecond}
		const baseID = 100
		ev := bridge.Event{ID: strings.Repeat("x", baseID), Source: "https://qod.example.com", SessionID: "s", QoSStatus: bridge.StatusAvailable}
		var m kafka.Message
		s.message(&m, &ev, time.Now())
		base := kafkaproduce.RecordSize(&m)
		// The id is plain ASCII: each byte adds one to a header value or
		// the value, and between 64 and 8191 bytes its varint length
		// prefix keeps its size.
		for _, extra := range []int64{0, 1} {
			ev.ID = strings.Repeat("x", int(baseID+limit-base+extra))
			var m kafka.Message
			s.message(&m, &ev, time.Now())
			if got := kafkaproduce.RecordSize(&m); got != limit+extra {
				t.Fatalf("structured=%v: record of %d bytes, want %d", structured, got, limit+extra)
			}
			fitsErr := s.fits(kafkaproduce.RecordSize(&m), &ev)
			writeErr := w.WriteMessages(ctx, m) // kafka-go alone
			var tooLarge kafka.MessageTooLargeError
			if extra == 0 && (fitsErr != nil || writeErr != nil) {
				t.Fatalf("structured=%v: at the limit: fits %v, kafka-go %v", structured, fitsErr, writeErr)
			}
			if extra == 1 && (!errors.Is(fitsErr, bridge.ErrTooLarge) || !errors.As(writeErr, &tooLarge)) {
				t.Fatalf("structured=%v: one byte over: fits %v, kafka-go %v", structured, fitsErr, writeErr)
			}
		}
		w.Close()
		s.Close()
	}
}
