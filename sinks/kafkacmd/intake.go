package kafkacmd

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/bridge/command"
	"github.com/qodbridge/qodbridge/sinks/internal/kafkaproduce"
	"github.com/qodbridge/qodbridge/sinks/internal/kafkatopics"
	"github.com/qodbridge/qodbridge/sinks/kafkasink"
)

// Executor runs a parsed command to its outcome; *command.Engine
// implements it. It is called from several goroutines at once and must
// return soon after ctx ends. A non-nil error means the command did not
// finish: nothing is published and its offset is not committed. Per the
// engine's contract that happens only when ctx ended (shutdown or
// revocation); an error while ctx is live would hold the partition's
// watermark until the next rebalance, when the command is redelivered.
type Executor interface {
	Execute(ctx context.Context, cmd command.Command) (command.Outcome, error)
}

var _ Executor = (*command.Engine)(nil)

// Defaults of Options.
const (
	DefaultTopic          = "qod.commands"
	DefaultResultTopic    = "qod.results"
	DefaultDLQTopic       = "qod.commands.dlq"
	DefaultGroupID        = "qodbridge"
	DefaultLanes          = command.DefaultLanes
	DefaultMaxUncommitted = 256
	DefaultFetchMaxBytes  = 1 << 20
	DefaultFetchMaxWait   = 500 * time.Millisecond
	DefaultPublishTimeout = 5 * time.Second
	DefaultPartitions     = 6
)

// msgDraining is logged when a generation ended (shutdown or revocation)
// and its commands in flight are finishing.
const msgDraining = "kafkacmd: generation ending; finishing the commands in flight"

// Headers this package adds to dead letters besides the command package's.
const (
	// HeaderOriginalPartition is the partition the command was read from.
	HeaderOriginalPartition = "Qod-Original-Partition"
	// HeaderOriginalOffset is the command's offset in that partition.
	HeaderOriginalOffset = "Qod-Original-Offset"
)

var (
	// ErrTopicMissing is returned by New and Ready when a topic does not
	// exist and Options.CreateTopics is off.
	ErrTopicMissing = errors.New("kafkacmd: topic does not exist")
	// ErrInvalidOptions is returned by New for options that cannot work,
	// naming the field.
	ErrInvalidOptions = errors.New("kafkacmd: invalid options")
	// ErrClosed is returned by Run and Ready after Close.
	ErrClosed = errors.New("kafkacmd: intake closed")
	// ErrRunning is returned by Run while another Run of the same Intake
	// is active.
	ErrRunning = errors.New("kafkacmd: intake already running")
)

