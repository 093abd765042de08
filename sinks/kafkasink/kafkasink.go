package kafkasink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/sinks/internal/kafkatopics"
	"github.com/qodbridge/qodbridge/sinks/internal/slots"
)

// Defaults of Options.
const (
	DefaultTopic          = "qod.status"
	DefaultBatchTimeout   = 5 * time.Millisecond
	DefaultBatchSize      = 100
	DefaultPublishTimeout = 5 * time.Second
	DefaultMaxPending     = 10000
	DefaultMaxAttempts    = 1
	DefaultPartitions     = 6
	DefaultCompression    = "none"
	// DefaultMaxMessageBytes is kafka-go's own default for Writer.BatchBytes
	// (1 MiB), a little under the broker's default message.max.bytes.
	DefaultMaxMessageBytes = 1 << 20
)

// batchOverhead is what a produce request's record batch adds to the sum
// of kafka-go's record sizes at most: the batch header (61 bytes) and the
// log overhead (12); kafka-go counts each record's own framing generously
// (fixed-width lengths where Kafka writes varints), which covers the rest.
const batchOverhead = 128

// Content types of the two CloudEvents modes (the content-type header).
const (
	ContentTypeBinary     = bridge.DataContentType
	ContentTypeStructured = bridge.StructuredContentType
)

var (
	// ErrUnavailable wraps publish and readiness failures that say nothing
	// about the event and everything about the cluster: no broker
	// reachable, no leader, not enough in-sync replicas, no ack within the
	// publish timeout, too many records awaiting acks. The sender should
	// retry later (the ingress answers 503).
	ErrUnavailable = errors.New("kafkasink: Kafka unavailable")

	// ErrTopicMissing is returned by Open, Ready and Publish when the topic
	// does not exist and the Sink may not create it (Options.CreateTopics).
	ErrTopicMissing = errors.New("kafkasink: topic does not exist")

	// ErrInvalidOptions is returned by Open for options that cannot work,
	// naming the field.
	ErrInvalidOptions = errors.New("kafkasink: invalid options")
)

// Options configure a Sink. The zero value publishes binary-mode events to
// the existing topic qod.status, keyed by sessionId, uncompressed.
type Options struct {
	// Topic the events go to. Default "qod.status".
	Topic string
	// Structured publishes structured-mode CloudEvents (the value is the
	// whole event, content-type application/cloudevents+json) instead of
	// binary mode. Default false.
	Structured bool
	// Compression of record batches: "none", "gzip", "snappy", "lz4" or
	// "zstd". Default "none" ("" is none too).
	Compression string
	// BatchTimeout is how long a partition's batch may wait for more
	// records before it is sent: the latency added to a lone publish.
	// Default 5ms (kafka-go's own default is 1s).
	BatchTimeout time.Duration
	// BatchSize is the most records one produce request carries per
	// partition; a full batch is sent at once. Default 100: kafka-go
	// allocates room for BatchSize records with every batch, however few
	// it holds, so 1000 costs about 150 KB per batch (per 5ms and
	// partition at low load) and buys no throughput for records this
	// small (see BenchmarkPublish).
	BatchSize int
	// PublishTimeout bounds one Publish call, waiting for a slot and for
	// the acks included. Default 5s. It also bounds one produce request.
	PublishTimeout time.Duration
	// MaxPending bounds the records handed to the writer and not yet
	// acknowledged or failed, across all callers, abandoned ones (whose
	// caller gave up) included; callers beyond it wait for slots within
	// their timeout. Default 10000.
	MaxPending int
	// MaxMessageBytes is the largest record the Sink writes, as kafka-go
	// counts it (key, value, headers and framing), and the most bytes of
	// records one produce batch carries (the Writer's BatchBytes). Publish
	// refuses a call with a larger record with bridge.ErrTooLarge before
	// writing any of it. Open lowers it to the topic's max.message.bytes
	// (less the batch framing) when it can read that and it is smaller, so
	// that neither a record nor a batch of several exceeds what the broker
	// takes. Default 1 MiB (DefaultMaxMessageBytes).
	MaxMessageBytes int64
	// MaxAttempts is how often the writer tries a batch on retriable
	// errors. Default 1: one attempt, as bridge.Publisher promises; the
	// sender retries. More attempts keep order (kafka-go writes one batch
	// at a time per partition) but may store a record twice.
	MaxAttempts int

	// CreateTopics creates Topic when it is missing (at Open and Ready);
	// otherwise a missing topic is an error (ErrTopicMissing). Default
	// false.
	CreateTopics bool
	// Partitions of a created topic. Default 6.
	Partitions int
	// ReplicationFactor of a created topic. Default 0: the broker's
	// default.replication.factor (needs Kafka 2.4 or later).
	ReplicationFactor int
	// Compact creates the topic with cleanup.policy=compact: it keeps the
	// last status of every session and drops the history. Default false
	// (cleanup.policy=delete: history by retention time).
	Compact bool

	// Logger receives topic creation and, at debug level, kafka-go's
	// write errors. nil discards.
	Logger *slog.Logger
}

