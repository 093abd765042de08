package natssink_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/sinks/natssink"
)

// The benchmarks below publish one event per operation from many
// goroutines against an embedded JetStream server, like concurrent HTTP
// requests would. BenchmarkPublish goes through the Sink; the Direct ones
// are ceilings measured in the same run: a synchronous JetStream publish
// per event, an asynchronous publish awaited per event, and pipelined
// asynchronous publishes awaited in windows. Report Publish as a ratio of
// them, e.g.
//
//	go test -run '^$' -bench . -benchtime 20000x ./sinks/natssink/
const benchParallelism = 16 // goroutines per GOMAXPROCS

var benchG atomic.Int64

func BenchmarkPublish(b *testing.B) {
	for _, structured := range []bool{false, true} {
		name := "binary"
		if structured {
			name = "structured"
		}
		b.Run(name, func(b *testing.B) {
			srv := runServer(b, "", b.TempDir())
			s := open(b, srv, natssink.Options{Structured: structured})
			ctx := context.Background()
			b.ReportAllocs()
			b.SetParallelism(benchParallelism)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				session := "bench-" + strconv.FormatInt(benchG.Add(1), 10)
				ev := event(session, "")
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

// directMsg is the message the Sink would build for a session, made once;
// each publish only changes its Nats-Msg-Id.
func directMsg(session string) *nats.Msg {
	ev := event(session, "x")
	h := nats.Header{}
	for _, a := range ev.Attributes() {
		h.Set("ce-"+a.Name, bridge.HeaderValue(a.Value))
	}
	h.Set("Content-Type", "application/json")
	h.Set(jetstream.MsgIDHeader, "")
	return &nats.Msg{Subject: natssink.Subject("", session), Header: h, Data: ev.Data()}
}

func directBench(b *testing.B, publish func(js jetstream.JetStream, msg *nats.Msg, pb *testing.PB) error) {
	srv := runServer(b, "", b.TempDir())
	s := open(b, srv, natssink.Options{}) // creates the stream, as the sink would
	js, err := jetstream.New(s.Conn(), jetstream.WithPublishAsyncMaxPending(natssink.DefaultMaxPending))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetParallelism(benchParallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		msg := directMsg("bench-" + strconv.FormatInt(benchG.Add(1), 10))
		if err := publish(js, msg, pb); err != nil {
			b.Error(err)
		}
	})
}

func setID(msg *nats.Msg, i int) { msg.Header[jetstream.MsgIDHeader][0] = strconv.Itoa(i) }

func BenchmarkDirectPublishSync(b *testing.B) {
	ctx := context.Background()
	directBench(b, func(js jetstream.JetStream, msg *nats.Msg, pb *testing.PB) error {
		for i := 0; pb.Next(); i++ {
			setID(msg, i)
			if _, err := js.PublishMsg(ctx, msg); err != nil {
				return err
			}
		}
		return nil
	})
}

func BenchmarkDirectPublishAsync(b *testing.B) {
	directBench(b, func(js jetstream.JetStream, msg *nats.Msg, pb *testing.PB) error {
		for i := 0; pb.Next(); i++ {
			setID(msg, i)
			paf, err := js.PublishMsgAsync(msg)
			if err != nil {
				return err
			}
			select {
			case <-paf.Ok():
			case err := <-paf.Err():
				return err
			}
		}
		return nil
	})
}

// BenchmarkDirectPublishPipelined keeps a window of unawaited publishes per
// goroutine: the throughput ceiling of one connection, which no
// request-per-event caller reaches.
func BenchmarkDirectPublishPipelined(b *testing.B) {
	const window = 64
	directBench(b, func(js jetstream.JetStream, _ *nats.Msg, pb *testing.PB) error {
		session := "bench-" + strconv.FormatInt(benchG.Add(1), 10)
		msgs := make([]*nats.Msg, window)
		for j := range msgs {
			msgs[j] = directMsg(session)
		}
		pafs := make([]jetstream.PubAckFuture, 0, window)
		wait := func() error {
			for _, paf := range pafs {
				select {
				case <-paf.Ok():
				case err := <-paf.Err():
					return err
				}
			}
			pafs = pafs[:0]
			return nil
		}
		for i := 0; pb.Next(); i++ {
			msg := msgs[len(pafs)]
			setID(msg, i)
			paf, err := js.PublishMsgAsync(msg)
			if err != nil {
				return err
			}
			if pafs = append(pafs, paf); len(pafs) == window {
				if err := wait(); err != nil {
					return err
				}
			}
		}
		return wait()
	})
}

// BenchmarkPublishMode compares, in one run, the Sink's two ways of
// publishing calls of several events (10 per call, as a CloudEvents batch
// request might carry) from many goroutines: group commit (the stream the
// Sink creates takes fast-ingest batches) and pipelined asynchronous
// publishes (a stream made without them). An op is one event; cpu-µs/op is
// the process's CPU time (client and embedded server) per event, the
// figure that moves least when the machine is shared:
//
//	go test -run '^$' -bench PublishMode -benchtime 50000x -count 3 ./sinks/natssink/
func BenchmarkPublishMode(b *testing.B) {
	for _, batched := range []bool{true, false} {
		name := "grouped"
		if !batched {
			name = "pipelined"
		}
		b.Run(name, func(b *testing.B) {
			srv := runServer(b, "", b.TempDir())
			nc := dial(b, srv)
			js, err := jetstream.New(nc)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := js.CreateStream(ctxT(b), jetstream.StreamConfig{
				Name: natssink.DefaultStreamName, Subjects: []string{"qod.status.>"}, Storage: jetstream.FileStorage,
				Duplicates: natssink.DefaultDuplicateWindow, AllowBatchPublish: batched,
			}); err != nil {
				b.Fatal(err)
			}
			s := open(b, srv, natssink.Options{})
			ctx := context.Background()
			b.ReportAllocs()
			b.SetParallelism(benchParallelism)
			cpu0 := cpuTime()
			b.ResetTimer()
			const perCall = 10
			b.RunParallel(func(pb *testing.PB) {
				session := "bench-" + strconv.FormatInt(benchG.Add(1), 10)
				evs := make([]bridge.Event, 0, perCall)
				for i := 0; pb.Next(); i++ {
					ev := event(session, name+strconv.Itoa(i))
					if evs = append(evs, ev); len(evs) < perCall {
						continue
					}
					if err := s.Publish(ctx, evs...); err != nil {
						b.Error(err)
						return
					}
					evs = evs[:0]
				}
				if len(evs) > 0 {
					if err := s.Publish(ctx, evs...); err != nil {
						b.Error(err)
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}
