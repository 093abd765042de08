package command

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/bridge/qodapi"
	"github.com/qodbridge/qodbridge/bridge/qodsim"
)

// env is an engine talking to a real simulator through the real client.
type env struct {
	sim    *qodsim.Sim
	clock  *qodsim.ManualClock
	notify string // the bridge's notification URL the engine gives sessions
	srv    *httptest.Server
	engine *Engine
	calls  atomic.Int64 // HTTP requests that reached the API
	waits  []time.Duration
	mu     sync.Mutex
}

func newEnv(t *testing.T, wrap func(http.Handler) http.Handler, mod func(*Options)) *env {
	t.Helper()
	e := &env{clock: qodsim.NewManualClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))}
	// The simulator's notifications land here and are acknowledged: the
	// ingress side is tested elsewhere.
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	t.Cleanup(receiver.Close)
	e.notify = receiver.URL + "/notifications"
	sim, err := qodsim.New(qodsim.Options{Clock: e.clock, AvailableDelay: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e.sim = sim
	h := sim.Handler()
	if wrap != nil {
		h = wrap(h)
	}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.calls.Add(1)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { e.srv.Close(); sim.Close() })
	client, err := qodapi.New(qodapi.Options{BaseURL: e.srv.URL + "/quality-on-demand/v1", Dialect: qodapi.DialectV1})
	if err != nil {
		t.Fatal(err)
	}
	o := Options{
		NotifyURL:     e.notify,
		SessionSecret: []byte("secret-0123456789abcdef"),
		BaseBackoff:   time.Millisecond,
		Sleep: func(ctx context.Context, d time.Duration) error {
			e.mu.Lock()
			e.waits = append(e.waits, d)
			e.mu.Unlock()
			return ctx.Err()
		},
	}
	if mod != nil {
		mod(&o)
	}
	if e.engine, err = New(client, o); err != nil {
		t.Fatal(err)
	}
	return e
}

func createBody(device string) string {
	return fmt.Sprintf(`{"device":{"phoneNumber":%q},"applicationServer":{"ipv4Address":"233.252.0.2"},"qosProfile":"QOS_L","duration":3600}`, device)
}

func run(t *testing.T, e *env, cmd string) Outcome {
	t.Helper()
	out, err := e.engine.Run(context.Background(), []byte(cmd), "")
	if err != nil {
		t.Fatalf("Run(%s): %v", cmd, err)
	}
	return out
}

// TestLifecycle: create (the bridge sets its own sink and token), get,
// extend, list, delete, then get → 404, all through the simulator.
func TestLifecycle(t *testing.T) {
	e := newEnv(t, nil, nil)
	out := run(t, e, `{"action":"create","requestId":"r-1","session":`+createBody("+36721601234567")+`}`)
	r := out.Result
	if !r.OK || r.Status != 201 || r.RequestID != "r-1" || r.Action != Create || out.SessionID == "" || out.DeadLetter != "" {
		t.Fatalf("create: %+v", out)
	}
	var info struct {
		SessionID string `json:"sessionId"`
		Sink      string `json:"sink"`
		QoSStatus string `json:"qosStatus"`
	}
	if err := json.Unmarshal(r.Session, &info); err != nil || info.SessionID != out.SessionID || info.QoSStatus != "REQUESTED" {
		t.Fatalf("session %s: %v", r.Session, err)
	}
	if !strings.HasPrefix(info.Sink, e.notify+"/") {
		t.Fatalf("sink %q is not the bridge's", info.Sink)
	}
	key := strings.TrimPrefix(info.Sink, e.notify+"/")
	if !bridge.ValidSinkKey(key) {
		t.Fatalf("sink key %q is not a valid path key", key)
	}
	id := out.SessionID

	out = run(t, e, `{"action":"get","sessionId":"`+id+`"}`)
	if !out.Result.OK || out.Result.Status != 200 || out.SessionID != id || len(out.Result.RequestID) != 32 {
		t.Fatalf("get: %+v", out)
	}
	e.clock.Advance(2 * time.Second) // REQUESTED → AVAILABLE: only AVAILABLE sessions extend
	out = run(t, e, `{"action":"get","sessionId":"`+id+`"}`)
	if !strings.Contains(string(out.Result.Session), `"AVAILABLE"`) {
		t.Fatalf("session not AVAILABLE after the delay: %s", out.Result.Session)
	}
	out = run(t, e, `{"action":"extend","requestId":"r-3","sessionId":"`+id+`","requestedAdditionalDuration":600}`)
	if !out.Result.OK || out.Result.Status != 200 {
		t.Fatalf("extend: %+v", out)
	}
	out = run(t, e, `{"action":"list","device":{"phoneNumber":"+36721601234567"}}`)
	var list []map[string]any
	if err := json.Unmarshal(out.Result.Sessions, &list); err != nil || !out.Result.OK || len(list) != 1 || list[0]["sessionId"] != id {
		t.Fatalf("list: %+v (%v)", out, err)
	}
	out = run(t, e, `{"action":"delete","sessionId":"`+id+`"}`)
	if !out.Result.OK || out.Result.Status != 204 {
		t.Fatalf("delete: %+v", out)
	}
	out = run(t, e, `{"action":"get","sessionId":"`+id+`"}`)
	if out.Result.OK || out.Result.Status != 404 || out.Result.Error == nil || out.Result.Error.Code != "NOT_FOUND" || out.DeadLetter != "" {
		t.Fatalf("get after delete: %+v", out)
	}
	out = run(t, e, `{"action":"list","device":{"phoneNumber":"+36721601234567"}}`)
	if !out.Result.OK || string(out.Result.Sessions) != "[]" {
		t.Fatalf("list after delete: %+v sessions=%s", out, out.Result.Sessions)
	}
}

