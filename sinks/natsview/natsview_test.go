package natsview_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/sinks/natssink"
	"github.com/qodbridge/qodbridge/sinks/natssink/natstest"
	"github.com/qodbridge/qodbridge/sinks/natsview"
)

func ev(session, id, tm string, st bridge.QoSStatus, info bridge.StatusInfo) bridge.Event {
	return bridge.Event{ID: id, Source: "https://platform.example/qod", Time: tm, SessionID: session, QoSStatus: st, StatusInfo: info}
}

// session is the case for one session: AVAILABLE 10:00,
// DELETE_REQUESTED 10:05, a retried AVAILABLE 10:01, a duplicate, an
// earlier REQUESTED and a later echo of the end.
func session(id string) []bridge.Event {
	return []bridge.Event{
		ev(id, id+"/a", "2026-12-03T10:00:00Z", bridge.StatusAvailable, ""),
		ev(id, id+"/d", "2026-12-03T10:05:00Z", bridge.StatusUnavailable, bridge.InfoDeleteRequested),
		ev(id, id+"/a2", "2026-12-03T10:01:00Z", bridge.StatusAvailable, ""),
		ev(id, id+"/a", "2026-12-03T10:00:00Z", bridge.StatusAvailable, ""),
		ev(id, id+"/r", "2026-12-03T09:59:00Z", bridge.StatusRequested, ""),
		ev(id, id+"/x", "2026-12-03T11:00:00Z", bridge.StatusUnavailable, bridge.InfoDurationExpired),
	}
}

func fold(evs []bridge.Event) bridge.ViewEntry {
	var v bridge.ViewEntry
	for i := range evs {
		v = bridge.MaxView(v, bridge.EntryOf(&evs[i], time.Time{}))
	}
	return v
}

