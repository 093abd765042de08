package kafkasink_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/sinks/kafkasink"
	"github.com/qodbridge/qodbridge/sinks/sinktest"
)

// TestConformance runs the sinktest suite in both modes, each case on a
// fresh topic of one kfake cluster per mode.
//
// The Reader hands the suite the raw ce_ header values: the suite checks
// them verbatim, as the Kafka binding carries them (no percent-encoding).
func TestConformance(t *testing.T) {
	for _, structured := range []bool{false, true} {
		name := "binary"
		if structured {
			name = "structured"
		}
		t.Run(name, func(t *testing.T) {
			c := newCluster(t, 0)
			sinktest.Run(t, sinktest.HarnessFunc(func(ctx context.Context, t testing.TB) (sinktest.Sink, sinktest.Reader) {
				topic := uniq("conf")
				s, err := kafkasink.Open(ctx, connOpts(c), kafkasink.Options{
					Topic: topic, Structured: structured, CreateTopics: true, Partitions: 3,
				})
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				t.Cleanup(func() { s.Close() })
				return s, sinktest.ReaderFunc(func(ctx context.Context, t testing.TB) []sinktest.Stored {
					var out []sinktest.Stored
					for _, r := range readTopic(ctx, t, c, topic) {
						h := headerMap(r.Headers)
						ev, err := decodeKafka(h, r.Value)
						if err != nil {
							t.Fatalf("record %d@%d: %v", r.Partition, r.Offset, err)
						}
						out = append(out, sinktest.Stored{Event: ev, Key: string(r.Key), Headers: h, Data: r.Value})
					}
					return out
				})
			}))
		})
	}
}

var tricky = bridge.Event{
	ID:          `id with spaces "quoted" 100% ünïcødé ✓ %41`,
	Source:      `https://qod.example.com/a b?q="x"&p=%41`,
	Time:        "2024-06-01T12:00:00.5Z",
	SessionID:   "sess ion \"ü\" 50%",
	QoSStatus:   bridge.StatusUnavailable,
	StatusInfo:  bridge.InfoNetworkTerminated,
	TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
	TraceState:  "vendor=a b,other=ü",
}

// TestWireBinary checks the Kafka binding byte for byte: key sessionId,
// ce_<attr> headers with the values unencoded, content-type, value = data.
func TestWireBinary(t *testing.T) {
	c := newCluster(t, 3, "wire")
	s := open(t, c, kafkasink.Options{Topic: "wire"})
	ctx := ctxT(t)
	bare := bridge.Event{ID: "bare", Source: "urn:qod", SessionID: "s1", QoSStatus: bridge.StatusRequested}
	for _, ev := range []bridge.Event{tricky, bare} {
		if err := s.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	recs := readTopic(ctx, t, c, "wire")
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2", len(recs))
	}
	for _, r := range recs {
		want := bare
		if string(r.Key) == tricky.SessionID {
			want = tricky
		}
		if string(r.Key) != want.SessionID {
			t.Errorf("key %q, want %q", r.Key, want.SessionID)
		}
		wantH := map[string]string{"content-type": "application/json"}
		for _, a := range want.Attributes() {
			wantH["ce_"+a.Name] = a.Value
		}
		if want.TraceParent != "" { // also as plain W3C headers, for Kafka instrumentation
			wantH["traceparent"], wantH["tracestate"] = want.TraceParent, want.TraceState
		}
		if got := headerMap(r.Headers); !maps.Equal(got, wantH) {
			t.Errorf("headers\n got %q\nwant %q", got, wantH)
		}
		if len(r.Headers) != len(wantH) {
			t.Errorf("%d headers, want %d (a header given twice)", len(r.Headers), len(wantH))
		}
		if string(r.Value) != string(want.Data()) {
			t.Errorf("value %s, want %s", r.Value, want.Data())
		}
		if r.Timestamp.Before(time.Unix(1_000_000_000, 0)) {
			t.Errorf("record timestamp %s: want the publish time", r.Timestamp)
		}
	}
}