// TestRetryServerErrorThenCreated: the simulator's server-error device
// answers 500 once; the engine retries and the result reports one session.
func TestRetryServerErrorThenCreated(t *testing.T) {
	e := newEnv(t, nil, nil)
	out := run(t, e, `{"action":"create","requestId":"r-500","session":`+createBody(qodsim.DefaultServerError[1])+`}`)
	if !out.Result.OK || out.Result.Status != 201 {
		t.Fatalf("create: %+v", out.Result)
	}
	if n := e.calls.Load(); n != 2 {
		t.Fatalf("%d API calls, want 2 (500, then 201)", n)
	}
	list := run(t, e, `{"action":"list","device":{"phoneNumber":"`+qodsim.DefaultServerError[1]+`"}}`)
	var ss []json.RawMessage
	json.Unmarshal(list.Result.Sessions, &ss)
	if len(ss) != 1 {
		t.Fatalf("%d sessions exist, want 1", len(ss))
	}
}

// TestRetryAfterHonoured: the rate-limited device answers 429 with
// Retry-After once; the engine waits exactly that long (fake sleep).
func TestRetryAfterHonoured(t *testing.T) {
	e := newEnv(t, nil, nil)
	out := run(t, e, `{"action":"create","session":`+createBody(qodsim.DefaultRateLimited[1])+`}`)
	if !out.Result.OK {
		t.Fatalf("create: %+v", out.Result)
	}
	if len(e.waits) != 1 || e.waits[0] != time.Duration(qodsim.DefaultRetryAfter)*time.Second {
		t.Fatalf("waits %v, want one of %ds (the Retry-After)", e.waits, qodsim.DefaultRetryAfter)
	}
}

// TestRetriesAreBounded: an API that always answers 503 gets MaxAttempts
// calls, then an error result (not a dead letter).
func TestRetriesAreBounded(t *testing.T) {
	e := newEnv(t, func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(503)
			w.Write([]byte(`{"status":503,"code":"UNAVAILABLE","message":"maintenance"}`))
		})
	}, func(o *Options) { o.MaxAttempts = 4 })
	out := run(t, e, `{"action":"get","sessionId":"x"}`)
	if out.Result.OK || out.Result.Status != 503 || out.DeadLetter != "" || !strings.Contains(out.Result.Error.Message, "maintenance") {
		t.Fatalf("outcome %+v", out)
	}
	if n := e.calls.Load(); n != 4 {
		t.Fatalf("%d calls, want 4", n)
	}
	for _, w := range e.waits {
		if w <= 0 {
			t.Fatalf("non-positive backoff %v", w)
		}
	}
}

