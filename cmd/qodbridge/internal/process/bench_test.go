package process

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/bridge/ingress"
	"github.com/qodbridge/qodbridge/sinks/kafkasink"
	"github.com/qodbridge/qodbridge/sinks/kafkaview"
	"github.com/qodbridge/qodbridge/sinks/natssink"
)

// benchBridge is the bridge's status path in-process for benchmarks: an
// embedded JetStream server, the NATS sink and the ingress handler, all
// closed at the benchmark's cleanup.
type benchBridge struct {
	sink  *natssink.Sink
	h     *ingress.Handler
	token string
	seq   atomic.Int64
	ids   string // prefix of the event ids
}

func newBenchBridge(b *testing.B, ids string) *benchBridge {
	s, err := natssink.StartEmbedded(natssink.EmbeddedOptions{Address: "127.0.0.1:0", StoreDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	sink, err := natssink.Open(context.Background(), natssink.ConnOptions{URL: s.ClientURL()}, natssink.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sink.Close() })
	bb := &benchBridge{sink: sink, token: benchToken, ids: ids}
	if bb.h, err = ingress.New(sink, ingress.Options{Tokens: []string{bb.token}, MaxInFlight: 4096, Logger: slog.New(slog.DiscardHandler)}); err != nil {
		b.Fatal(err)
	}
	return bb
}

// body is a structured notification with a new id, over 1,000 sessions.
func (bb *benchBridge) body() string {
	n := bb.seq.Add(1)
	return fmt.Sprintf(`{"specversion":"1.0","id":"%s-%d","source":"https://bench.example/qod","type":%q,"time":"2025-05-06T07:08:09Z","data":{"sessionId":"s-%d","qosStatus":"AVAILABLE"}}`,
		bb.ids, n, bridge.EventTypeV0, n%1000)
}

// The end-to-end benchmarks compare, in one run and with the same HTTP
// client and parallelism:
//
//	BenchmarkE2E/noop-http      an HTTP server answering 204 (HTTP ceiling)
//	BenchmarkE2E/direct-publish natssink.Publish without HTTP (broker ceiling)
//	BenchmarkE2E/bridge         HTTP → ingress → JetStream PubAck → 204
//
// Each reports p50 and p99 latency besides ns/op. Run with
//
//	go test -run - -bench E2E -benchtime 5s ./cmd/qodbridge
func BenchmarkE2E(b *testing.B) {
	bb := newBenchBridge(b, "bench")
	ctx := context.Background()
	sink, h, token, body, seq := bb.sink, bb.h, bb.token, bb.body, &bb.seq

	httpRun := func(b *testing.B, handler http.Handler) { measureHTTP(b, handler, token, body) }
	b.Run("noop-http", func(b *testing.B) {
		httpRun(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusNoContent)
		}))
	})
	b.Run("direct-publish", func(b *testing.B) {
		measure(b, func() error {
			n := seq.Add(1)
			return sink.Publish(ctx, bridge.Event{ID: fmt.Sprintf("direct-%d", n), Source: "https://bench.example/qod",
				Time: "2025-05-06T07:08:09Z", SessionID: fmt.Sprintf("s-%d", n%1000), QoSStatus: bridge.StatusAvailable})
		})
	})
	b.Run("bridge", func(b *testing.B) { httpRun(b, h) })
}

// BenchmarkE2EKafka compares, in one run against an in-process kfake
// broker (6 partitions) with the same parallelism:
//
//	BenchmarkE2EKafka/direct-writer  a kafka-go Writer (5ms batches, as the
//	                                 sink had before its own producer)
//	                                 writing the same records
//	BenchmarkE2EKafka/bridge         HTTP → ingress → kafkasink → ack → 204
func BenchmarkE2EKafka(b *testing.B) {
	c, sink := newKafkaBench(b)
	ctx := context.Background()
	h := kafkaIngress(b, sink, nil)
	var seq atomic.Int64
	b.Run("direct-writer", func(b *testing.B) {
		w := benchWriter(b, c, 5*time.Millisecond)
		measure(b, func() error {
			n := seq.Add(1)
			ev := bridge.Event{ID: fmt.Sprintf("direct-%d", n), Source: "https://bench.example/qod", SessionID: fmt.Sprintf("s-%d", n%1000), QoSStatus: bridge.StatusAvailable}
			return w.WriteMessages(ctx, writerRecord(&ev))
		})
	})
	b.Run("bridge", func(b *testing.B) {
		measureHTTP(b, h, benchToken, func() string {
			n := seq.Add(1)
			return fmt.Sprintf(`{"specversion":"1.0","id":"bench-%d","source":"https://bench.example/qod","type":%q,"data":{"sessionId":"s-%d","qosStatus":"AVAILABLE"}}`, n, bridge.EventTypeV0, n%1000)
		})
	})
}

