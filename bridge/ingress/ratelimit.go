package ingress

import (
	"net"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter is a token bucket per source address, with a bounded number of
// sources: when full, sources idle for a while are forgotten first, then
// the oldest, so memory stays bounded under address churn.
type limiter struct {
	rate  rate.Limit
	burst int
	max   int

	mu      sync.Mutex
	sources map[string]*source
}

type source struct {
	lim  *rate.Limiter
	seen time.Time
}

func newLimiter(perSecond float64, burst, maxSources int) *limiter {
	if burst <= 0 {
		burst = max(1, int(perSecond))
	}
	if maxSources <= 0 {
		maxSources = 10000
	}
	return &limiter{rate: rate.Limit(perSecond), burst: burst, max: maxSources, sources: map[string]*source{}}
}

// allow takes a token for the request's source; when none is left it
// returns false and how long until one is.
func (l *limiter) allow(remoteAddr string, now time.Time) (bool, time.Duration) {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	l.mu.Lock()
	s, ok := l.sources[host]
	if !ok {
		if len(l.sources) >= l.max {
			l.evictLocked(now)
		}
		s = &source{lim: rate.NewLimiter(l.rate, l.burst)}
		l.sources[host] = s
	}
	s.seen = now
	l.mu.Unlock()
	r := s.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// evictLocked drops sources idle long enough to have a full bucket again
// (forgetting them changes nothing), or else the least recently seen one.
func (l *limiter) evictLocked(now time.Time) {
	full := time.Duration(float64(l.burst) / float64(l.rate) * float64(time.Second))
	var oldest string
	var oldestSeen time.Time
	for k, s := range l.sources {
		if now.Sub(s.seen) >= full {
			delete(l.sources, k)
			continue
		}
		if oldest == "" || s.seen.Before(oldestSeen) {
			oldest, oldestSeen = k, s.seen
		}
	}
	if len(l.sources) >= l.max {
		delete(l.sources, oldest)
	}
}
