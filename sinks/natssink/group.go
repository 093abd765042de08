package natssink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/sinks/internal/slots"
)

// Group commit, for Publish calls of several events when the stream
// allows fast-ingest batches (allow_batched, nats-server 2.14 and later):
// the Sink keeps one batch in flight. A call that finds none sends its
// events at once, itself, as a batch; one that finds a batch in flight
// queues its events, and when that batch's PubAck arrives, the reply
// subscription's goroutine answers the calls it covered and sends
// everything queued meanwhile as the next batch. JetStream stores each
// message of the batch as it would a single publish (Nats-Msg-Id
// deduplication included: a duplicate is skipped, the batch goes on) and
// answers one PubAck per batch instead of one per message.
//
// The batch runs in gap "fail" mode: the server stops it at the first
// message that is missing or refused and acknowledges the ones before
// it ("count" in the PubAck). A refused message gets its own error; the
// ones after it, which the server did not take, are sent again in the
// next batch, at its head, so a session's events keep their order. What
// was already stored and is sent again is recognised by its Nats-Msg-Id.

const (
	// maxGroup is the most messages of one batch: the server's initial
	// flow-control window, so the committer never waits for flow acks.
	maxGroup = 500
	// maxTries bounds how often one message is sent again after its
	// batch stopped before it.
	maxTries = 3

	jsErrBatchUnknownID = 10208 // JSBatchPublishUnknownBatchIDErr
	// The batch errors (disabled, invalid pattern or id, unknown id, too
	// many in flight) are 10205 to 10211.
	jsErrBatchFirst = 10205
	jsErrBatchLast  = 10211
)

// gcReq is one Publish call's messages, queued for a batch.
type gcReq struct {
	ctx      context.Context
	deadline time.Time
	msgs     []*outMsg
	ids      []string // the events' ids, for error texts
	res      chan error

	// under committer.mu
	left  int   // events not yet resolved
	first error // the first event's error, the call's
}

// entry is one message of a queued call.
type entry struct {
	req   *gcReq
	i     int
	tries int
}

// committer holds the queue and the batch in flight.
type committer struct {
	s      *Sink
	slots  *slots.Slots
	prefix string // reply subjects: <prefix>.<batch id>.<flow>.fail.<seq>.<op>.$FI
	sub    *nats.Subscription
	timers sync.WaitGroup // batch timeouts running

	mu     sync.Mutex
	queue  []entry // in order: sent again first, then as queued
	cur    *batch  // in flight; nil when none
	closed bool
}

// batch is one batch, from its send to its end.
type batch struct {
	id    string
	group []entry
	timer *time.Timer

	// under committer.mu
	writing bool          // its messages are being written: they are not ours to resolve or reuse yet
	endReq  bool          // it ended while being written; the writer ends it after
	endFail error         // what it ended with
	errs    map[int]error // by batch sequence (1-based)
	count   int           // messages the PubAck covers
	dup     bool          // a batch of one whose message was a duplicate
}

func newCommitter(s *Sink) (*committer, error) {
	g := &committer{s: s, slots: slots.New(s.opts.MaxPending), prefix: s.nc.NewInbox()}
	sub, err := s.nc.Subscribe(g.prefix+".>", g.onReply)
	if err != nil {
		return nil, fmt.Errorf("natssink: subscribe to batch acks: %w", err)
	}
	// Flow-control acks may come one per message when several publishers
	// batch into the stream: never drop the PubAck among them.
	_ = sub.SetPendingLimits(-1, -1)
	g.sub = sub
	return g, nil
}

// close ends the committer once no call is in flight: what is left
// belongs to calls that gave up.
func (g *committer) close() {
	_ = g.sub.Unsubscribe()
	g.mu.Lock()
	g.closed = true
	if b := g.cur; b != nil {
		g.cur = nil
		if b.timer.Stop() {
			g.timers.Done()
		}
		if !b.writing { // else the writer, finding it ended, leaves its messages alone
			g.queue = append(b.group, g.queue...)
		}
	}
	for _, e := range g.queue {
		g.resolveLocked(e, fmt.Errorf("natssink: publish %s: %w", bridge.Quote(e.req.ids[e.i]), bridge.ErrClosed))
	}
	g.queue = nil
	g.mu.Unlock()
	g.timers.Wait()
}

