package ingress

import (
	"container/list"
	"hash/maphash"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter is a token bucket per client address, with a bounded number of
// addresses kept: a least-recently-seen list per shard, so that a request
// costs O(1) whatever the number of addresses (the address it forgets is
// the one seen longest ago, whose bucket is the likeliest to be full
// again), and the shards spread the lock.
type limiter struct {
	rate   rate.Limit
	burst  int
	seed   maphash.Seed
	shards []limiterShard
}

// limiterShards is the most shards a limiter has (fewer when it keeps
// fewer addresses, so that the bound holds).
const limiterShards = 16

type limiterShard struct {
	mu    sync.Mutex
	max   int
	byKey map[string]*list.Element // of *source
	lru   list.List                // front: most recently seen
}

type source struct {
	key string
	lim *rate.Limiter
}

func newLimiter(perSecond float64, burst, maxSources int) *limiter {
	if burst <= 0 {
		burst = max(1, int(perSecond))
	}
	if maxSources <= 0 {
		maxSources = 10000
	}
	n := min(limiterShards, maxSources)
	l := &limiter{rate: rate.Limit(perSecond), burst: burst, seed: maphash.MakeSeed(), shards: make([]limiterShard, n)}
	for i := range l.shards {
		l.shards[i].max = maxSources / n
		l.shards[i].byKey = map[string]*list.Element{}
	}
	return l
}

// allow takes a token for client (an address: see clientAddr); when none
// is left it returns false and how long until one is.
func (l *limiter) allow(client string, now time.Time) (bool, time.Duration) {
	sh := &l.shards[maphash.String(l.seed, client)%uint64(len(l.shards))]
	sh.mu.Lock()
	var s *source
	if e, ok := sh.byKey[client]; ok {
		sh.lru.MoveToFront(e)
		s = e.Value.(*source)
	} else {
		if sh.lru.Len() >= sh.max {
			oldest := sh.lru.Back()
			sh.lru.Remove(oldest)
			delete(sh.byKey, oldest.Value.(*source).key)
		}
		s = &source{key: client, lim: rate.NewLimiter(l.rate, l.burst)}
		sh.byKey[client] = sh.lru.PushFront(s)
	}
	sh.mu.Unlock()
	r := s.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// size reports how many addresses are kept (for tests).
func (l *limiter) size() int {
	n := 0
	for i := range l.shards {
		l.shards[i].mu.Lock()
		n += l.shards[i].lru.Len()
		l.shards[i].mu.Unlock()
	}
	return n
}
