package kafkacmd

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/qodbridge/qodbridge/bridge/command"
	"github.com/qodbridge/qodbridge/sinks/internal/kafkatopics"
	"github.com/qodbridge/qodbridge/sinks/sinktest"
)

// outcomes records OnOutcome calls.
type outcomes struct {
	mu  sync.Mutex
	got []string
}

func (o *outcomes) record(a command.Action, outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, a.Label()+" "+outcome)
}

func (o *outcomes) all() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.got...)
}

// TestHostileCommands: commands no client should send each end in one
// bounded dead letter and an error result; the intake goes on serving and
// commits past them.
func TestHostileCommands(t *testing.T) {
	f := newFixture(t, 1).withAPI(t)
	rec := &outcomes{}
	f.start(t, f.engine(t), fastGroup(Options{OnOutcome: rec.record}))
	huge := strings.Repeat("r", 600<<10)
	f.send(t, "", `{"requestId":"h-1","sessionId":"s"}`, command.HeaderAction, "\xff\xfe\r\n")
	f.send(t, strings.Repeat("k", 4096), `{"action":"get","requestId":"`+huge+`","sessionId":"s"}`)
	f.send(t, "", `not json`, "__TypeId__", "java.lang.String", "kafka_correlationId", "x", "X-Team", "payments")
	f.send(t, "", `{"action":"get","requestId":"h-4","sessionId":"`+strings.Repeat("s", 300)+`"}`)
	f.send(t, "", listCmd("after"))

	results := f.collect(t, DefaultResultTopic)
	if r, _ := results.result("after"); !r.OK {
		t.Fatalf("a valid command after hostile ones: %+v", r)
	}
	dlq := f.collect(t, DefaultDLQTopic)
	dlq.until("4 dead letters", func() bool { return len(dlq.recs) >= 4 })
	want := []struct{ reason, truncated string }{
		{`qod-action: header "\xff\xfe\r\n" is not one of`, ""},
		{`requestId: "rrrr`, "key=4096, body=614"},
		{"not JSON", ""},
		{"sessionId: \"ssss", ""},
	}
	for _, w := range want {
		found := false
		for _, r := range dlq.recs {
			h := headerMap(r.Headers)
			if !strings.Contains(h[command.HeaderDeadLetterReason], w.reason) {
				continue
			}
			found = true
			if len(r.Value) > command.DefaultDeadLetterBody || len(r.Key) > command.MaxDeadLetterKey {
				t.Errorf("%s: dead letter of %d bytes, key %d bytes", w.reason, len(r.Value), len(r.Key))
			}
			if !strings.HasPrefix(h[command.HeaderDeadLetterTruncated], w.truncated) {
				t.Errorf("%s: truncated %q, want %q…", w.reason, h[command.HeaderDeadLetterTruncated], w.truncated)
			}
			if _, ok := h["__TypeId__"]; ok {
				t.Errorf("%s: framework header copied: %v", w.reason, h)
			}
			if _, ok := h["kafka_correlationId"]; ok {
				t.Errorf("%s: framework header copied: %v", w.reason, h)
			}
			if w.reason == "not JSON" && h["X-Team"] != "payments" {
				t.Errorf("user header not copied: %v", h)
			}
			id := h[command.HeaderRequestID]
			if res, _ := results.result(id); res.OK || res.Status != 400 || (res.Action != "" && !res.Action.Valid()) {
				t.Errorf("%s: result %+v", w.reason, res)
			}
		}
		if !found {
			t.Errorf("no dead letter with reason %q", w.reason)
		}
	}
	for _, o := range rec.all() {
		if strings.HasSuffix(o, command.OutcomeUnfinished) || strings.HasSuffix(o, command.OutcomeTerminated) {
			t.Errorf("outcomes %v", rec.all())
		}
	}
}

type panicky struct{ Executor }

func (p panicky) Execute(ctx context.Context, cmd command.Command) (command.Outcome, error) {
	if cmd.RequestID == "boom" {
		panic("poison command")
	}
	return p.Executor.Execute(ctx, cmd)
}

func TestPanicIsDeadLettered(t *testing.T) {
	f := newFixture(t, 1).withAPI(t)
	rec := &outcomes{}
	f.start(t, panicky{f.engine(t)}, fastGroup(Options{OnOutcome: rec.record}))
	f.send(t, "", `{"action":"get","requestId":"boom","sessionId":"s"}`)
	f.send(t, "", listCmd("after"))
	results := f.collect(t, DefaultResultTopic)
	if r, _ := results.result("after"); !r.OK {
		t.Fatalf("after the panic: %+v", r)
	}
	if r, _ := results.result("boom"); r.Status != 500 || r.Error == nil || r.Error.Code != "INTERNAL" {
		t.Fatalf("result of the panicking command: %+v", r)
	}
	dlq := f.collect(t, DefaultDLQTopic)
	dlq.until("the dead letter", func() bool { return len(dlq.recs) == 1 })
	if got := headerMap(dlq.recs[0].Headers)[command.HeaderDeadLetterReason]; got != command.ReasonInternal {
		t.Fatalf("reason %q", got)
	}
}

// TestRefusedDeadLetterGoesBare: the dead-letter topic refuses the full
// dead letter (max.message.bytes); a bare one goes instead and the
// partition moves on, where it used to retry until the generation ended.
func TestRefusedDeadLetterGoesBare(t *testing.T) {
	f := newFixture(t, 0).withAPI(t)
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	defer cancel()
	cl := &kafka.Client{Addr: kafka.TCP(f.c.ListenAddrs()...)}
	if err := kafkatopics.Create(ctx, cl, []string{DefaultTopic, DefaultResultTopic}, 1, 1, nil); err != nil {
		t.Fatal(err)
	}
	if err := kafkatopics.Create(ctx, cl, []string{DefaultDLQTopic}, 1, 1, map[string]string{"max.message.bytes": "4096"}); err != nil {
		t.Fatal(err)
	}
	rec := &outcomes{}
	f.start(t, f.engine(t), fastGroup(Options{OnOutcome: rec.record}))
	f.send(t, "", `{"action":"get","requestId":"big-1","sessionId":"s","junk":"`+strings.Repeat("j", 20000)+`"}`)
	f.send(t, "", listCmd("after"))
	results := f.collect(t, DefaultResultTopic)
	if r, _ := results.result("after"); !r.OK {
		t.Fatalf("after: %+v", r)
	}
	dlq := f.collect(t, DefaultDLQTopic)
	dlq.until("the bare dead letter", func() bool { return len(dlq.recs) == 1 })
	h := headerMap(dlq.recs[0].Headers)
	if len(dlq.recs[0].Value) != 0 || !strings.Contains(h[command.HeaderDeadLetterTruncated], "body=") ||
		!strings.Contains(h[command.HeaderDeadLetterReason], "junk: unknown member") || !strings.Contains(h[command.HeaderDeadLetterReason], "refused") {
		t.Fatalf("bare dead letter: %d bytes, headers %v", len(dlq.recs[0].Value), h)
	}
	if r, _ := results.result(h[command.HeaderRequestID]); r.OK || r.Status != 500 {
		t.Fatalf("result %+v", r)
	}
	// Outcomes are counted just after the publishes the test waited for.
	sinktest.Poll(testDeadline, 5*time.Millisecond, func() bool { return len(rec.all()) == 2 })
	if got := rec.all(); len(got) != 2 || got[0] != "invalid dead_letter" && got[1] != "invalid dead_letter" {
		t.Fatalf("outcomes %v", got)
	}
}
