package kafkaproduce

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// testDeadline bounds every wait; it guards against hangs and is no timing
// threshold.
const testDeadline = 30 * time.Second

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	t.Cleanup(cancel)
	return ctx
}

// fixture is a kfake cluster with one topic, a Producer of it, and a log
// of the keys of every produce request the broker received, request by
// request.
type fixture struct {
	c *kfake.Cluster
	p *Producer

	mu       sync.Mutex
	requests [][]string
	// hold, when set, is called with each request's keys before the
	// broker handles it; it may block (kfake.SleepControl) and may answer
	// the request itself.
	hold func(keys []string, req *kmsg.ProduceRequest) kmsg.Response
}

func newFixture(t *testing.T, partitions int32, o Options) *fixture {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, "t"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	f := &fixture{c: c}
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		pr := req.(*kmsg.ProduceRequest)
		keys := requestKeys(t, pr)
		f.mu.Lock()
		f.requests = append(f.requests, keys)
		hold := f.hold
		f.mu.Unlock()
		if hold != nil {
			if resp := hold(keys, pr); resp != nil {
				return resp, nil, true
			}
		}
		return nil, nil, false
	})
	tr := &kafka.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	o.Client = &kafka.Client{Addr: kafka.TCP(c.ListenAddrs()...), Transport: tr}
	o.Topic = "t"
	f.p = New(o)
	t.Cleanup(f.p.Close)
	return f
}

func (f *fixture) setHold(h func(keys []string, req *kmsg.ProduceRequest) kmsg.Response) {
	f.mu.Lock()
	f.hold = h
	f.mu.Unlock()
}

func (f *fixture) log() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

// requestKeys decodes the record keys of a produce request (uncompressed
// record batches).
func requestKeys(t *testing.T, req *kmsg.ProduceRequest) []string {
	var keys []string
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			raw := rp.Records
			for len(raw) > 0 {
				var b kmsg.RecordBatch
				if err := b.ReadFrom(raw); err != nil {
					t.Errorf("record batch: %v", err)
					return keys
				}
				recs := b.Records
				for range b.NumRecords {
					n, w := binary.Varint(recs)
					var r kmsg.Record
					if err := r.ReadFrom(recs[:w+int(n)]); err != nil {
						t.Errorf("record: %v", err)
						return keys
					}
					keys = append(keys, string(r.Key))
					recs = recs[w+int(n):]
				}
				raw = raw[12+int(b.Length):]
			}
		}
	}
	return keys
}

// holdFirst produces the record "first" and returns once the broker holds
// its request; the broker answers it when release is called, and the
// call's error arrives on first. then, when not nil, may answer every later
// request itself (as hold does).
func (f *fixture) holdFirst(t *testing.T, ctx context.Context, then func(keys []string, req *kmsg.ProduceRequest) kmsg.Response) (release func(), first <-chan error) {
	t.Helper()
	held := make(chan struct{})
	f.setHold(func(keys []string, req *kmsg.ProduceRequest) kmsg.Response {
		if keys[0] == "first" {
			f.c.SleepControl(func() { <-held })
			return nil
		}
		if then != nil {
			return then(keys, req)
		}
		return nil
	})
	done := make(chan error, 1)
	go func() { done <- f.p.Produce(ctx, msg("first")) }()
	waitFor(t, ctx, "the first request at the broker", func() bool { return len(f.log()) == 1 })
	return func() { close(held) }, done
}

// queued returns how many records wait in partition i's queue.
func (p *Producer) queued(i int) int {
	q := p.queue(i)
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.recs)
}

// waitFor polls cond until it holds or the test deadline passes.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		}
	}
}

func msg(key string) kafka.Message {
	return kafka.Message{Key: []byte(key), Value: []byte(`{"k":"` + key + `"}`), Time: time.Now()}
}

// produceAll runs Produce of each key in its own goroutine and returns
// their errors by key once all returned.
func produceAll(ctx context.Context, p *Producer, keys ...string) map[string]error {
	var mu sync.Mutex
	errs := map[string]error{}
	var wg sync.WaitGroup
	for _, k := range keys {
		wg.Go(func() {
			err := p.Produce(ctx, msg(k))
			mu.Lock()
			errs[k] = err
			mu.Unlock()
		})
	}
	wg.Wait()
	return errs
}