func (o *Options) withDefaults() (Options, kafka.Compression, error) {
	r := *o
	if r.Topic == "" {
		r.Topic = DefaultTopic
	}
	if r.Compression == "" {
		r.Compression = DefaultCompression
	}
	if r.BatchTimeout == 0 {
		r.BatchTimeout = DefaultBatchTimeout
	}
	if r.BatchSize == 0 {
		r.BatchSize = DefaultBatchSize
	}
	if r.PublishTimeout == 0 {
		r.PublishTimeout = DefaultPublishTimeout
	}
	if r.MaxPending == 0 {
		r.MaxPending = DefaultMaxPending
	}
	if r.MaxAttempts == 0 {
		r.MaxAttempts = DefaultMaxAttempts
	}
	if r.Partitions == 0 {
		r.Partitions = DefaultPartitions
	}
	if r.MaxMessageBytes == 0 {
		r.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	codec, err := compression(r.Compression)
	if err != nil {
		return r, 0, err
	}
	switch {
	case !kafkatopics.Valid(r.Topic):
		return r, 0, fmt.Errorf("%w: Topic %q: want 1-249 of [a-zA-Z0-9._-], not \".\" or \"..\"", ErrInvalidOptions, r.Topic)
	case r.BatchTimeout < 0:
		return r, 0, fmt.Errorf("%w: BatchTimeout %s is negative", ErrInvalidOptions, r.BatchTimeout)
	case r.BatchSize < 0:
		return r, 0, fmt.Errorf("%w: BatchSize %d is negative", ErrInvalidOptions, r.BatchSize)
	case r.PublishTimeout < 0:
		return r, 0, fmt.Errorf("%w: PublishTimeout %s is negative", ErrInvalidOptions, r.PublishTimeout)
	case r.MaxPending < 0:
		return r, 0, fmt.Errorf("%w: MaxPending %d is negative", ErrInvalidOptions, r.MaxPending)
	case r.MaxAttempts < 0:
		return r, 0, fmt.Errorf("%w: MaxAttempts %d is negative", ErrInvalidOptions, r.MaxAttempts)
	case r.MaxMessageBytes < 0:
		return r, 0, fmt.Errorf("%w: MaxMessageBytes %d is negative", ErrInvalidOptions, r.MaxMessageBytes)
	case r.Partitions < 0:
		return r, 0, fmt.Errorf("%w: Partitions %d is negative", ErrInvalidOptions, r.Partitions)
	case r.ReplicationFactor < 0 || r.ReplicationFactor > 32767:
		return r, 0, fmt.Errorf("%w: ReplicationFactor %d out of range", ErrInvalidOptions, r.ReplicationFactor)
	}
	return r, codec, nil
}

func compression(name string) (kafka.Compression, error) {
	switch strings.ToLower(name) {
	case "", "none":
		return 0, nil
	case "gzip":
		return kafka.Gzip, nil
	case "snappy":
		return kafka.Snappy, nil
	case "lz4":
		return kafka.Lz4, nil
	case "zstd":
		return kafka.Zstd, nil
	}
	return 0, fmt.Errorf("%w: Compression %q: want none, gzip, snappy, lz4 or zstd", ErrInvalidOptions, name)
}

// Sink publishes canonical events to a Kafka topic through one shared
// kafka-go Writer. It is safe for concurrent use.
type Sink struct {
	opts      Options
	log       *slog.Logger
	brokers   string // for error texts
	transport *kafka.Transport
	client    *kafka.Client
	w         *kafka.Writer
	slots     *slots.Slots
	stopBG    context.CancelFunc // the transport's background goroutines
	maxBytes  int64              // the largest record written: the Writer's BatchBytes

	mu        sync.RWMutex
	closed    bool
	inflight  sync.WaitGroup
	closeOnce sync.Once
}

var _ bridge.Publisher = (*Sink)(nil)

// Open returns a Sink publishing to opts.Topic on the cluster co names. It
// checks that the topic exists, creating it when opts.CreateTopics is set,
// before it returns; ctx bounds that. The Sink owns its connections: Close
// releases them.
func Open(ctx context.Context, co ConnOptions, opts Options) (*Sink, error) {
	o, codec, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	transport, addr, err := co.Transport()
	if err != nil {
		return nil, err
	}
	bg, stop := context.WithCancel(context.Background())
	transport.Context = bg
	brokers, _ := co.brokers()
	s := &Sink{
		opts:      o,
		log:       o.Logger,
		brokers:   strings.Join(brokers, ","),
		transport: transport,
		client:    &kafka.Client{Addr: addr, Transport: transport, Timeout: o.PublishTimeout},
		slots:     slots.New(o.MaxPending),
		stopBG:    stop,
	}
	s.w = &kafka.Writer{
		Addr:      addr,
		Topic:     o.Topic,
		Transport: transport,
		// Murmur2 on the record key, as Java's and franz-go's default
		// partitioners: (murmur2(key) & 0x7fffffff) % partitions. The
		// key (sessionId) is never nil, so Consistent, which only
		// decides where nil keys go, does not matter.
		Balancer:     &balancer{},
		RequiredAcks: kafka.RequireAll,
		Async:        false,
		BatchTimeout: o.BatchTimeout,
		BatchSize:    o.BatchSize,
		BatchBytes:   o.MaxMessageBytes, // lowered to the topic's limit below
		// A produce request must not outlive the callers waiting on
		// it, or the partition's queue stalls behind it.
		WriteTimeout: o.PublishTimeout,
		ReadTimeout:  o.PublishTimeout,
		MaxAttempts:  o.MaxAttempts,
		Compression:  codec,
		Completion:   s.completion,
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			s.log.Debug("kafkasink: kafka-go writer: " + fmt.Sprintf(msg, args...))
		}),
		// Topics are created by ensureTopic with the configured
		// partitions, never by a broker's auto-creation defaults.
		AllowAutoTopicCreation: false,
	}
	if err := s.ensureTopic(ctx, o.CreateTopics); err != nil {
		s.release()
		return nil, err
	}
	s.maxBytes = o.MaxMessageBytes
	if topicMax, err := s.topicMaxMessageBytes(ctx); err != nil {
		s.log.Debug("kafkasink: cannot read the topic's max.message.bytes; records are bounded by MaxMessageBytes alone",
			"topic", o.Topic, "max_message_bytes", s.maxBytes, "err", err)
	} else if limit := topicMax - batchOverhead; limit > 0 && limit < s.maxBytes {
		s.log.Info("kafkasink: records bounded by the topic's max.message.bytes", "topic", o.Topic, "max.message.bytes", topicMax)
		s.maxBytes = limit
	}
	s.w.BatchBytes = s.maxBytes // nothing was written yet
	return s, nil
}