// Options configure an Intake. The zero value consumes qod.commands in the
// group qodbridge with 16 lanes and publishes to qod.results and
// qod.commands.dlq, which must exist.
type Options struct {
	// Topic holds the commands. Default "qod.commands".
	Topic string
	// ResultTopic receives the results. Default "qod.results".
	ResultTopic string
	// DLQTopic receives invalid commands. Default "qod.commands.dlq".
	DLQTopic string
	// GroupID is the consumer group every instance joins. Default
	// "qodbridge".
	GroupID string
	// Lanes is the number of commands run at once. Default 16.
	Lanes int
	// MaxUncommitted bounds, per partition, the commands fetched and not
	// yet below the committed watermark (running, waiting for a lane, or
	// finished behind an unfinished one): the most a partition redelivers
	// after a crash. Default 256.
	MaxUncommitted int
	// FetchMaxBytes bounds one fetch response per partition. Default 1 MiB.
	FetchMaxBytes int
	// FetchMaxWait is how long the broker holds a fetch of an empty
	// partition. Default 500ms.
	FetchMaxWait time.Duration

	// HeartbeatInterval, SessionTimeout and RebalanceTimeout of the group.
	// Defaults 3s, 30s and 30s (kafka-go's). The broker bounds
	// SessionTimeout (group.min/max.session.timeout.ms).
	HeartbeatInterval time.Duration
	SessionTimeout    time.Duration
	RebalanceTimeout  time.Duration
	// RevokeTimeout is how long commands of revoked partitions may run on
	// to finish and publish before they are cancelled and left for the
	// next owner. It must be below RebalanceTimeout. Default 2/3 of
	// RebalanceTimeout (20s).
	RevokeTimeout time.Duration
	// PartitionWatchInterval is how often the group checks the command
	// topic for added partitions (and rebalances when it has). Default 5s.
	PartitionWatchInterval time.Duration
	// JoinBackoff is the wait before rejoining the group after an error.
	// Default 5s (kafka-go's).
	JoinBackoff time.Duration

	// CreateTopics creates missing topics at New; otherwise a missing
	// topic is an error (ErrTopicMissing). Default false.
	CreateTopics bool
	// Partitions of a created topic. Default 6.
	Partitions int
	// ReplicationFactor of a created topic. Default 0: the broker's
	// default.replication.factor.
	ReplicationFactor int

	// Source is the CloudEvents source of results. Default
	// command.DefaultResultSource.
	Source string
	// PublishTimeout bounds one attempt to publish a result and dead
	// letter, and each topic check. Default 5s.
	PublishTimeout time.Duration
	// DeadLetterBody bounds how much of a command's value its dead letter
	// keeps. Default command.DefaultDeadLetterBody (64 KiB).
	DeadLetterBody int
	// Logger gets one line per failure and per generation. Nil discards.
	Logger *slog.Logger
	// Trace, when set, wraps each command's execution: it gets the
	// record's headers (a traceparent header continues the sender's trace)
	// and returns the context to execute with and a function called with
	// the outcome's error. Nil: tracing off.
	Trace command.TraceFunc
	// OnOutcome, when set, is called once per command handled, with its
	// action and command.Outcome label (OutcomeUnfinished when it was left
	// uncommitted for redelivery). For metrics; it must not block.
	OnOutcome func(action command.Action, outcome string)
}

func (o *Options) withDefaults() (Options, error) {
	r := *o
	r.Topic = cmp.Or(r.Topic, DefaultTopic)
	r.ResultTopic = cmp.Or(r.ResultTopic, DefaultResultTopic)
	r.DLQTopic = cmp.Or(r.DLQTopic, DefaultDLQTopic)
	r.GroupID = cmp.Or(r.GroupID, DefaultGroupID)
	r.Lanes = cmp.Or(r.Lanes, DefaultLanes)
	r.MaxUncommitted = cmp.Or(r.MaxUncommitted, DefaultMaxUncommitted)
	r.FetchMaxBytes = cmp.Or(r.FetchMaxBytes, DefaultFetchMaxBytes)
	r.FetchMaxWait = cmp.Or(r.FetchMaxWait, DefaultFetchMaxWait)
	r.HeartbeatInterval = cmp.Or(r.HeartbeatInterval, 3*time.Second)
	r.SessionTimeout = cmp.Or(r.SessionTimeout, 30*time.Second)
	r.RebalanceTimeout = cmp.Or(r.RebalanceTimeout, 30*time.Second)
	r.RevokeTimeout = cmp.Or(r.RevokeTimeout, r.RebalanceTimeout*2/3)
	r.PartitionWatchInterval = cmp.Or(r.PartitionWatchInterval, 5*time.Second)
	r.JoinBackoff = cmp.Or(r.JoinBackoff, 5*time.Second)
	r.Partitions = cmp.Or(r.Partitions, DefaultPartitions)
	r.Source = cmp.Or(r.Source, command.DefaultResultSource)
	r.PublishTimeout = cmp.Or(r.PublishTimeout, DefaultPublishTimeout)
	r.DeadLetterBody = cmp.Or(r.DeadLetterBody, command.DefaultDeadLetterBody)
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	for _, t := range []struct{ field, topic string }{{"Topic", r.Topic}, {"ResultTopic", r.ResultTopic}, {"DLQTopic", r.DLQTopic}} {
		if !kafkatopics.Valid(t.topic) {
			return r, fmt.Errorf("%w: %s %q: want 1-249 of [a-zA-Z0-9._-], not \".\" or \"..\"", ErrInvalidOptions, t.field, t.topic)
		}
	}
	switch {
	case r.Topic == r.ResultTopic || r.Topic == r.DLQTopic:
		return r, fmt.Errorf("%w: Topic %q is also the result or dead-letter topic: results would be read as commands", ErrInvalidOptions, r.Topic)
	case r.Lanes < 0, r.MaxUncommitted < 0, r.FetchMaxBytes < 0, r.Partitions < 0:
		return r, fmt.Errorf("%w: Lanes, MaxUncommitted, FetchMaxBytes and Partitions must not be negative", ErrInvalidOptions)
	case r.ReplicationFactor < 0 || r.ReplicationFactor > 32767:
		return r, fmt.Errorf("%w: ReplicationFactor %d out of range", ErrInvalidOptions, r.ReplicationFactor)
	case r.RevokeTimeout >= r.RebalanceTimeout:
		return r, fmt.Errorf("%w: RevokeTimeout %s must be below RebalanceTimeout %s", ErrInvalidOptions, r.RevokeTimeout, r.RebalanceTimeout)
	case r.HeartbeatInterval >= r.SessionTimeout:
		return r, fmt.Errorf("%w: HeartbeatInterval %s must be below SessionTimeout %s", ErrInvalidOptions, r.HeartbeatInterval, r.SessionTimeout)
	}
	return r, nil
}

