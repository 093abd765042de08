package kafkacmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qodbridge/qodbridge/bridge/command"
	"github.com/qodbridge/qodbridge/sinks/sinktest"
)

func createCmd(requestID, phone string) string {
	return fmt.Sprintf(`{"requestId":%q,"session":{"device":{"phoneNumber":%q},"applicationServer":{"ipv4Address":"233.252.0.2"},"qosProfile":"QOS_L","duration":600}}`, requestID, phone)
}

func TestCommandRoundTrip(t *testing.T) {
	f := newFixture(t, 3).withAPI(t)
	f.start(t, f.engine(t), fastGroup(Options{}))
	results := f.collect(t, DefaultResultTopic)

	// The action from the header only.
	f.send(t, "", createCmd("c-1", "+36721601234567"), command.HeaderAction, "create")
	r, rec := results.result("c-1")
	if !r.OK || r.Status != 201 || r.Action != command.Create {
		t.Fatalf("create result %+v", r)
	}
	h := headerMap(rec.Headers)
	id := h["ce_subject"]
	want := map[string]string{
		"ce_specversion": "1.0", "ce_id": command.ResultID("c-1"), "ce_source": command.DefaultResultSource,
		"ce_type": command.ResultEventType, "ce_datacontenttype": "application/json", "content-type": "application/json",
	}
	for k, v := range want {
		if h[k] != v {
			t.Errorf("header %s = %q, want %q", k, h[k], v)
		}
	}
	if id == "" || string(rec.Key) != id || !strings.Contains(string(r.Session), id) {
		t.Fatalf("create result: key %q, ce_subject %q, session %s", rec.Key, id, r.Session)
	}

	// The action from the JSON member, keyed by the session.
	f.send(t, id, `{"action":"delete","requestId":"d-1","sessionId":"`+id+`"}`)
	if r, rec := results.result("d-1"); !r.OK || r.Status != 204 || string(rec.Key) != id {
		t.Fatalf("delete result %+v key %q", r, rec.Key)
	}
	// Both, agreeing.
	f.send(t, id, `{"action":"get","requestId":"g-1","sessionId":"`+id+`"}`, command.HeaderAction, "get")
	if r, _ := results.result("g-1"); r.OK || r.Status != 404 || r.Error.Code != "NOT_FOUND" {
		t.Fatalf("get after delete %+v", r)
	}
	// No session known: the key is the requestId.
	f.send(t, "", listCmd("l-1"))
	if r, rec := results.result("l-1"); !r.OK || string(rec.Key) != "l-1" || string(r.Sessions) != "[]" {
		t.Fatalf("list result %+v key %q", r, rec.Key)
	}

	// Every command's offset gets committed: the end offsets of the topic.
	ends := endOffsets(t, f)
	waitCommitted(t, f, ends)
	dlq := readAll(t, f, DefaultDLQTopic)
	if len(dlq) != 0 {
		t.Fatalf("%d dead letters for valid commands", len(dlq))
	}
}

// endOffsets returns the end offset of every partition of the command topic.
func endOffsets(t *testing.T, f *fixture) map[int]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	defer cancel()
	cl := &kafka.Client{Addr: kafka.TCP(f.c.ListenAddrs()...)}
	md, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{DefaultTopic}})
	if err != nil {
		t.Fatal(err)
	}
	var req []kafka.OffsetRequest
	for _, p := range md.Topics[0].Partitions {
		req = append(req, kafka.LastOffsetOf(p.ID))
	}
	resp, err := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{DefaultTopic: req}})
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]int64{}
	for _, p := range resp.Topics[DefaultTopic] {
		out[p.Partition] = p.LastOffset
	}
	return out
}

// waitCommitted waits until the group committed want (partitions with
// offset 0 may have no commit).
func waitCommitted(t *testing.T, f *fixture, want map[int]int64) {
	t.Helper()
	var got map[int]int64
	committed := func() bool { // commits are asynchronous
		got = f.committed(t, len(want))
		for p, off := range want {
			if got[p] != off && !(off == 0 && got[p] == -1) {
				return false
			}
		}
		return true
	}
	if !sinktest.Poll(testDeadline, 10*time.Millisecond, committed) {
		t.Fatalf("committed %v, want %v", got, want)
	}
}