func TestWireStructured(t *testing.T) {
	c := newCluster(t, 1, "wire")
	s := open(t, c, kafkasink.Options{Topic: "wire", Structured: true})
	ctx := ctxT(t)
	if err := s.Publish(ctx, tricky); err != nil {
		t.Fatal(err)
	}
	recs := readTopic(ctx, t, c, "wire")
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	r := recs[0]
	if got, want := headerMap(r.Headers), map[string]string{
		"content-type": "application/cloudevents+json", "traceparent": tricky.TraceParent, "tracestate": tricky.TraceState,
	}; !maps.Equal(got, want) {
		t.Errorf("headers %q, want %q", got, want)
	}
	if string(r.Key) != tricky.SessionID || string(r.Value) != string(tricky.StructuredJSON()) {
		t.Errorf("record key %q value %s, want %q %s", r.Key, r.Value, tricky.SessionID, tricky.StructuredJSON())
	}
}

// TestPartitionMatchesFranzGo produces 1,000 random keys through the Sink
// and checks that kfake stored each in the partition franz-go's default
// partitioner (murmur2, as Java's) picks for it.
func TestPartitionMatchesFranzGo(t *testing.T) {
	const partitions = 7
	c := newCluster(t, partitions, "parts")
	s := open(t, c, kafkasink.Options{Topic: "parts"})
	ctx := ctxT(t)
	rng := rand.New(rand.NewPCG(1, 2))
	want := map[string]bool{}
	var evs []bridge.Event
	for i := range 1000 {
		b := make([]byte, 1+rng.IntN(40))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		key := string(b)
		if want[key] {
			continue
		}
		want[key] = true
		evs = append(evs, event(key, fmt.Sprint(i)))
	}
	// Concurrent callers, so the keys travel in shared batches.
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := g; i < len(evs); i += 8 {
				if err := s.Publish(ctx, evs[i]); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	tp := kgo.StickyKeyPartitioner(nil).ForTopic("parts")
	recs := readTopic(ctx, t, c, "parts")
	if len(recs) != len(evs) {
		t.Fatalf("%d records, want %d", len(recs), len(evs))
	}
	used := map[int32]bool{}
	for _, r := range recs {
		p := tp.Partition(&kgo.Record{Key: r.Key}, partitions)
		if int32(p) != r.Partition {
			t.Errorf("key %x in partition %d, franz-go picks %d", r.Key, r.Partition, p)
		}
		used[r.Partition] = true
		delete(want, string(r.Key))
	}
	if len(want) != 0 || len(used) != partitions {
		t.Errorf("%d keys not stored, %d of %d partitions used", len(want), len(used), partitions)
	}
}

// TestConsumers reads the events back with a franz-go consumer and with a
// kafka-go Reader and rebuilds every attribute from key, headers and value.
func TestConsumers(t *testing.T) {
	c := newCluster(t, 2, "cons")
	s := open(t, c, kafkasink.Options{Topic: "cons"})
	ctx := ctxT(t)
	evs := []bridge.Event{tricky, event("s-1", "a"), event("s-2", "b"),
		{ID: "c", Source: "urn:x", SessionID: "s-1", QoSStatus: bridge.StatusUnavailable, StatusInfo: bridge.InfoDeleteRequested, TraceState: "k=v"}}
	if err := s.Publish(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	byID := map[string]bridge.Event{}
	for _, ev := range evs {
		byID[ev.ID] = ev
	}
	check := func(who string, key []byte, h map[string]string, value []byte) {
		t.Helper()
		ev, err := decodeKafka(h, value)
		if err != nil {
			t.Fatalf("%s: %v", who, err)
		}
		if want, ok := byID[ev.ID]; !ok || ev != want {
			t.Errorf("%s: rebuilt %+v, want %+v", who, ev, want)
		}
		if string(key) != ev.SessionID || h["ce_subject"] != ev.SessionID || h["ce_partitionkey"] != ev.SessionID {
			t.Errorf("%s: key %q subject %q partitionkey %q, want sessionId %q", who, key, h["ce_subject"], h["ce_partitionkey"], ev.SessionID)
		}
		if h["ce_type"] != bridge.EventType || h["ce_datacontenttype"] != "application/json" || h["content-type"] != "application/json" {
			t.Errorf("%s: type %q datacontenttype %q content-type %q", who, h["ce_type"], h["ce_datacontenttype"], h["content-type"])
		}
	}
	recs := readTopic(ctx, t, c, "cons")
	if len(recs) != len(evs) {
		t.Fatalf("franz-go read %d records, want %d", len(recs), len(evs))
	}
	for _, r := range recs {
		check("franz-go", r.Key, headerMap(r.Headers), r.Value)
	}

	ends := endOffsets(ctx, t, kgoClient(t, c), "cons")
	n := 0
	for p, end := range ends {
		rd := kafka.NewReader(kafka.ReaderConfig{
			Brokers: c.ListenAddrs(), Topic: "cons", Partition: int(p), MaxWait: 50 * time.Millisecond,
		})
		for range end {
			m, err := rd.ReadMessage(ctx)
			if err != nil {
				t.Fatalf("kafka-go reader partition %d: %v", p, err)
			}
			h := map[string]string{}
			for _, hd := range m.Headers {
				h[hd.Key] = string(hd.Value)
			}
			check("kafka-go", m.Key, h, m.Value)
			n++
		}
		rd.Close()
	}
	if n != len(evs) {
		t.Errorf("kafka-go read %d records, want %d", n, len(evs))
	}
}

// TestProduceFailures makes the broker fail every other produce request
// (NOT_ENOUGH_REPLICAS, storing nothing) under concurrent publishing: the
// failed calls return ErrUnavailable, and every call that returned nil has
// its records in the topic.
func TestProduceFailures(t *testing.T) {
	c := newCluster(t, 3, "faults")
	s := open(t, c, kafkasink.Options{Topic: "faults"})
	var produces, failed atomic.Int64
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if produces.Add(1)%2 == 0 {
			return nil, nil, false // handled normally: stored
		}
		failed.Add(1)
		return failProduce(req, 19 /* NOT_ENOUGH_REPLICAS */), nil, true
	})
	ctx := ctxT(t)
	var (
		mu         sync.Mutex
		acked      = map[string]bool{}
		errs, oks  int
		wg         sync.WaitGroup
		otherError error
	)
	for g := range 8 {
		wg.Go(func() {
			for i := range 30 {
				// Calls of several events too: one failed record fails
				// the whole call.
				evs := []bridge.Event{event(fmt.Sprintf("f-%d", g), fmt.Sprintf("g%d-%d", g, i))}
				if i%3 == 0 {
					evs = append(evs, event(fmt.Sprintf("f-%d-b", g), fmt.Sprintf("g%d-%d-b", g, i)))
				}
				err := s.Publish(ctx, evs...)
				mu.Lock()
				switch {
				case err == nil:
					oks++
					for _, ev := range evs {
						acked[ev.ID] = true
					}
				case errors.Is(err, kafkasink.ErrUnavailable):
					errs++
				default:
					otherError = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if otherError != nil {
		t.Fatalf("Publish = %v, want nil or ErrUnavailable", otherError)
	}
	if failed.Load() == 0 || errs == 0 || oks == 0 {
		t.Fatalf("%d produce requests failed, %d calls failed, %d succeeded: want some of each", failed.Load(), errs, oks)
	}
	stored := map[string]bool{}
	for _, ev := range storedEvents(ctx, t, c, "faults") {
		stored[ev.ID] = true
	}
	for id := range acked {
		if !stored[id] {
			t.Errorf("event %s acknowledged but not stored", id)
		}
	}
	t.Logf("%d produce requests failed; %d calls failed, %d acked", failed.Load(), errs, oks)
}

// TestProduceNoAnswer: a broker that never answers a produce request makes
// Publish fail with ErrUnavailable at its timeout, and the Sink recovers.
func TestProduceNoAnswer(t *testing.T) {
	c := newCluster(t, 1, "silent")
	s := open(t, c, kafkasink.Options{Topic: "silent", PublishTimeout: 300 * time.Millisecond})
	ctx := ctxT(t)
	if err := s.Publish(ctx, event("x", "warm")); err != nil {
		t.Fatal(err)
	}
	var swallow atomic.Bool
	swallow.Store(true)
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		if !swallow.Load() {
			return nil, nil, false
		}
		c.KeepControl()
		return nil, nil, true // no response
	})
	err := publishWithin(t, s, ctx, event("x", "lost"))
	if !errors.Is(err, kafkasink.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish to a silent broker = %v, want ErrUnavailable and DeadlineExceeded", err)
	}
	swallow.Store(false)
	waitPublish(t, s, "after")
}

// waitPublish publishes until a call succeeds (the broker is back) or the
// test deadline passes.
func waitPublish(t *testing.T, s *kafkasink.Sink, id string) {
	t.Helper()
	ctx := ctxT(t)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var err error
	for {
		if err = s.Publish(ctx, event("x", id)); err == nil {
			return
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("Publish never recovered: %v", err)
		}
	}
}

// TestBrokerDown: with the broker closed Publish and Ready fail with
// ErrUnavailable; a broker on the same address brings the Sink back.
func TestBrokerDown(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "down"))
	if err != nil {
		t.Fatal(err)
	}
	addr := c.ListenAddrs()[0]
	s := open(t, c, kafkasink.Options{Topic: "down", PublishTimeout: 500 * time.Millisecond})
	ctx := ctxT(t)
	if err := s.Publish(ctx, event("x", "before")); err != nil {
		t.Fatal(err)
	}
	if err := s.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	c.Close()
	for i := range 3 {
		if err := publishWithin(t, s, ctx, event("x", fmt.Sprint("down-", i))); !errors.Is(err, kafkasink.ErrUnavailable) {
			t.Fatalf("Publish with the broker down = %v, want ErrUnavailable", err)
		}
	}
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := s.Ready(rctx); err == nil {
		t.Fatal("Ready with the broker down = nil")
	}

	var port int
	if _, err := fmt.Sscanf(addr[strings.LastIndexByte(addr, ':')+1:], "%d", &port); err != nil {
		t.Fatal(err)
	}
	c2, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.SeedTopics(2, "down"))
	if err != nil {
		t.Fatalf("restart on %s: %v", addr, err)
	}
	t.Cleanup(c2.Close)
	waitPublish(t, s, "back")
	if err := s.Ready(ctx); err != nil {
		t.Fatalf("Ready after restart: %v", err)
	}
	found := false
	for _, ev := range storedEvents(ctx, t, c2, "down") {
		found = found || ev.ID == "back"
	}
	if !found {
		t.Error("event published after the restart is not stored")
	}
}

