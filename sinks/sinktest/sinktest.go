// Package sinktest is the conformance suite every qodbridge sink runs: it
// checks a sink against the bridge.Publisher contract and the wire contract
// of the canonical event, by publishing through the sink and reading back
// what the broker stored.
//
// A sink package runs it from a test with a Harness that makes fresh sinks on
// a real in-process broker:
//
//	func TestConformance(t *testing.T) {
//		sinktest.Run(t, sinktest.HarnessFunc(func(ctx context.Context, t testing.TB) (sinktest.Sink, sinktest.Reader) {
//			...
//		}))
//	}
//
// The suite checks, each in its own subtest: that every field of an event
// round-trips and absent ones are left out; the CloudEvents binary-mode
// headers (ce- values percent-encoded, ce_ values verbatim) or the
// structured-mode body; that each
// sessionId, whatever bytes it holds, addresses exactly one session;
// concurrent publishing (everything stored once, per-session order kept for
// sequential publishes); batches; empty publishes; cancelled contexts; and
// Close (flushes, idempotent, later Publish fails with bridge.ErrClosed,
// safe concurrently with Publish).
//
// Imports: bridge of ours only, so that every sink's tests can run it.
package sinktest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/qodbridge/qodbridge/bridge"
)

// Sink is what the suite tests: a publisher that can be closed.
type Sink interface {
	bridge.Publisher
	// Close waits for Publish calls in flight, flushes and releases the
	// sink. It is idempotent and safe to call concurrently with Publish;
	// Publish after Close returns an error wrapping bridge.ErrClosed.
	Close() error
}

// Harness makes sinks for the suite.
type Harness interface {
	// NewSink returns a fresh sink on a fresh or cleanly separated broker
	// namespace (its own server, stream, subject prefix or topic), and a
	// Reader of exactly that namespace. It registers its own cleanup with
	// t.Cleanup, which must tolerate the suite having closed the sink
	// already. It fails t when it cannot.
	NewSink(ctx context.Context, t testing.TB) (Sink, Reader)
}

// HarnessFunc adapts a function to Harness.
type HarnessFunc func(ctx context.Context, t testing.TB) (Sink, Reader)

// NewSink calls f.
func (f HarnessFunc) NewSink(ctx context.Context, t testing.TB) (Sink, Reader) { return f(ctx, t) }

// Reader reads back what a broker holds in one namespace.
type Reader interface {
	// Stored returns every message the broker holds in the namespace,
	// decoded, in the order the broker stored them (at least within a
	// session). The suite calls it only after the Publish calls whose
	// events it looks for returned nil, so those events must be there: an
	// acknowledged event is stored. It may be called after the sink was
	// closed. It fails t when it cannot read.
	Stored(ctx context.Context, t testing.TB) []Stored
}

// ReaderFunc adapts a function to Reader.
type ReaderFunc func(ctx context.Context, t testing.TB) []Stored

// Stored calls f.
func (f ReaderFunc) Stored(ctx context.Context, t testing.TB) []Stored { return f(ctx, t) }

// Stored is one message as the broker holds it.
type Stored struct {
	// Event is the event decoded back from the message (Decode does it for
	// broker messages).
	Event bridge.Event
	// Key is the broker address of the message: the NATS subject or the
	// Kafka record key.
	Key string
	// Headers holds the first value of each message header. Headers and
	// Data are both nil for a sink that keeps events rather than broker
	// messages (memsink); the wire checks are then skipped.
	Headers map[string]string
	// Data is the message body.
	Data []byte
}

// hangGuard bounds every wait of the suite: a sink that has not returned by
// then is taken to hang. It is generous on purpose; it is no timing
// threshold on the sink.
const hangGuard = 60 * time.Second

// Run runs the conformance suite against the sinks h makes, each case in a
// subtest with its own sink.
func Run(t *testing.T, h Harness) {
	t.Helper()
	cases := []struct {
		name string
		fn   func(context.Context, *testing.T, Harness)
	}{
		{"PublishAndObserve", testPublishAndObserve},
		{"CloudEventsWire", testCloudEventsWire},
		{"SessionAddressing", testSessionAddressing},
		{"ConcurrentPublish", testConcurrentPublish},
		{"Batch", testBatch},
		{"EmptyPublish", testEmptyPublish},
		{"CancelledContext", testCancelledContext},
		{"CancelDuringPublish", testCancelDuringPublish},
		{"CloseFlushes", testCloseFlushes},
		{"PublishAfterClose", testPublishAfterClose},
		{"DoubleClose", testDoubleClose},
		{"CloseDuringPublish", testCloseDuringPublish},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 2*hangGuard)
			defer cancel()
			c.fn(ctx, t, h)
		})
	}
}

