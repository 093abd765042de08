package bench

import (
	"context"
	"time"
)

// pacer sleeps an open-loop schedule's dispatcher until each send is due.
//
// It uses a Go timer. When the process is idle the runtime waits for
// timers in epoll_wait, whose timeout has millisecond resolution, so a
// 133 µs wait (7,500 requests/s) can take a millisecond and the schedule
// then releases its requests in small bursts; the schedule lag in the
// report shows it. Tried and dropped: nanosleep on a locked thread, which
// wakes within 80 µs when the process is idle, but then waits for a P
// behind the server's goroutines when it is not: in a half-peak run its
// schedule lag was 11.6 ms at p99 (the timer's: 3.5-6 ms) and the
// bridge's p99 19.8 ms (8.5-13 ms).
type pacer struct {
	timer *time.Timer
}

func newPacer() *pacer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &pacer{timer: t}
}

// wait returns when due has come, or false once ctx is done.
func (p *pacer) wait(ctx context.Context, due time.Time) bool {
	if d := time.Until(due); d > 0 {
		p.timer.Reset(d)
		select {
		case <-p.timer.C:
		case <-ctx.Done():
			p.timer.Stop()
			return false
		}
	}
	return ctx.Err() == nil
}

func (p *pacer) stop() { p.timer.Stop() }