// BenchmarkE2EKafkaRatio is BenchmarkE2EKafka as ratios taken within one
// run: five phases run alternately, five rounds of b.N/5 operations each
// from the same 32×GOMAXPROCS goroutines, against one kfake cluster:
//
//	noop-http    the same HTTP requests to a handler answering 204 (H)
//	writer-5ms   a kafka-go Writer (murmur2, acks=all, BatchSize 100,
//	             BatchTimeout 5ms: kafka-go's writer as qodbridge used to
//	             configure it) writing the bridge's records (W5)
//	writer-500µs the same Writer with BatchTimeout 500µs, its fastest
//	             setting at this concurrency on 2 cores (W)
//	sink         kafkasink.Publish of the same events, no HTTP (K)
//	bridge       HTTP → ingress → kafkasink → acks=all → 204
//	bridge+view  the same with the session view (kafkaview, qod.sessions),
//	             each event of a new session, so every one writes an entry
//
// It reports each phase's events/s and CPU time per event, and
// bridge/writer-5ms, bridge/writer-500µs, sink/writer-500µs, view-cost
// (bridge+view ÷ bridge) and bridge/S, where S = 1/(1/H + 1/W) is the HTTP exchange and the fastest
// writer one after the other, each at its own ceiling:
//
//	go test -run - -bench E2EKafkaRatio -benchtime 20000x -count 3 ./cmd/qodbridge/internal/process/
//
// The Writer at 5ms is latency-bound: each batch waits 5ms from its first
// record and a partition's batches go one after another. The Sink sends an
// idle partition's record at once and batches what arrives while a produce
// request is in flight, so it does not wait for a timer. The bridge is then
// bound by the HTTP exchange, which costs several times the CPU time of a
// produce per event on the same cores.
func BenchmarkE2EKafkaRatio(b *testing.B) {
	c, sink := newKafkaBench(b)
	ctx := context.Background()
	h := kafkaIngress(b, sink, nil)
	srv := httptest.NewServer(h)
	defer srv.Close()
	view, err := kafkaview.Open(ctx, kafkasink.ConnOptions{Brokers: c.ListenAddrs()}, kafkaview.Options{CreateTopics: true})
	if err != nil {
		b.Fatal(err)
	}
	defer view.Close()
	srvView := httptest.NewServer(kafkaIngress(b, sink, view))
	defer srvView.Close()
	noop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer noop.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	defer client.CloseIdleConnections()
	w5, w500 := benchWriter(b, c, 5*time.Millisecond), benchWriter(b, c, 500*time.Microsecond)

	var seq atomic.Int64
	event := func(prefix string) bridge.Event {
		n := seq.Add(1)
		return bridge.Event{ID: fmt.Sprintf("%s-%d", prefix, n), Source: "https://bench.example/qod",
			SessionID: fmt.Sprintf("s-%d", n%1000), QoSStatus: bridge.StatusAvailable}
	}
	direct := func(w *kafka.Writer) func() error {
		return func() error {
			ev := event("direct")
			return w.WriteMessages(ctx, writerRecord(&ev))
		}
	}
	viaHTTP := func(url string, sessions int64) func() error {
		return func() error {
			n := seq.Add(1)
			body := fmt.Sprintf(`{"specversion":"1.0","id":"bench-%d","source":"https://bench.example/qod","type":%q,"data":{"sessionId":"s-%d","qosStatus":"AVAILABLE"}}`, n, bridge.EventTypeV0, n%sessions)
			req, _ := http.NewRequest(http.MethodPost, url+"/notifications", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/cloudevents+json")
			req.Header.Set("Authorization", "Bearer "+benchToken)
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		}
	}
	phases := []struct {
		name string
		op   func() error
		wall time.Duration
		cpu  time.Duration
	}{
		{name: "noop-http", op: viaHTTP(noop.URL, 1000)},
		{name: "writer-5ms", op: direct(w5)},
		{name: "writer-500µs", op: direct(w500)},
		{name: "sink", op: func() error { return sink.Publish(ctx, event("sink")) }},
		{name: "bridge", op: viaHTTP(srv.URL, 1000)},
		{name: "bridge+view", op: viaHTTP(srvView.URL, math.MaxInt64)},
	}
	conc := 32 * runtime.GOMAXPROCS(0)
	// run does n ops from conc goroutines and returns the wall and CPU
	// time they took.
	run := func(n int, op func() error) (time.Duration, time.Duration) {
		var next atomic.Int64
		var wg sync.WaitGroup
		t0, c0 := time.Now(), CPUTime()
		for range conc {
			wg.Go(func() {
				for next.Add(1) <= int64(n) {
					if err := op(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		return time.Since(t0), CPUTime() - c0
	}
	for _, p := range phases {
		run(conc, p.op) // connections and metadata
	}
	b.ResetTimer()
	const rounds = 5
	per := max(1, b.N/rounds)
	for range rounds {
		for i := range phases {
			wall, cpu := run(per, phases[i].op)
			phases[i].wall += wall
			phases[i].cpu += cpu
		}
	}
	n := float64(per * rounds)
	rate := map[string]float64{}
	for _, p := range phases {
		rate[p.name] = n / p.wall.Seconds()
		b.ReportMetric(rate[p.name], p.name+"-ev/s")
		b.ReportMetric(float64(p.cpu.Microseconds())/n, p.name+"-cpu-µs/ev")
	}
	b.ReportMetric(rate["bridge"]/rate["writer-5ms"], "bridge/writer-5ms")
	b.ReportMetric(rate["bridge"]/rate["writer-500µs"], "bridge/writer-500µs")
	b.ReportMetric(rate["sink"]/rate["writer-500µs"], "sink/writer-500µs")
	b.ReportMetric(rate["bridge"]*(1/rate["noop-http"]+1/rate["writer-500µs"]), "bridge/S")
	b.ReportMetric(rate["bridge+view"]/rate["bridge"], "view-cost")
}

// newKafkaBench starts a one-broker kfake cluster with qod.status (6
// partitions) and the Kafka sink on it, both closed at cleanup.
func newKafkaBench(b *testing.B) (*kfake.Cluster, *kafkasink.Sink) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, "qod.status"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	sink, err := kafkasink.Open(context.Background(), kafkasink.ConnOptions{Brokers: c.ListenAddrs()}, kafkasink.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sink.Close() })
	return c, sink
}

// benchToken is the bearer token of the benchmarks' ingress.
const benchToken = "bench-token-0123456789"

// kafkaIngress is the ingress handler over sink, with view (nil: none).
func kafkaIngress(b *testing.B, sink *kafkasink.Sink, view bridge.ViewUpdater) *ingress.Handler {
	h, err := ingress.New(sink, ingress.Options{Tokens: []string{benchToken}, MaxInFlight: 4096, View: view, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	return h
}

// benchWriter is a kafka-go Writer on c's qod.status: murmur2, acks=all,
// BatchSize 100, the given BatchTimeout; closed at cleanup.
func benchWriter(b *testing.B, c *kfake.Cluster, timeout time.Duration) *kafka.Writer {
	w := &kafka.Writer{Addr: kafka.TCP(c.ListenAddrs()...), Topic: "qod.status", Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: timeout, BatchSize: kafkasink.DefaultBatchSize}
	b.Cleanup(func() { _ = w.Close() })
	return w
}

// writerRecord is ev's binary-mode record as the sink writes it, for a
// Writer.
func writerRecord(ev *bridge.Event) kafka.Message {
	hs := make([]kafka.Header, 0, 11)
	for _, a := range ev.Attributes() {
		hs = append(hs, kafka.Header{Key: "ce_" + a.Name, Value: []byte(a.Value)})
	}
	hs = append(hs, kafka.Header{Key: "content-type", Value: []byte(kafkasink.ContentTypeBinary)})
	return kafka.Message{Key: []byte(ev.SessionID), Value: ev.Data(), Headers: hs, Time: time.Now()}
}

// measureHTTP serves handler over loopback HTTP and measures POSTs of
// body() to it, each expecting 204.
func measureHTTP(b *testing.B, handler http.Handler, token string, body func() string) {
	srv := httptest.NewServer(handler)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	defer client.CloseIdleConnections()
	measure(b, func() error {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/notifications", strings.NewReader(body()))
		req.Header.Set("Content-Type", "application/cloudevents+json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
}

// measure runs op from 32×GOMAXPROCS goroutines (the "connections" of a
// load test) and reports latency percentiles and the process's CPU time
// per operation (load, bridge and broker alike).
func measure(b *testing.B, op func() error) {
	b.ReportAllocs()
	b.SetParallelism(32)
	var mu sync.Mutex
	var lat []time.Duration
	cpu0 := CPUTime()
	b.RunParallel(func(pb *testing.PB) {
		local := make([]time.Duration, 0, 1024)
		for pb.Next() {
			t0 := time.Now()
			if err := op(); err != nil {
				b.Error(err)
				return
			}
			local = append(local, time.Since(t0))
		}
		mu.Lock()
		lat = append(lat, local...)
		mu.Unlock()
	})
	b.ReportMetric(float64((CPUTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}