func TestTopicMissing(t *testing.T) {
	c := newCluster(t, 1, "other")
	_, err := kafkasink.Open(ctxT(t), connOpts(c), kafkasink.Options{})
	if !errors.Is(err, kafkasink.ErrTopicMissing) {
		t.Fatalf("Open without the topic = %v, want ErrTopicMissing", err)
	}
	for _, want := range []string{`"qod.status"`, "kafka.create_topics", c.ListenAddrs()[0]} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func TestCreateTopics(t *testing.T) {
	c := newCluster(t, 0)
	ctx := ctxT(t)
	for _, compact := range []bool{false, true} {
		topic := uniq("created")
		s := open(t, c, kafkasink.Options{Topic: topic, CreateTopics: true, Partitions: 5, Compact: compact})
		if err := s.Publish(ctx, event("s", "1")); err != nil {
			t.Fatal(err)
		}
		cl := kgoClient(t, c)
		if n := len(endOffsets(ctx, t, cl, topic)); n != 5 {
			t.Errorf("topic %s has %d partitions, want 5", topic, n)
		}
		want := "delete"
		if compact {
			want = "compact"
		}
		if got := topicConfig(ctx, t, cl, topic, "cleanup.policy"); got != want {
			t.Errorf("topic %s cleanup.policy = %q, want %q", topic, got, want)
		}
		// An existing topic is fine, and left alone.
		s2 := open(t, c, kafkasink.Options{Topic: topic, CreateTopics: true, Partitions: 9})
		if err := s2.Ready(ctx); err != nil {
			t.Errorf("Ready: %v", err)
		}
		if n := len(endOffsets(ctx, t, cl, topic)); n != 5 {
			t.Errorf("topic %s altered to %d partitions", topic, n)
		}
	}
	// The default partition count.
	topic := uniq("defaults")
	open(t, c, kafkasink.Options{Topic: topic, CreateTopics: true})
	if n := len(endOffsets(ctx, t, kgoClient(t, c), topic)); n != kafkasink.DefaultPartitions {
		t.Errorf("default topic has %d partitions, want %d", n, kafkasink.DefaultPartitions)
	}
}

func topicConfig(ctx context.Context, t testing.TB, cl *kgo.Client, topic, name string) string {
	t.Helper()
	req := kmsg.NewPtrDescribeConfigsRequest()
	r := kmsg.NewDescribeConfigsRequestResource()
	r.ResourceType = kmsg.ConfigResourceTypeTopic
	r.ResourceName = topic
	r.ConfigNames = []string{name}
	req.Resources = append(req.Resources, r)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("describe configs %s: %v", topic, err)
	}
	for _, res := range resp.Resources {
		for _, cfg := range res.Configs {
			if cfg.Name == name && cfg.Value != nil {
				return *cfg.Value
			}
		}
	}
	return ""
}

