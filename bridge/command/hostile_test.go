package command

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

func TestActionLabelIsAClosedSet(t *testing.T) {
	for _, a := range Actions {
		if a.Label() != string(a) {
			t.Errorf("%s: label %q", a, a.Label())
		}
	}
	for _, a := range []Action{"", "CREATE", "create ", "\xff\xfe", Action(strings.Repeat("x", 5000)), "a.b"} {
		if a.Label() != LabelInvalid {
			t.Errorf("%q: label %q, want %q", a, a.Label(), LabelInvalid)
		}
	}
}

// TestInvalidOutcomeIsBounded: whatever a command carries, its error result
// and dead-letter reason stay small, printable and free of what Parse did
// not accept.
func TestInvalidOutcomeIsBounded(t *testing.T) {
	huge := strings.Repeat("x", 600<<10)
	cases := []struct {
		name, body string
		transport  Action
	}{
		{"oversized requestId", `{"requestId":"` + huge + `","action":"get","sessionId":"s"}`, ""},
		{"action not UTF-8", `{"sessionId":"s"}`, "\xff\xfe\r\n"},
		{"oversized action", `{}`, Action(huge)},
		{"oversized member name", `{"` + huge + `":1}`, "get"},
		{"control bytes in a member name", `{"a\r\nNats-Expected-Stream: X":1}`, "get"},
		{"oversized sessionId", `{"sessionId":"` + huge + `"}`, "get"},
		{"sessionId with control bytes", `{"sessionId":"a\u0000b"}`, "delete"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd, err := Parse([]byte(tc.body), tc.transport)
			if err == nil {
				t.Fatal("accepted")
			}
			out := InvalidOutcome(cmd, err)
			if n := len(out.DeadLetter); n == 0 || n > MaxReasonLen+len("…") {
				t.Errorf("reason of %d bytes", n)
			}
			for _, c := range []byte(out.DeadLetter) {
				if c < ' ' || c == 0x7f {
					t.Fatalf("reason holds control byte %#x: %q", c, out.DeadLetter)
				}
			}
			if !utf8.ValidString(out.DeadLetter) {
				t.Errorf("reason not UTF-8: %q", out.DeadLetter)
			}
			if out.Result.Action != "" && !out.Result.Action.Valid() {
				t.Errorf("result echoes action %q", out.Result.Action)
			}
			if len(out.SessionID) > MaxSessionIDLen {
				t.Errorf("outcome keeps a sessionId of %d bytes", len(out.SessionID))
			}
			if n := len(out.Result.JSON()); n > 4<<10 {
				t.Errorf("result of %d bytes", n)
			}
			if out.Label() != OutcomeDeadLetter {
				t.Errorf("label %s", out.Label())
			}
		})
	}
}

type panicking struct{}

func (panicking) Execute(context.Context, Command) (Outcome, error) { panic("boom") }

func TestHandleRecoversPanic(t *testing.T) {
	cmd := Command{Action: Get, RequestID: "r-1", SessionID: "s-1"}
	out, err := Handle(context.Background(), nil, nil, cmd, nil, panicking{}.Execute)
	if err != nil {
		t.Fatal(err)
	}
	if out.Panic == nil || out.Panic.Value != "boom" || len(out.Panic.Stack) == 0 {
		t.Fatalf("panic not reported: %+v", out.Panic)
	}
	if out.DeadLetter != ReasonInternal || out.Result.OK || out.Result.Status != http.StatusInternalServerError ||
		out.Result.Error.Code != "INTERNAL" || out.Result.RequestID != "r-1" || out.Label() != OutcomeInternal {
		t.Fatalf("outcome %+v", out)
	}
	// Traced too: the span still ends, as failed.
	var ended error
	trace := func(ctx context.Context, _ func(string) string, _ Action) (context.Context, func(error)) {
		return ctx, func(err error) { ended = err }
	}
	if out, _ := Handle(context.Background(), trace, func(string) string { return "" }, cmd, nil, panicking{}.Execute); out.Panic == nil {
		t.Fatal("traced panic not recovered")
	}
	if ended == nil || !strings.Contains(ended.Error(), "boom") {
		t.Fatalf("span ended with %v", ended)
	}
}