// sample returns a complete event of session with the given id.
func sample(session, id string) bridge.Event {
	return bridge.Event{
		ID:          id,
		Source:      "https://qod.example.com/notifications",
		Time:        "2024-06-01T12:00:00Z",
		SessionID:   session,
		QoSStatus:   bridge.StatusAvailable,
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	}
}

func publish(ctx context.Context, t testing.TB, s Sink, evs ...bridge.Event) {
	t.Helper()
	if err := s.Publish(ctx, evs...); err != nil {
		t.Fatalf("Publish(%d events): %v", len(evs), err)
	}
}

// bySession groups stored events by session, keeping their stored order.
func bySession(st []Stored) map[string][]Stored {
	m := make(map[string][]Stored)
	for _, s := range st {
		m[s.Event.SessionID] = append(m[s.Event.SessionID], s)
	}
	return m
}

func testPublishAndObserve(ctx context.Context, t *testing.T, h Harness) {
	s, r := h.NewSink(ctx, t)
	events := []bridge.Event{
		{
			ID: "full-1", Source: "https://qod.example.com/a", Time: "2024-06-01T12:00:00.123+02:00",
			SessionID: "3fa85f64-5717-4562-b3fc-2c963f66afa6", QoSStatus: bridge.StatusUnavailable,
			StatusInfo:  bridge.InfoDurationExpired,
			TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
			TraceState:  "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
		},
		{ID: "bare-1", Source: "urn:qod", SessionID: "s-bare", QoSStatus: bridge.StatusRequested},
		{ID: "avail", Source: "urn:qod", SessionID: "s-bare", QoSStatus: bridge.StatusAvailable, Time: "2024-06-01T12:00:01Z"},
		{ID: "nt", Source: "urn:qod", SessionID: "s-bare", QoSStatus: bridge.StatusUnavailable, StatusInfo: bridge.InfoNetworkTerminated},
		{ID: "dr", Source: "urn:qod", SessionID: "s-del", QoSStatus: bridge.StatusUnavailable, StatusInfo: bridge.InfoDeleteRequested, TraceState: "k=v"},
	}
	for _, ev := range events {
		publish(ctx, t, s, ev)
	}
	got := r.Stored(ctx, t)
	if len(got) != len(events) {
		t.Fatalf("stored %d events, want %d: %+v", len(got), len(events), got)
	}
	// Across sessions the broker need not keep the publish order.
	want := map[string]bridge.Event{}
	for _, ev := range events {
		want[ev.ID] = ev
	}
	for _, st := range got {
		w, ok := want[st.Event.ID]
		if !ok {
			t.Errorf("stored unexpected or repeated event %+v", st.Event)
			continue
		}
		delete(want, st.Event.ID)
		if st.Event != w {
			t.Errorf("event round trip:\n got %+v\nwant %+v", st.Event, w)
		}
	}
	// Within a session: publish order.
	var ids []string
	for _, st := range bySession(got)["s-bare"] {
		ids = append(ids, st.Event.ID)
	}
	if !slices.Equal(ids, []string{"bare-1", "avail", "nt"}) {
		t.Errorf("session s-bare stored in order %q, want [bare-1 avail nt]", ids)
	}
}

func testCloudEventsWire(ctx context.Context, t *testing.T, h Harness) {
	s, r := h.NewSink(ctx, t)
	tricky := bridge.Event{
		ID:          `id with spaces "quoted" 100% ünïcødé ✓`,
		Source:      `https://qod.example.com/a b?q="x"&p=%41`,
		Time:        "2024-06-01T12:00:00.5Z",
		SessionID:   "sess ion \"ü\" 50%",
		QoSStatus:   bridge.StatusUnavailable,
		StatusInfo:  bridge.InfoNetworkTerminated,
		TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		TraceState:  "vendor=a b,other=ü",
	}
	bare := bridge.Event{ID: "bare", Source: "urn:qod", SessionID: "s1", QoSStatus: bridge.StatusRequested}
	publish(ctx, t, s, tricky)
	publish(ctx, t, s, bare)

	got := r.Stored(ctx, t)
	if len(got) != 2 {
		t.Fatalf("stored %d events, want 2", len(got))
	}
	for _, st := range got {
		if st.Headers == nil && st.Data == nil {
			t.Skip("sink keeps events, not broker messages: no wire to check")
		}
		var want bridge.Event
		switch st.Event.ID {
		case tricky.ID:
			want = tricky
		case bare.ID:
			want = bare
		default:
			t.Fatalf("stored unexpected event %+v", st.Event)
		}
		if st.Event != want {
			t.Errorf("event round trip:\n got %+v\nwant %+v", st.Event, want)
		}
		checkWire(t, st, want)
	}
}