// publish queues the call's prepared messages, sends them when no batch is
// in flight, and waits for the acks that cover them.
func (g *committer) publish(c *call, msgs []*outMsg, events []bridge.Event) error {
	n := min(len(msgs), g.slots.Size()) // a call larger than the bound takes all of it
	if err := g.slots.Acquire(c.ctx, c.expired, n); err != nil {
		for _, m := range msgs {
			g.s.msgs.Put(m)
		}
		if errors.Is(err, slots.ErrExpired) {
			return fmt.Errorf("natssink: publish %s: %w: no pending slot within %s (%d events queued or awaiting acks)",
				bridge.Quote(events[0].ID), ErrUnavailable, g.s.opts.PublishTimeout, g.slots.Size())
		}
		return fmt.Errorf("natssink: publish: wait for a pending slot: %w", err)
	}
	ids := make([]string, len(events))
	for i := range events {
		ids[i] = events[i].ID
	}
	r := &gcReq{ctx: c.ctx, deadline: c.deadline, msgs: msgs, ids: ids, res: make(chan error, 1), left: len(msgs)}
	g.mu.Lock()
	for i := range msgs {
		g.queue = append(g.queue, entry{req: r, i: i})
	}
	var b *batch
	if g.cur == nil {
		b = g.nextLocked()
	}
	g.mu.Unlock()
	g.send(b)

	select {
	case err := <-r.res:
		return err
	case <-c.ctx.Done():
		return fmt.Errorf("natssink: publish %s: wait for ack: %w", bridge.Quote(ids[0]), c.ctx.Err())
	case <-c.expired():
		return fmt.Errorf("natssink: publish %s: %w: no ack within %s", bridge.Quote(ids[0]), ErrUnavailable, g.s.opts.PublishTimeout)
	}
}

// nextLocked makes the head of the queue the batch in flight, or returns
// nil when nothing is queued. Events of calls that gave up are not sent:
// their callers answered already.
func (g *committer) nextLocked() *batch {
	if g.closed {
		return nil
	}
	now := time.Now()
	var group []entry
	taken := 0
	for _, e := range g.queue {
		if len(group) == maxGroup {
			break
		}
		taken++
		if err := e.req.ctx.Err(); err != nil || !now.Before(e.req.deadline) {
			if err == nil {
				err = ErrUnavailable
			}
			g.resolveLocked(e, fmt.Errorf("natssink: publish %s: gave up before it was sent: %w", bridge.Quote(e.req.ids[e.i]), err))
			continue
		}
		if group == nil {
			group = make([]entry, 0, min(len(g.queue), maxGroup))
		}
		group = append(group, e)
	}
	g.queue = g.queue[taken:]
	if len(g.queue) == 0 {
		g.queue = nil // let the backing array go
	}
	if len(group) == 0 {
		return nil
	}
	b := &batch{id: nats.NewInbox()[len(nats.InboxPrefix):], group: group, writing: true} // a NUID
	g.cur = b
	g.timers.Add(1)
	b.timer = time.AfterFunc(g.s.opts.PublishTimeout, func() {
		defer g.timers.Done()
		g.end(b, jetstream.ErrAsyncPublishTimeout)
	})
	return b
}

// send publishes batches until one is in flight: a batch that cannot be
// sent ends at once, and the next is tried.
func (g *committer) send(b *batch) {
	for b != nil {
		err := g.write(b)
		g.mu.Lock()
		b.writing = false
		if g.cur != b { // closed meanwhile
			g.mu.Unlock()
			return
		}
		if err == nil {
			if !b.endReq {
				g.mu.Unlock()
				return
			}
			// Answered before the last message was written: an error
			// at the start, or the timeout.
			g.mu.Unlock()
			g.end(b, b.endFail)
			return
		}
		if b.timer.Stop() {
			g.timers.Done()
		}
		// The batch was not ended: what was sent may be stored or not;
		// all of it fails, and the sender's retry is deduplicated.
		for _, e := range b.group {
			g.resolveLocked(e, g.s.publishErrID(e.req.ids[e.i], err))
		}
		g.cur = nil
		b = g.nextLocked()
		g.mu.Unlock()
	}
}

// write publishes b's messages, the last one committing the batch.
func (g *committer) write(b *batch) error {
	var sb strings.Builder
	for k, e := range b.group {
		op := 1 // append
		switch {
		case k == len(b.group)-1:
			op = 2 // commit: the last message ends the batch
		case k == 0:
			op = 0 // start
		}
		sb.Reset()
		sb.Grow(len(g.prefix) + len(b.id) + 32)
		sb.WriteString(g.prefix)
		sb.WriteByte('.')
		sb.WriteString(b.id)
		sb.WriteString(".500.fail.")
		sb.WriteString(strconv.Itoa(k + 1))
		sb.WriteByte('.')
		sb.WriteString(strconv.Itoa(op))
		sb.WriteString(".$FI")
		m := &e.req.msgs[e.i].msg
		m.Reply = sb.String()
		err := g.s.nc.PublishMsg(m)
		m.Reply = ""
		if err != nil {
			return err
		}
	}
	return nil
}

