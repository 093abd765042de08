package kafkasink_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/sinks/kafkasink"
	"github.com/qodbridge/qodbridge/sinks/sinktest"
)

// testDeadline bounds every wait of these tests; it guards against hangs
// and is no timing threshold.
const testDeadline = 30 * time.Second

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	t.Cleanup(cancel)
	return ctx
}

// newCluster starts a one-broker kfake cluster with topics seeded (each
// with partitions partitions), closed at cleanup.
func newCluster(t testing.TB, partitions int32, topics ...string) *kfake.Cluster {
	t.Helper()
	opts := []kfake.Opt{kfake.NumBrokers(1)}
	if len(topics) > 0 {
		opts = append(opts, kfake.SeedTopics(partitions, topics...))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func connOpts(c *kfake.Cluster) kafkasink.ConnOptions {
	return kafkasink.ConnOptions{Brokers: c.ListenAddrs(), DialTimeout: 2 * time.Second}
}

func open(t testing.TB, c *kfake.Cluster, o kafkasink.Options) *kafkasink.Sink {
	t.Helper()
	s, err := kafkasink.Open(ctxT(t), connOpts(c), o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func event(session, id string) bridge.Event {
	return bridge.Event{
		ID: id, Source: "https://qod.example.com", Time: "2024-06-01T12:00:00Z",
		SessionID: session, QoSStatus: bridge.StatusAvailable,
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	}
}

var uniqN atomic.Int64

// uniq returns a process-unique topic name.
func uniq(prefix string) string { return fmt.Sprintf("%s.%d", prefix, uniqN.Add(1)) }

// kgoClient is a franz-go client of c, closed at cleanup.
func kgoClient(t testing.TB, c *kfake.Cluster, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, opts...)...)
	if err != nil {
		t.Fatalf("kgo: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// endOffsets returns the high watermark of every partition of topic.
func endOffsets(ctx context.Context, t testing.TB, cl *kgo.Client, topic string) map[int32]int64 {
	t.Helper()
	mreq := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	mreq.Topics = append(mreq.Topics, mt)
	mresp, err := mreq.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("metadata %s: %v", topic, err)
	}
	if len(mresp.Topics) != 1 || mresp.Topics[0].ErrorCode != 0 {
		t.Fatalf("metadata %s: %+v", topic, mresp.Topics)
	}
	lreq := kmsg.NewPtrListOffsetsRequest()
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = topic
	for _, p := range mresp.Topics[0].Partitions {
		lp := kmsg.NewListOffsetsRequestTopicPartition()
		lp.Partition = p.Partition
		lp.Timestamp = -1 // latest
		lt.Partitions = append(lt.Partitions, lp)
	}
	lreq.Topics = append(lreq.Topics, lt)
	lresp, err := lreq.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("list offsets %s: %v", topic, err)
	}
	ends := map[int32]int64{}
	for _, rt := range lresp.Topics {
		for _, rp := range rt.Partitions {
			if rp.ErrorCode != 0 {
				t.Fatalf("list offsets %s[%d]: error code %d", topic, rp.Partition, rp.ErrorCode)
			}
			ends[rp.Partition] = rp.Offset
		}
	}
	return ends
}

// readTopic reads every record of topic with franz-go, partition by
// partition in offset order.
func readTopic(ctx context.Context, t testing.TB, c *kfake.Cluster, topic string) []*kgo.Record {
	t.Helper()
	ends := endOffsets(ctx, t, kgoClient(t, c), topic)
	total := int64(0)
	start := map[int32]kgo.Offset{}
	for p, e := range ends {
		total += e
		start[p] = kgo.NewOffset().AtStart()
	}
	if total == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: start}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	byPart := map[int32][]*kgo.Record{}
	got := int64(0)
	for got < total {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %s: %d of %d records: %v", topic, got, total, err)
		}
		fs.EachError(func(topic string, p int32, err error) {
			t.Fatalf("fetch %s[%d]: %v", topic, p, err)
		})
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset < ends[r.Partition] {
				byPart[r.Partition] = append(byPart[r.Partition], r)
				got++
			}
		})
	}
	var out []*kgo.Record
	for _, p := range slices.Sorted(func(yield func(int32) bool) {
		for p := range byPart {
			if !yield(p) {
				return
			}
		}
	}) {
		out = append(out, byPart[p]...)
	}
	return out
}

// headerMap returns the first value of each header.
func headerMap(hs []kgo.RecordHeader) map[string]string {
	m := make(map[string]string, len(hs))
	for _, h := range hs {
		if _, ok := m[h.Key]; !ok {
			m[h.Key] = string(h.Value)
		}
	}
	return m
}

// decodeKafka rebuilds the event of a record by the Kafka protocol binding
// of CloudEvents: structured when content-type starts with
// application/cloudevents, else binary with ce_ header values taken as they
// are (no percent-decoding).
func decodeKafka(h map[string]string, value []byte) (bridge.Event, error) {
	if ct, _ := sinktest.Header(h, "content-type"); len(ct) >= len("application/cloudevents") &&
		ct[:len("application/cloudevents")] == "application/cloudevents" {
		return sinktest.DecodeStructured(value)
	}
	attrs := map[string]string{}
	for k, v := range h {
		if len(k) > 3 && k[:3] == "ce_" {
			attrs[k[3:]] = v
		}
	}
	if attrs["specversion"] != bridge.SpecVersion {
		return bridge.Event{}, fmt.Errorf("specversion %q", attrs["specversion"])
	}
	var d bridge.StatusData
	if err := json.Unmarshal(value, &d); err != nil {
		return bridge.Event{}, fmt.Errorf("data: %w", err)
	}
	return bridge.Event{
		ID: attrs["id"], Source: attrs["source"], Time: attrs["time"],
		SessionID: d.SessionID, QoSStatus: d.QoSStatus, StatusInfo: d.StatusInfo,
		TraceParent: attrs["traceparent"], TraceState: attrs["tracestate"],
	}, nil
}

// storedEvents reads topic and decodes every record.
func storedEvents(ctx context.Context, t testing.TB, c *kfake.Cluster, topic string) []bridge.Event {
	t.Helper()
	var out []bridge.Event
	for _, r := range readTopic(ctx, t, c, topic) {
		ev, err := decodeKafka(headerMap(r.Headers), r.Value)
		if err != nil {
			t.Fatalf("record %s[%d]@%d: %v", topic, r.Partition, r.Offset, err)
		}
		out = append(out, ev)
	}
	return out
}

// publishWithin runs Publish and fails t if it does not return within
// testDeadline.
func publishWithin(t testing.TB, s *kafkasink.Sink, ctx context.Context, evs ...bridge.Event) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.Publish(ctx, evs...) }()
	select {
	case err := <-done:
		return err
	case <-time.After(testDeadline):
		t.Fatal("Publish hangs")
		return nil
	}
}

// failProduce answers a produce request with code for every partition, as
// a broker short of in-sync replicas would; nothing is stored.
func failProduce(req kmsg.Request, code int16) kmsg.Response {
	r := req.(*kmsg.ProduceRequest)
	resp := r.ResponseKind().(*kmsg.ProduceResponse)
	for _, rt := range r.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		for _, rp := range rt.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.ErrorCode = code
			sp.BaseOffset = -1
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
