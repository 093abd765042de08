package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qodbridge/qodbridge/bridge"
)

// Input shapes bench can send; the names are those of normalize.Shape,
// except "legacy" for the QoD v0.9 body.
var benchShapes = []string{"structured", "binary", "json", "nac", "legacy", "batch"}

// benchSource is the CloudEvents source of every event bench sends.
const benchSource = "https://bench.qodbridge.invalid/qod"

// runIDs names the events of one run so that the consumer recognises its
// own events among whatever else is on the subject or topic.
//
// Shapes with a CloudEvents id carry "bench-<run>-<seq>". The QoD v0.9 body
// has no id (the bridge derives one from the content), so every event of a
// run also carries a distinct time, base + seq nanoseconds, and the
// consumer reads the sequence number back from the time. base is drawn per
// run from a span of about 7 years, so two runs sharing a stream do not
// take each other's events.
type runIDs struct {
	run    string
	prefix string // "bench-<run>-"
	base   time.Time
}

func newRunIDs(run string, n uint64) runIDs {
	base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(n%(1<<16)) * time.Hour)
	return runIDs{run: run, prefix: "bench-" + run + "-", base: base}
}

func (r runIDs) id(seq uint64) string {
	return r.prefix + strconv.FormatUint(seq, 10)
}

func (r runIDs) time(seq uint64) string {
	return r.base.Add(time.Duration(seq)).Format(time.RFC3339Nano)
}

// seq returns the sequence number of an event with CloudEvents id and time
// tm, and false for an event of another run or tool.
func (r runIDs) seq(id, tm string) (uint64, bool) {
	if rest, ok := strings.CutPrefix(id, r.prefix); ok {
		n, err := strconv.ParseUint(rest, 10, 64)
		return n, err == nil
	}
	if !strings.HasPrefix(id, "qod-v0.9-") {
		return 0, false
	}
	t, err := time.Parse(time.RFC3339Nano, tm)
	if err != nil || t.Before(r.base) || t.Sub(r.base) >= time.Hour {
		return 0, false
	}
	return uint64(t.Sub(r.base)), true
}

// event is the canonical event bench expects the bridge to make of the
// event with sequence number seq.
func (r runIDs) event(seq uint64, sessions int) bridge.Event {
	ev := bridge.Event{
		ID:        r.id(seq),
		Source:    benchSource,
		Time:      r.time(seq),
		SessionID: "bench-s" + strconv.FormatUint(seq%uint64(sessions), 10),
	}
	// A session goes through all three statuses, as in real life.
	switch seq % 3 {
	case 0:
		ev.QoSStatus = bridge.StatusRequested
	case 1:
		ev.QoSStatus = bridge.StatusAvailable
	default:
		ev.QoSStatus, ev.StatusInfo = bridge.StatusUnavailable, bridge.InfoDurationExpired
	}
	return ev
}

// shaper builds the HTTP request of request number n in one input shape.
type shaper struct {
	ids      runIDs
	shape    string
	batch    int // events per request: 1 unless shape is batch
	sessions int
}

// wire is a structured CloudEvent or a Network-as-Code body as JSON.
type wire struct {
	SpecVersion string             `json:"specversion,omitempty"`
	ID          string             `json:"id,omitempty"`
	Source      string             `json:"source,omitempty"`
	Type        string             `json:"type,omitempty"`
	Time        string             `json:"time,omitempty"`
	DataCT      string             `json:"datacontenttype,omitempty"`
	Event       *wireNaC           `json:"event,omitempty"`
	Data        *bridge.StatusData `json:"data,omitempty"`
}

type wireNaC struct {
	EventType   string            `json:"eventType"`
	EventTime   string            `json:"eventTime"`
	EventDetail bridge.StatusData `json:"eventDetail"`
}

func statusData(ev *bridge.Event) *bridge.StatusData {
	return &bridge.StatusData{SessionID: ev.SessionID, QoSStatus: ev.QoSStatus, StatusInfo: ev.StatusInfo}
}

func structuredWire(ev *bridge.Event) wire {
	return wire{SpecVersion: bridge.SpecVersion, ID: ev.ID, Source: ev.Source, Type: bridge.EventTypeV0,
		Time: ev.Time, DataCT: "application/json", Data: statusData(ev)}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil { // plain strings only: cannot happen
		panic(fmt.Sprintf("bench: marshal: %v", err))
	}
	return b
}

// body returns the body of request n, whose events are n*batch …
// n*batch+batch-1, and appends its headers to hdr.
func (s *shaper) body(n uint64, hdr []reqHeader) ([]byte, []reqHeader) {
	first := n * uint64(s.batch)
	ev := s.ids.event(first, s.sessions)
	const ct = "Content-Type"
	switch s.shape {
	case "binary":
		return ev.Data(), append(hdr,
			reqHeader{ct, "application/json"},
			reqHeader{"Ce-Specversion", bridge.SpecVersion},
			reqHeader{"Ce-Id", ev.ID},
			reqHeader{"Ce-Source", ev.Source},
			reqHeader{"Ce-Type", bridge.EventTypeV0},
			reqHeader{"Ce-Time", ev.Time})
	case "json":
		return mustJSON(structuredWire(&ev)), append(hdr, reqHeader{ct, "application/json"})
	case "nac":
		// The Network-as-Code form with event{} and no data.
		w := structuredWire(&ev)
		w.Data = nil
		w.Event = &wireNaC{EventType: bridge.EventTypeLegacy, EventTime: ev.Time, EventDetail: *statusData(&ev)}
		return mustJSON(w), append(hdr, reqHeader{ct, "application/json"})
	case "legacy":
		return mustJSON(wire{Event: &wireNaC{EventType: bridge.EventTypeLegacy, EventTime: ev.Time, EventDetail: *statusData(&ev)}}),
			append(hdr, reqHeader{ct, "application/json"})
	case "batch":
		ws := make([]wire, s.batch)
		for i := range ws {
			e := s.ids.event(first+uint64(i), s.sessions)
			ws[i] = structuredWire(&e)
		}
		return mustJSON(ws), append(hdr, reqHeader{ct, "application/cloudevents-batch+json"})
	}
	return mustJSON(structuredWire(&ev)), append(hdr, reqHeader{ct, "application/cloudevents+json"})
}

// events returns the canonical events of request n (for the broker
// ceilings, which publish what the bridge would).
func (s *shaper) events(n uint64) []bridge.Event {
	evs := make([]bridge.Event, s.batch)
	for i := range evs {
		evs[i] = s.ids.event(n*uint64(s.batch)+uint64(i), s.sessions)
	}
	return evs
}

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
