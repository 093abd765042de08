package bench

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/qodbridge/qodbridge/sinks/sinktest"
)

// writeKafka writes one record per id to partition p of topic, stamped at,
// with the ce_id header the bridge's Kafka sink sets.
func writeKafka(t *testing.T, addr, topic string, p int, at time.Time, ids ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := kafka.DialLeader(ctx, "tcp", addr, topic, p)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msgs := make([]kafka.Message, len(ids))
	for i, id := range ids {
		msgs[i] = kafka.Message{Time: at, Value: []byte(`{}`), Headers: []kafka.Header{{Key: "ce_id", Value: []byte(id)}}}
	}
	if _, err := conn.WriteMessages(msgs...); err != nil {
		t.Fatalf("write %s/%d: %v", topic, p, err)
	}
}

// TestKafkaConsumerStartsAtTheRun: each partition is read from its first
// record written at or after the start time, or from its end when it has
// none; older records (an earlier run's) are not read at all, and every
// record of the run is read once, whichever partition it is on.
func TestKafkaConsumerStartsAtTheRun(t *testing.T) {
	const topic = "qod.status"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	addr := cluster.ListenAddrs()[0]

	ids := newRunIDs("run1", 1)
	earlier := newRunIDs("run0", 2) // would count as foreign if read
	start := time.Now()
	old := start.Add(-time.Hour)
	// Partition 0: only an earlier run's records, so it starts at its end.
	writeKafka(t, addr, topic, 0, old, earlier.id(0), earlier.id(1))
	// Partition 1: an earlier run's records, then two of this run written
	// before the consumer started.
	writeKafka(t, addr, topic, 1, old, earlier.id(2))
	writeKafka(t, addr, topic, 1, start, ids.id(0), ids.id(1))
	// Partition 2: empty.

	tr := newTracker(start)
	tr.sending(0, 8, start)
	var warn strings.Builder
	c, err := startKafka(context.Background(), []string{addr}, topic, start, &recv{ids: ids, track: tr}, &syncWriter{w: &warn})
	if err != nil {
		t.Fatal(err)
	}
	tr.answered(0, 8, true)
	writeKafka(t, addr, topic, 0, time.Now(), ids.id(2), ids.id(3))
	writeKafka(t, addr, topic, 1, time.Now(), ids.id(4), ids.id(5))
	writeKafka(t, addr, topic, 2, time.Now(), ids.id(6), ids.id(7))

	got := sinktest.Poll(30*time.Second, time.Millisecond, func() bool { return tr.outstanding() == 0 })
	dropped, err := c.stop()
	if err != nil || dropped != 0 {
		t.Errorf("stop: dropped %d, %v", dropped, err)
	}
	if !got {
		t.Fatalf("%d of 8 events not received in 30s", tr.outstanding())
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.nReceived != 8 || tr.nDup != 0 || tr.nForeign != 0 {
		t.Errorf("received %d, duplicates %d, foreign %d; want 8, 0, 0 (an earlier run's records are not read)", tr.nReceived, tr.nDup, tr.nForeign)
	}
	if c.describe() != "Kafka topic "+topic {
		t.Errorf("describe: %q", c.describe())
	}
}

// TestKafkaConsumerMissingTopic: a topic that does not exist is an error
// at start, naming it, and the consumer does not create it.
func TestKafkaConsumerMissingTopic(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "qod.status"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	tr := newTracker(time.Now())
	_, err = startKafka(context.Background(), cluster.ListenAddrs(), "qod.statsu", time.Now(), &recv{track: tr}, &syncWriter{w: &strings.Builder{}})
	if err == nil || !strings.Contains(err.Error(), "qod.statsu") {
		t.Fatalf("start on a missing topic: %v", err)
	}
}
