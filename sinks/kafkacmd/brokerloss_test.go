package kafkacmd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qodbridge/qodbridge/bridge/command"
)

// TestBrokerLossRebalanceCommitsNothingUnfinished: two instances share six
// partitions of a three-broker cluster. With commands in flight on both,
// the broker that coordinates the group (and leads some partitions) stops:
// its connections are closed and refused, its partitions' leadership moves
// to the others. Heartbeats fail, both generations end, and when the broker
// is back the group rebalances. Throughout, no offset the cluster accepts
// as committed passes a command that has not finished, and every command
// gets a result. Commands whose commit the stopped broker refused run again
// on their partition's next owner (at least once, as the package documents);
// they are counted.
func TestBrokerLossRebalanceCommitsNothingUnfinished(t *testing.T) {
	f := newFixture(t, 6, kfake.NumBrokers(3),
		kfake.BrokerConfigs(map[string]string{"group.min.session.timeout.ms": "100"}))
	const n = 240

	// Every command is in the topic before the instances start, so each
	// one's partition and offset are known to the commit observer.
	type pos struct {
		p   int
		off int64
	}
	where := make(map[string]pos, n)
	for i := range n {
		id := fmt.Sprintf("b-%03d", i)
		r := f.send(t, fmt.Sprintf("s%d", i%30), fmt.Sprintf(`{"action":"get","requestId":%q,"sessionId":"s%d"}`, id, i%30))
		where[id] = pos{int(r.Partition), r.Offset}
	}
	var mu sync.Mutex
	done := map[int]map[int64]bool{} // partition → offsets whose command finished
	var violations []string
	var commits int
	t.Cleanup(func() { // also when a wait below gave up
		mu.Lock()
		defer mu.Unlock()
		for _, v := range violations {
			t.Error(v)
		}
	})
	var down atomic.Int32 // the stopped broker's node id + 1; 0 while all run
	f.c.ControlKey(int16(kmsg.OffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if d := down.Load(); d != 0 && f.c.CurrentNode() == d-1 {
			return nil, nil, false // refused below: not a commit the cluster keeps
		}
		r := req.(*kmsg.OffsetCommitRequest)
		mu.Lock()
		defer mu.Unlock()
		for _, tp := range r.Topics {
			for _, p := range tp.Partitions {
				commits++
				for off := range p.Offset {
					if !done[int(p.Partition)][off] {
						violations = append(violations, fmt.Sprintf("partition %d committed at %d while offset %d is unfinished", p.Partition, p.Offset, off))
						break
					}
				}
			}
		}
		return nil, nil, false // observe only
	})

	// Each instance holds the commands it starts from its 30th on until its
	// generation ended, so the broker stops while they are in flight.
	type instance struct {
		runs     *counter
		held     chan struct{}
		draining chan struct{}
	}
	newInstance := func() *instance {
		in := &instance{runs: newCounter(), held: make(chan struct{}), draining: make(chan struct{})}
		var once sync.Once
		in.runs.onRun = func(ctx context.Context, total int) {
			if total < 30 || total >= 36 {
				return
			}
			once.Do(func() { close(in.held) })
			select {
			case <-in.draining:
			case <-ctx.Done():
			}
		}
		return in
	}
	a, b := newInstance(), newInstance()
	start := func(in *instance) {
		o := fastGroup(Options{Lanes: 8})
		o.SessionTimeout, o.RebalanceTimeout = 2*time.Second, 3*time.Second
		o.Logger = slog.New(&signalHandler{msg: msgDraining, ch: in.draining})
		f.start(t, executorFunc(func(ctx context.Context, cmd command.Command) (command.Outcome, error) {
			out, err := in.runs.Execute(ctx, cmd)
			if err == nil {
				mu.Lock()
				w := where[cmd.RequestID]
				if done[w.p] == nil {
					done[w.p] = map[int64]bool{}
				}
				done[w.p][w.off] = true
				mu.Unlock()
			}
			return out, err
		}), o)
	}
	start(a)
	start(b)
	waitFor := func(what string, ch <-chan struct{}) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(testDeadline):
			t.Fatalf("waiting for %s", what)
		}
	}
	waitFor("the first instance to hold commands", a.held)
	waitFor("the second instance to hold commands", b.held)

	// The coordinator stops.
	stopped := f.c.CoordinatorFor(DefaultGroupID)
	for _, topic := range []string{DefaultTopic, DefaultResultTopic, DefaultDLQTopic} {
		for p := range int32(6) {
			if f.c.LeaderFor(topic, p) == stopped {
				if err := f.c.MoveTopicPartition(topic, p, (stopped+1)%3); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	down.Store(stopped + 1)
	f.c.Control(func(kmsg.Request) (kmsg.Response, error, bool) {
		if down.Load() == 0 {
			return nil, nil, false // dropped: back for good
		}
		f.c.KeepControl()
		if f.c.CurrentNode() != stopped {
			return nil, nil, false
		}
		return nil, errors.New("broker stopped"), true // closes the connection
	})
	waitFor("the first instance's generation to end", a.draining)
	waitFor("the second instance's generation to end", b.draining)
	down.Store(0) // and is back

	results := f.collect(t, DefaultResultTopic)
	results.until("every result", func() bool { return len(results.byID) == n })
	waitCommitted(t, f, endOffsets(t, f))
	mu.Lock()
	defer mu.Unlock()
	if commits == 0 {
		t.Fatal("no commit observed")
	}
	again := 0
	for id := range where {
		switch k := a.runs.count(id) + b.runs.count(id); {
		case k == 0:
			t.Errorf("%s has a result but never ran", id)
		case k > 1:
			again++
		}
	}
	t.Logf("%d commands, %d partition commits kept, %d commands ran twice (their commit was lost with the stopped broker; the engine's requestId store keeps such reruns from acting twice)", n, commits, again)
}