// topicMaxMessageBytes reads the topic's max.message.bytes, the largest
// record batch its brokers take.
func (s *Sink) topicMaxMessageBytes(ctx context.Context) (int64, error) {
	resp, err := s.client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: s.opts.Topic, ConfigNames: []string{"max.message.bytes"},
	}}})
	if err != nil {
		return 0, err
	}
	for _, r := range resp.Resources {
		if r.Error != nil {
			return 0, r.Error
		}
		for _, e := range r.ConfigEntries {
			if e.ConfigName == "max.message.bytes" {
				return strconv.ParseInt(e.ConfigValue, 10, 64)
			}
		}
	}
	return 0, errors.New("no max.message.bytes in the answer")
}

// Topic returns the topic the Sink publishes to.
func (s *Sink) Topic() string { return s.opts.Topic }

// balancer is kafka-go's Murmur2Balancer that also counts, per Publish
// call, the records it placed. kafka-go balances every record of a
// WriteMessages call and then hands all of them to its batches with nothing
// in between that can fail, so a call whose last record was balanced has
// handed over every record and will see a Completion for each.
type balancer struct{ m kafka.Murmur2Balancer }

func (b *balancer) Balance(msg kafka.Message, partitions ...int) int {
	if c, ok := msg.WriterData.(*call); ok {
		c.balanced++ // only WriteMessages' goroutine, the caller's, runs this
	}
	return b.m.Balance(msg, partitions...)
}