// Intake consumes commands from Kafka. Create it with New, run it with Run,
// release it with Close after Run returned.
type Intake struct {
	o       Options
	log     *slog.Logger
	exec    Executor
	brokers []string
	dialer  *kafka.Dialer

	transport *kafka.Transport
	stopBG    context.CancelFunc
	client    *kafka.Client
	// producers of the result and dead-letter topics, by topic: the
	// status sink's producer (sinks/internal/kafkaproduce), so a result
	// goes out at once instead of after a batch timer.
	producers map[string]*kafkaproduce.Producer

	inFlight atomic.Int64
	running  atomic.Bool

	mu        sync.Mutex
	closed    bool
	closeOnce sync.Once
}

// New checks (or, with Options.CreateTopics, creates) the command, result
// and dead-letter topics on the cluster co names, within ctx, and returns an
// Intake that runs commands with exec. The Intake owns its connections:
// Close releases them.
func New(ctx context.Context, co kafkasink.ConnOptions, exec Executor, o Options) (*Intake, error) {
	if exec == nil {
		return nil, fmt.Errorf("%w: nil Executor", ErrInvalidOptions)
	}
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	transport, addr, err := co.Transport()
	if err != nil {
		return nil, fmt.Errorf("kafkacmd: %w", err)
	}
	dialer, err := co.Dialer()
	if err != nil {
		return nil, fmt.Errorf("kafkacmd: %w", err)
	}
	brokers := []string{kafkasink.DefaultBroker}
	if len(co.Brokers) > 0 {
		brokers = make([]string, len(co.Brokers)) // the caller's slice stays as it is
		for i, b := range co.Brokers {
			brokers[i] = strings.TrimSpace(b)
		}
	}
	bg, stop := context.WithCancel(context.Background())
	transport.Context = bg
	in := &Intake{
		o: o, log: o.Logger, exec: exec, brokers: brokers, dialer: dialer,
		transport: transport, stopBG: stop,
		client: &kafka.Client{Addr: addr, Transport: transport, Timeout: o.PublishTimeout},
	}
	in.producers = map[string]*kafkaproduce.Producer{}
	for _, topic := range []string{o.ResultTopic, o.DLQTopic} {
		if in.producers[topic] == nil {
			// Results keyed by sessionId land where the status events of
			// the session and every Java or franz-go producer put that
			// key (murmur2). One attempt per call: the lane retries the
			// whole outcome with backoff, and sees every failure.
			in.producers[topic] = kafkaproduce.New(kafkaproduce.Options{Client: in.client, Topic: topic,
				Timeout: o.PublishTimeout, MaxAttempts: 1, Logger: o.Logger})
		}
	}
	if err := in.ensureTopics(ctx, o.CreateTopics); err != nil {
		in.release()
		return nil, err
	}
	return in, nil
}

