// Package kafkaproduce is the Kafka producer of the status sink and the
// session view: a group commit per partition over kafka-go's Client and
// Transport, in place of kafka-go's Writer.
//
// # Batching
//
// At most one produce request per partition is in flight. A record for an
// idle partition is sent at once (after Options.Linger when that is set);
// the records that arrive while a partition's request is in flight wait for
// it and then go together in the next one, up to Options.BatchSize records
// and Options.MaxBytes bytes. Batches so grow with the load and the
// broker's round trip, and a lone record waits for no timer. kafka-go's
// Writer instead closes a batch BatchTimeout after its first record and
// sends a partition's batches one after another, so callers spread out in
// time (by their HTTP exchange) fill small batches that each wait the
// whole timeout.
//
// # Delivery and order
//
// Produce returns nil only after the partition leaders acknowledged every
// record with acks=all. Records of one partition are sent in the order
// they were handed over, one request at a time, and a request is tried
// Options.MaxAttempts times before the next is sent; so the records of one
// key produced one call after another keep their order (a failed record
// leaves a gap, never a swap). A record handed over is sent even when its
// caller stops waiting: a produce request cannot be taken back.
//
// A request holds several callers' records, and Kafka stores or refuses it
// whole. When the broker refuses one for some of its records (the record
// errors of produce v8+, or MESSAGE_TOO_LARGE for the request, split in
// halves until the record is alone), those records get the error and the
// others are sent again: a bad record fails only its own call. Errors
// about the cluster fail every record of the request.
//
// # Bounds
//
// Records handed over and not yet answered, abandoned ones included, are
// bounded by Options.MaxPending; Produce waits for room within its ctx.
// Each produce request is bounded by Options.Timeout. Close waits until
// every record handed over was answered.
//
// Imports: sinks/internal/slots of ours.
package kafkaproduce

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
	metadataAPI "github.com/segmentio/kafka-go/protocol/metadata"

	"github.com/qodbridge/qodbridge/sinks/internal/slots"
)

var (
	// ErrPending is Produce's error when no room for its records freed up
	// among Options.MaxPending before ctx ended; it wraps ctx's error too.
	// Nothing of the call was sent.
	ErrPending = errors.New("kafkaproduce: too many records awaiting acks")

	// ErrClosed is Produce's error after Close.
	ErrClosed = errors.New("kafkaproduce: producer closed")
)

// RecordsError is Produce's error when records were answered with an
// error: Failed of them, the first with Err (a kafka.Error when the broker
// answered one, else the transport's error).
type RecordsError struct {
	Failed int
	Err    error
}

func (e *RecordsError) Error() string {
	return fmt.Sprintf("%d records failed: %v", e.Failed, e.Err)
}

func (e *RecordsError) Unwrap() error { return e.Err }

// Options configure a Producer. Client and Topic are required.
type Options struct {
	// Client sends the produce and metadata requests: its Addr, Transport
	// (nil is kafka.DefaultTransport) and Timeout (the broker-side bound
	// of a produce request, when set).
	Client *kafka.Client
	// Topic every record goes to.
	Topic string
	// Compression of record batches.
	Compression kafka.Compression
	// Linger is how long the first record on an idle partition waits for
	// others before its request is sent, unless BatchSize records gather
	// first. Default 0: at once.
	Linger time.Duration
	// BatchSize is the most records in one produce request. Default 100.
	BatchSize int
	// MaxBytes is the most bytes of records (counted as RecordSize does)
	// in one produce request; a single larger record is still sent alone.
	// Default 1 MiB.
	MaxBytes int64
	// MaxPending bounds the records handed over and not yet answered.
	// Default 10000.
	MaxPending int
	// Timeout bounds one produce request. Default 5s.
	Timeout time.Duration
	// MaxAttempts is how often a request is tried on errors about the
	// cluster (Unavailable), backing off 100ms doubling to 1s. Default 1.
	MaxAttempts int
	// Logger receives failed attempts at debug level. nil discards.
	Logger *slog.Logger
}

// Producer sends records to one topic. It is safe for concurrent use.
type Producer struct {
	o        Options
	balancer kafka.Murmur2Balancer
	slots    *slots.Slots

	qmu    sync.RWMutex
	queues []*queue // by partition

	mu       sync.RWMutex
	closed   bool
	flushers sync.WaitGroup // the queues' flush goroutines
}

// New returns a Producer; it connects on its first Produce.
func New(o Options) *Producer {
	o.BatchSize = cmpOr(o.BatchSize, 100)
	o.MaxBytes = cmpOr(o.MaxBytes, 1<<20)
	o.MaxPending = cmpOr(o.MaxPending, 10000)
	o.Timeout = cmpOr(o.Timeout, 5*time.Second)
	o.MaxAttempts = cmpOr(o.MaxAttempts, 1)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Producer{o: o, slots: slots.New(o.MaxPending)}
}

func cmpOr[T int | int64 | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

// Produce sends msgs (their Key, Value, Headers and Time; a nil Value is a
// tombstone) to the topic, partitioned by murmur2 of the key, and waits
// until every one was answered or ctx ends. It returns nil when all were
// acknowledged; a *RecordsError when some failed; ctx's cause when it
// ended first (records handed over may still be written); an error
// wrapping ErrPending when there was no room (nothing was sent); the
// metadata error when the topic's partitions are unknown (nothing was
// sent); ErrClosed after Close. Records are not checked against MaxBytes.
func (p *Producer) Produce(ctx context.Context, msgs ...kafka.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	c, err := p.handOver(ctx, msgs)
	if err != nil {
		return err
	}
	select {
	case <-c.done:
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.failed > 0 {
			return &RecordsError{Failed: c.failed, Err: c.first}
		}
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// handOver queues msgs on their partitions and returns their call. Close
// waits for it (not for the answers: those are the flushers').
func (p *Producer) handOver(ctx context.Context, msgs []kafka.Message) (*call, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return nil, ErrClosed
	}
	// A call larger than the whole bound takes all of it.
	n := min(len(msgs), p.slots.Size())
	if err := p.slots.Acquire(ctx, nil, n); err != nil {
		return nil, fmt.Errorf("%w (%d): %w", ErrPending, p.slots.Size(), context.Cause(ctx))
	}
	parts, err := p.partitions(ctx)
	if err != nil {
		p.slots.Release(n)
		return nil, err
	}
	c := &call{done: make(chan struct{})}
	c.left.Store(int32(len(msgs)))
	recs := make([]record, len(msgs))
	for i := range msgs {
		recs[i] = record{msg: msgs[i], size: RecordSize(&msgs[i]), call: c, slot: i < n}
	}
	if len(recs) == 1 {
		p.enqueue(p.balancer.Balance(recs[0].msg, partitionList(parts)...), recs)
		return c, nil
	}
	// Each partition's records in the call's order, so that a key's
	// records keep it.
	byPart := map[int][]record{}
	for i := range recs {
		q := p.balancer.Balance(recs[i].msg, partitionList(parts)...)
		byPart[q] = append(byPart[q], recs[i])
	}
	for q, rs := range byPart {
		p.enqueue(q, rs)
	}
	return c, nil
}

// Close makes later Produce calls fail with ErrClosed and waits until every
// record handed over was answered (each request bounded by
// Options.Timeout). It is idempotent and safe to call concurrently.
func (p *Producer) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.flushers.Wait()
}

// RecordSize is a record's size as kafka-go counts it against a Writer's
// BatchBytes (Message.totalSize, which it does not export): more than its
// encoding in a record batch, which writes varints where this counts fixed
// widths.
func RecordSize(m *kafka.Message) int64 {
	n := 4 + 1 + 1 + (4 + len(m.Key)) + (4 + len(m.Value)) + 8 // crc, magic, attributes, key, value, timestamp
	n += varintLen(len(m.Headers))
	for _, h := range m.Headers {
		n += varintLen(len(h.Key)) + len(h.Key) + varintLen(len(h.Value)) + len(h.Value)
	}
	return int64(n)
}

// varintLen is the length of the zig-zag varint of n >= 0.
func varintLen(n int) int {
	u := uint64(n) << 1
	l := 1
	for u >= 0x80 {
		u >>= 7
		l++
	}
	return l
}

// Unavailable reports whether err is about the cluster rather than the
// records: network trouble, retriable broker errors, timeouts.
func Unavailable(err error) bool {
	var ke kafka.Error
	if errors.As(err, &ke) {
		return ke.Temporary() || ke == kafka.BrokerNotAvailable || ke == kafka.RequestTimedOut
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	for _, e := range []error{
		context.DeadlineExceeded, io.EOF, io.ErrUnexpectedEOF, io.ErrClosedPipe, net.ErrClosed,
		syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.EPIPE,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// call is one Produce waiting for its records.
type call struct {
	left atomic.Int32 // records not yet answered
	done chan struct{}

	// Written before done is closed, read after.
	mu     sync.Mutex
	failed int
	first  error
}

// answer records the outcome of one of the call's records.
func (c *call) answer(err error) {
	if err != nil {
		c.mu.Lock()
		c.failed++
		if c.first == nil {
			c.first = err
		}
		c.mu.Unlock()
	}
	if c.left.Add(-1) == 0 {
		close(c.done)
	}
}

// record is a record waiting in its partition's queue.
type record struct {
	msg  kafka.Message
	size int64 // RecordSize(&msg)
	call *call
	slot bool // holds one of the pending slots
}

// queue is one partition's records waiting for its next produce request.
type queue struct {
	partition int
	full      chan struct{} // wakes a lingering flusher: a batch is full; capacity 1

	mu    sync.Mutex
	recs  []record
	spare []record // the last batch's array, for the next swap
	busy  bool     // a flusher owns the partition
}

// queue returns partition i's queue, creating it (and those below it) when
// the topic grew.
func (p *Producer) queue(i int) *queue {
	p.qmu.RLock()
	if i < len(p.queues) {
		q := p.queues[i]
		p.qmu.RUnlock()
		return q
	}
	p.qmu.RUnlock()
	p.qmu.Lock()
	defer p.qmu.Unlock()
	for len(p.queues) <= i {
		p.queues = append(p.queues, &queue{partition: len(p.queues), full: make(chan struct{}, 1)})
	}
	return p.queues[i]
}

// partitions returns the topic's partition count from the transport's
// metadata cache (refreshed every few seconds and after errors), as
// kafka-go's Writer does.
func (p *Producer) partitions(ctx context.Context) (int, error) {
	tr := p.o.Client.Transport
	if tr == nil {
		tr = kafka.DefaultTransport
	}
	r, err := tr.RoundTrip(ctx, p.o.Client.Addr, &metadataAPI.Request{TopicNames: []string{p.o.Topic}})
	if err != nil {
		return 0, fmt.Errorf("partitions of %s: %w", p.o.Topic, err)
	}
	for _, t := range r.(*metadataAPI.Response).Topics {
		if t.Name == p.o.Topic {
			if t.ErrorCode != 0 {
				return 0, fmt.Errorf("partitions of %s: %w", p.o.Topic, kafka.Error(t.ErrorCode))
			}
			if len(t.Partitions) > 0 {
				return len(t.Partitions), nil
			}
		}
	}
	return 0, fmt.Errorf("partitions of %s: %w", p.o.Topic, kafka.UnknownTopicOrPartition)
}

// partitionList returns [0, n), the form kafka-go's balancers take, from
// a shared list: balancers only read it.
func partitionList(n int) []int {
	if l := partitionCache.Load(); l != nil && len(*l) >= n {
		return (*l)[:n]
	}
	l := make([]int, n)
	for i := range l {
		l[i] = i
	}
	partitionCache.Store(&l)
	return l
}

var partitionCache atomic.Pointer[[]int]

// enqueue appends recs to partition i's queue and starts its flusher when
// none runs.
func (p *Producer) enqueue(i int, recs []record) {
	q := p.queue(i)
	q.mu.Lock()
	q.recs = append(q.recs, recs...)
	if !q.busy {
		q.busy = true
		p.flushers.Add(1)
		go p.flush(q)
	} else if len(q.recs) >= p.o.BatchSize {
		select {
		case q.full <- struct{}{}:
		default:
		}
	}
	q.mu.Unlock()
}

// flush sends q's records, one produce request at a time, until the queue
// is empty. It is the only goroutine producing to q's partition while it
// runs; the flushers WaitGroup owns it.
func (p *Producer) flush(q *queue) {
	defer p.flushers.Done()
	if p.o.Linger > 0 {
		p.linger(q)
	}
	for {
		q.mu.Lock()
		batch := q.take(p.o.BatchSize, p.o.MaxBytes)
		if len(batch) == 0 {
			q.busy = false
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		p.send(q.partition, batch)
		clear(batch) // no references to answered calls and records
		q.mu.Lock()
		q.spare = batch[:0]
		q.mu.Unlock()
	}
}

// linger waits Options.Linger for more records before an idle partition's
// first produce request, or less when a batch fills.
func (p *Producer) linger(q *queue) {
	select {
	case <-q.full: // a stale wake-up from an earlier run
	default:
	}
	q.mu.Lock()
	full := len(q.recs) >= p.o.BatchSize
	q.mu.Unlock()
	if full {
		return
	}
	t := time.NewTimer(p.o.Linger)
	defer t.Stop()
	select {
	case <-t.C:
	case <-q.full:
	}
}

// take removes and returns the longest prefix of q.recs within size
// records and maxBytes bytes, at least one record. The caller holds q.mu.
func (q *queue) take(size int, maxBytes int64) []record {
	n, sum := 0, int64(0)
	for n < len(q.recs) && n < size {
		sum += q.recs[n].size
		if n > 0 && sum > maxBytes {
			break
		}
		n++
	}
	if n == 0 {
		return nil
	}
	batch, rest := q.recs[:n], q.recs[n:]
	q.recs = append(q.spare, rest...)
	q.spare = nil
	return batch
}

// send produces batch to partition i, trying Options.MaxAttempts times on
// errors about the cluster, and answers every record's call. When the
// broker refused the request for some of its records (record errors of
// produce v8+, or MESSAGE_TOO_LARGE for the whole), those get the error and
// the others are sent again: a bad record fails only its own call.
func (p *Producer) send(i int, batch []record) {
	var (
		res *kafka.ProduceResponse
		err error
	)
	for attempt := range p.o.MaxAttempts {
		if attempt > 0 {
			// kafka-go's Writer backoff: 100ms doubling to 1s.
			t := time.NewTimer(min(100*time.Millisecond<<(attempt-1), time.Second))
			<-t.C
		}
		res, err = p.produce(i, batch)
		if err == nil && res != nil {
			err = res.Error
		}
		if err == nil || !Unavailable(err) {
			break
		}
		p.o.Logger.Debug("kafkaproduce: produce failed", "topic", p.o.Topic, "partition", i,
			"records", len(batch), "attempt", attempt+1, "err", err)
	}
	if err != nil && len(batch) > 1 && res != nil {
		// The broker refuses a whole request for the records it names,
		// or for its size: the others must not fail with them.
		if len(res.RecordErrors) > 0 {
			innocent := batch[:0:0]
			for j := range batch {
				if rerr := res.RecordErrors[j]; rerr != nil {
					p.answer(batch[j:j+1], fmt.Errorf("%w: %w", err, rerr))
				} else {
					innocent = append(innocent, batch[j])
				}
			}
			if len(innocent) > 0 {
				p.send(i, innocent)
			}
			return
		}
		if errors.Is(err, kafka.MessageSizeTooLarge) {
			h := len(batch) / 2
			p.send(i, batch[:h])
			p.send(i, batch[h:])
			return
		}
	}
	p.answer(batch, err)
}

// answer answers the calls of batch's records with err and gives their
// slots back.
func (p *Producer) answer(batch []record, err error) {
	held := 0
	for j := range batch {
		batch[j].call.answer(err)
		if batch[j].slot {
			held++
		}
	}
	if held > 0 {
		p.slots.Release(held)
	}
}

// produce sends one produce request with acks=all, bounded by
// Options.Timeout and not by any caller: it cannot be taken back.
func (p *Producer) produce(i int, batch []record) (*kafka.ProduceResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), p.o.Timeout)
	defer cancel()
	return p.o.Client.Produce(ctx, &kafka.ProduceRequest{
		Topic:        p.o.Topic,
		Partition:    i,
		RequiredAcks: kafka.RequireAll,
		Compression:  p.o.Compression,
		Records:      &records{recs: batch},
	})
}

// records reads a batch as the kafka.RecordReader of a produce request,
// reusing one Record and two readers (kafka-go encodes each record before
// it asks for the next).
type records struct {
	recs       []record
	i          int
	rec        kafka.Record
	key, value bytesReader
}

func (r *records) ReadRecord() (*kafka.Record, error) {
	if r.i >= len(r.recs) {
		return nil, io.EOF
	}
	m := &r.recs[r.i].msg
	r.i++
	r.rec = kafka.Record{Time: m.Time, Headers: m.Headers}
	if m.Key != nil {
		r.key.Reset(m.Key)
		r.rec.Key = &r.key
	}
	if m.Value != nil {
		r.value.Reset(m.Value)
		r.rec.Value = &r.value
	}
	return &r.rec, nil
}

type bytesReader struct{ bytes.Reader }

func (*bytesReader) Close() error { return nil }