// call is the state of one Publish that the writer's goroutines see
// through Message.WriterData.
type call struct {
	balanced int          // records placed by balancer; the caller's goroutine only
	held     atomic.Int32 // slots not yet given back
}

// completion is the writer's Completion: it runs for every batch written
// or failed, including batches whose callers gave up, and gives their slots
// back.
func (s *Sink) completion(msgs []kafka.Message, _ error) {
	n := 0
	for i := range msgs {
		if c, ok := msgs[i].WriterData.(*call); ok && c.held.Add(-1) >= 0 {
			n++
		}
	}
	if n > 0 {
		s.slots.Release(n)
	}
}

// errPublishTimeout is the cause of a Publish's own deadline, telling it
// apart from the caller's.
var errPublishTimeout = errors.New("kafkasink: publish timeout")

// Publish writes events to the topic and waits until the brokers
// acknowledged every one of them (acks=all), ctx is done, or
// Options.PublishTimeout passed. Concurrent calls share batches. See the
// package doc for delivery semantics and what a cancelled call may still
// write. It checks every record against Options.MaxMessageBytes before
// writing any. Errors wrap ctx.Err() when ctx ended first, ErrUnavailable
// for cluster trouble and timeouts, ErrTopicMissing, bridge.ErrClosed after
// Close, bridge.ErrTooLarge for a record over the size limit (also when the
// broker answered MESSAGE_TOO_LARGE), and otherwise the kafka.Error the
// broker answered.
func (s *Sink) Publish(ctx context.Context, events ...bridge.Event) error {
	if len(events) == 0 {
		return nil
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return fmt.Errorf("kafkasink: publish: %w", bridge.ErrClosed)
	}
	s.inflight.Add(1)
	s.mu.RUnlock()
	defer s.inflight.Done()

	if err := ctx.Err(); err != nil {
		return fmt.Errorf("kafkasink: publish: %w", err)
	}
	c := &call{}
	msgs := make([]kafka.Message, len(events))
	now := time.Now()
	for i := range events {
		s.message(&msgs[i], &events[i], now)
		msgs[i].WriterData = c
		// Before any slot is taken or record written: a call refused for
		// its size writes nothing.
		if err := s.fits(&msgs[i], &events[i]); err != nil {
			return err
		}
	}

	tctx, cancel := context.WithTimeoutCause(ctx, s.opts.PublishTimeout, errPublishTimeout)
	defer cancel()

	// A call larger than the whole bound takes all of it.
	n := min(len(events), s.slots.Size())
	if err := s.slots.Acquire(tctx, nil, n); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("kafkasink: publish: wait for a pending slot: %w", ctx.Err())
		}
		return fmt.Errorf("kafkasink: publish: %w: no pending slot within %s (%d records awaiting acks)",
			ErrUnavailable, s.opts.PublishTimeout, s.slots.Size())
	}
	c.held.Store(int32(n))
	err := s.w.WriteMessages(tctx, msgs...)
	if err == nil {
		return nil
	}
	if c.balanced < len(msgs) {
		// Refused before batching: no Completion will give the slots back.
		if k := c.held.Swap(0); k > 0 {
			s.slots.Release(int(k))
		}
	}
	return s.publishErr(ctx, tctx, events, err)
}

// CheckSize returns nil when the record of every event fits
// Options.MaxMessageBytes (as lowered to the topic's limit at Open), else an
// error wrapping bridge.ErrTooLarge naming the first that does not. It
// writes nothing and does not block; it is safe for concurrent use.
// Publish makes the same check itself; CheckSize lets a caller publishing
// to several brokers ask each before it publishes to any.
func (s *Sink) CheckSize(events ...bridge.Event) error {
	now := time.Now()
	for i := range events {
		var m kafka.Message
		s.message(&m, &events[i], now)
		if err := s.fits(&m, &events[i]); err != nil {
			return err
		}
	}
	return nil
}

// fits checks m against the Writer's BatchBytes, the bound kafka-go itself
// refuses a record over (kafka.MessageTooLargeError).
func (s *Sink) fits(m *kafka.Message, ev *bridge.Event) error {
	if n := recordSize(m); n > s.maxBytes {
		return fmt.Errorf("kafkasink: publish %s to %s: %w: a record of %d bytes, the limit is %d",
			bridge.Quote(ev.ID), s.opts.Topic, bridge.ErrTooLarge, n, s.maxBytes)
	}
	return nil
}