// TestAPIRejectionIsDeadLettered: a 400 from the API is an error result with
// the API's code and message, no retry, and a dead letter.
func TestAPIRejectionIsDeadLettered(t *testing.T) {
	e := newEnv(t, nil, nil)
	out := run(t, e, `{"action":"create","requestId":"bad-1","session":{"device":{"phoneNumber":"+36721601234567"},"applicationServer":{"ipv4Address":"233.252.0.2"},"qosProfile":"QOS_L","duration":0}}`)
	if out.Result.OK || out.Result.Status != 400 || out.Result.Error == nil || out.Result.Error.Code == "" {
		t.Fatalf("result %+v", out.Result)
	}
	if !strings.Contains(out.DeadLetter, "rejected") || !strings.Contains(out.DeadLetter, out.Result.Error.Code) {
		t.Fatalf("dead letter %q", out.DeadLetter)
	}
	if n := e.calls.Load(); n != 1 {
		t.Fatalf("%d calls for a 400, want 1", n)
	}
}

// TestRedeliveredCreate: the same create twice gives one session and the
// same result (from the store); with the store lost, 409 is resolved by
// adopting the session the bridge created.
func TestRedeliveredCreate(t *testing.T) {
	e := newEnv(t, nil, nil)
	cmd := `{"action":"create","requestId":"dup-1","session":` + createBody("+36721600000001") + `}`
	first := run(t, e, cmd)
	second := run(t, e, cmd)
	if !first.Result.OK || string(first.Result.JSON()) != string(second.Result.JSON()) || e.calls.Load() != 1 {
		t.Fatalf("redelivery: %d calls\n%s\n%s", e.calls.Load(), first.Result.JSON(), second.Result.JSON())
	}
	// A second instance (empty store) gets the same command: 409 → adopt.
	e.engine.o.Store = NewMemoryStore(10)
	third := run(t, e, cmd)
	if !third.Result.OK || third.SessionID != first.SessionID {
		t.Fatalf("after 409: %+v (want session %s)", third, first.SessionID)
	}
}

// TestConflictWithForeignSessionIsReported: 409 for a session someone else
// created (another sink) stays an error result.
func TestConflictWithForeignSessionIsReported(t *testing.T) {
	e := newEnv(t, nil, nil)
	foreign := `{"device":{"phoneNumber":"+36721600000002"},"applicationServer":{"ipv4Address":"233.252.0.2"},"qosProfile":"QOS_L","duration":3600,"sink":"https://other.example/n"}`
	if out := run(t, e, `{"action":"create","session":`+foreign+`}`); !out.Result.OK {
		t.Fatalf("foreign create: %+v", out.Result)
	}
	out := run(t, e, `{"action":"create","session":`+createBody("+36721600000002")+`}`)
	if out.Result.OK || out.Result.Status != 409 || out.DeadLetter != "" {
		t.Fatalf("conflict: %+v", out)
	}
}