// end ends b, when it is still the batch in flight: fail set fails all of
// it, else its PubAck (count) and refusals (errs) resolve its events and
// the rest is queued again, at the head. Then the next batch is sent.
func (g *committer) end(b *batch, fail error) {
	g.mu.Lock()
	if g.cur != b || b.endReq && b.writing {
		g.mu.Unlock()
		return
	}
	if b.writing {
		b.endReq, b.endFail = true, fail
		g.mu.Unlock()
		return
	}
	if !errors.Is(fail, jetstream.ErrAsyncPublishTimeout) && b.timer.Stop() {
		g.timers.Done()
	}
	g.cur = nil
	if fail != nil {
		var apiErr *jetstream.APIError
		batchRefused := errors.As(fail, &apiErr) && apiErr.ErrorCode >= jsErrBatchFirst && apiErr.ErrorCode <= jsErrBatchLast
		if batchRefused {
			g.s.needEnsure.Store(true) // batching switched off? look again
		}
		for _, e := range b.group {
			err := g.s.publishErrID(e.req.ids[e.i], fail)
			if batchRefused {
				err = fmt.Errorf("natssink: publish %s: %w: the stream refused the batch: %w", bridge.Quote(e.req.ids[e.i]), ErrUnavailable, fail)
			}
			g.resolveLocked(e, err)
		}
	} else {
		if b.dup && g.s.opts.OnDuplicate != nil {
			g.s.opts.OnDuplicate()
		}
		var again []entry
		for k, e := range b.group {
			switch err, refused := b.errs[k+1]; {
			case k < b.count:
				g.resolveLocked(e, nil)
			case refused:
				g.resolveLocked(e, g.s.publishErrID(e.req.ids[e.i], err))
			case e.tries+1 >= maxTries:
				g.resolveLocked(e, fmt.Errorf("natssink: publish %s: %w: not taken by the stream in %d batches",
					bridge.Quote(e.req.ids[e.i]), ErrUnavailable, maxTries))
			default:
				e.tries++
				again = append(again, e)
			}
		}
		if len(again) > 0 {
			g.queue = append(again, g.queue...)
		}
	}
	next := g.nextLocked()
	g.mu.Unlock()
	g.send(next)
}

// resolveLocked records one event's outcome; the last of a call answers
// it and gives its slots back.
func (g *committer) resolveLocked(e entry, err error) {
	r := e.req
	if err != nil && r.first == nil {
		r.first = err
	}
	g.s.msgs.Put(r.msgs[e.i])
	if r.left--; r.left == 0 {
		r.res <- r.first
		g.slots.Release(min(len(r.msgs), g.slots.Size()))
	}
}

// batchReply is what the server answers a fast-ingest batch: flow acks
// ("type":"ack"), gaps ("gap"), one message's error ("err"), and the
// PubAck that ends the batch (stream, seq, count; or an error).
type batchReply struct {
	Type      string              `json:"type"`
	Seq       uint64              `json:"seq"`
	Stream    string              `json:"stream"`
	Count     int                 `json:"count"`
	Duplicate bool                `json:"duplicate"`
	Error     *jetstream.APIError `json:"error"`
}

// onReply runs on the subscription's goroutine for every answer to a
// batch message.
func (g *committer) onReply(m *nats.Msg) {
	id, seq, ok := parseReply(m.Subject, len(g.prefix)+1)
	if !ok {
		return
	}
	g.mu.Lock()
	b := g.cur
	if b == nil || b.id != id {
		g.mu.Unlock()
		return // a batch that ended already
	}
	var fail error
	ended := false
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		// No stream on the subject: as the JetStream client reports it.
		fail, ended = fmt.Errorf("%w: %w", jetstream.ErrNoStreamResponse, nats.ErrNoResponders), true
	} else {
		var r batchReply
		if err := json.Unmarshal(m.Data, &r); err != nil {
			g.mu.Unlock()
			return
		}
		n := len(b.group)
		switch {
		case r.Type == "ack" || r.Type == "gap":
		case r.Type == "err":
			if r.Error != nil {
				b.refuse(int(r.Seq), r.Error)
			}
		case r.Error != nil && r.Error.ErrorCode == jsErrBatchUnknownID:
			// A message after the batch ended: not taken, sent again.
			ended = seq == n
		case r.Error != nil && r.Error.ErrorCode >= jsErrBatchFirst && r.Error.ErrorCode <= jsErrBatchLast:
			// The stream cannot take batches now (batching switched off,
			// too many batches in flight).
			fail, ended = r.Error, true
		case r.Error != nil:
			b.refuse(seq, r.Error)
			ended = seq == 1 || seq == n // an error at the start ends the batch at once
		case r.Stream != "":
			b.count = min(r.Count, n)
			b.dup = r.Duplicate && n == 1
			ended = true
		}
	}
	g.mu.Unlock()
	if ended {
		g.end(b, fail)
	}
}

func (b *batch) refuse(seq int, err error) {
	if seq < 1 || seq > len(b.group) {
		return
	}
	if b.errs == nil {
		b.errs = map[int]error{}
	}
	if _, ok := b.errs[seq]; !ok {
		b.errs[seq] = err
	}
}

// parseReply reads the batch id and sequence from a reply subject:
// <prefix>.<id>.<flow>.fail.<seq>.<op>.$FI, the prefix off bytes long.
func parseReply(subj string, off int) (string, int, bool) {
	if len(subj) <= off {
		return "", 0, false
	}
	parts := strings.Split(subj[off:], ".")
	if len(parts) != 6 {
		return "", 0, false
	}
	seq, err := strconv.Atoi(parts[3])
	if err != nil {
		return "", 0, false
	}
	return parts[0], seq, true
}