func TestCompression(t *testing.T) {
	c := newCluster(t, 0)
	ctx := ctxT(t)
	for _, codec := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		t.Run(codec, func(t *testing.T) {
			topic := uniq("comp")
			s := open(t, c, kafkasink.Options{Topic: topic, CreateTopics: true, Partitions: 1, Compression: codec})
			var evs []bridge.Event
			for i := range 20 {
				evs = append(evs, event("s", fmt.Sprint(i)))
			}
			if err := s.Publish(ctx, evs...); err != nil {
				t.Fatal(err)
			}
			got := storedEvents(ctx, t, c, topic)
			if len(got) != len(evs) {
				t.Fatalf("%d events stored, want %d", len(got), len(evs))
			}
			for i := range got {
				if got[i] != evs[i] {
					t.Errorf("event %d = %+v, want %+v", i, got[i], evs[i])
				}
			}
		})
	}
}

// TestMaxPending: records whose batch is held by the broker keep their
// slots although their caller gave up, so a caller beyond the bound waits
// for a slot until its ctx ends; a call larger than the bound still goes
// once the Sink is idle.
func TestMaxPending(t *testing.T) {
	c := newCluster(t, 1, "pending")
	s := open(t, c, kafkasink.Options{Topic: "pending", MaxPending: 2, PublishTimeout: time.Minute})
	ctx := ctxT(t)
	if err := s.Publish(ctx, event("s", "big-1"), event("s", "big-2"), event("s", "big-3")); err != nil {
		t.Fatalf("Publish larger than MaxPending: %v", err)
	}
	release := make(chan struct{})
	held := make(chan struct{}, 1)
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		select {
		case held <- struct{}{}:
		default:
		}
		c.SleepControl(func() { <-release })
		return nil, nil, false
	})
	// A caller that gives up: its two records stay in flight, holding
	// both slots, until the broker answers.
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Publish(cctx, event("s", "held-1"), event("s", "held-2")) }()
	select {
	case <-held:
	case <-ctx.Done():
		t.Fatal("produce never reached the broker")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Publish = %v, want context.Canceled", err)
	}
	// The held produce outlives this caller: its timeout is a minute.
	bctx, bcancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer bcancel()
	err := publishWithin(t, s, bctx, event("s", "blocked"))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "pending slot") {
		t.Fatalf("Publish beyond MaxPending = %v, want DeadlineExceeded waiting for a slot", err)
	}
	close(release)
	waitPublish(t, s, "freed")
	// The abandoned records were written when the broker answered.
	ids := map[string]bool{}
	for _, ev := range storedEvents(ctx, t, c, "pending") {
		ids[ev.ID] = true
	}
	for _, id := range []string{"big-1", "big-2", "big-3", "held-1", "held-2", "freed"} {
		if !ids[id] {
			t.Errorf("event %s not stored", id)
		}
	}
	if ids["blocked"] {
		t.Error("event refused for want of a slot was stored")
	}
}

