package kafkaview_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/sinks/kafkasink"
	"github.com/qodbridge/qodbridge/sinks/kafkaview"
	"github.com/qodbridge/qodbridge/sinks/sinktest"
)

// testDeadline bounds every wait; it guards against hangs and is no timing
// threshold.
const testDeadline = 30 * time.Second

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	t.Cleanup(cancel)
	return ctx
}

func cluster(t testing.TB) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func conn(c *kfake.Cluster) kafkasink.ConnOptions {
	return kafkasink.ConnOptions{Brokers: c.ListenAddrs(), DialTimeout: 2 * time.Second}
}

func open(t testing.TB, c *kfake.Cluster, o kafkaview.Options) *kafkaview.View {
	t.Helper()
	o.CreateTopics = true
	o.Partitions = 3
	v, err := kafkaview.Open(ctxT(t), conn(c), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Close() })
	return v
}

func ev(session, id, tm string, st bridge.QoSStatus, info bridge.StatusInfo) bridge.Event {
	return bridge.Event{ID: session + "/" + id, Source: "https://platform.example/qod", Time: tm, SessionID: session, QoSStatus: st, StatusInfo: info}
}

func session(id string) []bridge.Event {
	return []bridge.Event{
		ev(id, "a", "2026-12-03T10:00:00Z", bridge.StatusAvailable, ""),
		ev(id, "d", "2026-12-03T10:05:00Z", bridge.StatusUnavailable, bridge.InfoDeleteRequested),
		ev(id, "a2", "2026-12-03T10:01:00Z", bridge.StatusAvailable, ""),
		ev(id, "a", "2026-12-03T10:00:00Z", bridge.StatusAvailable, ""),
		ev(id, "r", "2026-12-03T09:59:00Z", bridge.StatusRequested, ""),
	}
}

func fold(evs []bridge.Event) bridge.ViewEntry {
	var v bridge.ViewEntry
	for i := range evs {
		v = bridge.MaxView(v, bridge.EntryOf(&evs[i], time.Time{}))
	}
	return v
}

func same(a, b bridge.ViewEntry) bool {
	a.ReceivedAt, b.ReceivedAt = time.Time{}, time.Time{}
	return a == b
}

func permutations(n int) [][]int {
	if n == 0 {
		return [][]int{{}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			out = append(out, append(append(append([]int{}, p[:i]...), n-1), p[i:]...))
		}
	}
	return out
}

// lastRecords reads the topic to its end and returns each key's last
// record (what a reader of the compacted topic takes), decoded.
func lastRecords(t *testing.T, c *kfake.Cluster, topic string) map[string]string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	out := map[string]string{}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) { n++; out[string(r.Key)] = string(r.Value) })
		if n == 0 { // nothing more within the poll: at the end
			return out
		}
	}
}