// readAll reads every record of topic.
func readAll(t *testing.T, f *fixture, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	defer cancel()
	cl := &kafka.Client{Addr: kafka.TCP(f.c.ListenAddrs()...)}
	md, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		t.Fatal(err)
	}
	var req []kafka.OffsetRequest
	for _, p := range md.Topics[0].Partitions {
		req = append(req, kafka.LastOffsetOf(p.ID))
	}
	lo, err := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: req}})
	if err != nil {
		t.Fatal(err)
	}
	total := int64(0)
	for _, p := range lo.Topics[topic] {
		total += p.LastOffset
	}
	c := f.collect(t, topic)
	c.until(fmt.Sprintf("%d records of %s", total, topic), func() bool { return int64(len(c.recs)) >= total })
	return c.recs
}

func TestInvalidCommandsAreDeadLettered(t *testing.T) {
	f := newFixture(t, 2).withAPI(t)
	f.start(t, f.engine(t), fastGroup(Options{}))
	type bad struct {
		id, body, reason string
		headers          []string
	}
	cases := []bad{
		{"", `not json`, "not JSON", nil},
		{"b-2", `{"requestId":"b-2","sessionId":"x"}`, `header "pause" is not one of`, []string{command.HeaderAction, "pause"}},
		{"b-3", `{"requestId":"b-3","action":"delete"}`, "sessionId: required", nil},
		{"b-4", `{"requestId":"b-4","action":"delete","sessionId":"x"}`, `"delete" contradicts the qod-action header "get"`, []string{command.HeaderAction, "get"}},
		{"b-5", `{"requestId":"b-5","sessionId":"x"}`, "action: required", nil},
		{"b-6", `{"action":"create","requestId":"b-6","session":{"device":{"phoneNumber":"+36721601234567"},"applicationServer":{"ipv4Address":"233.252.0.2"},"qosProfile":"NOPE","duration":60}}`, "NOPE", nil},
	}
	// All on one key, so one partition: the valid command queues behind
	// the invalid ones.
	for _, b := range cases {
		f.send(t, "k", b.body, append([]string{"trace", "t-" + b.id}, b.headers...)...)
	}
	f.send(t, "k", listCmd("after"))
	results := f.collect(t, DefaultResultTopic)
	if r, _ := results.result("after"); !r.OK {
		t.Fatalf("a valid command after invalid ones: %+v", r)
	}
	for _, b := range cases[1:] {
		r, _ := results.result(b.id)
		if r.OK || r.Status != 400 || !strings.Contains(r.Error.Message, b.reason) {
			t.Errorf("%s: result %+v", b.id, r)
		}
	}
	dlq := f.collect(t, DefaultDLQTopic)
	dlq.until("dead letters", func() bool { return len(dlq.recs) >= len(cases) })
	got := map[string]*kgo.Record{}
	for _, r := range dlq.recs {
		got[string(r.Value)] = r
	}
	for _, b := range cases {
		r := got[b.body]
		if r == nil {
			t.Errorf("no dead letter of %s", b.body)
			continue
		}
		h := headerMap(r.Headers)
		if !strings.Contains(h[command.HeaderDeadLetterReason], b.reason) {
			t.Errorf("dead letter of %s: reason %q, want %q", b.body, h[command.HeaderDeadLetterReason], b.reason)
		}
		if b.id != "" && h[command.HeaderRequestID] != b.id || h[command.HeaderRequestID] == "" {
			t.Errorf("dead letter of %s: request id %q", b.body, h[command.HeaderRequestID])
		}
		if h[command.HeaderOriginalSubject] != DefaultTopic || h[HeaderOriginalOffset] == "" || h[HeaderOriginalPartition] == "" {
			t.Errorf("dead letter headers %v", h)
		}
		// The original record travels as it was.
		if string(r.Key) != "k" || h["trace"] != "t-"+b.id {
			t.Errorf("dead letter of %s: key %q, original headers %v", b.body, r.Key, h)
		}
		if len(b.headers) > 0 && h[b.headers[0]] != b.headers[1] {
			t.Errorf("dead letter of %s lost header %s", b.body, b.headers[0])
		}
	}
	// The unparsable command's error result is addressed by the requestId
	// its dead letter names.
	if id := headerMap(got["not json"].Headers)[command.HeaderRequestID]; id != "" {
		if r, _ := results.result(id); r.Status != 400 {
			t.Errorf("result of the unparsable command %+v", r)
		}
	}
	waitCommitted(t, f, endOffsets(t, f))
}

