package natscmd

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qodbridge/qodbridge/bridge/command"
	"github.com/qodbridge/qodbridge/bridge/command/commandtest"
	"github.com/qodbridge/qodbridge/sinks/sinktest"
)

// outcomes records OnOutcome calls.
type outcomes struct {
	mu  sync.Mutex
	got []string // "action-label outcome"
}

func (o *outcomes) record(a command.Action, outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, a.Label()+" "+outcome)
}

func (o *outcomes) count(want string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, g := range o.got {
		if g == want {
			n++
		}
	}
	return n
}

func (o *outcomes) all() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.got...)
}

// deadLetters reads every message of QOD_DLQ.
func (f *fixture) deadLetters(t *testing.T, want int) []jetstream.Msg {
	t.Helper()
	if !sinktest.Poll(20*time.Second, 5*time.Millisecond, func() bool { return f.count(t, "QOD_DLQ") >= uint64(want) }) {
		t.Fatalf("%d dead letters, want %d", f.count(t, "QOD_DLQ"), want)
	}
	st, err := f.js.Stream(context.Background(), "QOD_DLQ")
	if err != nil {
		t.Fatal(err)
	}
	cons, err := st.OrderedConsumer(context.Background(), jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var ms []jetstream.Msg
	for range want {
		m, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil {
			t.Fatalf("dead letter: %v", err)
		}
		ms = append(ms, m)
	}
	return ms
}

// TestHostileCommands: each command no client should send ends in one
// dead letter with a bounded reason, is delivered once, and the intake
// goes on serving.
func TestHostileCommands(t *testing.T) {
	f := newFixture(t)
	rec := &outcomes{}
	f.start(t, f.engine(t, nil), Options{Memory: true, OnOutcome: rec.record})
	huge := strings.Repeat("r", 600<<10)
	manyHeaders := nats.Header{}
	for i := range 100 {
		manyHeaders.Set("X-Big-"+strings.Repeat("h", i%5), strings.Repeat("v", 900))
		manyHeaders.Add("X-Pad", strings.Repeat("p", 500))
	}
	cases := []struct {
		name, subject, body string
		header              nats.Header
		reason              string
	}{
		{"action not UTF-8", "qod.commands.\xff\xfe", `{"requestId":"h-1","sessionId":"s"}`, nil, `"\xff\xfe" is not one of`},
		{"oversized requestId", "qod.commands.get", `{"requestId":"` + huge + `","sessionId":"s"}`, nil, "requestId: \"rrrr"},
		{"expectation header of the command stream", "qod.commands.get", `not json`,
			nats.Header{"Nats-Expected-Stream": {"QOD_COMMANDS"}}, "not JSON"},
		{"many large headers", "qod.commands.delete", `{"requestId":"h-4"}`, manyHeaders, "sessionId: required"},
		{"multi-token action", "qod.commands.get.more", `{"requestId":"h-5","sessionId":"s"}`, nil, `"get.more" is not one of`},
	}
	for _, tc := range cases {
		m := nats.NewMsg(tc.subject)
		m.Data = []byte(tc.body)
		for k, v := range tc.header {
			m.Header[k] = v
		}
		if _, err := f.js.PublishMsg(context.Background(), m); err != nil {
			t.Fatalf("%s: publish: %v", tc.name, err)
		}
	}
	// Lanes run in parallel: find each case's dead letter by its reason.
	dls := f.deadLetters(t, len(cases))
	for _, tc := range cases {
		var dl jetstream.Msg
		for _, m := range dls {
			if strings.Contains(m.Headers().Get(command.HeaderDeadLetterReason), tc.reason) {
				dl = m
			}
		}
		if dl == nil {
			t.Errorf("%s: no dead letter with reason %q", tc.name, tc.reason)
			continue
		}
		h := dl.Headers()
		if reason := h.Get(command.HeaderDeadLetterReason); len(reason) > command.MaxReasonLen+4 {
			t.Errorf("%s: reason of %d bytes", tc.name, len(reason))
		}
		for k := range h {
			if strings.HasPrefix(strings.ToLower(k), "nats-expected") {
				t.Errorf("%s: control header %s copied onto the dead letter", tc.name, k)
			}
		}
		if n := len(dl.Data()); n > command.DefaultDeadLetterBody {
			t.Errorf("%s: dead letter body of %d bytes", tc.name, n)
		}
		if len(tc.body) > command.DefaultDeadLetterBody && !strings.Contains(h.Get(command.HeaderDeadLetterTruncated), "body=") {
			t.Errorf("%s: cut body not marked: %v", tc.name, h.Get(command.HeaderDeadLetterTruncated))
		}
		if len(tc.header) > 10 && !strings.Contains(h.Get(command.HeaderDeadLetterTruncated), "headers=") {
			t.Errorf("%s: dropped headers not marked: %q", tc.name, h.Get(command.HeaderDeadLetterTruncated))
		}
		id := h.Get(command.HeaderRequestID)
		if r, _ := f.result(t, id); r.OK || r.Status != 400 || (r.Action != "" && !r.Action.Valid()) {
			t.Errorf("%s: result %+v", tc.name, r)
		}
	}
	// Still serving, and every hostile command was handled exactly once.
	f.publish(t, "qod.commands.list", `{"requestId":"after","device":{"phoneNumber":"+36721601234567"}}`)
	if r, _ := f.result(t, "after"); !r.OK {
		t.Fatalf("a valid command after hostile ones: %+v", r)
	}
	if !sinktest.Poll(10*time.Second, 5*time.Millisecond, func() bool { return f.count(t, "QOD_COMMANDS") == 0 }) {
		t.Fatalf("%d commands left in the stream", f.count(t, "QOD_COMMANDS"))
	}
	if n := rec.count("invalid dead_letter") + rec.count("get dead_letter") + rec.count("delete dead_letter"); n != len(cases) {
		t.Errorf("outcomes %v: want %d dead letters, one per hostile command", rec.all(), len(cases))
	}
}

type panicky struct{ Executor }

func (p panicky) Execute(ctx context.Context, cmd command.Command) (command.Outcome, error) {
	if cmd.RequestID == "boom" {
		panic("poison command")
	}
	return p.Executor.Execute(ctx, cmd)
}

// TestPanicIsDeadLettered: a panic while running one command ends that
// command in a dead letter "internal error" and nothing else.
func TestPanicIsDeadLettered(t *testing.T) {
	f := newFixture(t)
	rec := &outcomes{}
	in, err := New(context.Background(), f.nc, panicky{f.engine(t, nil)}, Options{Memory: true, Micro: true, OnOutcome: rec.record})
	if err != nil {
		t.Fatal(err)
	}
	commandtest.Start(t, in.Run)
	<-in.Ready()
	// The micro service answers the poison request too.
	resp, err := f.nc.Request("qod.api.get", []byte(`{"requestId":"boom","sessionId":"s"}`), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(resp.Data), `"code":"INTERNAL"`) {
		t.Fatalf("micro answer to a panicking command: %s %v", resp.Data, resp.Header)
	}
	f.publish(t, "qod.commands.get", `{"requestId":"boom","sessionId":"s"}`)
	f.publish(t, "qod.commands.list", `{"requestId":"after","device":{"phoneNumber":"+36721601234567"}}`)
	if r, _ := f.result(t, "after"); !r.OK {
		t.Fatalf("after the panic: %+v", r)
	}
	r, _ := f.result(t, "boom")
	if r.Status != 500 || r.Error == nil || r.Error.Code != "INTERNAL" {
		t.Fatalf("result of the panicking command: %+v", r)
	}
	dl := f.deadLetters(t, 1)[0]
	if got := dl.Headers().Get(command.HeaderDeadLetterReason); got != command.ReasonInternal {
		t.Fatalf("reason %q", got)
	}
	sinktest.Poll(10*time.Second, 5*time.Millisecond, func() bool { return rec.count("get "+command.OutcomeInternal) == 2 })
	if n := rec.count("get " + command.OutcomeInternal); n != 2 {
		t.Fatalf("outcomes %v", rec.all())
	}
}

// TestUnpublishableOutcomeEndsAtMaxDeliver: when a command's result can
// never be stored (here QOD_RESULTS refuses every message as too large),
// the command is nacked with a delay, comes back at most MaxDeliver times,
// and is then terminated and removed: counted, never looping.
func TestUnpublishableOutcomeEndsAtMaxDeliver(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.js.CreateStream(ctx, jetstream.StreamConfig{Name: "QOD_RESULTS", Subjects: []string{"qod.results.>"},
		Storage: jetstream.MemoryStorage, MaxMsgSize: 64}); err != nil {
		t.Fatal(err)
	}
	rec := &outcomes{}
	f.start(t, f.engine(t, nil), Options{Memory: true, MaxDeliver: 3, Redelivery: []time.Duration{10 * time.Millisecond}, OnOutcome: rec.record})
	f.publish(t, "qod.commands.get", `{"requestId":"lost-1","sessionId":"s"}`)
	if !sinktest.Poll(20*time.Second, 5*time.Millisecond, func() bool { return rec.count("get "+command.OutcomeTerminated) == 1 }) {
		t.Fatalf("not terminated: outcomes %v", rec.all())
	}
	if !sinktest.Poll(10*time.Second, 5*time.Millisecond, func() bool { return f.count(t, "QOD_COMMANDS") == 0 }) {
		t.Fatalf("terminated command still in the stream")
	}
	if got := rec.all(); len(got) != 3 || rec.count("get "+command.OutcomeUnfinished) != 2 {
		t.Fatalf("outcomes %v, want 2 unfinished then terminated", got)
	}
	info, err := f.js.Consumer(ctx, "QOD_COMMANDS", "qodbridge")
	if err != nil {
		t.Fatal(err)
	}
	if ci := info.CachedInfo(); ci.Config.MaxDeliver != 3 {
		t.Fatalf("consumer MaxDeliver %d", ci.Config.MaxDeliver)
	}
}

// TestDeadLetterTooLargeForItsStream: the dead-letter stream refuses the
// full dead letter; the last delivery publishes a bare one instead.
func TestDeadLetterTooLargeForItsStream(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.js.CreateStream(ctx, jetstream.StreamConfig{Name: "QOD_DLQ", Subjects: []string{"qod.dlq.commands"},
		Storage: jetstream.MemoryStorage, MaxMsgSize: 4096}); err != nil {
		t.Fatal(err)
	}
	rec := &outcomes{}
	f.start(t, f.engine(t, nil), Options{Memory: true, MaxDeliver: 2, Redelivery: []time.Duration{10 * time.Millisecond}, OnOutcome: rec.record})
	body := `{"requestId":"big-1","sessionId":"s","junk":"` + strings.Repeat("j", 20000) + `"}`
	f.publish(t, "qod.commands.get", body)
	dl := f.deadLetters(t, 1)[0]
	if len(dl.Data()) != 0 || !strings.Contains(dl.Headers().Get(command.HeaderDeadLetterTruncated), "body=") ||
		!strings.Contains(dl.Headers().Get(command.HeaderDeadLetterReason), "junk: unknown member") {
		t.Fatalf("bare dead letter: %d bytes, headers %v", len(dl.Data()), dl.Headers())
	}
	r, _ := f.result(t, dl.Headers().Get(command.HeaderRequestID))
	if r.OK || r.Status != 500 {
		t.Fatalf("result %+v", r)
	}
	if !sinktest.Poll(10*time.Second, 5*time.Millisecond, func() bool { return rec.count("get "+command.OutcomeDeadLetter) == 1 }) {
		t.Fatalf("outcomes %v", rec.all())
	}
}

// TestUnreachableResultStreamKeepsTheDelivery: while the result stream
// cannot be reached (here it is gone, as during a leader election nothing
// answers), the command keeps its delivery and its result is published once
// the stream is back: no nack, no redelivery, no step towards MaxDeliver.
func TestUnreachableResultStreamKeepsTheDelivery(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	rec := &outcomes{}
	f.start(t, f.engine(t, nil), Options{Memory: true, MaxDeliver: 2, PublishTimeout: 200 * time.Millisecond, OnOutcome: rec.record})
	if err := f.js.DeleteStream(ctx, "QOD_RESULTS"); err != nil {
		t.Fatal(err)
	}
	// A subscriber that never answers sees the intake's attempts.
	attempts, err := f.nc.SubscribeSync("qod.results.>")
	if err != nil {
		t.Fatal(err)
	}
	f.publish(t, "qod.commands.get", `{"requestId":"held-1","sessionId":"s"}`)
	for range 2 {
		if _, err := attempts.NextMsg(20 * time.Second); err != nil {
			t.Fatalf("no attempt to publish the result: %v", err)
		}
	}
	_ = attempts.Unsubscribe()
	if _, err := f.js.CreateStream(ctx, jetstream.StreamConfig{Name: "QOD_RESULTS", Subjects: []string{"qod.results.>"},
		Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	if r, _ := f.result(t, "held-1"); r.RequestID != "held-1" {
		t.Fatalf("result %+v", r)
	}
	if !sinktest.Poll(10*time.Second, 5*time.Millisecond, func() bool { return len(rec.all()) == 1 }) {
		t.Fatalf("outcomes %v", rec.all())
	}
	if got := rec.all(); rec.count("get "+command.OutcomeUnfinished) != 0 || rec.count("get "+command.OutcomeTerminated) != 0 {
		t.Fatalf("outcomes %v, want one answer and no unfinished", got)
	}
	cons, err := f.js.Consumer(ctx, "QOD_COMMANDS", "qodbridge")
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumRedelivered != 0 || info.Delivered.Consumer != 1 {
		t.Fatalf("redelivered %d, delivered %d: the command should have kept its one delivery", info.NumRedelivered, info.Delivered.Consumer)
	}
}

// runFunc is an Executor from a function.
type runFunc func(command.Command) (command.Outcome, error)

func (f runFunc) Execute(_ context.Context, cmd command.Command) (command.Outcome, error) {
	return f(cmd)
}

// TestUnfinishedRunKeepsTheDelivery: a command the engine leaves
// unfinished (its store away, as during an election) is run again within
// the same delivery once the store is back: no nack, no redelivery.
func TestUnfinishedRunKeepsTheDelivery(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	rec := &outcomes{}
	var calls atomic.Int32
	exec := runFunc(func(cmd command.Command) (command.Outcome, error) {
		if calls.Add(1) <= 3 {
			return command.Outcome{}, fmt.Errorf("%w: the command store is away", command.ErrUnfinished)
		}
		return command.Outcome{Result: command.Result{RequestID: cmd.RequestID, Action: cmd.Action, OK: true, Status: 200}}, nil
	})
	f.start(t, exec, Options{Memory: true, MaxDeliver: 2, OnOutcome: rec.record})
	f.publish(t, "qod.commands.get", `{"requestId":"store-1","sessionId":"s"}`)
	if r, _ := f.result(t, "store-1"); !r.OK {
		t.Fatalf("result %+v", r)
	}
	if !sinktest.Poll(10*time.Second, 5*time.Millisecond, func() bool { return len(rec.all()) == 1 }) || rec.count("get "+command.OutcomeOK) != 1 {
		t.Fatalf("outcomes %v, want one ok and no unfinished", rec.all())
	}
	cons, err := f.js.Consumer(ctx, "QOD_COMMANDS", "qodbridge")
	if err != nil {
		t.Fatal(err)
	}
	if info, err := cons.Info(ctx); err != nil || info.NumRedelivered != 0 || calls.Load() != 4 {
		t.Fatalf("redelivered %d after %d runs (%v): the command should have kept its one delivery", info.NumRedelivered, calls.Load(), err)
	}
}

// TestUnfinishedOnLastDeliveryIsAnswered: a command that cannot be run in
// its last delivery gets an error result and a bare dead letter, not
// silence: JetStream will not offer it again.
func TestUnfinishedOnLastDeliveryIsAnswered(t *testing.T) {
	f := newFixture(t)
	rec := &outcomes{}
	exec := runFunc(func(command.Command) (command.Outcome, error) {
		return command.Outcome{}, fmt.Errorf("%w: the command store is away", command.ErrUnfinished)
	})
	// AckWait bounds the hold to half of it.
	f.start(t, exec, Options{Memory: true, MaxDeliver: 1, AckWait: time.Second, OnOutcome: rec.record})
	f.publish(t, "qod.commands.get", `{"requestId":"never-1","sessionId":"s"}`)
	r, _ := f.result(t, "never-1")
	if r.OK || r.Status != 500 || r.Error == nil || !strings.Contains(r.Error.Message, "unfinished after 1 deliveries") {
		t.Fatalf("result %+v", r)
	}
	dl := f.deadLetters(t, 1)
	if reason := dl[0].Headers().Get(command.HeaderDeadLetterReason); !strings.Contains(reason, "command store is away") {
		t.Fatalf("dead letter reason %q", reason)
	}
}