// recordSize is a record's size as kafka-go counts it against BatchBytes
// (Message.totalSize, which it does not export).
func recordSize(m *kafka.Message) int64 {
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

// message fills m with the record of ev: key sessionId; binary mode
// headers ce_<attr> with the values as they are (the Kafka binding does
// not percent-encode) and content-type, value the data; structured mode
// content-type and the whole event as value. In both modes the trace
// context also travels as the plain W3C headers traceparent and tracestate
// (traceHeaders), where Kafka instrumentation reads it.
func (s *Sink) message(m *kafka.Message, ev *bridge.Event, now time.Time) {
	m.Time = now // kafka-go would send timestamp 0 for a zero Time
	// The wire format is the bridge's: header names and values of its
	// Kafka binding, the body its encoder's.
	b := bridge.KafkaBinding
	if s.opts.Structured {
		m.Key = []byte(ev.SessionID)
		var tp, ts []byte
		if ev.TraceParent != "" {
			tp, ts = []byte(ev.TraceParent), []byte(ev.TraceState)
		}
		m.Headers = traceHeaders(append(make([]kafka.Header, 0, 3), kafka.Header{Key: b.ContentTypeHeader(), Value: ctStructured}), tp, ts)
		m.Value = ev.StructuredJSON()
		return
	}
	var stack [10]bridge.Attr
	attrs := ev.AppendAttributes(stack[:0])
	// The key and the header values share one array (kafka-go only reads
	// them): one allocation, not one per value.
	n := len(ev.SessionID)
	for _, a := range attrs {
		n += len(b.Value(a.Value))
	}
	buf := make([]byte, 0, n)
	buf = append(buf, ev.SessionID...)
	m.Key = buf[:len(buf):len(buf)]
	h := make([]kafka.Header, 0, len(attrs)+3)
	var tp, ts []byte // the trace context's values, shared with its ce_ headers
	for _, a := range attrs {
		i := len(buf)
		buf = append(buf, b.Value(a.Value)...)
		v := buf[i:len(buf):len(buf)]
		h = append(h, kafka.Header{Key: b.Header(a.Name), Value: v})
		switch a.Name {
		case "traceparent":
			tp = v
		case "tracestate":
			ts = v
		}
	}
	m.Headers = traceHeaders(append(h, kafka.Header{Key: b.ContentTypeHeader(), Value: ctBinary}), tp, ts)
	m.Value = ev.Data()
}

// Names of the W3C Trace Context headers, as the OpenTelemetry propagator
// (propagation.TraceContext) writes and reads them.
const (
	HeaderTraceParent = "traceparent"
	HeaderTraceState  = "tracestate"
)

// traceHeaders appends an event's trace context to h as the plain W3C
// headers traceparent and tracestate, beside ce_traceparent: Kafka
// instrumentation (OpenTelemetry's, franz-go's kotel, sarama's) extracts
// the context of a consumed record from these, not from the CloudEvents
// extension. Each is left out when empty, tracestate also without a
// traceparent.
func traceHeaders(h []kafka.Header, traceparent, tracestate []byte) []kafka.Header {
	if len(traceparent) > 0 {
		h = append(h, kafka.Header{Key: HeaderTraceParent, Value: traceparent})
		if len(tracestate) > 0 {
			h = append(h, kafka.Header{Key: HeaderTraceState, Value: tracestate})
		}
	}
	return h
}

// Shared read-only header values; kafka-go only reads them.
var (
	ctBinary     = []byte(ContentTypeBinary)
	ctStructured = []byte(ContentTypeStructured)
)

// publishErr classifies a failed WriteMessages.
func (s *Sink) publishErr(ctx, tctx context.Context, events []bridge.Event, err error) error {
	what := fmt.Sprintf("kafkasink: publish %d events to %s", len(events), s.opts.Topic)
	if len(events) == 1 {
		what = fmt.Sprintf("kafkasink: publish %s to %s", bridge.Quote(events[0].ID), s.opts.Topic)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", what, ctx.Err())
	}
	if errors.Is(context.Cause(tctx), errPublishTimeout) {
		return fmt.Errorf("%s: %w: no ack within %s: %w", what, ErrUnavailable, s.opts.PublishTimeout, context.DeadlineExceeded)
	}
	failed := 0
	var first error
	var werrs kafka.WriteErrors
	if errors.As(err, &werrs) {
		for _, e := range werrs {
			if e != nil {
				failed++
				if first == nil {
					first = e
				}
			}
		}
		if first != nil {
			err = first
			if len(events) > 1 {
				what = fmt.Sprintf("%s: %d failed", what, failed)
			}
		}
	}
	switch {
	case errors.Is(err, kafka.MessageSizeTooLarge):
		// kafka-go's MessageTooLargeError unwraps to it too. The broker
		// answers it for a whole batch, which may hold other callers'
		// records: the limit Open read keeps batches under the topic's,
		// so this means the topic's limit was lowered since.
		return fmt.Errorf("%s: %w: %w", what, bridge.ErrTooLarge, err)
	case errors.Is(err, kafka.UnknownTopicOrPartition):
		return fmt.Errorf("%s: %w: %s: %w", what, ErrTopicMissing, s.opts.Topic, err)
	case unavailable(err):
		return fmt.Errorf("%s: %w: %w", what, ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// unavailable reports whether err is about the cluster rather than the
// records: network trouble, retriable broker errors, timeouts.
func unavailable(err error) bool {
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

// Ready reports whether the Sink can publish: a broker answers and the
// topic exists. With Options.CreateTopics it creates a missing topic, so a
// readiness probe heals a cluster that lost it.
func (s *Sink) Ready(ctx context.Context) error {
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return fmt.Errorf("kafkasink: ready: %w", bridge.ErrClosed)
	}
	// Metadata is served from the transport's cache (refreshed every few
	// seconds); ApiVersions is a real round trip to a broker.
	if _, err := s.client.ApiVersions(ctx, &kafka.ApiVersionsRequest{}); err != nil {
		return s.clusterErr(ctx, "ready", err)
	}
	return s.ensureTopic(ctx, s.opts.CreateTopics)
}

func (s *Sink) clusterErr(ctx context.Context, step string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("kafkasink: %s: brokers %s: %w (%w)", step, s.brokers, ctx.Err(), err)
	}
	return fmt.Errorf("kafkasink: %s: %w: brokers %s: %w", step, ErrUnavailable, s.brokers, err)
}

// ensureTopic checks that the topic exists, creating it when create is set.
func (s *Sink) ensureTopic(ctx context.Context, create bool) error {
	topic := s.opts.Topic
	missing, err := kafkatopics.Missing(ctx, s.client, []string{topic})
	if errors.Is(err, kafkatopics.ErrTopic) {
		return fmt.Errorf("kafkasink: %w: %w", ErrUnavailable, err)
	}
	if err != nil {
		return s.clusterErr(ctx, "topic "+topic, err)
	}
	if len(missing) == 0 {
		return nil
	}
	if !create {
		return fmt.Errorf("%w: topic %q on brokers %s: create it, or set kafka.create_topics: true to let qodbridge create it",
			ErrTopicMissing, topic, s.brokers)
	}
	policy := "delete"
	if s.opts.Compact {
		policy = "compact"
	}
	if err := kafkatopics.Create(ctx, s.client, missing, s.opts.Partitions, s.opts.ReplicationFactor, map[string]string{"cleanup.policy": policy}); err != nil {
		if ctx.Err() == nil && errors.As(err, new(kafka.Error)) {
			return fmt.Errorf("kafkasink: %w", err)
		}
		return s.clusterErr(ctx, "create topic "+topic, err)
	}
	s.log.Info("kafkasink: created topic", "topic", topic, "partitions", s.opts.Partitions,
		"replication_factor", s.opts.ReplicationFactor, "cleanup.policy", policy)
	return nil
}

// Close makes later Publish calls fail with bridge.ErrClosed, waits for the
// calls in flight (each bounded by PublishTimeout), flushes the writer (the
// records of calls that gave up included, each produce bounded by
// PublishTimeout) and releases the connections. It is idempotent, safe to
// call concurrently, and returns nil.
func (s *Sink) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.closeOnce.Do(func() {
		s.inflight.Wait()
		s.release()
	})
	return nil
}

// release closes the writer and the transport; also the cleanup of a
// half-made Sink.
func (s *Sink) release() {
	_ = s.w.Close() // always nil: it waits for the batches, whose errors went to their callers
	s.transport.CloseIdleConnections()
	s.stopBG()
}