// checkWire checks one stored message against the canonical wire format:
// binary mode when it carries ce- headers, structured mode otherwise.
func checkWire(t *testing.T, st Stored, want bridge.Event) {
	t.Helper()
	wantAttrs := map[string]string{}
	for _, a := range want.Attributes() {
		wantAttrs[a.Name] = a.Value
	}
	ct, _ := Header(st.Headers, "content-type")
	attrs, err := CEAttributes(st.Headers)
	if err != nil {
		t.Fatalf("headers %q: %v", st.Headers, err)
	}
	if len(attrs) == 0 { // structured mode
		if ct != ContentTypeStructured {
			t.Errorf("no ce- headers and content type %q: want binary mode or %q", ct, ContentTypeStructured)
		}
		ev, err := DecodeStructured(st.Data)
		if err != nil {
			t.Fatalf("structured body %s: %v", st.Data, err)
		}
		if ev != want {
			t.Errorf("structured body decodes to %+v, want %+v", ev, want)
		}
		if string(st.Data) != string(want.StructuredJSON()) {
			t.Errorf("structured body\n got %s\nwant %s", st.Data, want.StructuredJSON())
		}
		return
	}
	if ct != ContentTypeBinary {
		t.Errorf("binary mode content type %q, want %q", ct, ContentTypeBinary)
	}
	if !maps.Equal(attrs, wantAttrs) {
		t.Errorf("ce- attributes\n got %q\nwant %q", attrs, wantAttrs)
	}
	// ce- values travel percent-encoded (HTTP and NATS bindings), exactly
	// as bridge.HeaderValue encodes them; ce_ values (Kafka binding) travel
	// as they are.
	for k, v := range st.Headers {
		if len(k) <= 3 {
			continue
		}
		name := k[3:]
		switch k[:3] {
		case "ce-":
			if v != bridge.HeaderValue(wantAttrs[name]) {
				t.Errorf("header %s = %q, want %q", k, v, bridge.HeaderValue(wantAttrs[name]))
			}
		case "ce_":
			if v != wantAttrs[name] {
				t.Errorf("header %s = %q, want %q (the Kafka binding does not percent-encode)", k, v, wantAttrs[name])
			}
		}
	}
	if string(st.Data) != string(want.Data()) {
		t.Errorf("body\n got %s\nwant %s", st.Data, want.Data())
	}
}

func testSessionAddressing(ctx context.Context, t *testing.T, h Harness) {
	s, r := h.NewSink(ctx, t)
	sessions := []string{
		"plain", "a.b", "a%2Eb", "a.b.c", "..", "a*b", "*", "a>b", ">", "qod.status.>",
		"with space", " ", "tab\there", "ünïcødé-✓", "日本", "100%", "\x00\x7f",
	}
	for i, id := range sessions {
		publish(ctx, t, s, sample(id, fmt.Sprintf("addr-%d-a", i)))
	}
	for i, id := range sessions {
		publish(ctx, t, s, sample(id, fmt.Sprintf("addr-%d-b", i)))
	}
	got := r.Stored(ctx, t)
	if len(got) != 2*len(sessions) {
		t.Fatalf("stored %d events, want %d", len(got), 2*len(sessions))
	}
	groups := bySession(got)
	keys := map[string]string{} // key -> session
	for i, id := range sessions {
		g := groups[id]
		if len(g) != 2 {
			t.Errorf("session %q: stored %d events, want 2", id, len(g))
			continue
		}
		if g[0].Key != g[1].Key {
			t.Errorf("session %q stored under two keys %q and %q", id, g[0].Key, g[1].Key)
		}
		if g[0].Event.ID != fmt.Sprintf("addr-%d-a", i) || g[1].Event.ID != fmt.Sprintf("addr-%d-b", i) {
			t.Errorf("session %q: stored %q then %q, want publish order", id, g[0].Event.ID, g[1].Event.ID)
		}
		if other, dup := keys[g[0].Key]; dup {
			t.Errorf("sessions %q and %q share the key %q", other, id, g[0].Key)
		}
		keys[g[0].Key] = id
	}
}

