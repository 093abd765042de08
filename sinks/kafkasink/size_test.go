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
)

// TestSizeCountedAsKafkaGoDoes: a record of exactly MaxMessageBytes passes
// fits and kafka-go's own check of BatchBytes; one byte more fails both.
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
		if s.w.BatchBytes != limit {
			t.Fatalf("Writer.BatchBytes %d, want %d", s.w.BatchBytes, limit)
		}
		const baseID = 100
		ev := bridge.Event{ID: strings.Repeat("x", baseID), Source: "https://qod.example.com", SessionID: "s", QoSStatus: bridge.StatusAvailable}
		var m kafka.Message
		s.message(&m, &ev, time.Now())
		base := recordSize(&m)
		// The id is plain ASCII: each byte adds one to a header value or
		// the value, and between 64 and 8191 bytes its varint length
		// prefix keeps its size.
		for _, extra := range []int64{0, 1} {
			ev.ID = strings.Repeat("x", int(baseID+limit-base+extra))
			var m kafka.Message
			s.message(&m, &ev, time.Now())
			if got := recordSize(&m); got != limit+extra {
				t.Fatalf("structured=%v: record of %d bytes, want %d", structured, got, limit+extra)
			}
			fitsErr := s.fits(&m, &ev)
			writeErr := s.w.WriteMessages(ctx, m) // kafka-go alone, without the Sink's check
			var tooLarge kafka.MessageTooLargeError
			if extra == 0 && (fitsErr != nil || writeErr != nil) {
				t.Fatalf("structured=%v: at the limit: fits %v, kafka-go %v", structured, fitsErr, writeErr)
			}
			if extra == 1 && (!errors.Is(fitsErr, bridge.ErrTooLarge) || !errors.As(writeErr, &tooLarge)) {
				t.Fatalf("structured=%v: one byte over: fits %v, kafka-go %v", structured, fitsErr, writeErr)
			}
		}
		s.Close()
	}
}

func TestVarintLen(t *testing.T) {
	for n, want := range map[int]int{0: 1, 63: 1, 64: 2, 8191: 2, 8192: 3, 1 << 20: 4, 1 << 27: 5} {
		if got := varintLen(n); got != want {
			t.Errorf("varintLen(%d) = %d, want %d", n, got, want)
		}
	}
}
