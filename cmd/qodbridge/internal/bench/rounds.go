package bench

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"sync"
	"time"

	"github.com/qodbridge/qodbridge/cmd/qodbridge/internal/process"
)

// Phases are measured in interleaved rounds (-rounds), each phase's
// figures the sum of its slices, so that every phase samples the same
// stretches of a machine whose speed drifts; the package documentation
// has the numbers that made this necessary.

// phaseRun is one kind of load, measured in slices that accumulate into
// stats and took.
type phaseRun struct {
	name   string
	stats  *opStats
	seq    *seqAlloc     // numbers the operations; shared by phases of one tracker
	closed bool          // always a closed loop, whatever the plan's rate (a ceiling is a maximum)
	extra  func() string // appended to the progress line; nil for nothing
	// run drives one slice with plan, its operations numbered from
	// first, and returns how long that took.
	run  func(ctx context.Context, plan loadPlan, first uint64) time.Duration
	took time.Duration
	// before and after, when set, run around each slice, outside the
	// settling (the bridge phase's CPU profile).
	before, after func()
}

// seqAlloc hands out operation numbers to the slices of phases that share
// a tracker, so that no two operations of a run send the same event.
type seqAlloc struct{ next uint64 }

// runRounds runs phases round-robin, rounds times over, each slice
// getting its share of plan's duration or count. Each slice starts
// settled. It stops early when ctx is done.
func runRounds(ctx context.Context, phases []*phaseRun, plan loadPlan, rounds int, prog *progressPrinter) {
	if plan.count > 0 {
		rounds = int(min(uint64(rounds), plan.count))
	}
	for r := range rounds {
		slice := plan
		slice.dur = plan.dur / time.Duration(rounds)
		if plan.count > 0 {
			slice.count = plan.count / uint64(rounds)
			if r == rounds-1 {
				slice.count += plan.count % uint64(rounds)
			}
		}
		for _, p := range phases {
			if ctx.Err() != nil {
				return
			}
			sp := slice
			if p.closed {
				sp.rate = 0
			}
			sp.lag = &p.stats.lag
			name := p.name
			if rounds > 1 {
				name = fmt.Sprintf("%s %d/%d", p.name, r+1, rounds)
			}
			settle()
			if p.before != nil {
				p.before()
			}
			sent := p.stats.sent.Load()
			first := p.seq.next
			cpu := process.CPUTime()
			stop := prog.start(name, p.stats, p.extra)
			p.took += p.run(ctx, sp, first)
			stop()
			p.stats.cpu += process.CPUTime() - cpu
			p.seq.next = first + uint64(p.stats.sent.Load()-sent)
			if p.after != nil {
				p.after()
			}
		}
	}
}

// result is the phase's figures so far.
func (p *phaseRun) result(batch int) phaseStats { return phaseFrom(p.stats, p.took, batch) }

// progressPrinter prints one line per interval while a phase runs.
type progressPrinter struct {
	w     io.Writer
	every time.Duration
}

// start prints progress of st until the returned function is called, which
// waits for the printer to stop.
func (p *progressPrinter) start(name string, st *opStats, extra func() string) func() {
	if p.every <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t0 := time.Now()
		tick := time.NewTicker(p.every)
		defer tick.Stop()
		var lastAcked int64
		last := t0
		for {
			select {
			case <-done:
				return
			case now := <-tick.C:
				acked := st.acked.Load()
				rate := float64(acked-lastAcked) / now.Sub(last).Seconds()
				lastAcked, last = acked, now
				x := ""
				if extra != nil {
					x = extra()
				}
				fmt.Fprintf(p.w, "bench: %-19s %6.1fs  sent %d  acked %d  rejected %d  errors %d%s  %.0f/s\n",
					name, now.Sub(t0).Seconds(), st.sent.Load(), acked, st.rejected.Load(), st.errors.Load(), x, rate)
			}
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
		})
	}
}

// settle starts a measured phase from the same state as the others: no
// garbage of the previous phase left to collect and no dirty pages of its
// stream files left for the kernel to write back meanwhile. Without it,
// the phase that runs after the ceilings (which store some 400,000 events)
// was measured 20 % slower than the same phase run alone.
func settle() {
	runtime.GC()
	flushDirtyPages()
}