func TestInvalidOptions(t *testing.T) {
	c := newCluster(t, 1, "qod.status")
	for name, o := range map[string]kafkasink.Options{
		"topic":       {Topic: "a/b"},
		"compression": {Compression: "brotli"},
		"timeout":     {PublishTimeout: -1},
		"partitions":  {Partitions: -1},
		"replication": {ReplicationFactor: -2},
	} {
		if _, err := kafkasink.Open(ctxT(t), connOpts(c), o); !errors.Is(err, kafkasink.ErrInvalidOptions) {
			t.Errorf("%s: Open = %v, want ErrInvalidOptions", name, err)
		}
	}
	for name, co := range map[string]kafkasink.ConnOptions{
		"broker":    {Brokers: []string{"no-port"}},
		"mechanism": {SASL: kafkasink.SASLOptions{Mechanism: "GSSAPI", Username: "u"}},
		"user only": {SASL: kafkasink.SASLOptions{Username: "u", Password: "p"}},
		"both pass": {SASL: kafkasink.SASLOptions{Mechanism: "PLAIN", Username: "u", Password: "p", PasswordFile: "f"}},
		"cert":      {TLS: kafkasink.TLSOptions{CertFile: "c.pem"}},
	} {
		if _, err := kafkasink.Open(ctxT(t), co, kafkasink.Options{}); !errors.Is(err, kafkasink.ErrInvalidOptions) {
			t.Errorf("%s: Open = %v, want ErrInvalidOptions", name, err)
		}
	}
}