func TestTrimmer(t *testing.T) {
	var tr Trimmer
	for _, h := range []struct {
		name, value string
		keep        bool
	}{
		{"Nats-Expected-Stream", "QOD_COMMANDS", false},
		{"nats-msg-id", "x", false},
		{"Qod-Dead-Letter-Reason", "forged", false},
		{"Qod-Request-Id", "forged", false},
		{"__TypeId__", "java.lang.String", false},
		{"kafka_correlationId", "1", false},
		{"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", true},
		{"X-Big", strings.Repeat("v", MaxDeadLetterHeader), false},
		{"X-Team", "payments", true},
	} {
		if got := tr.Header(h.name, h.value); got != h.keep {
			t.Errorf("Header(%s) = %v, want %v", h.name, got, h.keep)
		}
	}
	body := tr.Body(make([]byte, 100), 10)
	if len(body) != 10 {
		t.Errorf("body of %d bytes kept", len(body))
	}
	if k := tr.Key(make([]byte, MaxDeadLetterKey+1)); k != nil {
		t.Error("oversized key kept")
	}
	if got, want := tr.Truncated(), "body=100, key=1025, headers=1"; got != want {
		t.Errorf("Truncated = %q, want %q", got, want)
	}
	var none Trimmer
	if none.Body([]byte("ok"), 10); none.Truncated() != "" {
		t.Errorf("nothing cut, but Truncated = %q", none.Truncated())
	}
	// Many small headers: the total is bounded too.
	var many Trimmer
	kept := 0
	for range 1000 {
		if many.Header("X-H", strings.Repeat("v", 100)) {
			kept++
		}
	}
	if kept*103 > MaxDeadLetterHeaders || !strings.Contains(many.Truncated(), "headers=") {
		t.Errorf("kept %d headers; truncated %q", kept, many.Truncated())
	}
}

func TestBareOutcome(t *testing.T) {
	ok := Outcome{Result: Result{RequestID: "r", Action: Create, OK: true, Status: 201, Session: json.RawMessage(`{"sessionId":"s"}`)}, SessionID: "s"}
	b := BareOutcome(ok, "result: nats: maximum payload exceeded")
	if b.Result.OK || b.Result.Session != nil || b.Result.Status != 500 || !strings.Contains(b.Result.Error.Message, "ran (status 201)") ||
		b.DeadLetter != "result: nats: maximum payload exceeded" || b.SessionID != "s" {
		t.Fatalf("bare outcome of a success: %+v", b)
	}
	inv := InvalidOutcome(Command{RequestID: "r2"}, invalid("", "not JSON"))
	if b := BareOutcome(inv, "dead letter refused"); b.DeadLetter != "not JSON; dead letter refused" {
		t.Fatalf("bare outcome of an invalid command: %q", b.DeadLetter)
	}
}

// TestRedeliveredExtendAndDelete: the same extend or delete run twice is
// sent to the API once, and the second run returns the first's result.
func TestRedeliveredExtendAndDelete(t *testing.T) {
	e := newEnv(t, nil, nil)
	created := run(t, e, `{"action":"create","requestId":"c-x","session":`+createBody("+36721600000010")+`}`)
	id := created.SessionID
	e.clock.Advance(2 * time.Second) // AVAILABLE: extendable
	extend := `{"action":"extend","requestId":"x-1","sessionId":"` + id + `","requestedAdditionalDuration":60}`
	calls := e.calls.Load()
	first := run(t, e, extend)
	second := run(t, e, extend)
	if !first.Result.OK || string(first.Result.JSON()) != string(second.Result.JSON()) {
		t.Fatalf("extend redelivered:\n%s\n%s", first.Result.JSON(), second.Result.JSON())
	}
	if n := e.calls.Load() - calls; n != 1 {
		t.Fatalf("extend ran twice: %d API calls", n)
	}
	var s struct{ Duration int }
	_ = json.Unmarshal(second.Result.Session, &s)
	if s.Duration != 3600+60 {
		t.Fatalf("duration %d, want %d", s.Duration, 3600+60)
	}

	del := `{"action":"delete","requestId":"d-1","sessionId":"` + id + `"}`
	calls = e.calls.Load()
	if a, b := run(t, e, del), run(t, e, del); !a.Result.OK || a.Result.Status != 204 || string(a.Result.JSON()) != string(b.Result.JSON()) {
		t.Fatalf("delete redelivered: %+v / %+v", a.Result, b.Result)
	}
	if n := e.calls.Load() - calls; n != 1 {
		t.Fatalf("delete ran twice: %d API calls", n)
	}
	// The same requestId for another action is a different command.
	if out := run(t, e, `{"action":"get","requestId":"d-1","sessionId":"`+id+`"}`); out.Result.Status != 404 {
		t.Fatalf("get after delete: %+v", out.Result)
	}
}

// TestInterruptedExtendAndDelete: an earlier delivery stopped after its
// call may have gone out (only the attempt mark is stored). A delete's 404
// then reports the deletion; an extend is not sent again.
func TestInterruptedExtendAndDelete(t *testing.T) {
	e := newEnv(t, nil, nil)
	created := run(t, e, `{"action":"create","requestId":"c-y","session":`+createBody("+36721600000011")+`}`)
	id := created.SessionID
	e.clock.Advance(2 * time.Second)
	mark, _ := json.Marshal(stored{Attempted: true})
	ctx := context.Background()

	// The earlier extend did go out (applied once by hand here), then the
	// process stopped before the outcome was stored.
	if _, err := e.engine.api.ExtendSession(ctx, "x-2", id, 60); err != nil {
		t.Fatal(err)
	}
	_ = e.engine.o.Store.Put(ctx, storeKey(Command{Action: Extend, RequestID: "x-2"}), mark)
	out := run(t, e, `{"action":"extend","requestId":"x-2","sessionId":"`+id+`","requestedAdditionalDuration":60}`)
	var s struct{ Duration int }
	_ = json.Unmarshal(out.Result.Session, &s)
	if !out.Result.OK || s.Duration != 3600+60 {
		t.Fatalf("interrupted extend: %+v (duration %d, want %d: applied once)", out.Result, s.Duration, 3600+60)
	}

	if _, err := e.engine.Execute(ctx, Command{Action: Delete, RequestID: "d-0", SessionID: id}); err != nil {
		t.Fatal(err)
	}
	_ = e.engine.o.Store.Put(ctx, storeKey(Command{Action: Delete, RequestID: "d-2"}), mark)
	if out := run(t, e, `{"action":"delete","requestId":"d-2","sessionId":"`+id+`"}`); !out.Result.OK || out.Result.Status != 204 {
		t.Fatalf("interrupted delete: %+v", out.Result)
	}
	// Without the mark, a delete of a session that is gone says so.
	if out := run(t, e, `{"action":"delete","requestId":"d-3","sessionId":"`+id+`"}`); out.Result.OK || out.Result.Status != 404 {
		t.Fatalf("delete of a missing session: %+v", out.Result)
	}
}

