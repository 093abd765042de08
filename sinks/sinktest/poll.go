package sinktest

import "time"

// Poll calls cond every interval until it returns true or within has
// passed, and reports whether it did. It is for tests waiting on state that
// has no event to wait on (a broker's asynchronous acks, a count in a
// stream): they wait on a condition with a deadline, never for a fixed
// time. cond runs on the caller's goroutine, first at once.
func Poll(within, interval time.Duration, cond func() bool) bool {
	if cond() {
		return true
	}
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if cond() {
				return true
			}
		case <-deadline.C:
			return cond()
		}
	}
}
