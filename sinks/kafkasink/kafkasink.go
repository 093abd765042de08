package kafkasink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/sinks/internal/kafkaproduce"
	"github.com/qodbridge/qodbridge/sinks/internal/kafkatopics"
)

// Defaults of Options.
const (
	DefaultTopic          = "qod.status"
	DefaultBatchTimeout   = 0
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
	// BatchTimeout is how long the first record on an idle partition
	// waits for others before its produce request is sent (a linger),
	// unless BatchSize records gather first. Default 0: at once. It is
	// not needed for batching: while a partition's produce request is in
	// flight, the records that arrive meanwhile wait and go together in
	// the next one, so batches grow with the load and the broker's round
	// trip. A lone event pays this much latency.
	BatchTimeout time.Duration
	// BatchSize is the most records one produce request carries per
	// partition. Default 100.
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
	// records one produce request carries per partition. Publish
	// refuses a call with a larger record with bridge.ErrTooLarge before
	// writing any of it. Open lowers it to the topic's max.message.bytes
	// (less the batch framing) when it can read that and it is smaller, so
	// that neither a record nor a batch of several exceeds what the broker
	// takes. Default 1 MiB (DefaultMaxMessageBytes).
	MaxMessageBytes int64
	// MaxAttempts is how often a produce request is tried on errors about
	// the cluster. Default 1: one attempt, as bridge.Publisher promises;
	// the sender retries. More attempts keep order (a partition's next
	// request waits for them) but may store a record twice.
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

	// Logger receives topic creation and, at debug level, failed produce
	// requests. nil discards.
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

// Sink publishes canonical events to a Kafka topic through one producer
// (sinks/internal/kafkaproduce). It is safe for concurrent use.
type Sink struct {
	opts      Options
	log       *slog.Logger
	brokers   string // for error texts
	transport *kafka.Transport
	client    *kafka.Client
	p         *kafkaproduce.Producer
	stopBG    context.CancelFunc // the transport's background goroutines
	maxBytes  int64              // the largest record, and the most bytes of records in one request

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
		stopBG:    stop,
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
	s.p = kafkaproduce.New(kafkaproduce.Options{
		Client: s.client, Topic: o.Topic, Compression: codec,
		Linger: o.BatchTimeout, BatchSize: o.BatchSize, MaxBytes: s.maxBytes,
		MaxPending: o.MaxPending, Timeout: o.PublishTimeout, MaxAttempts: o.MaxAttempts, Logger: o.Logger,
	})
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
	now := time.Now()
	msgs := make([]kafka.Message, len(events))
	for i := range events {
		s.message(&msgs[i], &events[i], now)
		// Before any record is handed over: a call refused for its size
		// writes nothing.
		if err := s.fits(kafkaproduce.RecordSize(&msgs[i]), &events[i]); err != nil {
			return err
		}
	}
	tctx, cancel := context.WithTimeoutCause(ctx, s.opts.PublishTimeout, errPublishTimeout)
	defer cancel()
	if err := s.p.Produce(tctx, msgs...); err != nil {
		return s.publishErr(ctx, tctx, events, err)
	}
	return nil
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
		if err := s.fits(kafkaproduce.RecordSize(&m), &events[i]); err != nil {
			return err
		}
	}
	return nil
}

// fits checks a record of n bytes against the bound of a produce request's
// records.
func (s *Sink) fits(n int64, ev *bridge.Event) error {
	if n > s.maxBytes {
		return fmt.Errorf("kafkasink: publish %s to %s: %w: a record of %d bytes, the limit is %d",
			bridge.Quote(ev.ID), s.opts.Topic, bridge.ErrTooLarge, n, s.maxBytes)
	}
	return nil
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

// publishErr classifies a failed Produce.
func (s *Sink) publishErr(ctx, tctx context.Context, events []bridge.Event, err error) error {
	if errors.Is(err, kafkaproduce.ErrPending) {
		if ctx.Err() != nil {
			return fmt.Errorf("kafkasink: publish: wait for a pending slot: %w", ctx.Err())
		}
		return fmt.Errorf("kafkasink: publish: %w: no pending slot within %s (%d records awaiting acks)",
			ErrUnavailable, s.opts.PublishTimeout, s.opts.MaxPending)
	}
	what := fmt.Sprintf("kafkasink: publish %d events to %s", len(events), s.opts.Topic)
	if len(events) == 1 {
		what = fmt.Sprintf("kafkasink: publish %s to %s", bridge.Quote(events[0].ID), s.opts.Topic)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", what, ctx.Err())
	}
	var ne net.Error
	if errors.Is(context.Cause(tctx), errPublishTimeout) || (errors.As(err, &ne) && ne.Timeout()) {
		// Also the produce request's own bound (PublishTimeout too, from
		// when it was sent), which may pass just before the caller's.
		return fmt.Errorf("%s: %w: no ack within %s: %w", what, ErrUnavailable, s.opts.PublishTimeout, context.DeadlineExceeded)
	}
	if errors.Is(err, kafkaproduce.ErrClosed) {
		return fmt.Errorf("%s: %w", what, bridge.ErrClosed)
	}
	var re *kafkaproduce.RecordsError
	if errors.As(err, &re) {
		err = re.Err
		if len(events) > 1 {
			what = fmt.Sprintf("%s: %d failed", what, re.Failed)
		}
	}
	switch {
	case errors.Is(err, kafka.MessageSizeTooLarge):
		// The broker said it of this record alone (the producer splits
		// a refused request until it is): the limit Open read keeps
		// records under the topic's, so the topic's limit was lowered
		// since.
		return fmt.Errorf("%s: %w: %w", what, bridge.ErrTooLarge, err)
	case errors.Is(err, kafka.UnknownTopicOrPartition):
		return fmt.Errorf("%s: %w: %s: %w", what, ErrTopicMissing, s.opts.Topic, err)
	case kafkaproduce.Unavailable(err):
		return fmt.Errorf("%s: %w: %w", what, ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", what, err)
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

// release waits for the queued records to be sent (abandoned ones
// included, each produce request bounded by PublishTimeout) and closes the
// transport; also the cleanup of a half-made Sink.
func (s *Sink) release() {
	if s.p != nil {
		s.p.Close()
	}
	s.transport.CloseIdleConnections()
	s.stopBG()
}