// TestGroupCommit: while a partition's request is in flight, the records
// handed over meanwhile wait and then go together in one request, and the
// first record went alone without waiting for company.
func TestGroupCommit(t *testing.T) {
	f := newFixture(t, 1, Options{})
	ctx := ctxT(t)
	release, first := f.holdFirst(t, ctx, nil)
	var keys []string
	for i := range 20 {
		keys = append(keys, fmt.Sprint("k", i))
	}
	done := make(chan map[string]error, 1)
	go func() { done <- produceAll(ctx, f.p, keys...) }()
	waitFor(t, ctx, "20 records queued", func() bool { return f.p.queued(0) == 20 })
	release()
	if err := <-first; err != nil {
		t.Fatalf("first: %v", err)
	}
	for k, err := range <-done {
		if err != nil {
			t.Errorf("%s: %v", k, err)
		}
	}
	log := f.log()
	if len(log) != 2 || !slices.Equal(log[0], []string{"first"}) || len(log[1]) != 20 {
		t.Fatalf("requests %v, want [first] then the 20 others in one", log)
	}
}

// TestBatchSizeAndOrder: a queue longer than BatchSize goes in requests of
// at most BatchSize, in the order the records were handed over.
func TestBatchSizeAndOrder(t *testing.T) {
	f := newFixture(t, 1, Options{BatchSize: 4})
	ctx := ctxT(t)
	release, first := f.holdFirst(t, ctx, nil)
	var msgs []kafka.Message
	var want []string
	for i := range 10 {
		msgs = append(msgs, msg(fmt.Sprint("k", i)))
		want = append(want, fmt.Sprint("k", i))
	}
	done := make(chan error, 1)
	go func() { done <- f.p.Produce(ctx, msgs...) }()
	waitFor(t, ctx, "10 records queued", func() bool { return f.p.queued(0) == 10 })
	release()
	if err := errors.Join(<-first, <-done); err != nil {
		t.Fatal(err)
	}
	log := f.log()
	var sizes []int
	var got []string
	for _, r := range log[1:] {
		sizes = append(sizes, len(r))
		got = append(got, r...)
	}
	if !slices.Equal(sizes, []int{4, 4, 2}) || !slices.Equal(got, want) {
		t.Fatalf("requests %v, want %v in requests of 4, 4 and 2", log[1:], want)
	}
}

// TestLinger: with Linger set, an idle partition's first record waits for
// company; a full batch ends the wait.
func TestLinger(t *testing.T) {
	f := newFixture(t, 1, Options{Linger: time.Hour, BatchSize: 3})
	ctx := ctxT(t)
	first := make(chan error, 1)
	go func() { first <- f.p.Produce(ctx, msg("a")) }()
	waitFor(t, ctx, "a queued", func() bool { return f.p.queued(0) == 1 })
	if n := len(f.log()); n != 0 {
		t.Fatalf("%d requests sent while lingering", n)
	}
	errs := produceAll(ctx, f.p, "b", "c")
	if err := errors.Join(<-first, errs["b"], errs["c"]); err != nil {
		t.Fatal(err)
	}
	if log := f.log(); len(log) != 1 || len(log[0]) != 3 {
		t.Fatalf("requests %v, want one of 3 records", log)
	}
}

// TestRecordErrorFailsOnlyItsRecord: the broker refuses a request naming
// one of its records (INVALID_RECORD with a record error): that record's
// call fails with the broker's reason, the others are sent again and
// stored.
func TestRecordErrorFailsOnlyItsRecord(t *testing.T) {
	f := newFixture(t, 1, Options{})
	ctx := ctxT(t)
	release, first := f.holdFirst(t, ctx, func(keys []string, req *kmsg.ProduceRequest) kmsg.Response {
		if i := slices.Index(keys, "bad"); i >= 0 {
			return refuse(req, 87 /* INVALID_RECORD */, i, "policy says no")
		}
		return nil
	})
	done := make(chan map[string]error, 1)
	go func() { done <- produceAll(ctx, f.p, "x", "bad", "y", "z") }()
	waitFor(t, ctx, "4 records queued", func() bool { return f.p.queued(0) == 4 })
	release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	errs := <-done
	var re *RecordsError
	if err := errs["bad"]; !errors.As(err, &re) || !errors.Is(err, kafka.InvalidRecord) || re.Failed != 1 {
		t.Errorf("bad: %v, want a RecordsError of 1 wrapping INVALID_RECORD", err)
	} else if want := "policy says no"; !strings.Contains(err.Error(), want) {
		t.Errorf("bad: %v, want the broker's reason %q", err, want)
	}
	for _, k := range []string{"x", "y", "z"} {
		if errs[k] != nil {
			t.Errorf("%s failed with the bad record: %v", k, errs[k])
		}
	}
	if got := storedKeys(t, f.c); !slices.Equal(sorted(got), []string{"first", "x", "y", "z"}) {
		t.Errorf("stored %v, want first, x, y, z", got)
	}
}

