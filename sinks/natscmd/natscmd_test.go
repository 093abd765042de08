package natscmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/bridge/command"
	"github.com/qodbridge/qodbridge/bridge/command/commandtest"
	"github.com/qodbridge/qodbridge/bridge/qodsim"
	"github.com/qodbridge/qodbridge/sinks/natssink/natstest"
	"github.com/qodbridge/qodbridge/sinks/sinktest"
)

type fixture struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	api *commandtest.API
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	nc, js := natstest.Server(t)
	return &fixture{nc: nc, js: js, api: commandtest.NewAPI(t, qodsim.Options{})}
}

func (f *fixture) engine(t *testing.T, store command.Store) *command.Engine {
	t.Helper()
	return f.api.Engine(t, store)
}

func (f *fixture) start(t *testing.T, exec Executor, o Options) *commandtest.Running {
	t.Helper()
	in, err := New(context.Background(), f.nc, exec, o)
	if err != nil {
		t.Fatal(err)
	}
	return commandtest.Start(t, in.Run)
}

func (f *fixture) publish(t *testing.T, subject, body string) {
	t.Helper()
	if _, err := f.js.Publish(context.Background(), subject, []byte(body)); err != nil {
		t.Fatal(err)
	}
}

// result waits for the result of requestID in QOD_RESULTS.
func (f *fixture) result(t *testing.T, requestID string) (command.Result, nats.Header) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := f.js.Stream(ctx, "QOD_RESULTS")
	if err != nil {
		t.Fatal(err)
	}
	for {
		m, err := st.GetLastMsgForSubject(ctx, "qod.results."+bridge.SessionToken(requestID))
		if err == nil {
			var r command.Result
			if err := json.Unmarshal(m.Data, &r); err != nil {
				t.Fatalf("result %s: %v", m.Data, err)
			}
			return r, m.Header
		}
		if !errors.Is(err, jetstream.ErrMsgNotFound) {
			t.Fatal(err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no result for %s", requestID)
		case <-time.After(10 * time.Millisecond): // poll the stream until the deadline
		}
	}
}