func TestParseAction(t *testing.T) {
	for _, c := range []struct {
		name, body string
		headers    []kafka.Header
		action     command.Action
		err        string
	}{
		{"json", `{"action":"get","sessionId":"s"}`, nil, command.Get, ""},
		{"header", `{"sessionId":"s"}`, []kafka.Header{{Key: "qod-action", Value: []byte("get")}}, command.Get, ""},
		{"header any case", `{"sessionId":"s"}`, []kafka.Header{{Key: "Qod-Action", Value: []byte("delete")}}, command.Delete, ""},
		{"both agree", `{"action":"get","sessionId":"s"}`, []kafka.Header{{Key: "qod-action", Value: []byte("get")}}, command.Get, ""},
		{"both differ", `{"action":"get","sessionId":"s"}`, []kafka.Header{{Key: "qod-action", Value: []byte("delete")}}, "", "contradicts the qod-action header"},
		{"neither", `{"sessionId":"s"}`, nil, "", "action: required"},
		{"bad header", `{"sessionId":"s"}`, []kafka.Header{{Key: "qod-action", Value: []byte("pause")}}, "", `qod-action: header "pause"`},
		{"bad json action", `{"action":"pause","sessionId":"s"}`, []kafka.Header{{Key: "qod-action", Value: []byte("get")}}, "", `"pause" is not one of`},
		{"header twice", `{"sessionId":"s"}`, []kafka.Header{{Key: "qod-action", Value: []byte("get")}, {Key: "qod-action", Value: []byte("delete")}}, "", "given twice"},
		{"header twice same", `{"sessionId":"s"}`, []kafka.Header{{Key: "qod-action", Value: []byte("get")}, {Key: "qod-action", Value: []byte("get")}}, command.Get, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd, err := parse(record{value: []byte(c.body), headers: c.headers})
			if cmd.RequestID == "" {
				t.Error("no requestId")
			}
			if c.err == "" {
				if err != nil || cmd.Action != c.action {
					t.Fatalf("parse = %+v, %v; want action %s", cmd, err, c.action)
				}
				return
			}
			if !errors.Is(err, command.ErrInvalid) || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("error %v, want %q", err, c.err)
			}
		})
	}
}

// gate holds each command until the test releases its requestId.
type gate struct {
	mu      sync.Mutex
	release map[string]chan struct{}
	started chan string
}

func newGate(ids []string) *gate {
	g := &gate{release: map[string]chan struct{}{}, started: make(chan string, len(ids))}
	for _, id := range ids {
		g.release[id] = make(chan struct{})
	}
	return g
}

func (g *gate) Execute(ctx context.Context, cmd command.Command) (command.Outcome, error) {
	g.mu.Lock()
	ch := g.release[cmd.RequestID]
	g.mu.Unlock()
	g.started <- cmd.RequestID
	select {
	case <-ch:
		return okOutcome(cmd), nil
	case <-ctx.Done():
		return command.Outcome{}, fmt.Errorf("%w: %w", command.ErrUnfinished, ctx.Err())
	}
}

