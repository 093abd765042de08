package kafkasink_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/sinks/kafkasink"
)

// The benchmarks publish one event per operation from many goroutines
// against kfake, like concurrent HTTP requests would. BenchmarkPublish goes
// through the Sink; BenchmarkDirectWriter is a kafka-go Writer (murmur2,
// acks=all, 5ms batches, BatchSize 100: as the Sink was configured before
// it had its own producer) writing the same record, prebuilt, with the
// same concurrency, measured in the same run. Report Publish as a ratio of
// it, e.g.
//
//	go test -run '^$' -bench . -benchtime 20000x ./sinks/kafkasink/
const benchParallelism = 16 // goroutines per GOMAXPROCS

var benchG atomic.Int64

func BenchmarkPublish(b *testing.B) {
	for _, structured := range []bool{false, true} {
		name := "binary"
		if structured {
			name = "structured"
		}
		b.Run(name, func(b *testing.B) {
			c := newCluster(b, 6, "bench")
			s := open(b, c, kafkasink.Options{Topic: "bench", Structured: structured})
			ctx := context.Background()
			b.ReportAllocs()
			b.SetParallelism(benchParallelism)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ev := event("bench-"+strconv.FormatInt(benchG.Add(1), 10), "")
				for i := 0; pb.Next(); i++ {
					ev.ID = strconv.Itoa(i)
					if err := s.Publish(ctx, ev); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func BenchmarkDirectWriter(b *testing.B) {
	c := newCluster(b, 6, "bench")
	w := &kafka.Writer{
		Addr:         kafka.TCP(c.ListenAddrs()...),
		Topic:        "bench",
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 5 * time.Millisecond,
		BatchSize:    kafkasink.DefaultBatchSize,
		Transport:    &kafka.Transport{},
	}
	b.Cleanup(func() { w.Close() })
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(benchParallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ev := event("bench-"+strconv.FormatInt(benchG.Add(1), 10), "x")
		msg := directMessage(&ev)
		for pb.Next() {
			if err := w.WriteMessages(ctx, msg); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// directMessage is the record the Sink would write for ev, built once.
func directMessage(ev *bridge.Event) kafka.Message {
	var h []kafka.Header
	for _, a := range ev.Attributes() {
		h = append(h, kafka.Header{Key: "ce_" + a.Name, Value: []byte(a.Value)})
	}
	h = append(h, kafka.Header{Key: "content-type", Value: []byte("application/json")})
	return kafka.Message{Key: []byte(ev.SessionID), Headers: h, Value: ev.Data(), Time: time.Now()}
}

// BenchmarkLone publishes one event at a time from one goroutine: the
// latency of a lone event, through the Sink and through the Writer above.
// The Sink sends it at once; the Writer holds it for its BatchTimeout.
func BenchmarkLone(b *testing.B) {
	c := newCluster(b, 6, "bench")
	ctx := context.Background()
	b.Run("sink", func(b *testing.B) {
		s := open(b, c, kafkasink.Options{Topic: "bench"})
		ev := event("lone", "")
		for i := 0; b.Loop(); i++ {
			ev.ID = strconv.Itoa(i)
			if err := s.Publish(ctx, ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("writer-5ms", func(b *testing.B) {
		w := &kafka.Writer{Addr: kafka.TCP(c.ListenAddrs()...), Topic: "bench", Balancer: &kafka.Murmur2Balancer{},
			RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond, Transport: &kafka.Transport{}}
		b.Cleanup(func() { w.Close() })
		ev := event("lone", "x")
		msg := directMessage(&ev)
		for b.Loop() {
			if err := w.WriteMessages(ctx, msg); err != nil {
				b.Fatal(err)
			}
		}
	})
}