// InFlight reports the commands handed to lanes and not yet finished.
func (in *Intake) InFlight() int { return int(in.inFlight.Load()) }

// Ready reports whether a broker answers and the three topics exist.
func (in *Intake) Ready(ctx context.Context) error {
	in.mu.Lock()
	closed := in.closed
	in.mu.Unlock()
	if closed {
		return ErrClosed
	}
	return in.ensureTopics(ctx, false)
}

// ensureTopics checks that the topics exist, creating missing ones when
// create is set.
func (in *Intake) ensureTopics(ctx context.Context, create bool) error {
	topics := []string{in.o.Topic, in.o.ResultTopic, in.o.DLQTopic}
	ctx, cancel := context.WithTimeout(ctx, in.o.PublishTimeout)
	defer cancel()
	missing, err := kafkatopics.Missing(ctx, in.client, topics)
	if err != nil {
		return fmt.Errorf("kafkacmd: topics %s on brokers %s: %w", strings.Join(topics, ", "), strings.Join(in.brokers, ","), err)
	}
	if len(missing) == 0 {
		return nil
	}
	if !create {
		return fmt.Errorf("%w: %s on brokers %s: create them, or set kafka.create_topics: true to let qodbridge create them",
			ErrTopicMissing, strings.Join(missing, ", "), strings.Join(in.brokers, ","))
	}
	if err := kafkatopics.Create(ctx, in.client, missing, in.o.Partitions, in.o.ReplicationFactor, nil); err != nil {
		return fmt.Errorf("kafkacmd: %w", err)
	}
	in.log.Info("kafkacmd: created topics", "topics", missing, "partitions", in.o.Partitions, "replication_factor", in.o.ReplicationFactor)
	return nil
}

// Close flushes the result writer and releases the connections. Call it
// after Run returned; Run and Ready fail with ErrClosed afterwards. It is
// idempotent and returns nil.
func (in *Intake) Close() error {
	in.mu.Lock()
	in.closed = true
	in.mu.Unlock()
	in.closeOnce.Do(in.release)
	return nil
}

func (in *Intake) release() {
	for _, p := range in.producers {
		p.Close()
	}
	in.transport.CloseIdleConnections()
	in.stopBG()
}