func testConcurrentPublish(ctx context.Context, t *testing.T, h Harness) {
	const goroutines, perG, sessions = 32, 50, 8
	s, r := h.NewSink(ctx, t)
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for i := range perG {
				// Goroutines share sessions, so each session sees
				// interleaved publishers; each goroutine's own events
				// must still keep their order within a session.
				ev := sample(fmt.Sprintf("conc-%d", (g+i)%sessions), fmt.Sprintf("g%d-%d", g, i))
				if err := s.Publish(ctx, ev); err != nil {
					errs <- fmt.Errorf("goroutine %d event %d: %w", g, i, err)
					return
				}
			}
		})
	}
	waitGroup(t, &wg, "concurrent publishers")
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := r.Stored(ctx, t)
	seen := map[string]bool{}
	for _, st := range got {
		if seen[st.Event.ID] {
			t.Errorf("event %s stored twice", st.Event.ID)
		}
		seen[st.Event.ID] = true
	}
	if len(seen) != goroutines*perG {
		t.Fatalf("stored %d distinct events, want %d", len(seen), goroutines*perG)
	}
	for sess, g := range bySession(got) {
		last := map[int]int{} // goroutine -> last index seen
		for _, st := range g {
			var gi, i int
			if _, err := fmt.Sscanf(st.Event.ID, "g%d-%d", &gi, &i); err != nil {
				t.Fatalf("unexpected id %q", st.Event.ID)
			}
			if prev, ok := last[gi]; ok && i <= prev {
				t.Errorf("session %s: goroutine %d's event %d stored after its event %d", sess, gi, i, prev)
			}
			last[gi] = i
		}
	}
}

func testBatch(ctx context.Context, t *testing.T, h Harness) {
	s, r := h.NewSink(ctx, t)
	var batch []bridge.Event
	for i := range 25 {
		batch = append(batch, sample(fmt.Sprintf("batch-%d", i%3), fmt.Sprintf("b-%02d", i)))
	}
	publish(ctx, t, s, batch...)
	got := r.Stored(ctx, t)
	if len(got) != len(batch) {
		t.Fatalf("stored %d events, want %d", len(got), len(batch))
	}
	groups := bySession(got)
	for sess := range 3 {
		var gotIDs, wantIDs []string
		for _, st := range groups[fmt.Sprintf("batch-%d", sess)] {
			gotIDs = append(gotIDs, st.Event.ID)
		}
		for i := sess; i < len(batch); i += 3 {
			wantIDs = append(wantIDs, batch[i].ID)
		}
		if !slices.Equal(gotIDs, wantIDs) {
			t.Errorf("session batch-%d stored %q, want %q (call order)", sess, gotIDs, wantIDs)
		}
	}
}

func testEmptyPublish(ctx context.Context, t *testing.T, h Harness) {
	s, r := h.NewSink(ctx, t)
	if err := s.Publish(ctx); err != nil {
		t.Errorf("Publish() = %v, want nil", err)
	}
	if err := s.Publish(ctx, []bridge.Event{}...); err != nil {
		t.Errorf("Publish(empty slice) = %v, want nil", err)
	}
	// A sentinel proves the namespace is readable and nothing else landed.
	publish(ctx, t, s, sample("empty", "sentinel"))
	if got := r.Stored(ctx, t); len(got) != 1 || got[0].Event.ID != "sentinel" {
		t.Errorf("stored %+v, want only the sentinel", got)
	}
}

func testCancelledContext(ctx context.Context, t *testing.T, h Harness) {
	s, _ := h.NewSink(ctx, t)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	err := callWithin(t, func() error { return s.Publish(cctx, sample("cancel", "c1")) })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Publish with cancelled ctx = %v, want error wrapping context.Canceled", err)
	}
	dctx, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancel()
	err = callWithin(t, func() error { return s.Publish(dctx, sample("cancel", "c2"), sample("cancel", "c3")) })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Publish with expired ctx = %v, want error wrapping context.DeadlineExceeded", err)
	}
}

