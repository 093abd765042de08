package bench

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestRunRounds: every phase runs once per round, in order, each slice
// with its share of the count (the remainder in the last), operation
// numbers of phases sharing an allocator never overlap, a ceiling runs
// closed loop whatever the plan's rate, and the stats add up.
func TestRunRounds(t *testing.T) {
	var order []string
	shared := &seqAlloc{}
	seen := map[uint64]string{}
	mk := func(name string, seq *seqAlloc, closed bool) *phaseRun {
		st := newOpStats()
		return &phaseRun{name: name, stats: st, seq: seq, closed: closed,
			run: func(_ context.Context, plan loadPlan, first uint64) time.Duration {
				order = append(order, fmt.Sprintf("%s:%d", name, plan.count))
				if closed && plan.rate != 0 {
					t.Errorf("%s ran at rate %g, want a closed loop", name, plan.rate)
				}
				for n := first; n < first+plan.count; n++ {
					if seq == shared {
						if other, dup := seen[n]; dup {
							t.Errorf("operation %d of %s already sent by %s", n, name, other)
						}
						seen[n] = name
					}
					st.sent.Add(1)
					st.done(204, nil, time.Millisecond)
				}
				return time.Second
			}}
	}
	a, b, c := mk("a", shared, true), mk("b", shared, false), mk("c", &seqAlloc{}, false)
	runRounds(context.Background(), []*phaseRun{a, b, c}, loadPlan{conc: 1, rate: 50, dur: time.Hour, count: 10}, 3, &progressPrinter{})
	want := "a:3 b:3 c:3 a:3 b:3 c:3 a:4 b:4 c:4"
	if got := strings.Join(order, " "); got != want {
		t.Errorf("slices %s, want %s", got, want)
	}
	for _, p := range []*phaseRun{a, b, c} {
		if r := p.result(1); r.Sent != 10 || r.Acked != 10 || r.Seconds != 3 || r.Latency == nil || r.Latency.Count != 10 {
			t.Errorf("%s: %+v", p.name, r)
		}
	}
	if len(seen) != 20 || shared.next != 20 || c.seq.next != 10 {
		t.Errorf("numbered %d operations of the shared allocator (next %d), c's next %d; want 20, 20, 10", len(seen), shared.next, c.seq.next)
	}
}
