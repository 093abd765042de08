package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// opStats counts the operations of one phase (requests or publishes) and
// their latency. Safe for concurrent use.
type opStats struct {
	sent, acked, rejected, errors atomic.Int64

	mu       sync.Mutex
	byStatus map[int]int64
	lat      latencyHist
	lag      latencyHist // the schedule's own lateness (loadPlan.lag)
	firstErr error
	// cpu is the process's CPU time during the phase's slices (runRounds).
	cpu time.Duration
}

func newOpStats() *opStats { return &opStats{byStatus: map[int]int64{}} }

// done records one finished operation: status 0 with err for one that got
// no answer, a 2xx status for an acknowledged one, any other status for a
// rejected one. Latency is recorded for acknowledged operations only.
func (s *opStats) done(status int, err error, lat time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err != nil:
		s.errors.Add(1)
		if s.firstErr == nil {
			s.firstErr = err
		}
	case status >= 200 && status < 300:
		s.acked.Add(1)
		s.lat.record(lat)
	default:
		s.rejected.Add(1)
		s.byStatus[status]++
	}
}

// loadPlan is how much load to drive and how.
type loadPlan struct {
	conc  int           // concurrent operations (connections)
	rate  float64       // operations per second; 0 is a closed loop
	dur   time.Duration // stop starting operations after this, always
	count uint64        // stop after this many operations; 0: dur alone
	// lag, when set in rate mode, records how late the schedule itself
	// was: from each operation's due time to its hand-over to a
	// connection, before any wait for a free one. It is the load
	// generator's error, included in the latency measured from the due
	// time. drive's caller reads it after drive returned.
	lag *latencyHist
}

// drive runs op for operation numbers 0, 1, … from plan.conc goroutines
// until plan.count operations were started, plan.dur passed or ctx is done
// (whichever comes first),
// and returns once every started operation finished, with the time that
// took. op gets the time the operation was due to start: in rate mode the
// schedule's time, so that latency measured from it includes the time the
// operation waited for a free connection (no coordinated omission); in a
// closed loop, the time it was started.
func drive(ctx context.Context, plan loadPlan, op func(n uint64, due time.Time)) time.Duration {
	start := time.Now()
	deadline := start.Add(plan.dur)
	more := func(n uint64, at time.Time) bool {
		if plan.count > 0 && n >= plan.count {
			return false
		}
		return at.Before(deadline)
	}
	var wg sync.WaitGroup
	if plan.rate <= 0 {
		var next atomic.Uint64
		for range plan.conc {
			wg.Go(func() {
				for ctx.Err() == nil {
					n := next.Add(1) - 1
					now := time.Now()
					if !more(n, now) {
						return
					}
					op(n, now)
				}
			})
		}
		wg.Wait()
		return time.Since(start)
	}

	type job struct {
		n   uint64
		due time.Time
	}
	// The queue holds no more than one job per connection: when all are
	// busy the schedule waits, and the wait shows in the latency.
	jobs := make(chan job, plan.conc)
	for range plan.conc {
		wg.Go(func() {
			for j := range jobs {
				op(j.n, j.due)
			}
		})
	}
	interval := float64(time.Second) / plan.rate
	pace := newPacer()
	defer pace.stop()
dispatch:
	for n := uint64(0); ; n++ {
		due := start.Add(time.Duration(float64(n) * interval))
		if !more(n, due) {
			break
		}
		if !pace.wait(ctx, due) {
			break
		}
		if plan.lag != nil {
			plan.lag.record(time.Since(due))
		}
		select {
		case jobs <- job{n, due}:
		case <-ctx.Done():
			break dispatch
		}
	}
	close(jobs)
	wg.Wait()
	return time.Since(start)
}

// httpLoad sends notifications to one URL.
type httpLoad struct {
	client *loadClient
	shape  *shaper
	stats  *opStats
	track  *tracker // nil: nobody consumes (the HTTP ceiling)
}

func (l *httpLoad) do(ctx context.Context, n uint64, due time.Time) {
	var hdrs [6]reqHeader // the most a shape sends (binary)
	body, hdr := l.shape.body(n, hdrs[:0])
	first, k := n*uint64(l.shape.batch), l.shape.batch
	l.stats.sent.Add(1)
	if l.track != nil {
		l.track.sending(first, k, due)
	}
	status, err := l.client.post(ctx, hdr, body)
	l.stats.done(status, err, time.Since(due))
	if l.track != nil {
		l.track.answered(first, k, err == nil && status >= 200 && status < 300)
	}
}