func testCancelDuringPublish(ctx context.Context, t *testing.T, h Harness) {
	s, r := h.NewSink(ctx, t)
	var batch []bridge.Event
	for i := range 200 {
		batch = append(batch, sample("cancel-during", fmt.Sprintf("cd-%03d", i)))
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Publish(cctx, batch...) }()
	cancel()
	select {
	case err := <-done:
		// Whether the sink finished first is a race the suite cannot
		// steer; if it did not, it must say why.
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Publish cancelled mid-way = %v, want nil or an error wrapping context.Canceled", err)
		}
	case <-time.After(hangGuard):
		t.Fatal("Publish did not return after its ctx was cancelled")
	}
	// The sink stays usable after a cancelled call.
	publish(ctx, t, s, sample("after-cancel", "ac-1"))
	found := false
	for _, st := range r.Stored(ctx, t) {
		found = found || st.Event.ID == "ac-1"
	}
	if !found {
		t.Error("event published after a cancelled call was not stored")
	}
}

func testCloseFlushes(ctx context.Context, t *testing.T, h Harness) {
	s, r := h.NewSink(ctx, t)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 10 {
				if err := s.Publish(ctx, sample(fmt.Sprintf("flush-%d", g), fmt.Sprintf("f%d-%d", g, i))); err != nil {
					t.Errorf("Publish: %v", err)
					return
				}
			}
		})
	}
	waitGroup(t, &wg, "publishers")
	if err := callWithin(t, s.Close); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := r.Stored(ctx, t); len(got) != 40 {
		t.Errorf("after Close %d events stored, want the 40 acknowledged ones", len(got))
	}
}

func testPublishAfterClose(ctx context.Context, t *testing.T, h Harness) {
	s, r := h.NewSink(ctx, t)
	publish(ctx, t, s, sample("closed", "before"))
	if err := callWithin(t, s.Close); err != nil {
		t.Fatalf("Close: %v", err)
	}
	err := callWithin(t, func() error { return s.Publish(ctx, sample("closed", "after")) })
	if !errors.Is(err, bridge.ErrClosed) {
		t.Errorf("Publish after Close = %v, want error wrapping bridge.ErrClosed", err)
	}
	for _, st := range r.Stored(ctx, t) {
		if st.Event.ID == "after" {
			t.Error("event published after Close was stored")
		}
	}
}

func testDoubleClose(ctx context.Context, t *testing.T, h Harness) {
	s, _ := h.NewSink(ctx, t)
	publish(ctx, t, s, sample("double", "d1"))
	if err := callWithin(t, s.Close); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	if err := callWithin(t, s.Close); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	s2, _ := h.NewSink(ctx, t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if err := s2.Close(); err != nil {
				t.Errorf("concurrent Close = %v, want nil", err)
			}
		})
	}
	waitGroup(t, &wg, "concurrent Close calls")
}

func testCloseDuringPublish(ctx context.Context, t *testing.T, h Harness) {
	const publishers = 8
	s, r := h.NewSink(ctx, t)
	var (
		mu    sync.Mutex
		acked = map[string]bool{}
		wg    sync.WaitGroup
	)
	enough := make(chan struct{})
	var once sync.Once
	for g := range publishers {
		wg.Go(func() {
			for i := 0; ; i++ {
				ev := sample(fmt.Sprintf("race-%d", g), fmt.Sprintf("r%d-%d", g, i))
				err := s.Publish(ctx, ev)
				if err != nil {
					if !errors.Is(err, bridge.ErrClosed) {
						t.Errorf("Publish racing Close = %v, want nil or bridge.ErrClosed", err)
					}
					return
				}
				mu.Lock()
				acked[ev.ID] = true
				if len(acked) >= 4*publishers {
					once.Do(func() { close(enough) })
				}
				mu.Unlock()
			}
		})
	}
	select {
	case <-enough:
	case <-time.After(hangGuard):
		t.Fatal("publishers made no progress")
	}
	if err := callWithin(t, s.Close); err != nil {
		t.Errorf("Close racing Publish = %v", err)
	}
	waitGroup(t, &wg, "publishers after Close")

	stored := map[string]bool{}
	for _, st := range r.Stored(ctx, t) {
		stored[st.Event.ID] = true
	}
	for id := range acked {
		if !stored[id] {
			t.Errorf("event %s was acknowledged before Close but is not stored", id)
		}
	}
}

// callWithin runs fn and fails t if it does not return within hangGuard.
func callWithin(t *testing.T, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-time.After(hangGuard):
		t.Fatal("call did not return: the sink hangs")
		return nil
	}
}

func waitGroup(t *testing.T, wg *sync.WaitGroup, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(hangGuard):
		t.Fatalf("%s did not finish: the sink hangs", what)
	}
}