func open(t testing.TB, js jetstream.JetStream, o natsview.Options) *natsview.View {
	t.Helper()
	v, err := natsview.Open(t.Context(), js, o)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// same compares what the rule compares (and Final), not ReceivedAt.
func same(a, b bridge.ViewEntry) bool {
	a.ReceivedAt, b.ReceivedAt = time.Time{}, time.Time{}
	return a == b
}

func permutations(n int) [][]int {
	if n == 0 {
		return [][]int{{}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := append(append(append([]int{}, p[:i]...), n-1), p[i:]...)
			out = append(out, q)
		}
	}
	return out
}

// TestEveryPermutation: every order of the session's events, written to
// the bucket one at a time, leaves the same entry: the DELETE_REQUESTED.
func TestEveryPermutation(t *testing.T) {
	for _, cache := range []int{0, -1} {
		t.Run(fmt.Sprintf("cache=%d", cache), func(t *testing.T) { everyPermutation(t, cache) })
	}
}

func everyPermutation(t *testing.T, cache int) {
	_, js := natstest.Server(t)
	var mu sync.Mutex
	stale := map[bridge.StaleReason]int{}
	v := open(t, js, natsview.Options{CacheSize: cache, OnStale: func(r bridge.StaleReason) { mu.Lock(); stale[r]++; mu.Unlock() }})
	ctx := t.Context()
	perms := permutations(len(session("")))
	for i, p := range perms {
		id := fmt.Sprintf("perm-%d.%d", i, len(p)) // a '.' so the key is escaped
		evs := session(id)
		for _, j := range p {
			if err := v.UpdateView(ctx, time.Now(), evs[j]); err != nil {
				t.Fatal(err)
			}
		}
		got, ok, err := v.Get(ctx, id)
		if err != nil || !ok {
			t.Fatalf("Get %s: %v %v", id, ok, err)
		}
		if want := fold(evs); !same(got, want) || got.ID != id+"/d" {
			t.Fatalf("order %v: %+v, want %+v", p, got, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if stale[bridge.StaleFinal] == 0 || stale[bridge.StaleDuplicate] == 0 {
		t.Errorf("stale counts %v", stale)
	}
}

// TestConcurrentInstances: two instances (two connections, two Views on
// one server), each with many goroutines, update the same sessions with
// every event in shuffled orders; the bucket ends at the rule's maximum.
func TestConcurrentInstances(t *testing.T) {
	srv := natstest.Embedded(t)
	_, js1 := natstest.Connect(t, srv.ClientURL())
	_, js2 := natstest.Connect(t, srv.ClientURL())
	views := []*natsview.View{open(t, js1, natsview.Options{}), open(t, js2, natsview.Options{CacheSize: -1})}
	ctx := t.Context()
	const sessions, workers = 4, 8
	var wg sync.WaitGroup
	errs := make(chan error, len(views)*workers)
	for vi, v := range views {
		for w := range workers {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(vi), uint64(w)))
				for s := range sessions {
					evs := session(fmt.Sprintf("c-%d", s))
					r.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
					for _, e := range evs {
						if err := v.UpdateView(ctx, time.Now(), e); err != nil {
							errs <- err
							return
						}
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for s := range sessions {
		id := fmt.Sprintf("c-%d", s)
		got, ok, err := views[1].Get(ctx, id)
		if err != nil || !ok || !same(got, fold(session(id))) {
			t.Fatalf("%s: %+v %v %v, want %+v", id, got, ok, err, fold(session(id)))
		}
	}
}

// TestConcurrentRace: racing writers where each holds one distinct event
// of a session that only advances: no update is lost, the latest wins.
func TestConcurrentRace(t *testing.T) {
	srv := natstest.Embedded(t)
	_, js1 := natstest.Connect(t, srv.ClientURL())
	_, js2 := natstest.Connect(t, srv.ClientURL())
	views := []*natsview.View{open(t, js1, natsview.Options{}), open(t, js2, natsview.Options{})}
	base := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	const n = 64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			e := ev("race", fmt.Sprint(i), base.Add(time.Duration(i)*time.Second).Format(time.RFC3339), bridge.StatusAvailable, "")
			if err := views[i%2].UpdateView(t.Context(), time.Now(), e); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got, _, err := views[0].Get(t.Context(), "race")
	if err != nil || got.ID != fmt.Sprint(n-1) {
		t.Fatalf("%+v %v, want the event of the latest time (%d)", got, err, n-1)
	}
}

// TestSurvivesRestart: the view is in the server's store: a restarted
// server (same store dir) still has it, and it keeps its rule.
func TestSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	start := func() (*natsview.View, func()) {
		srv, err := natssink.StartEmbedded(natssink.EmbeddedOptions{Address: "127.0.0.1:0", StoreDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		nc, js := natstest.Connect(t, srv.ClientURL())
		return open(t, js, natsview.Options{}), func() { nc.Close(); srv.Shutdown(); srv.WaitForShutdown() }
	}
	v, stop := start()
	evs := session("restart")
	if err := v.UpdateView(t.Context(), time.Now(), evs[:2]...); err != nil {
		t.Fatal(err)
	}
	stop()
	v, stop = start()
	defer stop()
	got, ok, err := v.Get(t.Context(), "restart")
	if err != nil || !ok || got.ID != "restart/d" {
		t.Fatalf("after restart: %+v %v %v", got, ok, err)
	}
	if err := v.UpdateView(t.Context(), time.Now(), evs[2]); err != nil { // the retried AVAILABLE
		t.Fatal(err)
	}
	if got, _, _ := v.Get(t.Context(), "restart"); got.ID != "restart/d" {
		t.Fatalf("a stale event after the restart replaced the end: %+v", got)
	}
}

// TestEndedEntryExpires: an ended session's entry has the retention as its
// TTL; a session that goes on is kept.
func TestEndedEntryExpires(t *testing.T) {
	_, js := natstest.Server(t)
	v := open(t, js, natsview.Options{Retention: time.Second})
	ctx := t.Context()
	evs := session("ends")
	if err := v.UpdateView(ctx, time.Now(), evs[0], evs[1], ev("lives", "l", "", bridge.StatusAvailable, "")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	w, err := v.Bucket().Watch(ctx, natsview.Key("ends"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Stop() }()
	for {
		_, ok, err := v.Get(ctx, "ends")
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the ended session's entry did not expire")
		}
		select { // wake on the expiry's delete marker
		case <-w.Updates():
		case <-time.After(time.Until(deadline)):
		}
	}
	if _, ok, _ := v.Get(ctx, "lives"); !ok {
		t.Fatal("the live session's entry expired")
	}
}

// TestRebuild: the view rebuilt from the status stream equals the rule's
// maximum of every event stored, and a rebuild over a view that lost an
// update (the bridge stopped between history and view) repairs it.
func TestRebuild(t *testing.T) {
	nc, js := natstest.Server(t)
	ctx := t.Context()
	for _, structured := range []bool{false, true} {
		prefix := fmt.Sprintf("r%v", structured)
		stream := fmt.Sprintf("R_%v", structured)
		sink, err := natssink.New(ctx, nc, natssink.Options{Prefix: prefix, Structured: structured, Stream: natssink.StreamOptions{Name: stream}})
		if err != nil {
			t.Fatal(err)
		}
		evs := append(session("rb-1"), session("rb.2")...)
		if err := sink.Publish(ctx, evs...); err != nil {
			t.Fatal(err)
		}
		v := open(t, js, natsview.Options{Bucket: "VIEW_" + prefix})
		// What a bridge wrote before it stopped: the retried AVAILABLE only.
		if err := v.UpdateView(ctx, time.Now(), evs[2]); err != nil {
			t.Fatal(err)
		}
		st, err := v.Rebuild(ctx, stream, prefix)
		if err != nil {
			t.Fatal(err)
		}
		if st.Read != len(evs)-2 || st.Undecodable != 0 { // the two duplicates are stored once
			t.Errorf("rebuild read %+v, want %d messages", st, len(evs)-2)
		}
		for _, id := range []string{"rb-1", "rb.2"} {
			got, ok, err := v.Get(ctx, id)
			if err != nil || !ok || !same(got, fold(session(id))) {
				t.Errorf("%s: %+v %v %v", id, got, ok, err)
			}
		}
		all, err := v.Entries(ctx, 0)
		if err != nil || len(all) != 2 {
			t.Errorf("Entries: %d %v", len(all), err)
		}
		_ = sink.Close()
	}
}

// FuzzViewKV writes the events the fuzzer makes through the bucket, then
// checks that the entry equals the rule's maximum of them.
func FuzzViewKV(f *testing.F) {
	f.Add([]byte{0, 1, 1, 1, 2, 5, 2, 4, 2, 3, 0, 0})
	f.Add([]byte{1, 1, 2, 2, 2, 3, 3, 3, 2, 4, 1, 8, 5, 5, 11})
	f.Add([]byte{7, 0, 9, 7, 0, 9, 1, 5, 0})
	_, js := natstest.Server(f)
	v := open(f, js, natsview.Options{})
	times := []string{"", "2026-01-01T10:00:00Z", "2026-01-01T11:00:00+01:00", "2026-01-01T09:00:00Z", "2026-01-01T12:00:00Z"}
	statuses := []bridge.QoSStatus{bridge.StatusRequested, bridge.StatusAvailable, bridge.StatusUnavailable}
	infos := []bridge.StatusInfo{"", bridge.InfoDurationExpired, bridge.InfoNetworkTerminated, bridge.InfoDeleteRequested}
	var n int
	var mu sync.Mutex
	f.Fuzz(func(t *testing.T, data []byte) {
		mu.Lock()
		n++
		id := fmt.Sprintf("fz-%d", n)
		mu.Unlock()
		var evs []bridge.Event
		for i := 0; i+3 <= len(data) && len(evs) < 10; i += 3 {
			evs = append(evs, ev(id, fmt.Sprint(data[i]%4), times[int(data[i+1])%len(times)],
				statuses[int(data[i+2])%3], infos[int(data[i+2]/3)%4]))
		}
		if len(evs) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, e := range evs {
			if err := v.UpdateView(ctx, time.Now(), e); err != nil {
				t.Fatal(err)
			}
		}
		got, ok, err := v.Get(ctx, id)
		if err != nil || !ok || !same(got, fold(evs)) {
			t.Fatalf("%+v %v %v, want %+v", got, ok, err, fold(evs))
		}
	})
}