// Run joins the consumer group and consumes commands until intake is done;
// then it stops fetching, lets the commands in flight finish on work (a
// context the caller cancels only when the shutdown deadline passed),
// publishes their results, commits and leaves the group. Commands cut short
// by work stay uncommitted for redelivery. Run returns nil after a clean
// stop, an error wrapping ErrClosed after Close, ErrRunning when another
// Run is active, or the error that kept it from joining the group.
func (in *Intake) Run(intake, work context.Context) error {
	in.mu.Lock()
	closed := in.closed
	in.mu.Unlock()
	if closed {
		return fmt.Errorf("kafkacmd: run: %w", ErrClosed)
	}
	if !in.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer in.running.Store(false)

	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                     in.o.GroupID,
		Brokers:                in.brokers,
		Dialer:                 in.dialer,
		Topics:                 []string{in.o.Topic},
		HeartbeatInterval:      in.o.HeartbeatInterval,
		SessionTimeout:         in.o.SessionTimeout,
		RebalanceTimeout:       in.o.RebalanceTimeout,
		WatchPartitionChanges:  true,
		PartitionWatchInterval: in.o.PartitionWatchInterval,
		JoinGroupBackoff:       in.o.JoinBackoff,
		// A group that never committed starts at the oldest command:
		// commands sent before the first bridge started still run.
		StartOffset: kafka.FirstOffset,
		Timeout:     in.o.PublishTimeout,
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			in.log.Debug("kafkacmd: kafka-go group: " + fmt.Sprintf(msg, args...))
		}),
	})
	if err != nil {
		return fmt.Errorf("kafkacmd: consumer group %s: %w", in.o.GroupID, err)
	}
	// Closing the group ends the current generation (the fetchers stop,
	// the generation drains and commits) and leaves the group.
	runDone := make(chan struct{})
	var closer sync.WaitGroup
	closer.Go(func() {
		select {
		case <-intake.Done():
		case <-runDone:
		}
		_ = cg.Close()
	})
	defer func() {
		close(runDone)
		closer.Wait()
	}()

	lanes := command.NewLanes(in.o.Lanes, func(j *job) { in.handle(work, j) })
	defer lanes.Close()

	for {
		gen, err := cg.Next(intake)
		if err != nil {
			if intake.Err() != nil || errors.Is(err, kafka.ErrGroupClosed) {
				return nil
			}
			// kafka-go backs off (JoinBackoff) and tries again.
			in.log.Warn("kafkacmd: joining the consumer group failed; retrying", "group", in.o.GroupID, "err", err)
			continue
		}
		g := &generation{in: in, kgen: gen, lanes: lanes, intake: intake, work: work, dirty: make(chan struct{}, 1), parts: map[int]*partition{}}
		done := make(chan struct{})
		gen.Start(func(ctx context.Context) {
			defer close(done)
			g.run(ctx)
		})
		<-done
	}
}