func TestLanesKeepsOrderPerKey(t *testing.T) {
	var mu sync.Mutex
	got := map[string][]int{}
	l := NewLanes(4, func(j [2]string) {
		mu.Lock()
		defer mu.Unlock()
		n := len(got[j[0]])
		got[j[0]] = append(got[j[0]], n)
		if j[1] != "" && j[1] != string(rune('0'+n%10)) {
			t.Errorf("key %s: job %s ran as number %d", j[0], j[1], n)
		}
	})
	var wg sync.WaitGroup
	for _, key := range []string{"a", "b", "c", "d", "e"} {
		wg.Go(func() {
			for i := range 100 {
				l.Dispatch(nil, key, [2]string{key, string(rune('0' + i%10))})
			}
		})
	}
	wg.Go(func() {
		for range 100 {
			l.Dispatch(nil, "", [2]string{"none", ""})
		}
	})
	wg.Wait()
	l.Close()
	for _, key := range []string{"a", "b", "c", "d", "e", "none"} {
		if len(got[key]) != 100 {
			t.Errorf("key %s: %d jobs ran", key, len(got[key]))
		}
	}
	done, release := make(chan struct{}), make(chan struct{})
	close(done)
	blocked := NewLanes(1, func(int) { <-release })
	blocked.Dispatch(nil, "", 1)
	if blocked.Dispatch(done, "", 2) {
		t.Error("Dispatch handed a job to a busy worker after done closed")
	}
	close(release)
	blocked.Close()
}

// TestReusedRequestIDIsAConflict: a requestId already used by another
// command gets a conflict, never the other command's stored outcome.
func TestReusedRequestIDIsAConflict(t *testing.T) {
	e := newEnv(t, nil, nil)
	first := run(t, e, `{"action":"create","requestId":"shared-1","session":`+createBody("+36721600000020")+`}`)
	if !first.Result.OK {
		t.Fatalf("first create: %+v", first.Result)
	}
	// The same command again (white space aside) is a redelivery.
	again := run(t, e, `{"action":"create","requestId":"shared-1","session": `+createBody("+36721600000020")+` }`)
	if string(again.Result.JSON()) != string(first.Result.JSON()) {
		t.Fatalf("redelivery answered %s", again.Result.JSON())
	}
	other := run(t, e, `{"action":"create","requestId":"shared-1","session":`+createBody("+36721600000021")+`}`)
	if other.Result.OK || other.Result.Status != http.StatusConflict || other.Result.Error.Code != "CONFLICT" ||
		strings.Contains(string(other.Result.JSON()), "+36721600000020") || other.DeadLetter != "" {
		t.Fatalf("create reusing a requestId: %s", other.Result.JSON())
	}
	// Its result id is its own: a broker deduplicating by the id of the
	// first command's result would drop the conflict answer.
	if again.ID() != first.ID() || other.ID() == first.ID() {
		t.Fatalf("result ids: first %s, redelivery %s, conflict %s", first.ID(), again.ID(), other.ID())
	}
	e.clock.Advance(2 * time.Second)
	extend := `{"action":"extend","requestId":"x-shared","sessionId":"` + first.SessionID + `","requestedAdditionalDuration":60}`
	if out := run(t, e, extend); !out.Result.OK {
		t.Fatalf("extend: %+v", out.Result)
	}
	calls := e.calls.Load()
	out := run(t, e, strings.Replace(extend, `:60}`, `:120}`, 1))
	if out.Result.Status != http.StatusConflict || e.calls.Load() != calls {
		t.Fatalf("extend reusing a requestId: %s after %d calls", out.Result.JSON(), e.calls.Load()-calls)
	}
	// The original's stored outcome is intact.
	if out := run(t, e, `{"action":"create","requestId":"shared-1","session":`+createBody("+36721600000020")+`}`); string(out.Result.JSON()) != string(first.Result.JSON()) {
		t.Fatalf("the original's result after a conflict: %s", out.Result.JSON())
	}
}
