package bench

import (
	"context"
	"sync"
	"time"
)

// tracker is the correctness accounting of the bridge run, per event:
// sent, acknowledged (2xx), received by the consumer, received twice. It
// keeps two bits per event sent plus the send time of events not yet
// received, so its memory is bounded by the events in flight and the lost
// ones, not by the length of the run. Safe for concurrent use.
type tracker struct {
	epoch time.Time // the send and receive times are durations since this

	mu       sync.Mutex
	sentAt   map[uint64]time.Duration // since epoch; until received or rejected
	acked    bitset
	received bitset
	sent     uint64 // events sent: one past the highest sequence number

	nAcked, nReceived, nAckedReceived, nDup, nForeign int64
	e2e                                               latencyHist
}

func newTracker(epoch time.Time) *tracker {
	return &tracker{epoch: epoch, sentAt: map[uint64]time.Duration{}}
}

// sending records that events first … first+k-1 are sent, as of at.
func (t *tracker) sending(first uint64, k int, at time.Time) {
	since := at.Sub(t.epoch)
	t.mu.Lock()
	defer t.mu.Unlock()
	for s := first; s < first+uint64(k); s++ {
		t.sentAt[s] = since
	}
	t.sent = max(t.sent, first+uint64(k))
}

func (t *tracker) answered(first uint64, k int, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for s := first; s < first+uint64(k); s++ {
		if !ok {
			// A rejected event may still arrive (published, then the ack
			// timed out); it then counts as received but not acked.
			delete(t.sentAt, s)
			continue
		}
		t.acked.set(s)
		t.nAcked++
		if t.received.has(s) {
			t.nAckedReceived++
		}
	}
}

// receive records the consumer's receipt of event seq at time at.
func (t *tracker) receive(seq uint64, at time.Time) {
	since := at.Sub(t.epoch)
	t.mu.Lock()
	defer t.mu.Unlock()
	if seq >= t.sent {
		// Never sent by this run: a stray with a matching prefix.
		t.nForeign++
		return
	}
	if t.received.has(seq) {
		t.nDup++
		return
	}
	t.received.set(seq)
	t.nReceived++
	if t.acked.has(seq) {
		t.nAckedReceived++
	}
	if sent, ok := t.sentAt[seq]; ok {
		t.e2e.record(since - sent)
		delete(t.sentAt, seq)
	}
}

func (t *tracker) foreign() {
	t.mu.Lock()
	t.nForeign++
	t.mu.Unlock()
}

// outstanding is the number of acknowledged events not received yet.
func (t *tracker) outstanding() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.nAcked - t.nAckedReceived
}

func (t *tracker) receivedCount() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.nReceived
}

// bitset is a growable set of sequence numbers.
type bitset []uint64

func (b *bitset) set(i uint64) {
	w := int(i / 64)
	if w >= len(*b) {
		*b = append(*b, make([]uint64, max(w+1-len(*b), len(*b)))...)
	}
	(*b)[w] |= 1 << (i % 64)
}

func (b bitset) has(i uint64) bool {
	w := int(i / 64)
	return w < len(b) && b[w]&(1<<(i%64)) != 0
}

// waitDrain waits until every acknowledged event was received, for at most
// grace; it reports whether they all were.
func waitDrain(ctx context.Context, tr *tracker, grace time.Duration) bool {
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for tr.outstanding() > 0 {
		select {
		case <-tick.C:
		case <-deadline.C:
			return tr.outstanding() == 0
		case <-ctx.Done():
			return false
		}
	}
	return true
}