// TestEveryPermutation: every order of a session's events leaves the same
// entry in the cache, in a second instance that reads the topic, and as
// the key's last record.
func TestEveryPermutation(t *testing.T) {
	c := cluster(t)
	var mu sync.Mutex
	stale := map[bridge.StaleReason]int{}
	v := open(t, c, kafkaview.Options{OnStale: func(r bridge.StaleReason) { mu.Lock(); stale[r]++; mu.Unlock() }})
	ctx := ctxT(t)
	perms := permutations(len(session("")))
	for i, p := range perms {
		evs := session(fmt.Sprintf("perm-%d", i))
		for _, j := range p {
			if err := v.UpdateView(ctx, time.Now(), evs[j]); err != nil {
				t.Fatal(err)
			}
		}
	}
	v2 := open(t, c, kafkaview.Options{})
	last := lastRecords(t, c, kafkaview.DefaultTopic)
	for i := range perms {
		id := fmt.Sprintf("perm-%d", i)
		want := fold(session(id))
		for _, w := range []*kafkaview.View{v, v2} {
			if got, ok := w.Get(id); !ok || !same(got, want) {
				t.Fatalf("%s: %+v %v, want %+v", id, got, ok, want)
			}
		}
		if l := last[id]; l == "" || !strings.Contains(l, `"id":"`+id+`/d"`) {
			t.Fatalf("%s: last record %s", id, l)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if stale[bridge.StaleFinal] == 0 || stale[bridge.StaleDuplicate] == 0 {
		t.Errorf("stale counts %v", stale)
	}
}

// TestConcurrentInstances: two instances with many goroutines each write
// the same sessions in shuffled orders; every key's last record converges
// to the rule's maximum (the repair), and both caches hold it.
func TestConcurrentInstances(t *testing.T) {
	c := cluster(t)
	views := []*kafkaview.View{open(t, c, kafkaview.Options{}), open(t, c, kafkaview.Options{})}
	ctx := ctxT(t)
	const sessions, workers = 6, 6
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers)
	base := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	for vi, v := range views {
		for w := range workers {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(vi), uint64(w)))
				for s := range sessions {
					id := fmt.Sprintf("c-%d", s)
					// Distinct events per writer: the racing writes differ.
					evs := append(session(id), ev(id, fmt.Sprintf("w%d-%d", vi, w), base.Add(time.Duration(r.IntN(4))*time.Minute).Format(time.RFC3339), bridge.StatusAvailable, ""))
					r.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
					for _, e := range evs {
						if err := v.UpdateView(ctx, time.Now(), e); err != nil {
							errs <- err
							return
						}
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for {
		last := lastRecords(t, c, kafkaview.DefaultTopic)
		ok := true
		for s := range sessions {
			id := fmt.Sprintf("c-%d", s)
			if !strings.Contains(last[id], `"id":"`+id+`/d"`) {
				ok = false
			}
			for _, v := range views {
				if got, _ := v.Get(id); got.ID != id+"/d" {
					ok = false
				}
			}
		}
		if ok {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("did not converge: %v", last)
		}
	}
}

// TestRebuild: the view rebuilt from the history topic is the rule's
// maximum of its events.
func TestRebuild(t *testing.T) {
	c := cluster(t)
	ctx := ctxT(t)
	for _, structured := range []bool{false, true} {
		topic := fmt.Sprintf("qod.status.%v", structured)
		sink, err := kafkasink.Open(ctx, conn(c), kafkasink.Options{Topic: topic, Structured: structured, CreateTopics: true, Partitions: 2})
		if err != nil {
			t.Fatal(err)
		}
		evs := append(session("rb-1"), session("rb-2")...)
		if err := sink.Publish(ctx, evs...); err != nil {
			t.Fatal(err)
		}
		_ = sink.Close()
		v := open(t, c, kafkaview.Options{Topic: "view." + topic})
		st, err := v.Rebuild(ctx, topic)
		if err != nil || st.Read != len(evs) || st.Undecodable != 0 {
			t.Fatalf("Rebuild: %+v %v", st, err)
		}
		for _, id := range []string{"rb-1", "rb-2"} {
			if got, ok := v.Get(id); !ok || !same(got, fold(session(id))) {
				t.Errorf("%s: %+v %v", id, got, ok)
			}
		}
	}
}

// TestEndedEntryTombstoned: an ended session's entry older than the
// retention is replaced by a tombstone; a live one stays.
func TestEndedEntryTombstoned(t *testing.T) {
	c := cluster(t)
	v := open(t, c, kafkaview.Options{Retention: time.Second})
	ctx := ctxT(t)
	evs := session("ends")
	long := time.Now().Add(-time.Hour)
	if err := v.UpdateView(ctx, long, evs[1], ev("lives", "l", "", bridge.StatusAvailable, "")); err != nil {
		t.Fatal(err)
	}
	if !sinktest.Poll(testDeadline, 20*time.Millisecond, func() bool { _, ok := v.Get("ends"); return !ok }) {
		t.Fatal("the ended session's entry was not tombstoned")
	}
	if _, ok := v.Get("lives"); !ok {
		t.Fatal("the live session's entry was dropped")
	}
	// A fresh reader of the topic sees the tombstone too.
	if _, ok := open(t, c, kafkaview.Options{Retention: time.Second}).Get("ends"); ok {
		t.Fatal("a new instance still has the ended entry")
	}
}