// TestTooLargeSplits: MESSAGE_TOO_LARGE for a request of several records
// splits it until the culprit is alone; only its call fails.
func TestTooLargeSplits(t *testing.T) {
	f := newFixture(t, 1, Options{})
	ctx := ctxT(t)
	release, first := f.holdFirst(t, ctx, func(keys []string, req *kmsg.ProduceRequest) kmsg.Response {
		if slices.Contains(keys, "big") {
			return refuse(req, 10 /* MESSAGE_TOO_LARGE */, -1, "")
		}
		return nil
	})
	keys := []string{"a", "b", "big", "c", "d", "e", "f"}
	done := make(chan map[string]error, 1)
	go func() { done <- produceAll(ctx, f.p, keys...) }()
	waitFor(t, ctx, "7 records queued", func() bool { return f.p.queued(0) == 7 })
	release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for k, err := range <-done {
		if k == "big" {
			if !errors.Is(err, kafka.MessageSizeTooLarge) {
				t.Errorf("big: %v, want MESSAGE_TOO_LARGE", err)
			}
		} else if err != nil {
			t.Errorf("%s failed with the large record: %v", k, err)
		}
	}
	if got := storedKeys(t, f.c); len(got) != 7 || slices.Contains(got, "big") {
		t.Errorf("stored %v, want first and the 6 others", got)
	}
}

// TestClusterErrorFailsTheRequest: an error about the cluster fails every
// record of the request, and the next request goes on.
func TestClusterErrorFailsTheRequest(t *testing.T) {
	f := newFixture(t, 1, Options{})
	ctx := ctxT(t)
	var once sync.Once
	f.setHold(func(keys []string, req *kmsg.ProduceRequest) kmsg.Response {
		var resp kmsg.Response
		once.Do(func() { resp = refuse(req, 19 /* NOT_ENOUGH_REPLICAS */, -1, "") })
		return resp
	})
	err := f.p.Produce(ctx, msg("a"), msg("b"))
	var re *RecordsError
	if !errors.As(err, &re) || re.Failed != 2 || !errors.Is(err, kafka.NotEnoughReplicas) || !Unavailable(err) {
		t.Fatalf("Produce = %v, want 2 records failed with NOT_ENOUGH_REPLICAS", err)
	}
	if err := f.p.Produce(ctx, msg("c")); err != nil {
		t.Fatalf("next Produce: %v", err)
	}
}

// TestPendingBound: records in flight hold their room although their
// caller gave up; a caller beyond MaxPending waits and fails with
// ErrPending when its ctx ends, sending nothing.
func TestPendingBound(t *testing.T) {
	f := newFixture(t, 1, Options{MaxPending: 1})
	ctx := ctxT(t)
	release := make(chan struct{})
	f.setHold(func(keys []string, _ *kmsg.ProduceRequest) kmsg.Response {
		if keys[0] == "held" {
			f.c.SleepControl(func() { <-release })
		}
		return nil
	})
	cctx, cancel := context.WithCancel(ctx)
	held := make(chan error, 1)
	go func() { held <- f.p.Produce(cctx, msg("held")) }()
	waitFor(t, ctx, "the held request at the broker", func() bool { return len(f.log()) == 1 })
	cancel()
	if err := <-held; !errors.Is(err, context.Canceled) {
		t.Fatalf("abandoned Produce = %v, want context.Canceled", err)
	}
	bctx, bcancel := context.WithCancel(ctx)
	bcancel()
	if err := f.p.Produce(bctx, msg("blocked")); !errors.Is(err, ErrPending) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Produce beyond MaxPending = %v, want ErrPending and context.Canceled", err)
	}
	close(release)
	if err := f.p.Produce(ctx, msg("after")); err != nil {
		t.Fatal(err)
	}
	if got := storedKeys(t, f.c); !slices.Equal(got, []string{"held", "after"}) {
		t.Errorf("stored %v, want held (abandoned, still written) and after", got)
	}
}