func (f *fixture) count(t *testing.T, stream string) uint64 {
	t.Helper()
	st, err := f.js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func createCmd(requestID, phone string) string {
	return fmt.Sprintf(`{"requestId":%q,"session":{"device":{"phoneNumber":%q},"applicationServer":{"ipv4Address":"233.252.0.2"},"qosProfile":"QOS_L","duration":600}}`, requestID, phone)
}

func TestCommandRoundTrip(t *testing.T) {
	f := newFixture(t)
	f.start(t, f.engine(t, nil), Options{Memory: true})
	f.publish(t, "qod.commands.create", createCmd("c-1", "+36721601234567"))
	r, h := f.result(t, "c-1")
	if !r.OK || r.Status != 201 || r.Action != command.Create {
		t.Fatalf("create result %+v", r)
	}
	if h.Get("ce-type") != command.ResultEventType || h.Get("ce-id") != command.ResultID("c-1") || h.Get("ce-subject") == "" {
		t.Fatalf("result headers %v", h)
	}
	id := h.Get("ce-subject")
	f.publish(t, "qod.commands.delete", `{"requestId":"d-1","sessionId":"`+id+`"}`)
	if r, _ := f.result(t, "d-1"); !r.OK || r.Status != 204 {
		t.Fatalf("delete result %+v", r)
	}
	f.publish(t, "qod.commands.get", `{"requestId":"g-1","sessionId":"`+id+`"}`)
	if r, _ := f.result(t, "g-1"); r.OK || r.Status != 404 || r.Error.Code != "NOT_FOUND" {
		t.Fatalf("get after delete %+v", r)
	}
	if n := f.count(t, "QOD_DLQ"); n != 0 {
		t.Fatalf("%d dead letters for valid commands", n)
	}
	// Work queue: every command was acked and removed.
	sinktest.Poll(10*time.Second, 5*time.Millisecond, func() bool { return f.count(t, "QOD_COMMANDS") == 0 }) // acks are asynchronous
	if n := f.count(t, "QOD_COMMANDS"); n != 0 {
		t.Fatalf("%d commands left unacked", n)
	}
}

func TestInvalidCommandsAreDeadLettered(t *testing.T) {
	f := newFixture(t)
	f.start(t, f.engine(t, nil), Options{Memory: true})
	bad := []struct{ subject, body, reason string }{
		{"qod.commands.get", `not json`, "not JSON"},
		{"qod.commands.pause", `{"requestId":"b-2","sessionId":"x"}`, `"pause" is not one of`},
		{"qod.commands.delete", `{"requestId":"b-3"}`, "sessionId: required"},
		{"qod.commands.get", `{"requestId":"b-4","action":"delete","sessionId":"x"}`, "contradicts"},
		{"qod.commands.create", `{"requestId":"b-5","session":{"device":{"phoneNumber":"+36721601234567"},"applicationServer":{"ipv4Address":"233.252.0.2"},"qosProfile":"NOPE","duration":60}}`, "NOPE"},
	}
	for _, b := range bad {
		f.publish(t, b.subject, b.body)
	}
	f.publish(t, "qod.commands.list", `{"requestId":"after","device":{"phoneNumber":"+36721601234567"}}`)
	if r, _ := f.result(t, "after"); !r.OK {
		t.Fatalf("a valid command after invalid ones: %+v", r)
	}
	for _, b := range bad[1:] {
		id := strings.Split(strings.Split(b.body, `"requestId":"`)[1], `"`)[0]
		r, _ := f.result(t, id)
		if r.OK || r.Status != 400 || !strings.Contains(r.Error.Message, b.reason) {
			t.Errorf("%s: result %+v", id, r)
		}
	}
	st, _ := f.js.Stream(context.Background(), "QOD_DLQ")
	cons, err := st.OrderedConsumer(context.Background(), jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for range bad {
		m, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil {
			t.Fatalf("dead letters: %v", err)
		}
		got[string(m.Data())] = m.Headers().Get(command.HeaderDeadLetterReason)
		if m.Headers().Get(command.HeaderRequestID) == "" || !strings.HasPrefix(m.Headers().Get(command.HeaderOriginalSubject), "qod.commands.") {
			t.Errorf("dead letter headers %v", m.Headers())
		}
	}
	for _, b := range bad {
		if !strings.Contains(got[b.body], b.reason) {
			t.Errorf("dead letter of %s has reason %q, want %q", b.body, got[b.body], b.reason)
		}
	}
}

func TestMicroService(t *testing.T) {
	f := newFixture(t)
	in, err := New(context.Background(), f.nc, f.engine(t, nil), Options{Memory: true, Micro: true})
	if err != nil {
		t.Fatal(err)
	}
	commandtest.Start(t, in.Run)
	select {
	case <-in.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("Ready not closed within 10s")
	}
	// Ready promises that every endpoint answers at once, also a request
	// from another connection (an invalid body gets a 400 and has no
	// effect).
	other, _ := natstest.Connect(t, f.nc.ConnectedUrl())
	for _, a := range command.Actions {
		if _, err := other.Request("qod.api."+string(a), []byte("{"), 10*time.Second); err != nil {
			t.Fatalf("qod.api.%s right after Ready: %v", a, err)
		}
	}
	msg, err := f.nc.Request("qod.api.create", []byte(createCmd("m-1", "+36721600000009")), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var r command.Result
	if err := json.Unmarshal(msg.Data, &r); err != nil || !r.OK || r.Status != 201 || r.RequestID != "m-1" {
		t.Fatalf("reply %s (%v)", msg.Data, err)
	}
	msg, err = f.nc.Request("qod.api.get", []byte(`{"sessionId":""}`), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(msg.Data, &r); err != nil || r.OK || r.Status != 400 {
		t.Fatalf("invalid reply %s", msg.Data)
	}
	// The micro service answers directly: nothing in QOD_RESULTS.
	if n := f.count(t, "QOD_RESULTS"); n != 0 {
		t.Fatalf("micro requests published %d results", n)
	}
}

// crashAfterAPI runs the command against the API, then "dies" before the
// result is published: the command stays unacked.
type crashAfterAPI struct {
	e    *command.Engine
	once sync.Once
	died chan struct{}
}

func (c *crashAfterAPI) Execute(ctx context.Context, cmd command.Command) (command.Outcome, error) {
	if _, err := c.e.Execute(ctx, cmd); err != nil {
		return command.Outcome{}, err
	}
	c.once.Do(func() { close(c.died) })
	return command.Outcome{}, errors.New("process killed before the ack")
}

// TestKilledBetweenAPICallAndAck: the first instance creates the session
// and dies before publishing the result (its in-memory store dies with it);
// after a restart exactly one session exists and one result carries it.
func TestKilledBetweenAPICallAndAck(t *testing.T) {
	f := newFixture(t)
	crash := &crashAfterAPI{e: f.engine(t, command.NewMemoryStore(10)), died: make(chan struct{})}
	first := f.start(t, crash, Options{Memory: true, AckWait: time.Hour})
	f.publish(t, "qod.commands.create", createCmd("k-1", "+36721600000077"))
	<-crash.died
	first.Stop(t)

	f.start(t, f.engine(t, command.NewMemoryStore(10)), Options{Memory: true})
	r, h := f.result(t, "k-1")
	if !r.OK {
		t.Fatalf("result after restart %+v", r)
	}
	list, err := f.api.Client.RetrieveSessions(context.Background(), "", json.RawMessage(`{"phoneNumber":"+36721600000077"}`))
	if err != nil || len(list) != 1 || list[0].ID != h.Get("ce-subject") {
		t.Fatalf("sessions %+v (%v), result names %s", list, err, h.Get("ce-subject"))
	}
	if n := f.count(t, "QOD_RESULTS"); n != 1 {
		t.Fatalf("%d results, want 1", n)
	}
}

// TestKVStoreAnswersRedelivery: with the shared store, a create already
// answered is answered again from the store without calling the API.
func TestKVStoreAnswersRedelivery(t *testing.T) {
	f := newFixture(t)
	store, err := NewKVStore(context.Background(), f.js, KVStoreOptions{Memory: true})
	if err != nil {
		t.Fatal(err)
	}
	e := f.engine(t, store)
	cmd, _ := command.Parse([]byte(createCmd("kv-1", "+36721600000055")), command.Create)
	a, err := e.Execute(context.Background(), cmd)
	if err != nil || !a.Result.OK {
		t.Fatalf("%+v %v", a, err)
	}
	// Another instance with its own engine but the same bucket.
	store2, _ := NewKVStore(context.Background(), f.js, KVStoreOptions{Memory: true})
	b, err := f.engine(t, store2).Execute(context.Background(), cmd)
	if err != nil || string(a.Result.JSON()) != string(b.Result.JSON()) || b.SessionID != a.SessionID {
		t.Fatalf("redelivered create: %s vs %s (%v)", a.Result.JSON(), b.Result.JSON(), err)
	}
}

// orderRecorder records the order commands run in, per session.
type orderRecorder struct {
	mu  sync.Mutex
	seq map[string][]string
	n   int
	all chan struct{}
}

func (o *orderRecorder) Execute(_ context.Context, cmd command.Command) (command.Outcome, error) {
	o.mu.Lock()
	o.seq[cmd.SessionID] = append(o.seq[cmd.SessionID], cmd.RequestID)
	o.n++
	if o.n == cap(o.all) {
		close(o.all)
	}
	o.mu.Unlock()
	return command.Outcome{Result: command.Result{RequestID: cmd.RequestID, Action: cmd.Action, OK: true, Status: 200}}, nil
}

func TestCommandsForOneSessionRunInOrder(t *testing.T) {
	f := newFixture(t)
	const sessions, per = 10, 20
	rec := &orderRecorder{seq: map[string][]string{}, all: make(chan struct{}, sessions*per)}
	f.start(t, rec, Options{Memory: true, Lanes: 4})
	for i := range per {
		for s := range sessions {
			f.publish(t, "qod.commands.get", fmt.Sprintf(`{"requestId":"s%d-%03d","sessionId":"s%d"}`, s, i, s))
		}
	}
	select {
	case <-rec.all:
	case <-time.After(30 * time.Second):
		t.Fatal("not every command ran")
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for s, ids := range rec.seq {
		for i := 1; i < len(ids); i++ {
			if ids[i-1] > ids[i] {
				t.Fatalf("session %s ran out of order: %v", s, ids)
			}
		}
	}
}

// blocker holds every command until released, then runs it; with work
// cancelled first it reports the command unfinished.
type blocker struct {
	started chan struct{}
	release chan struct{}
}

func (b *blocker) Execute(ctx context.Context, cmd command.Command) (command.Outcome, error) {
	b.started <- struct{}{}
	select {
	case <-b.release:
		return command.Outcome{Result: command.Result{RequestID: cmd.RequestID, Action: cmd.Action, OK: true, Status: 200}}, nil
	case <-ctx.Done():
		return command.Outcome{}, fmt.Errorf("%w: %w", command.ErrUnfinished, ctx.Err())
	}
}

// TestShutdownFinishesInFlightAndRedeliversTheRest: stopping intake lets
// commands in flight finish and publish; a command cut off by the work
// deadline is redelivered to the next instance.
func TestShutdownFinishesInFlightAndRedeliversTheRest(t *testing.T) {
	f := newFixture(t)
	b := &blocker{started: make(chan struct{}, 1), release: make(chan struct{})}
	r := f.start(t, b, Options{Memory: true, Lanes: 1})
	f.publish(t, "qod.commands.get", `{"requestId":"inflight","sessionId":"a"}`)
	<-b.started
	r.CancelIntake() // SIGTERM: stop fetching
	close(b.release) // the command in flight finishes
	if err := r.Wait(); err != nil {
		t.Fatal(err)
	}
	if res, _ := f.result(t, "inflight"); !res.OK {
		t.Fatalf("in-flight command result %+v", res)
	}

	// Now a command whose work is cut off by the deadline.
	b2 := &blocker{started: make(chan struct{}, 1), release: make(chan struct{})}
	r2 := f.start(t, b2, Options{Memory: true, Lanes: 1})
	f.publish(t, "qod.commands.get", `{"requestId":"cutoff","sessionId":"a"}`)
	<-b2.started
	r2.CancelIntake()
	r2.CancelWork() // the shutdown deadline passed
	r2.Wait()
	f.start(t, f.engine(t, nil), Options{Memory: true})
	if res, _ := f.result(t, "cutoff"); res.RequestID != "cutoff" {
		t.Fatalf("redelivered command result %+v", res)
	}
}

func TestStreamMismatchIsRefused(t *testing.T) {
	f := newFixture(t)
	if _, err := f.js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "QOD_COMMANDS", Subjects: []string{"other.>"}}); err != nil {
		t.Fatal(err)
	}
	_, err := New(context.Background(), f.nc, f.engine(t, nil), Options{})
	if !errors.Is(err, ErrStreamMismatch) || !strings.Contains(err.Error(), "other.>") {
		t.Fatalf("error %v", err)
	}
}

// TestStoppedIntakeHandsBackPrefetchedCommands: commands the stopping
// instance had pulled but not started are nacked, so another instance runs
// them at once, long before AckWait (an hour here) would redeliver them.
func TestStoppedIntakeHandsBackPrefetchedCommands(t *testing.T) {
	f := newFixture(t)
	b := &blocker{started: make(chan struct{}, 100), release: make(chan struct{})}
	first := f.start(t, b, Options{Memory: true, Lanes: 4, AckWait: time.Hour})
	for i := range 20 {
		f.publish(t, "qod.commands.get", fmt.Sprintf(`{"requestId":"pf-%d","sessionId":"s-%d"}`, i, i))
	}
	for range 4 { // every lane runs one; more wait in the first instance's pull buffer
		<-b.started
	}
	first.CancelIntake()
	close(b.release)
	if err := first.Wait(); err != nil {
		t.Fatal(err)
	}
	first.CancelWork()
	f.start(t, &orderRecorder{seq: map[string][]string{}, all: make(chan struct{}, 100)}, Options{Memory: true, AckWait: time.Hour})
	for i := range 20 {
		if r, _ := f.result(t, fmt.Sprintf("pf-%d", i)); r.RequestID == "" {
			t.Fatalf("pf-%d has no result", i)
		}
	}
}