// TestWatermarkNeverPassesUnfinished: commands of one partition finish out
// of order; every commit the broker sees stays at or below the first
// command not yet finished, and the commit catches up as the gaps close.
func TestWatermarkNeverPassesUnfinished(t *testing.T) {
	f := newFixture(t, 1)
	const n = 10
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("w-%d", i)
	}
	g := newGate(ids)

	var mu sync.Mutex
	released := make([]bool, n)
	var violations []string
	violated := make(chan struct{})
	commits := make(chan int64, 1000)
	f.c.ControlKey(int16(kmsg.OffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
		r := req.(*kmsg.OffsetCommitRequest)
		for _, tp := range r.Topics {
			for _, p := range tp.Partitions {
				mu.Lock()
				first := int64(n)
				for i, ok := range released {
					if !ok {
						first = int64(i)
						break
					}
				}
				if p.Offset > first {
					if violations = append(violations, fmt.Sprintf("commit %d while command %d unfinished", p.Offset, first)); len(violations) == 1 {
						close(violated)
					}
				}
				mu.Unlock()
				select {
				case commits <- p.Offset:
				default:
				}
			}
		}
		return nil, nil, false // observe only
	})

	// List commands carry no sessionId: one per lane, all run at once.
	f.start(t, g, fastGroup(Options{Lanes: n}))
	for _, id := range ids {
		f.send(t, "", listCmd(id))
	}
	for range n {
		select {
		case <-g.started:
		case <-time.After(testDeadline):
			t.Fatal("commands did not start")
		}
	}
	results := f.collect(t, DefaultResultTopic)
	waitCommit := func(want int64) {
		t.Helper()
		deadline := time.After(testDeadline)
		for {
			select {
			case off := <-commits:
				if off == want {
					return
				}
			case <-violated:
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("the watermark passed unfinished commands: %v", violations)
			case <-deadline:
				t.Fatalf("no commit of offset %d", want)
			}
		}
	}
	mark := int64(0)
	for _, i := range []int{3, 0, 5, 1, 2, 4, 9, 8, 7, 6} {
		mu.Lock()
		released[i] = true
		mu.Unlock()
		close(g.release[ids[i]])
		results.result(ids[i])
		mu.Lock()
		next := mark
		for next < n && released[next] {
			next++
		}
		mu.Unlock()
		if next != mark {
			mark = next
			waitCommit(mark)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(violations) > 0 {
		t.Fatalf("the watermark passed unfinished commands: %v", violations)
	}
	if got := f.committed(t, 1)[0]; got != n {
		t.Fatalf("committed %d, want %d", got, n)
	}
}

// TestRestartReprocessesNothingPublished: a consumer stopped while half of
// 200 commands have results, with more in flight, finishes those in flight;
// the next consumer runs the rest. Every command has exactly one result and
// ran exactly once.
func TestRestartReprocessesNothingPublished(t *testing.T) {
	f := newFixture(t, 3)
	const n = 200
	c := newCounter()
	stopped := make(chan struct{})
	half := make(chan struct{})
	var once sync.Once
	c.onRun = func(ctx context.Context, total int) {
		if total >= n/2 {
			once.Do(func() { close(half) })
			// Held until the consumer was told to stop: these finish
			// during the drain.
			select {
			case <-stopped:
			case <-ctx.Done():
			}
		}
	}
	o := fastGroup(Options{Lanes: 8})
	o1 := o
	// The held commands are released once the first consumer stopped
	// fetching and drains.
	o1.Logger = slog.New(&signalHandler{msg: msgDraining, ch: stopped})
	first := f.start(t, c, o1)
	for i := range n {
		f.send(t, fmt.Sprintf("s%d", i%20), fmt.Sprintf(`{"action":"get","requestId":"r-%03d","sessionId":"s%d"}`, i, i%20))
	}
	select {
	case <-half:
	case <-time.After(testDeadline):
		t.Fatal("half of the commands did not run")
	}
	first.CancelIntake()
	if err := first.Wait(); err != nil {
		t.Fatal(err)
	}
	results := f.collect(t, DefaultResultTopic)
	before := readAll(t, f, DefaultResultTopic)
	published := map[string]bool{}
	for _, r := range before {
		var res command.Result
		_ = json.Unmarshal(r.Value, &res)
		published[res.RequestID] = true
	}
	if len(published) < n/2 || len(published) == n {
		t.Fatalf("%d results before the restart; want the run stopped midway", len(published))
	}

	f.start(t, c, o)
	results.until("every result", func() bool { return len(results.byID) == n })
	waitCommitted(t, f, endOffsets(t, f))
	for i := range n {
		id := fmt.Sprintf("r-%03d", i)
		if k := len(results.byID[id]); k != 1 {
			t.Errorf("%s: %d results, want 1", id, k)
		}
		if k := c.count(id); k != 1 {
			t.Errorf("%s: ran %d times, want 1 (published before the stop: %v)", id, k, published[id])
		}
	}
}

// TestCutOffCommandsAreRedelivered: commands cut off by the shutdown
// deadline publish nothing and stay uncommitted; the next consumer runs
// them, and skips nothing.
func TestCutOffCommandsAreRedelivered(t *testing.T) {
	f := newFixture(t, 2)
	ids := []string{"x-0", "x-1", "x-2", "x-3"}
	g := newGate(ids)
	first := f.start(t, g, fastGroup(Options{Lanes: 4}))
	for _, id := range ids {
		f.send(t, "", listCmd(id))
	}
	for range ids {
		<-g.started
	}
	close(g.release["x-0"])
	results := f.collect(t, DefaultResultTopic)
	results.result("x-0")
	first.CancelIntake()
	first.CancelWork() // the shutdown deadline passed
	if err := first.Wait(); err != nil {
		t.Fatal(err)
	}
	c := newCounter()
	f.start(t, c, fastGroup(Options{}))
	results.until("every result", func() bool { return len(results.byID) == len(ids) })
	waitCommitted(t, f, endOffsets(t, f))
	for _, id := range ids[1:] {
		if c.count(id) != 1 || len(results.byID[id]) != 1 {
			t.Errorf("%s: ran %d times after the restart, %d results", id, c.count(id), len(results.byID[id]))
		}
	}
}

// TestRebalanceRunsEachCommandOnce: a second instance joins while the
// first is busy; the first finishes and commits what it had before giving
// partitions away, so every command runs exactly once across both.
func TestRebalanceRunsEachCommandOnce(t *testing.T) {
	f := newFixture(t, 6)
	const n = 300
	a, b := newCounter(), newCounter()
	// The first instance holds its commands from the 50th on until its
	// generation ended, so the rebalance meets commands in flight: they
	// must finish, publish and be committed before the group rejoins.
	revoked := make(chan struct{})
	a.onRun = func(ctx context.Context, total int) {
		if total >= 50 {
			select {
			case <-revoked:
			case <-ctx.Done():
			}
		}
	}
	o := fastGroup(Options{Lanes: 4})
	oa := o
	oa.Logger = slog.New(&signalHandler{msg: msgDraining, ch: revoked})
	f.start(t, a, oa)
	send := func(from, to int) {
		for i := from; i < to; i++ {
			f.send(t, fmt.Sprintf("s%d", i%30), fmt.Sprintf(`{"action":"get","requestId":"r-%03d","sessionId":"s%d"}`, i, i%30))
		}
	}
	send(0, n/2)
	results := f.collect(t, DefaultResultTopic)
	results.until("49 results", func() bool { return len(results.byID) >= 49 })
	rb := f.start(t, b, o)
	select {
	case <-revoked:
	case <-time.After(testDeadline):
		t.Fatal("the first instance never saw a rebalance")
	}
	send(n/2, n)
	results.until("every result", func() bool { return len(results.byID) == n })
	waitCommitted(t, f, endOffsets(t, f))
	rb.Stop(t)
	ran := 0
	for i := range n {
		id := fmt.Sprintf("r-%03d", i)
		k := a.count(id) + b.count(id)
		if k != 1 {
			t.Errorf("%s ran %d times (first %d, second %d)", id, k, a.count(id), b.count(id))
		}
		ran += b.count(id)
	}
	if ran == 0 {
		t.Fatal("the second instance never got partitions")
	}
}

func TestCommandsForOneSessionRunInOrder(t *testing.T) {
	f := newFixture(t, 3)
	const sessions, per = 10, 20
	var mu sync.Mutex
	seq := map[string][]string{}
	rec := executorFunc(func(ctx context.Context, cmd command.Command) (command.Outcome, error) {
		mu.Lock()
		seq[cmd.SessionID] = append(seq[cmd.SessionID], cmd.RequestID)
		mu.Unlock()
		return okOutcome(cmd), nil
	})
	f.start(t, rec, fastGroup(Options{Lanes: 4}))
	for i := range per {
		for s := range sessions {
			f.send(t, fmt.Sprintf("s%d", s), fmt.Sprintf(`{"action":"get","requestId":"s%d-%03d","sessionId":"s%d"}`, s, i, s))
		}
	}
	results := f.collect(t, DefaultResultTopic)
	results.until("every result", func() bool { return len(results.byID) == sessions*per })
	mu.Lock()
	defer mu.Unlock()
	for s, ids := range seq {
		for i := 1; i < len(ids); i++ {
			if ids[i-1] > ids[i] {
				t.Fatalf("session %s ran out of order: %v", s, ids)
			}
		}
	}
}

type executorFunc func(ctx context.Context, cmd command.Command) (command.Outcome, error)

func (f executorFunc) Execute(ctx context.Context, cmd command.Command) (command.Outcome, error) {
	return f(ctx, cmd)
}

func TestTopicsCheckedAtStart(t *testing.T) {
	f := newFixture(t, 0)
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	defer cancel()
	exec := newCounter()
	_, err := New(ctx, f.conn(), exec, Options{})
	if !errors.Is(err, ErrTopicMissing) || !strings.Contains(err.Error(), DefaultTopic) ||
		!strings.Contains(err.Error(), DefaultDLQTopic) || !strings.Contains(err.Error(), "create_topics") {
		t.Fatalf("error %v", err)
	}
	in, err := New(ctx, f.conn(), exec, Options{CreateTopics: true, Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Ready(ctx); err != nil {
		t.Fatalf("Ready after creating the topics: %v", err)
	}
	in.Close()
	in.Close() // idempotent
	if err := in.Ready(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ready after Close: %v", err)
	}
	if err := in.Run(ctx, ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close: %v", err)
	}
	if _, err := New(ctx, f.conn(), exec, Options{Topic: "qod.results"}); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("command topic = result topic: %v", err)
	}
}

// signalHandler closes ch the first time a record with message msg is
// logged.
type signalHandler struct {
	msg  string
	ch   chan struct{}
	once sync.Once
}

func (h *signalHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *signalHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.once.Do(func() { close(h.ch) })
	}
	return nil
}
func (h *signalHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *signalHandler) WithGroup(string) slog.Handler      { return h }

// TestRevokeTimeoutLeavesCommandForNextOwner: a command still running when
// RevokeTimeout passes after a rebalance began is cancelled, publishes
// nothing and stays uncommitted; the partition's next owner runs it.
func TestRevokeTimeoutLeavesCommandForNextOwner(t *testing.T) {
	f := newFixture(t, 1)
	var mu sync.Mutex
	runs := 0
	started := make(chan struct{})
	var cutOff error
	exec := executorFunc(func(ctx context.Context, cmd command.Command) (command.Outcome, error) {
		if cmd.RequestID != "stuck" {
			return okOutcome(cmd), nil
		}
		mu.Lock()
		runs++
		first := runs == 1
		mu.Unlock()
		if !first {
			return okOutcome(cmd), nil
		}
		close(started)
		<-ctx.Done() // hangs until the revocation gives up on it
		mu.Lock()
		cutOff = ctx.Err()
		mu.Unlock()
		return command.Outcome{}, fmt.Errorf("%w: %w", command.ErrUnfinished, ctx.Err())
	})
	o := fastGroup(Options{Lanes: 2})
	o.RevokeTimeout = 200 * time.Millisecond
	f.start(t, exec, o)
	f.send(t, "", listCmd("stuck"))
	select {
	case <-started:
	case <-time.After(testDeadline):
		t.Fatal("the command did not start")
	}
	f.start(t, exec, o) // a second instance joins: rebalance
	f.send(t, "", listCmd("after"))
	results := f.collect(t, DefaultResultTopic)
	results.until("both results", func() bool { return len(results.byID) == 2 })
	waitCommitted(t, f, endOffsets(t, f))
	mu.Lock()
	defer mu.Unlock()
	if runs != 2 || !errors.Is(cutOff, context.Canceled) {
		t.Fatalf("stuck ran %d times, first run ended with %v; want 2 and cancelled", runs, cutOff)
	}
	if k := len(results.byID["stuck"]); k != 1 {
		t.Fatalf("%d results of the cut-off command, want 1", k)
	}
}