// TestSASL authenticates with each mechanism against a kfake cluster that
// requires SASL, and fails with a wrong password.
func TestSASL(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "auth"), kfake.EnableSASL(),
		kfake.Superuser("PLAIN", "plainuser", "pw-plain"),
		kfake.Superuser("SCRAM-SHA-256", "scram256", "pw-256"),
		kfake.Superuser("SCRAM-SHA-512", "scram512", "pw-512"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	pwFile := t.TempDir() + "/pw"
	if err := os.WriteFile(pwFile, []byte("pw-512\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, sa := range []kafkasink.SASLOptions{
		{Mechanism: "PLAIN", Username: "plainuser", Password: "pw-plain"},
		{Mechanism: "scram-sha-256", Username: "scram256", Password: "pw-256"},
		{Mechanism: "SCRAM-SHA-512", Username: "scram512", PasswordFile: pwFile},
	} {
		t.Run(sa.Mechanism, func(t *testing.T) {
			co := connOpts(c)
			co.SASL = sa
			s, err := kafkasink.Open(ctxT(t), co, kafkasink.Options{Topic: "auth"})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer s.Close()
			if err := s.Publish(ctxT(t), event("s", sa.Mechanism)); err != nil {
				t.Fatalf("Publish: %v", err)
			}
		})
	}
	co := connOpts(c)
	co.SASL = kafkasink.SASLOptions{Mechanism: "SCRAM-SHA-256", Username: "scram256", Password: "wrong"}
	ctx, cancel := context.WithTimeout(ctxT(t), 2*time.Second)
	defer cancel()
	if s, err := kafkasink.Open(ctx, co, kafkasink.Options{Topic: "auth"}); err == nil {
		s.Close()
		t.Fatal("Open with a wrong password succeeded")
	} else {
		t.Logf("wrong password: %v", err)
	}
}
