package kafkacmd

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qodbridge/qodbridge/bridge/command"
	"github.com/qodbridge/qodbridge/bridge/command/commandtest"
	"github.com/qodbridge/qodbridge/bridge/qodsim"
	"github.com/qodbridge/qodbridge/sinks/kafkasink"
)

// testDeadline bounds every wait of these tests; it guards against hangs
// and is no timing threshold.
const testDeadline = 60 * time.Second

type fixture struct {
	c    *kfake.Cluster
	api  *commandtest.API
	prod *kgo.Client
}

// newFixture starts a kfake cluster with the three topics (partitions
// each) and the QoD simulator behind an httptest server.
func newFixture(t *testing.T, partitions int32, kopts ...kfake.Opt) *fixture {
	t.Helper()
	opts := append([]kfake.Opt{kfake.NumBrokers(1)}, kopts...)
	if partitions > 0 {
		opts = append(opts, kfake.SeedTopics(partitions, DefaultTopic, DefaultResultTopic, DefaultDLQTopic))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	f := &fixture{c: c}
	f.prod = f.client(t)
	return f
}

// withAPI adds the simulator and a qodapi client of it.
func (f *fixture) withAPI(t *testing.T) *fixture {
	t.Helper()
	f.api = commandtest.NewAPI(t, qodsim.Options{})
	return f
}

func (f *fixture) engine(t *testing.T) *command.Engine {
	t.Helper()
	return f.api.Engine(t, nil)
}

func (f *fixture) conn() kafkasink.ConnOptions {
	return kafkasink.ConnOptions{Brokers: f.c.ListenAddrs(), DialTimeout: 2 * time.Second}
}

// client is a franz-go client of the cluster, closed at cleanup.
func (f *fixture) client(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(f.c.ListenAddrs()...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// fastGroup are group timings that let rebalances happen within a test.
func fastGroup(o Options) Options {
	o.HeartbeatInterval = 100 * time.Millisecond
	o.SessionTimeout = 10 * time.Second
	o.RebalanceTimeout = 10 * time.Second
	o.JoinBackoff = 100 * time.Millisecond
	o.FetchMaxWait = 100 * time.Millisecond
	return o
}

func (f *fixture) start(t *testing.T, exec Executor, o Options) *commandtest.Running {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	defer cancel()
	in, err := New(ctx, f.conn(), exec, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = in.Close() }) // after the intake stopped: cleanups run last-in first-out
	return commandtest.Start(t, in.Run)
}

// send produces a command, keyed by key (murmur2, franz-go's default
// partitioner), with headers given as name, value pairs.
func (f *fixture) send(t *testing.T, key, value string, headers ...string) *kgo.Record {
	t.Helper()
	r := &kgo.Record{Topic: DefaultTopic, Value: []byte(value)}
	if key != "" {
		r.Key = []byte(key)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: headers[i], Value: []byte(headers[i+1])})
	}
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	defer cancel()
	res := f.prod.ProduceSync(ctx, r)
	if err := res.FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	return res[0].Record
}

// collector reads a topic from its start.
type collector struct {
	t    *testing.T
	cl   *kgo.Client
	recs []*kgo.Record
	// byID groups result records by the requestId in their JSON.
	byID map[string][]*kgo.Record
}

func (f *fixture) collect(t *testing.T, topic string) *collector {
	return &collector{t: t, byID: map[string][]*kgo.Record{},
		cl: f.client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))}
}

// until polls until cond holds, failing the test at the deadline.
func (c *collector) until(what string, cond func() bool) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	defer cancel()
	for !cond() {
		fs := c.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			c.t.Fatalf("waiting for %s: %d records so far: %v", what, len(c.recs), ctx.Err())
		}
		fs.EachError(func(topic string, p int32, err error) { c.t.Logf("fetch %s[%d]: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			c.recs = append(c.recs, r)
			var res command.Result
			if json.Unmarshal(r.Value, &res) == nil && res.RequestID != "" {
				c.byID[res.RequestID] = append(c.byID[res.RequestID], r)
			}
		})
	}
}

// result waits for the result of requestID.
func (c *collector) result(requestID string) (command.Result, *kgo.Record) {
	c.t.Helper()
	c.until("result "+requestID, func() bool { return len(c.byID[requestID]) > 0 })
	r := c.byID[requestID][0]
	var res command.Result
	if err := json.Unmarshal(r.Value, &res); err != nil {
		c.t.Fatalf("result %s: %v", r.Value, err)
	}
	return res, r
}

func headerMap(hs []kgo.RecordHeader) map[string]string {
	m := make(map[string]string, len(hs))
	for _, h := range hs {
		if _, ok := m[h.Key]; !ok {
			m[h.Key] = string(h.Value)
		}
	}
	return m
}

// committed returns the group's committed offsets of the command topic
// (-1 for none).
func (f *fixture) committed(t *testing.T, partitions int) map[int]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	defer cancel()
	ps := make([]int, partitions)
	for i := range ps {
		ps[i] = i
	}
	cl := &kafka.Client{Addr: kafka.TCP(f.c.ListenAddrs()...)}
	resp, err := cl.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: DefaultGroupID, Topics: map[string][]int{DefaultTopic: ps}})
	if err != nil || resp.Error != nil {
		t.Fatalf("offset fetch: %v %v", err, resp.Error)
	}
	out := map[int]int64{}
	for _, p := range resp.Topics[DefaultTopic] {
		out[p.Partition] = p.CommittedOffset
	}
	return out
}

func listCmd(requestID string) string {
	return fmt.Sprintf(`{"action":"list","requestId":%q,"device":{"phoneNumber":"+36721601234567"}}`, requestID)
}

func okOutcome(cmd command.Command) command.Outcome {
	return command.Outcome{Result: command.Result{RequestID: cmd.RequestID, Action: cmd.Action, OK: true, Status: 200}, SessionID: cmd.SessionID}
}

// counter counts executions per requestId.
type counter struct {
	mu    sync.Mutex
	n     map[string]int
	total int
	// onRun, when set, is called with the running total before the
	// command returns, outside the lock.
	onRun func(ctx context.Context, total int)
}

func newCounter() *counter { return &counter{n: map[string]int{}} }

func (c *counter) Execute(ctx context.Context, cmd command.Command) (command.Outcome, error) {
	c.mu.Lock()
	c.n[cmd.RequestID]++
	c.total++
	total := c.total
	c.mu.Unlock()
	if c.onRun != nil {
		c.onRun(ctx, total)
	}
	if err := ctx.Err(); err != nil { // as the engine: cut off, not finished
		return command.Outcome{}, fmt.Errorf("%w: %w", command.ErrUnfinished, err)
	}
	return okOutcome(cmd), nil
}

func (c *counter) count(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[id]
}