// handle runs one job in a lane: execute, publish, mark done. Every
// command ends in one outcome: its result (and dead letter) published; a
// bare dead letter and error result when the outcome cannot be published
// for good (command.BareOutcome); or, when even that is refused for good,
// terminated: logged, counted and committed past. Only a broker that
// cannot be reached keeps a command (and its partition) waiting, until it
// is back or the generation ends.
func (in *Intake) handle(work context.Context, j *job) {
	defer in.inFlight.Add(-1)
	defer j.gen.jobs.Done()
	defer func() {
		// command.Handle recovers panics in running the command; this is
		// for one in publishing its outcome.
		if v := recover(); v != nil {
			in.log.Error("kafkacmd: panic while publishing a command's outcome; command terminated", "request_id", j.cmd.RequestID,
				"partition", j.rec.partition, "offset", j.rec.offset, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			j.gen.finished(j.part, j.entry)
			in.outcome(j.cmd.Action, command.OutcomeTerminated)
		}
	}()
	if j.invalid == nil && j.ctx.Err() != nil {
		in.outcome(j.cmd.Action, command.OutcomeUnfinished)
		return // abandoned before it started: left for redelivery
	}
	mctx := bridge.WithMessaging(j.ctx, bridge.Messaging{System: "kafka", Destination: in.o.Topic, MessageID: j.rec.header("ce_id"),
		Key: string(j.rec.key), Consumed: true, Partition: j.rec.partition, Offset: j.rec.offset, ConsumerGroup: in.o.GroupID})
	out, err := command.Handle(mctx, in.o.Trace, j.rec.header, j.cmd, j.invalid, in.exec.Execute)
	if err != nil {
		in.log.Warn("kafkacmd: command unfinished, left uncommitted for redelivery", "request_id", j.cmd.RequestID,
			"partition", j.rec.partition, "offset", j.rec.offset, "err", err)
		in.outcome(j.cmd.Action, command.OutcomeUnfinished)
		return
	}
	if out.Panic != nil {
		in.log.Error("kafkacmd: panic while running a command; dead-lettered as internal error", "request_id", j.cmd.RequestID,
			"partition", j.rec.partition, "offset", j.rec.offset, "panic", fmt.Sprint(out.Panic.Value), "stack", string(out.Panic.Stack))
	}
	label := out.Label()
	written, err := in.publishRetrying(work, j.ctx, in.messages(j.rec, out, false), out.Result.RequestID)
	if errors.Is(err, errRefused) {
		in.log.Warn("kafkacmd: the broker refused the outcome for good; publishing a bare dead letter instead", "request_id", out.Result.RequestID,
			"partition", j.rec.partition, "offset", j.rec.offset, "err", err)
		bare := command.BareOutcome(out, fmt.Sprintf("outcome refused by the broker: %v", err))
		label = command.OutcomeDeadLetter
		msgs := in.messages(j.rec, bare, true)
		if written > 0 {
			msgs = msgs[written:] // the dead letter is out already: only the result went wrong
		}
		_, err = in.publishRetrying(work, j.ctx, msgs, out.Result.RequestID)
		if errors.Is(err, errRefused) {
			in.log.Error("kafkacmd: command terminated: neither its outcome nor a bare dead letter could be published", "request_id", out.Result.RequestID,
				"partition", j.rec.partition, "offset", j.rec.offset, "err", err)
			label, err = command.OutcomeTerminated, nil
		}
	}
	if err != nil {
		in.log.Warn("kafkacmd: result not published, command left uncommitted for redelivery", "request_id", out.Result.RequestID,
			"partition", j.rec.partition, "offset", j.rec.offset, "err", err)
		in.outcome(j.cmd.Action, command.OutcomeUnfinished)
		return
	}
	j.gen.finished(j.part, j.entry)
	in.outcome(out.Result.Action, label)
}

// header is the value of the record's first header named name (any case),
// "" when it has none.
func (r *record) header(name string) string {
	for _, h := range r.headers {
		if strings.EqualFold(h.Key, name) {
			return string(h.Value)
		}
	}
	return ""
}

func (in *Intake) outcome(a command.Action, label string) {
	if in.o.OnOutcome != nil {
		in.o.OnOutcome(a, label)
	}
}

// errRefused is wrapped by publishRetrying's error when the broker refused
// the records for good (too large, not allowed, invalid): publishing them
// again cannot succeed.
var errRefused = errors.New("refused")

// publishRetrying writes msgs one after another, each until it succeeds,
// until the broker refuses it for good (an error wrapping errRefused), or
// until abandon (the generation's work context) ends; it returns how many
// were written. One at a time, so that a result never goes out while its
// dead letter was refused: a command has one result. Each attempt runs on
// work, not on abandon, so that a revocation never cuts a write in half: a
// write that started is waited for.
func (in *Intake) publishRetrying(work, abandon context.Context, msgs []kafka.Message, requestID string) (int, error) {
	for i, m := range msgs {
		backoff := 100 * time.Millisecond
		for attempt := 1; ; attempt++ {
			ctx, cancel := context.WithTimeout(work, in.o.PublishTimeout)
			err := in.producers[m.Topic].Produce(ctx, m)
			cancel()
			if err == nil {
				break
			}
			if refused(err) {
				return i, fmt.Errorf("publish to %s for %s: %w: %w", m.Topic, requestID, errRefused, err)
			}
			in.log.Warn("kafkacmd: publishing a result failed", "request_id", requestID, "topic", m.Topic, "attempt", attempt, "err", err)
			t := time.NewTimer(jitter(backoff))
			select {
			case <-t.C:
			case <-abandon.Done():
				t.Stop()
				return i, fmt.Errorf("publish to %s for %s: %w", m.Topic, requestID, err)
			}
			backoff = min(backoff*2, 5*time.Second)
		}
	}
	return len(msgs), nil
}

// refused reports whether a write failed for good: an error code Kafka
// does not call retriable (message too large, authorization, invalid
// record or topic).
func refused(err error) bool {
	var ke kafka.Error
	return errors.As(err, &ke) && !ke.Temporary()
}

// messages are the records of out: the dead letter first (when there is
// one), then the result. A bare dead letter carries none of the original.
func (in *Intake) messages(rec record, out command.Outcome, bare bool) []kafka.Message {
	var msgs []kafka.Message
	if out.DeadLetter != "" {
		var t command.Trimmer
		limit := in.o.DeadLetterBody
		var h []kafka.Header
		key := t.Key(rec.key)
		if bare {
			limit, key = 0, nil
		} else {
			h = make([]kafka.Header, 0, len(rec.headers)+6)
			for _, oh := range rec.headers {
				if t.Header(oh.Key, string(oh.Value)) {
					h = append(h, oh)
				}
			}
		}
		value := t.Body(rec.value, limit)
		h = append(h,
			kafka.Header{Key: command.HeaderDeadLetterReason, Value: []byte(out.DeadLetter)},
			kafka.Header{Key: command.HeaderRequestID, Value: []byte(out.Result.RequestID)},
			kafka.Header{Key: command.HeaderOriginalSubject, Value: []byte(in.o.Topic)},
			kafka.Header{Key: HeaderOriginalPartition, Value: []byte(strconv.Itoa(rec.partition))},
			kafka.Header{Key: HeaderOriginalOffset, Value: []byte(strconv.FormatInt(rec.offset, 10))},
		)
		if cut := t.Truncated(); cut != "" {
			h = append(h, kafka.Header{Key: command.HeaderDeadLetterTruncated, Value: []byte(cut)})
		}
		msgs = append(msgs, kafka.Message{Topic: in.o.DLQTopic, Key: key, Value: value, Headers: h, Time: time.Now()})
	}
	return append(msgs, ResultMessage(in.o.ResultTopic, in.o.Source, out))
}

// ResultMessage is the record of out's result on topic: binary-mode
// CloudEvent (ce_* headers verbatim, content-type application/json), value
// the result JSON, key the sessionId when known, else the requestId.
func ResultMessage(topic, source string, out command.Outcome) kafka.Message {
	attrs := out.ResultAttributes(source)
	b := bridge.KafkaBinding
	h := make([]kafka.Header, 0, len(attrs)+1)
	for _, a := range attrs {
		h = append(h, kafka.Header{Key: b.Header(a.Name), Value: []byte(b.Value(a.Value))})
	}
	h = append(h, kafka.Header{Key: b.ContentTypeHeader(), Value: []byte("application/json")})
	key := out.SessionID
	if key == "" {
		key = out.Result.RequestID
	}
	return kafka.Message{Topic: topic, Key: []byte(key), Value: out.Result.JSON(), Headers: h, Time: time.Now()}
}

// parse reads a command record: the action from the JSON member "action"
// or the qod-action header.
func parse(rec record) (command.Command, error) {
	var header string
	seen := false
	for _, h := range rec.headers {
		if !strings.EqualFold(h.Key, command.HeaderAction) {
			continue
		}
		v := string(h.Value)
		if seen && v != header {
			cmd, _ := command.Parse(rec.value, "")
			return cmd, &command.InvalidError{Field: command.HeaderAction, Reason: fmt.Sprintf("header given twice with different values %s and %s", bridge.Quote(header), bridge.Quote(v))}
		}
		header, seen = v, true
	}
	cmd, err := command.Parse(rec.value, command.Action(header))
	var ie *command.InvalidError
	if err != nil && header != "" && errors.As(err, &ie) && ie.Field == "action" {
		// Name the header rather than "the subject or endpoint".
		var m map[string]json.RawMessage
		var a string
		if json.Unmarshal(rec.value, &m) == nil && json.Unmarshal(m["action"], &a) == nil && a != header && command.Action(header).Valid() && command.Action(a).Valid() {
			return cmd, &command.InvalidError{Field: "action", Reason: fmt.Sprintf("%q contradicts the %s header %q", a, command.HeaderAction, header)}
		}
		if !command.Action(header).Valid() {
			return cmd, &command.InvalidError{Field: command.HeaderAction, Reason: fmt.Sprintf("header %s is not one of create, get, extend, delete, list", bridge.Quote(header))}
		}
	}
	return cmd, err
}

// jitter is a random wait in [d/2, d]: instances that lost the same broker
// at the same moment do not all come back to it at the same moment.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}
