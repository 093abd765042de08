package command

import (
	"hash/fnv"
	"sync"
	"sync/atomic"
)

// DefaultLanes is how many commands an intake runs at once unless told
// otherwise: the NATS and the Kafka intake share it.
const DefaultLanes = 16

// Lanes is the per-session dispatcher every intake runs its commands on: a
// fixed number of workers, each taking jobs from its own unbuffered
// channel. Jobs with the same ordering key (Command.OrderingKey) always go
// to the same worker, so a session's commands run one after another in the
// order they were dispatched; jobs without a key are spread round robin.
// At most n jobs run at once, and Dispatch blocks while the job's worker
// is busy: that is the intake's backpressure, there is no queue.
type Lanes[J any] struct {
	lanes []chan J
	wg    sync.WaitGroup
	rr    atomic.Uint32
}

// NewLanes starts n workers (at least one) that call handle for each job
// dispatched to them. handle must not panic: a panic ends the process, as
// in any goroutine; Handle recovers the ones in command handling.
func NewLanes[J any](n int, handle func(J)) *Lanes[J] {
	l := &Lanes[J]{lanes: make([]chan J, max(n, 1))}
	for i := range l.lanes {
		ch := make(chan J)
		l.lanes[i] = ch
		l.wg.Go(func() {
			for j := range ch {
				handle(j)
			}
		})
	}
	return l
}

// Dispatch hands j to the worker of key ("" for none) and returns true once
// the worker took it, or false, without handing it over, when done is
// closed first (a nil done never is). It is safe for concurrent use, but
// not concurrently with or after Close.
func (l *Lanes[J]) Dispatch(done <-chan struct{}, key string, j J) bool {
	select {
	case l.lanes[l.lane(key)] <- j:
		return true
	case <-done:
		return false
	}
}

func (l *Lanes[J]) lane(key string) int {
	if key == "" {
		return int(l.rr.Add(1) % uint32(len(l.lanes)))
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % uint32(len(l.lanes)))
}

// Close lets the workers finish the jobs they hold and waits for them. Call
// it once, after the last Dispatch returned.
func (l *Lanes[J]) Close() {
	for _, ch := range l.lanes {
		close(ch)
	}
	l.wg.Wait()
}