// TestCloseWaitsForQueued: Close returns after every record handed over
// was answered, and later calls fail with ErrClosed.
func TestCloseWaitsForQueued(t *testing.T) {
	f := newFixture(t, 3, Options{})
	ctx := ctxT(t)
	release := make(chan struct{})
	f.setHold(func([]string, *kmsg.ProduceRequest) kmsg.Response {
		f.c.SleepControl(func() { <-release })
		return nil
	})
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan map[string]error, 1)
	go func() { done <- produceAll(cctx, f.p, "a", "b", "c", "d") }()
	waitFor(t, ctx, "a request at the broker", func() bool { return len(f.log()) > 0 })
	cancel()
	<-done
	closed := make(chan struct{})
	go func() { f.p.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned while a request was in flight")
	default:
	}
	close(release)
	<-closed
	if got := storedKeys(t, f.c); !slices.Equal(sorted(got), []string{"a", "b", "c", "d"}) {
		t.Errorf("stored %v, want a, b, c, d", got)
	}
	if err := f.p.Produce(ctx, msg("late")); !errors.Is(err, ErrClosed) {
		t.Errorf("Produce after Close = %v, want ErrClosed", err)
	}
}

// TestMissingTopic: a topic the broker does not know fails before
// anything is queued.
func TestMissingTopic(t *testing.T) {
	f := newFixture(t, 1, Options{})
	p := New(Options{Client: f.p.o.Client, Topic: "absent"})
	defer p.Close()
	ctx, cancel := context.WithTimeout(ctxT(t), 5*time.Second)
	defer cancel()
	if err := p.Produce(ctx, msg("a")); err == nil || errors.As(err, new(*RecordsError)) {
		t.Fatalf("Produce to a missing topic = %v, want the metadata error", err)
	}
}

func TestVarintLen(t *testing.T) {
	for n, want := range map[int]int{0: 1, 63: 1, 64: 2, 8191: 2, 8192: 3, 1 << 20: 4, 1 << 27: 5} {
		if got := varintLen(n); got != want {
			t.Errorf("varintLen(%d) = %d, want %d", n, got, want)
		}
	}
}

// refuse answers req with code for every partition and, when index >= 0,
// a record error for that record.
func refuse(req *kmsg.ProduceRequest, code int16, index int, message string) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.ErrorCode = code
			sp.BaseOffset = -1
			if index >= 0 {
				re := kmsg.NewProduceResponseTopicPartitionErrorRecord()
				re.RelativeOffset = int32(index)
				re.ErrorMessage = &message
				sp.ErrorRecords = append(sp.ErrorRecords, re)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// storedKeys reads the keys of every record of topic t, partition by
// partition, in offset order.
func storedKeys(t *testing.T, c *kfake.Cluster) []string {
	t.Helper()
	ctx := ctxT(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	meta := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr("t")
	meta.Topics = append(meta.Topics, mt)
	mresp, err := meta.RequestWith(ctx, cl)
	if err != nil || len(mresp.Topics) != 1 {
		t.Fatalf("metadata: %v", err)
	}
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = "t"
	for _, mp := range mresp.Topics[0].Partitions {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp = mp.Partition, -1 // the end
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("list offsets: %v", err)
	}
	ends := map[int32]int64{}
	start := map[int32]kgo.Offset{}
	total := int64(0)
	for _, rp := range resp.Topics[0].Partitions {
		ends[rp.Partition] = rp.Offset
		start[rp.Partition] = kgo.NewOffset().AtStart()
		total += rp.Offset
	}
	if total == 0 {
		return nil
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"t": start}))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	byPart := map[int32][]string{}
	for got := int64(0); got < total; {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %d of %d records: %v", got, total, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset < ends[r.Partition] {
				byPart[r.Partition] = append(byPart[r.Partition], string(r.Key))
				got++
			}
		})
	}
	var keys []string
	for _, p := range slices.Sorted(maps.Keys(byPart)) {
		keys = append(keys, byPart[p]...)
	}
	return keys
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }
