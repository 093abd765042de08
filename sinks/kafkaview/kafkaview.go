// Package kafkaview keeps the session view (bridge/view.go) in a compacted
// Kafka topic, qod.sessions by default: record key = sessionId, value =
// the JSON of bridge.ViewEntry, a record written only when the entry
// changes.
//
// Kafka has no compare-and-set, so the view is kept by read-modify-write
// against a local cache of the topic, and made to converge by repair:
//
//   - Open reads the whole topic into the cache (the maximum, under the
//     rule, of every record of each key) before it returns, then follows
//     it: every record any instance writes is folded into the cache.
//   - UpdateView writes an event's entry only when it advances the cached
//     one (under a per-session lock, so one instance's writes of a session
//     are ordered), and the cache takes it once the write is acknowledged.
//   - Two instances that write the same session at once may leave the
//     lesser entry as the key's last record. Each instance's follower sees
//     that the last record of a key is below the maximum it knows and
//     writes the maximum again (a repair), so the key's last record ends
//     at the maximum of everything written, typically within a second.
//
// What is guaranteed: a record is written only after the event's history
// publish was acknowledged; every instance's cache is the rule's maximum
// of the records it has read; a reader that folds every record of a key
// with bridge.MaxView gets the right entry from the moment the records are
// readable; a reader that takes the last record per key (a compacted
// topic's natural reading) gets it once the repair is written, which needs
// one running instance that saw both records (after all of them stopped,
// `qodbridge sessions rebuild` or the next event repairs it). Compaction
// may drop a greater record before its repair is written only when every
// instance that saw it stopped first.
//
// Retention: an ended session's entry is replaced by a tombstone Retention
// after it was received (each instance sweeps its cache once per
// Retention/4, at most every minute), and the topic keeps tombstones for
// Retention (delete.retention.ms) before compaction drops them. An event of
// the session arriving later creates a new entry: keep Retention longer than
// any platform retries. Memory: the cache holds one entry per session in
// the view.
//
// Imports: bridge, sinks/kafkasink (connection options) and sinks/internal
// of ours.
package kafkaview

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/sinks/internal/kafkaproduce"
	"github.com/qodbridge/qodbridge/sinks/internal/kafkatopics"
	"github.com/qodbridge/qodbridge/sinks/kafkasink"
)

// Defaults of Options.
const (
	DefaultTopic     = "qod.sessions"
	DefaultRetention = 24 * time.Hour
	DefaultTimeout   = 5 * time.Second
)

// ErrTopicMissing is returned by Open when the topic does not exist and
// Options.CreateTopics is off.
var ErrTopicMissing = errors.New("kafkaview: topic missing")

// ErrClosed is returned by UpdateView after Close.
var ErrClosed = errors.New("kafkaview: closed")

// Options configure Open. Zero values take the defaults named.
type Options struct {
	// Topic is the compacted topic. Default qod.sessions.
	Topic string
	// Retention is how long an ended session's entry is kept after it was
	// received. Default 24h; negative keeps entries (no tombstones).
	Retention time.Duration
	// CreateTopics creates the topic (cleanup.policy=compact) when
	// missing. Default false: a missing topic is an error.
	CreateTopics bool
	// Partitions and ReplicationFactor of a created topic. Defaults 6 and
	// the broker's default.
	Partitions, ReplicationFactor int
	// Timeout bounds one UpdateView call and one repair. Default 5s.
	Timeout time.Duration
	// OnStale is called for each event that did not advance its entry.
	// It must not block. Nil: not counted.
	OnStale func(bridge.StaleReason)
	// Logger gets repairs at Debug and failures at Warn. Nil discards.
	Logger *slog.Logger
}

// cached is one session in the cache: the maximum of the records read or
// written, and whether the last record read of the key is that maximum.
type cached struct {
	max      bridge.ViewEntry
	lastIsIt bool
}

// View is the session view on a compacted Kafka topic. It owns its
// connections and its follower goroutines: Close releases them.
type View struct {
	o       Options
	log     *slog.Logger
	brokers []string
	dialer  *kafka.Dialer
	client  *kafka.Client
	tr      *kafka.Transport
	p       *kafkaproduce.Producer

	seed  maphash.Seed
	locks [64]sync.Mutex // per session (hashed): one instance's writes of a session in order

	mu      sync.Mutex
	cache   map[string]*cached
	closed  bool
	started bool // the topic was read to its end at Open

	stop context.CancelFunc
	wg   sync.WaitGroup
}

var _ bridge.ViewUpdater = (*View)(nil)

// Open checks (or creates) the topic, reads it whole into the cache, and
// follows it. ctx bounds the start.
func Open(ctx context.Context, co kafkasink.ConnOptions, o Options) (_ *View, err error) {
	o.Topic = cmp.Or(o.Topic, DefaultTopic)
	o.Retention = cmp.Or(o.Retention, DefaultRetention)
	o.Timeout = cmp.Or(o.Timeout, DefaultTimeout)
	o.Partitions = cmp.Or(o.Partitions, kafkasink.DefaultPartitions)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	brokers, err := co.SeedBrokers()
	if err != nil {
		return nil, fmt.Errorf("kafkaview: %w", err)
	}
	tr, addr, err := co.Transport()
	if err != nil {
		return nil, fmt.Errorf("kafkaview: %w", err)
	}
	dialer, err := co.Dialer()
	if err != nil {
		return nil, fmt.Errorf("kafkaview: %w", err)
	}
	bg, stop := context.WithCancel(context.Background())
	v := &View{o: o, log: o.Logger, brokers: brokers, dialer: dialer, tr: tr, seed: maphash.MakeSeed(),
		client: &kafka.Client{Addr: addr, Transport: tr, Timeout: o.Timeout},
		cache:  make(map[string]*cached), stop: stop}
	defer func() {
		if err != nil {
			_ = v.Close()
		}
	}()
	// The status sink's producer: an entry is sent at once, with the
	// others that arrived while the partition's last request was in
	// flight, and waits for no batch timer.
	v.p = kafkaproduce.New(kafkaproduce.Options{Client: v.client, Topic: o.Topic, Timeout: o.Timeout, Logger: o.Logger})
	if err := v.ensureTopic(ctx); err != nil {
		return nil, err
	}
	ends, err := v.ends(ctx, o.Topic)
	if err != nil {
		return nil, err
	}
	primed := make(chan int, len(ends))
	for p, end := range ends {
		v.wg.Go(func() { v.follow(bg, p, end, primed) })
	}
	for range ends {
		select {
		case <-primed:
		case <-ctx.Done():
			return nil, fmt.Errorf("kafkaview: reading %s: %w", o.Topic, ctx.Err())
		}
	}
	v.repairAll(ctx)
	if o.Retention > 0 {
		v.wg.Go(func() { v.sweep(bg) })
	}
	return v, nil
}

func (v *View) ensureTopic(ctx context.Context) error {
	missing, err := kafkatopics.Missing(ctx, v.client, []string{v.o.Topic})
	if err != nil {
		return fmt.Errorf("kafkaview: topic %s: %w", v.o.Topic, err)
	}
	if len(missing) == 0 {
		return nil
	}
	if !v.o.CreateTopics {
		return fmt.Errorf("%w: %s (create it with cleanup.policy=compact, or set kafka.create_topics: true)", ErrTopicMissing, v.o.Topic)
	}
	cfg := map[string]string{"cleanup.policy": "compact"}
	if v.o.Retention > 0 {
		cfg["delete.retention.ms"] = strconv.FormatInt(v.o.Retention.Milliseconds(), 10)
	}
	if err := kafkatopics.Create(ctx, v.client, missing, v.o.Partitions, v.o.ReplicationFactor, cfg); err != nil {
		return fmt.Errorf("kafkaview: create topic %s: %w", v.o.Topic, err)
	}
	v.log.Info("kafkaview: created topic", "topic", v.o.Topic, "partitions", v.o.Partitions, "config", cfg)
	return nil
}

// ends returns the end offset (high watermark) of every partition of
// topic, by partition: 0 for a partition that holds no record.
func (v *View) ends(ctx context.Context, topic string) (map[int]int64, error) {
	md, err := v.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("kafkaview: metadata of %s: %w", topic, err)
	}
	if len(md.Topics) != 1 || md.Topics[0].Error != nil {
		return nil, fmt.Errorf("kafkaview: metadata of %s: %v", topic, md.Topics)
	}
	var reqs []kafka.OffsetRequest
	for _, p := range md.Topics[0].Partitions {
		reqs = append(reqs, kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
	}
	resp, err := v.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("kafkaview: offsets of %s: %w", topic, err)
	}
	out := make(map[int]int64, len(reqs))
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("kafkaview: offsets of %s/%d: %w", topic, po.Partition, po.Error)
		}
		if po.FirstOffset >= po.LastOffset {
			out[po.Partition] = 0 // empty, or every record deleted: nothing to read
		} else {
			out[po.Partition] = po.LastOffset
		}
	}
	return out, nil
}

// read reads partition p of topic from its start, calling fn for each
// record; once it has read every record before end it calls primed (nil:
// nothing to call), and it returns when ctx is done or, with stopAtEnd, at
// end.
func (v *View) read(ctx context.Context, topic string, p int, end int64, stopAtEnd bool, primed func(), fn func(kafka.Message)) error {
	if primed == nil {
		primed = func() {}
	}
	if end == 0 {
		primed()
		if stopAtEnd {
			return nil
		}
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: v.brokers, Topic: topic, Partition: p, Dialer: v.dialer,
		StartOffset: kafka.FirstOffset, MinBytes: 1, MaxBytes: 4 << 20, MaxWait: 250 * time.Millisecond,
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			v.log.Debug("kafkaview: reader: " + fmt.Sprintf(msg, args...))
		})})
	defer func() { _ = r.Close() }()
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("kafkaview: read %s/%d: %w", topic, p, err)
		}
		fn(m)
		if m.Offset+1 >= end {
			primed()
			if stopAtEnd {
				return nil
			}
		}
	}
}

// follow folds partition p of the view's topic into the cache for as
// long as ctx lasts, restarting the reader after an error.
func (v *View) follow(ctx context.Context, p int, end int64, primed chan<- int) {
	// Once, whatever the restarts: a restarted reader reads from the start
	// again.
	signal := sync.OnceFunc(func() { primed <- p })
	for ctx.Err() == nil {
		err := v.read(ctx, v.o.Topic, p, end, false, signal, v.apply)
		if err != nil && ctx.Err() == nil {
			v.log.Warn("kafkaview: follower restarts", "partition", p, "err", err)
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
			}
		}
	}
}

// apply folds one record of the topic into the cache; when the record is
// below the maximum known (another instance's stale write), the key is
// repaired.
func (v *View) apply(m kafka.Message) {
	key := string(m.Key)
	if m.Value == nil { // tombstone
		v.mu.Lock()
		delete(v.cache, key)
		v.mu.Unlock()
		return
	}
	var e bridge.ViewEntry
	if err := json.Unmarshal(m.Value, &e); err != nil || e.SessionID != key {
		v.log.Warn("kafkaview: record is no view entry; skipped", "partition", m.Partition, "offset", m.Offset, "err", err)
		return
	}
	v.mu.Lock()
	c := v.cache[key]
	if c == nil {
		c = &cached{}
		v.cache[key] = c
	}
	c.lastIsIt = true
	if ok, _ := bridge.Advances(c.max, e); ok {
		c.max = e
	} else if cmp, _ := bridge.CompareView(c.max, e); cmp > 0 {
		c.lastIsIt = false
	}
	repair, primedAll := !c.lastIsIt, v.primedAll()
	v.mu.Unlock()
	if repair && primedAll {
		v.repair(key)
	}
}

// primedAll is true after Open: repairs wait until the whole topic was
// read (an older record read first is not the key's last). Call with mu.
func (v *View) primedAll() bool { return v.started }

// repairAll writes, after the topic was read, the maximum of every key
// whose last record is below it.
func (v *View) repairAll(ctx context.Context) {
	v.mu.Lock()
	v.started = true
	var keys []string
	for k, c := range v.cache {
		if !c.lastIsIt {
			keys = append(keys, k)
		}
	}
	v.mu.Unlock()
	for _, k := range keys {
		if ctx.Err() != nil {
			return
		}
		v.repair(k)
	}
}

// repair writes the cached maximum of key again, unless a later record
// made it the last meanwhile.
func (v *View) repair(key string) {
	l := v.lock(key)
	l.Lock()
	defer l.Unlock()
	v.mu.Lock()
	c := v.cache[key]
	if c == nil || c.lastIsIt {
		v.mu.Unlock()
		return
	}
	e := c.max
	v.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), v.o.Timeout)
	defer cancel()
	v.log.Debug("kafkaview: the last record of a session is below the view; writing the view again", "session_id", bridge.Quote(key))
	if err := v.write(ctx, e); err != nil {
		v.log.Warn("kafkaview: repair failed; the next record of the session or a rebuild repairs it", "session_id", bridge.Quote(key), "err", err)
	}
}

func (v *View) lock(key string) *sync.Mutex {
	return &v.locks[maphash.String(v.seed, key)%uint64(len(v.locks))]
}

func (v *View) write(ctx context.Context, e bridge.ViewEntry) error {
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("kafkaview: encode: %w", err)
	}
	if err := v.p.Produce(ctx, kafka.Message{Key: []byte(e.SessionID), Value: data, Time: time.Now()}); err != nil {
		return fmt.Errorf("kafkaview: write %s: %w", v.o.Topic, err)
	}
	return nil
}

// UpdateView implements bridge.ViewUpdater: an event's entry is written
// when it advances the cached one, and cached once acknowledged.
func (v *View) UpdateView(ctx context.Context, received time.Time, events ...bridge.Event) error {
	ctx, cancel := context.WithTimeout(ctx, v.o.Timeout)
	defer cancel()
	var errs []error
	for i := range events {
		if err := v.update(ctx, bridge.EntryOf(&events[i], received)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (v *View) update(ctx context.Context, next bridge.ViewEntry) error {
	l := v.lock(next.SessionID)
	l.Lock()
	defer l.Unlock()
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return ErrClosed
	}
	var cur bridge.ViewEntry
	if c := v.cache[next.SessionID]; c != nil {
		cur = c.max
	}
	v.mu.Unlock()
	if ok, reason := bridge.Advances(cur, next); !ok {
		if v.o.OnStale != nil {
			v.o.OnStale(reason)
		}
		return nil
	}
	if err := v.write(ctx, next); err != nil {
		return err
	}
	v.mu.Lock()
	c := v.cache[next.SessionID]
	if c == nil {
		c = &cached{}
		v.cache[next.SessionID] = c
	}
	if ok, _ := bridge.Advances(c.max, next); ok {
		c.max, c.lastIsIt = next, true
	}
	v.mu.Unlock()
	return nil
}

// Get returns the cached entry of sessionID: what this instance has read
// of the topic, ok false when the session has none.
func (v *View) Get(sessionID string) (bridge.ViewEntry, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if c := v.cache[sessionID]; c != nil {
		return c.max, true
	}
	return bridge.ViewEntry{}, false
}

// Len is the number of sessions in the cache.
func (v *View) Len() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.cache)
}

// sweep replaces ended sessions' entries older than Retention by
// tombstones.
func (v *View) sweep(ctx context.Context) {
	every := min(max(v.o.Retention/4, time.Second), time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			v.mu.Lock()
			var old []string
			for k, c := range v.cache {
				if c.max.IsFinal() && !c.max.ReceivedAt.IsZero() && now.Sub(c.max.ReceivedAt) > v.o.Retention {
					old = append(old, k)
				}
			}
			v.mu.Unlock()
			for _, k := range old {
				wctx, cancel := context.WithTimeout(ctx, v.o.Timeout)
				err := v.p.Produce(wctx, kafka.Message{Key: []byte(k), Time: now}) // a tombstone
				cancel()
				if err != nil {
					v.log.Warn("kafkaview: tombstone not written; retried at the next sweep", "session_id", bridge.Quote(k), "err", err)
					continue
				}
				v.mu.Lock()
				delete(v.cache, k)
				v.mu.Unlock()
			}
		}
	}
}

// Close stops the followers and the sweep, and releases the connections.
// It is idempotent.
func (v *View) Close() error {
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return nil
	}
	v.closed = true
	v.mu.Unlock()
	v.stop()
	v.wg.Wait()
	if v.p != nil {
		v.p.Close()
	}
	v.tr.CloseIdleConnections()
	return nil
}
