package process

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestKafkaClusterFaults runs the bridge (Kafka only) against a 3-broker
// kfake cluster and, under load, moves every partition's leadership, stops
// a broker (its connections closed and refused, its partitions led by the
// others) and brings it back, and has the leaders answer
// NOT_ENOUGH_REPLICAS for a while. Senders retry a 503 as platforms do.
// Every notification answered 204 is in the topic afterwards; the ones
// stored twice (a write that timed out and was written all the same, then
// resent: what the README says Kafka may do) are counted and logged.
func TestKafkaClusterFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("broker faults under load: not in -short")
	}
	topics := []string{"qod.status", "qod.commands", "qod.results", "qod.commands.dlq", "qod.sessions"}
	kc, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(6, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	addrs := kc.ListenAddrs()
	b, _ := startBridge(t, map[string]string{"QODBRIDGE_KAFKA_BROKERS": addrs[0] + "," + addrs[1] + "," + addrs[2],
		"QODBRIDGE_NATS_URL": "off", "QODBRIDGE_ADMIN_UI": "false"})

	n := scaled(900, 300)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: time.Minute}
	var acked, unavailable atomic.Int64
	var failed atomic.Value
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := range jobs {
				ev := statusEvent(fmt.Sprintf("kf-%d", i), fmt.Sprintf("s-%d", i%40), "AVAILABLE")
				for start := time.Now(); ; {
					code, err := post(t, client, b.notify, b.token, ev)
					if code == http.StatusNoContent {
						acked.Add(1)
						break
					}
					if code != http.StatusServiceUnavailable {
						failed.Store(fmt.Sprintf("kf-%d: %d %v", i, code, err))
						break
					}
					if time.Since(start) > time.Minute {
						failed.Store(fmt.Sprintf("kf-%d still 503 after a minute", i))
						break
					}
					unavailable.Add(1)
					time.Sleep(20 * time.Millisecond) // a platform's retry interval
				}
			}
		})
	}
	var injected atomic.Int64
	var brokerDown atomic.Bool
	for i := range n {
		jobs <- i
		switch i {
		case n / 5:
			kc.ShufflePartitionLeaders()
		case 2 * n / 5:
			// The broker leading partition 0 stops: its connections are
			// closed and refused, and its partitions' leadership moves to
			// the others, as a controller does.
			down := kc.LeaderFor("qod.status", 0)
			brokerDown.Store(true)
			for _, topic := range topics {
				for p := range int32(6) {
					if kc.LeaderFor(topic, p) == down {
						if err := kc.MoveTopicPartition(topic, p, (down+1)%3); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			kc.Control(func(kmsg.Request) (kmsg.Response, error, bool) {
				if !brokerDown.Load() {
					kc.DropControl()
					return nil, nil, false
				}
				kc.KeepControl()
				if kc.CurrentNode() != down {
					return nil, nil, false
				}
				return nil, errors.New("broker stopped"), true // closes the connection
			})
		case 2*n/5 + n/10:
			brokerDown.Store(false) // and is back
		case 3 * n / 5:
			// The next 30 produce requests are refused: not enough
			// in-sync replicas.
			kc.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
				kc.KeepControl()
				if injected.Add(1) > 30 {
					kc.DropControl()
					return nil, nil, false
				}
				pr := req.(*kmsg.ProduceRequest)
				resp := pr.ResponseKind().(*kmsg.ProduceResponse)
				for _, rt := range pr.Topics {
					st := kmsg.NewProduceResponseTopic()
					st.Topic = rt.Topic
					for _, rp := range rt.Partitions {
						sp := kmsg.NewProduceResponseTopicPartition()
						sp.Partition = rp.Partition
						sp.ErrorCode = kerr.NotEnoughReplicas.Code
						st.Partitions = append(st.Partitions, sp)
					}
					resp.Topics = append(resp.Topics, st)
				}
				return resp, nil, true
			})
		}
	}
	close(jobs)
	wg.Wait()
	if v := failed.Load(); v != nil {
		t.Fatalf("not acknowledged: %v", v)
	}
	if injected.Load() == 0 {
		t.Fatal("no produce request met the injected NOT_ENOUGH_REPLICAS")
	}

	// Every acknowledged id is in the topic.
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.ConsumeTopics("qod.status"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	seen := map[string]int{}
	for len(seen) < n && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == "ce_id" {
					seen[string(h.Value)]++
				}
			}
		})
	}
	twice := 0
	for i := range n {
		switch c := seen[fmt.Sprintf("kf-%d", i)]; {
		case c == 0:
			t.Errorf("kf-%d was answered 204 but is not in the topic", i)
		case c > 1:
			twice++
		}
	}
	t.Logf("%d notifications acknowledged, %d answers 503 during the faults, %d produce requests refused, %d stored twice",
		acked.Load(), unavailable.Load(), injected.Load(), twice)
}