// TestInvalidCommands: each is answered with an error result naming the
// problem and dead-lettered, without calling the API.
func TestInvalidCommands(t *testing.T) {
	e := newEnv(t, nil, nil)
	cases := []struct{ name, body, transport, reason string }{
		{"not JSON", `create please`, "", "not JSON"},
		{"empty", ``, "", "empty message"},
		{"array", `[1]`, "", "want a JSON command object"},
		{"truncated", `{"action":"get"`, "", "truncated JSON"},
		{"trailing data", `{"action":"get","sessionId":"a"} {}`, "", "data after"},
		{"no action", `{"sessionId":"a"}`, "", "action: required"},
		{"unknown action", `{"action":"pause","sessionId":"a"}`, "", `"pause" is not one of`},
		{"action contradicts subject", `{"action":"delete","sessionId":"a"}`, "get", "contradicts"},
		{"unknown transport action", `{"sessionId":"a"}`, "stop", `"stop" is not one of`},
		{"missing sessionId", `{"action":"delete"}`, "", "sessionId: required"},
		{"empty sessionId", `{"action":"get","sessionId":""}`, "", "sessionId: must not be empty"},
		{"sessionId number", `{"action":"get","sessionId":42}`, "", "sessionId: want string"},
		{"missing session", `{"action":"create"}`, "", "session: required"},
		{"session as string", `{"action":"create","session":"QOS_L"}`, "", "session: want a JSON object, got a string"},
		{"extend without duration", `{"action":"extend","sessionId":"a"}`, "", "requestedAdditionalDuration: required"},
		{"extend negative", `{"action":"extend","sessionId":"a","requestedAdditionalDuration":-5}`, "", "not a whole number"},
		{"extend fraction", `{"action":"extend","sessionId":"a","requestedAdditionalDuration":1.5}`, "", "not a whole number"},
		{"list without device", `{"action":"list"}`, "", "device: required"},
		{"member of another action", `{"action":"get","sessionId":"a","device":{}}`, "", "device: not used by get"},
		{"unknown member", `{"action":"get","sessionID":"a"}`, "", "sessionID: unknown member"},
		{"bad requestId", `{"action":"get","sessionId":"a","requestId":"has space"}`, "", "requestId:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := e.engine.Run(context.Background(), []byte(tc.body), Action(tc.transport))
			if err != nil {
				t.Fatal(err)
			}
			if out.Result.OK || out.Result.Status != 400 || out.Result.Error == nil || out.Result.Error.Code != "INVALID_ARGUMENT" {
				t.Fatalf("result %+v", out.Result)
			}
			if !strings.Contains(out.DeadLetter, tc.reason) || out.Result.Error.Message != out.DeadLetter {
				t.Fatalf("dead letter %q, want it to contain %q", out.DeadLetter, tc.reason)
			}
			if out.Result.RequestID == "" {
				t.Fatal("error result without requestId")
			}
		})
	}
	if n := e.calls.Load(); n != 0 {
		t.Fatalf("invalid commands made %d API calls", n)
	}
	// The requestId of an otherwise invalid command names its result.
	out := run(t, e, `{"action":"get","requestId":"keep-me"}`)
	if out.Result.RequestID != "keep-me" {
		t.Fatalf("requestId %q", out.Result.RequestID)
	}
}

// TestShutdownLeavesCommandUnfinished: ctx ending during retries returns
// ErrUnfinished so the intake does not ack.
func TestShutdownLeavesCommandUnfinished(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	e := newEnv(t, func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			cancel() // shutdown arrives while the API is failing
			w.WriteHeader(503)
		})
	}, nil)
	_, err := e.engine.Run(ctx, []byte(`{"action":"get","sessionId":"a"}`), "")
	if !errors.Is(err, ErrUnfinished) {
		t.Fatalf("error %v, want ErrUnfinished", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{`{"action":"create","session":{}}`, `{"action":"extend","sessionId":"a","requestedAdditionalDuration":5}`, `{"requestId":"x"}`, `[]`, `{"device":null,"action":"list"}`} {
		f.Add([]byte(s), "")
	}
	f.Add([]byte(`{"sessionId":"a"}`), "get")
	f.Fuzz(func(t *testing.T, body []byte, transport string) {
		cmd, err := Parse(body, Action(transport))
		if cmd.RequestID == "" || !validRequestID(cmd.RequestID) {
			t.Fatalf("unusable requestId %q", cmd.RequestID)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if !cmd.Action.Valid() {
			t.Fatalf("accepted action %q", cmd.Action)
		}
		if (cmd.Action == Get || cmd.Action == Delete || cmd.Action == Extend) && cmd.SessionID == "" {
			t.Fatalf("accepted %s without sessionId", cmd.Action)
		}
	})
}

type statusRecorder struct {
	mu  sync.Mutex
	evs []bridge.Event
}

func (r *statusRecorder) Publish(_ context.Context, evs ...bridge.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, evs...)
	return nil
}

// TestCreateAnnouncesRequested: a created session's REQUESTED status is
// published once, also when the create is redelivered.
func TestCreateAnnouncesRequested(t *testing.T) {
	rec := &statusRecorder{}
	e := newEnv(t, nil, func(o *Options) { o.Status = rec })
	cmd := `{"action":"create","requestId":"ann-1","session":` + createBody("+36721600000003") + `}`
	out := run(t, e, cmd)
	run(t, e, cmd)
	if len(rec.evs) != 1 {
		t.Fatalf("%d status events, want 1", len(rec.evs))
	}
	ev := rec.evs[0]
	if ev.SessionID != out.SessionID || ev.QoSStatus != bridge.StatusRequested || ev.ID != "created-"+out.SessionID || ev.Source == "" || ev.Time == "" {
		t.Fatalf("status event %+v", ev)
	}
}
