package qodsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

// TestConcurrentSessions creates 1,000 sessions from 32 goroutines, deletes
// every fourth while AVAILABLE and lets the rest expire, with a receiver
// that refuses the first attempt of about half the notifications. Each
// session's notifications must arrive in order: AVAILABLE accepted before
// any attempt of its UNAVAILABLE, each exactly once accepted, a retry with
// the same id.
func TestConcurrentSessions(t *testing.T) {
	const (
		sessions = 1000
		workers  = 32
	)
	clk := NewManualClock(epoch)
	rc := newReceiver(t, true) // plain http: the simulator's leniency, and cheaper than TLS under -race

	type track struct {
		attempts  []notification
		accepted  []notification
		violation string
	}
	var (
		mu     sync.Mutex
		tracks = map[string]*track{}
	)
	rc.answer = func(n notification, prior []notification) (int, string) {
		mu.Lock()
		defer mu.Unlock()
		tr := tracks[n.sessionID()]
		if tr == nil {
			tr = &track{}
			tracks[n.sessionID()] = tr
		}
		if n.status() == "UNAVAILABLE" && (len(tr.accepted) == 0 || tr.accepted[0].status() != "AVAILABLE") && tr.violation == "" {
			tr.violation = fmt.Sprintf("UNAVAILABLE attempted before AVAILABLE was accepted (%d accepted)", len(tr.accepted))
		}
		first := true
		for _, a := range tr.attempts {
			if a.id() == n.id() {
				first = false
			}
		}
		tr.attempts = append(tr.attempts, n)
		// Refuse the first attempt of notifications whose id starts with 0-7.
		if first && n.id()[0] <= '7' {
			return http.StatusServiceUnavailable, ""
		}
		tr.accepted = append(tr.accepted, n)
		return http.StatusNoContent, ""
	}

	sim, err := New(Options{Clock: clk, HTTPClient: rc.client(), RetryBackoff: time.Second, RetryMaxBackoff: time.Second, MaxAttempts: 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	c := newClient(t, sim.Handler())

	ids := make([]string, sessions)
	parallel := func(f func(i int)) {
		var wg sync.WaitGroup
		next := make(chan int)
		for range workers {
			wg.Go(func() {
				for i := range next {
					f(i)
				}
			})
		}
		for i := range sessions {
			next <- i
		}
		close(next)
		wg.Wait()
	}
	parallel(func(i int) {
		a := c.do("POST", BasePathV1+"/sessions", createBody(fmt.Sprintf("+3670%08d", i), rc.url(), fmt.Sprintf("token-%d", i)))
		if a.status != http.StatusCreated {
			t.Errorf("create %d: %d %s", i, a.status, a.body)
			return
		}
		var v struct{ SessionID string }
		if err := json.Unmarshal(a.body, &v); err != nil || v.SessionID == "" {
			t.Errorf("create %d: %v %s", i, err, a.body)
		}
		ids[i] = v.SessionID
	})
	if t.Failed() {
		t.FailNow()
	}

	clk.Advance(time.Second) // all AVAILABLE: 1,000 notifications queued
	parallel(func(i int) {
		if i%4 == 0 {
			if a := c.do("DELETE", BasePathV1+"/sessions/"+ids[i], nil); a.status != http.StatusNoContent {
				t.Errorf("delete %d: %d", i, a.status)
			}
		}
	})
	clk.Advance(3600 * time.Second) // the others expire, while retries may still wait

	done := func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, tr := range tracks {
			n += len(tr.accepted)
		}
		return n == 2*sessions
	}
	waitUntil(t, "2,000 accepted notifications", func() { clk.Advance(time.Second) }, done, rc.signal)
	flush(t, sim)

	mu.Lock()
	defer mu.Unlock()
	if len(tracks) != sessions {
		t.Fatalf("notifications for %d sessions, want %d", len(tracks), sessions)
	}
	retried := 0
	for i, id := range ids {
		tr := tracks[id]
		if tr == nil {
			t.Errorf("session %d: no notifications", i)
			continue
		}
		if tr.violation != "" {
			t.Errorf("session %d: %s", i, tr.violation)
		}
		want := "DURATION_EXPIRED"
		if i%4 == 0 {
			want = "DELETE_REQUESTED"
		}
		if len(tr.accepted) != 2 || tr.accepted[0].status() != "AVAILABLE" || tr.accepted[1].status() != "UNAVAILABLE" || tr.accepted[1].info() != want {
			t.Errorf("session %d: accepted %d notifications, want AVAILABLE then UNAVAILABLE/%s", i, len(tr.accepted), want)
			continue
		}
		if tr.accepted[0].id() == tr.accepted[1].id() {
			t.Errorf("session %d: both notifications have id %s", i, tr.accepted[0].id())
		}
		for _, a := range tr.attempts {
			if a.header.Get("Authorization") != fmt.Sprintf("Bearer token-%d", i) {
				t.Errorf("session %d: Authorization %q", i, a.header.Get("Authorization"))
			}
		}
		retried += len(tr.attempts) - 2
	}
	if retried == 0 {
		t.Error("no notification was retried: the test did not exercise retries")
	}
	t.Logf("%d sessions, %d notifications accepted, %d retries", sessions, 2*sessions, retried)

	sim.mu.Lock()
	defer sim.mu.Unlock()
	if sim.pending != 0 {
		t.Errorf("%d notifications pending", sim.pending)
	}
}
