package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"

	"github.com/qodbridge/qodbridge/sinks/kafkasink"
)

// consumer reads the bridge's output while the load runs and hands every
// event it receives to a tracker.
type consumer interface {
	// stop ends consumption and waits for it. dropped is what the
	// consumer itself lost (a NATS slow consumer), which then shows up as
	// lost although the bridge delivered it.
	stop() (dropped int64, err error)
	describe() string
}

// recv is how a consumer reports one event: its CloudEvents id and time,
// read from the binary-mode headers or, for structured mode, the body.
type recv struct {
	ids   runIDs
	track *tracker
}

func (r *recv) event(id, tm string, body []byte) {
	at := time.Now()
	if id == "" {
		var ce struct{ ID, Time string }
		if json.Unmarshal(body, &ce) == nil {
			id, tm = ce.ID, ce.Time
		}
	}
	seq, ok := r.ids.seq(id, tm)
	if !ok {
		r.track.foreign()
		return
	}
	r.track.receive(seq, at)
}

// natsCoreConsumer is a plain subscription to <prefix>.status.>: what
// `nats sub` sees, with the least latency. Its pending buffer is bounded;
// what overflows it is counted as dropped.
type natsCoreConsumer struct {
	nc  *nats.Conn
	sub *nats.Subscription
}

func startNATSCore(url, subject string, r *recv) (*natsCoreConsumer, error) {
	nc, err := nats.Connect(url, nats.Name("qodbridge-bench"), nats.Timeout(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("bench: connect to NATS %s: %w", url, err)
	}
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		r.event(first(m.Header["ce-id"]), first(m.Header["ce-time"]), m.Data)
	})
	if err == nil {
		err = sub.SetPendingLimits(1<<20, 256<<20)
	}
	if err == nil {
		// The subscription is registered at the server before any
		// notification is sent.
		err = nc.FlushTimeout(5 * time.Second)
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("bench: subscribe to %s: %w", subject, err)
	}
	return &natsCoreConsumer{nc: nc, sub: sub}, nil
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func (c *natsCoreConsumer) describe() string { return "NATS subscription " + c.sub.Subject }

func (c *natsCoreConsumer) stop() (int64, error) {
	dropped, _ := c.sub.Dropped()
	// Drain delivers what is buffered, then closes the connection.
	closed := make(chan struct{})
	c.nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := c.nc.Drain(); err != nil {
		c.nc.Close()
		return int64(dropped), fmt.Errorf("bench: drain NATS subscription: %w", err)
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		c.nc.Close()
	}
	return int64(dropped), nil
}

// natsStreamConsumer is an ordered JetStream consumer on the status
// stream: it reads what the stream stored, flow-controlled, so it drops
// nothing. It starts one second before the run to be sure to catch the
// first event; earlier events are not this run's and are ignored.
type natsStreamConsumer struct {
	nc     *nats.Conn
	cc     jetstream.ConsumeContext
	stream string
}

func startNATSStream(ctx context.Context, url, stream, subject string, since time.Time, r *recv) (*natsStreamConsumer, error) {
	nc, err := nats.Connect(url, nats.Name("qodbridge-bench"), nats.Timeout(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("bench: connect to NATS %s: %w", url, err)
	}
	js, err := jetstream.New(nc)
	if err == nil {
		var cons jetstream.Consumer
		cons, err = js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{subject},
			DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
			OptStartTime:   &since,
		})
		if err == nil {
			var cc jetstream.ConsumeContext
			cc, err = cons.Consume(func(m jetstream.Msg) {
				h := m.Headers()
				r.event(first(h["ce-id"]), first(h["ce-time"]), m.Data())
			})
			if err == nil {
				return &natsStreamConsumer{nc: nc, cc: cc, stream: stream}, nil
			}
		}
	}
	nc.Close()
	return nil, fmt.Errorf("bench: consume stream %s: %w", stream, err)
}

func (c *natsStreamConsumer) describe() string { return "JetStream ordered consumer on " + c.stream }

func (c *natsStreamConsumer) stop() (int64, error) {
	c.cc.Stop()
	select {
	case <-c.cc.Closed():
	case <-time.After(10 * time.Second):
	}
	c.nc.Close()
	return 0, nil
}

// kafkaConsumer reads a topic with kafka-go, the client the bridge's own
// Kafka sink uses, so the production binary links one Kafka client. It
// runs one Reader per partition and no consumer group: there is nothing to
// join or commit, and no rebalance can pause it mid-run. Each Reader
// starts at the partition's first record written at or after since, or at
// the partition's end when there is none. Both offsets are looked up
// before startKafka returns, that is before the run sends anything, so no
// event of the run can be written between the lookup and the first fetch
// (which is what Reader.SetOffsetAt alone would risk: it starts an empty
// partition at "the end" as of its first fetch).
type kafkaConsumer struct {
	topic   string
	readers []*kafka.Reader
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	warn    io.Writer

	// retried counts the errors the Readers logged and recovered from
	// (a broker connection lost, a leader moved); stopping stops counting.
	retried  atomic.Int64
	stopping atomic.Bool

	mu  sync.Mutex
	err error // the first error a Reader returned
}

// kafkaFetchWait bounds how long a fetch waits at the broker for a first
// record, and so the latency a quiet partition adds to a record that
// arrives during the wait.
const kafkaFetchWait = 100 * time.Millisecond

func startKafka(ctx context.Context, brokers []string, topic string, since time.Time, r *recv, warn io.Writer) (*kafkaConsumer, error) {
	co := kafkasink.ConnOptions{Brokers: brokers, ClientID: "qodbridge-bench"}
	dialer, err := co.Dialer()
	if err != nil {
		return nil, fmt.Errorf("bench: Kafka consumer: %w", err)
	}
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	parts, err := kafkaPartitions(lctx, co, topic)
	if err != nil {
		return nil, err
	}
	offsets := make([]int64, len(parts))
	for i, p := range parts {
		if offsets[i], err = kafkaStartOffset(lctx, dialer, p, since); err != nil {
			return nil, err
		}
	}

	rctx, stop := context.WithCancel(context.Background())
	c := &kafkaConsumer{topic: topic, cancel: stop, warn: warn}
	for i, p := range parts {
		rd := kafka.NewReader(kafka.ReaderConfig{
			Brokers:         brokers,
			Topic:           topic,
			Partition:       p.ID,
			Dialer:          dialer,
			MinBytes:        1,
			MaxBytes:        8 << 20,
			MaxWait:         kafkaFetchWait,
			ReadLagInterval: -1, // nobody reads the lag
			ErrorLogger:     kafka.LoggerFunc(c.logged),
		})
		if err := rd.SetOffset(offsets[i]); err != nil {
			_ = rd.Close()
			_, _ = c.stop()
			return nil, fmt.Errorf("bench: Kafka consumer: start %s/%d at offset %d: %w", topic, p.ID, offsets[i], err)
		}
		c.readers = append(c.readers, rd)
		c.wg.Go(func() { c.read(rctx, rd, p.ID, r) })
	}
	return c, nil
}

// kafkaPartitions returns the partitions of topic, with their leaders. The
// topic must exist: the bridge's sink and the ceilings' sink create or
// check it when they open, and a metadata request that may create it
// (kafka-go's Dialer.LookupPartitions asks for that) would hide a wrong
// -topic behind an empty new one.
func kafkaPartitions(ctx context.Context, co kafkasink.ConnOptions, topic string) ([]kafka.Partition, error) {
	tr, addr, err := co.Transport()
	if err != nil {
		return nil, fmt.Errorf("bench: Kafka consumer: %w", err)
	}
	defer tr.CloseIdleConnections()
	md, err := (&kafka.Client{Addr: addr, Transport: tr}).Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("bench: Kafka consumer: metadata of topic %s: %w", topic, err)
	}
	for _, t := range md.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			return nil, fmt.Errorf("bench: Kafka consumer: topic %s: %w", topic, t.Error)
		}
		if len(t.Partitions) == 0 {
			break
		}
		return t.Partitions, nil
	}
	return nil, fmt.Errorf("bench: Kafka consumer: topic %s has no partitions", topic)
}

// kafkaStartOffset is the offset of p's first record written at or after
// since, or p's end offset when there is none.
func kafkaStartOffset(ctx context.Context, dialer *kafka.Dialer, p kafka.Partition, since time.Time) (int64, error) {
	conn, err := dialer.DialPartition(ctx, "tcp", "", p)
	if err != nil {
		return 0, fmt.Errorf("bench: Kafka consumer: connect to the leader of %s/%d: %w", p.Topic, p.ID, err)
	}
	defer func() { _ = conn.Close() }()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	off, err := conn.ReadOffset(since)
	if err == nil && off < 0 {
		// The broker found no record at or after since (offset -1).
		off, err = conn.ReadLastOffset()
	}
	if err != nil {
		return 0, fmt.Errorf("bench: Kafka consumer: start offset of %s/%d: %w", p.Topic, p.ID, err)
	}
	return off, nil
}

// read hands every record of rd to r until ctx ends.
func (c *kafkaConsumer) read(ctx context.Context, rd *kafka.Reader, partition int, r *recv) {
	for {
		m, err := rd.ReadMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.fail(fmt.Errorf("bench: read %s/%d: %w", c.topic, partition, err))
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe) {
				return // closed: nothing more will come
			}
			continue
		}
		var id, tm string
		for _, h := range m.Headers {
			switch h.Key {
			case "ce_id":
				id = string(h.Value)
			case "ce_time":
				tm = string(h.Value)
			}
		}
		r.event(id, tm, m.Value)
	}
}

func (c *kafkaConsumer) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
	}
}

// logged is the Readers' error log: errors they retry by themselves. The
// first is shown at once, so that a run that receives nothing says why;
// stop counts the rest.
func (c *kafkaConsumer) logged(format string, args ...any) {
	if c.stopping.Load() {
		return
	}
	if c.retried.Add(1) == 1 {
		fmt.Fprintf(c.warn, "bench: warning: Kafka consumer of %s: %s (retrying)\n", c.topic, fmt.Sprintf(format, args...))
	}
}

func (c *kafkaConsumer) describe() string { return "Kafka topic " + c.topic }

func (c *kafkaConsumer) stop() (int64, error) {
	c.stopping.Store(true)
	c.cancel()
	c.wg.Wait()
	for _, rd := range c.readers {
		_ = rd.Close() // a Reader without a group has nothing to commit
	}
	if n := c.retried.Load(); n > 1 {
		fmt.Fprintf(c.warn, "bench: warning: Kafka consumer of %s: %d errors retried in all\n", c.topic, n)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return 0, c.err
}

// startConsumer starts the consumer o asks for on the subjects under
// prefix (NATS core), the stream (JetStream) or the topic (Kafka).
func startConsumer(ctx context.Context, o *options, prefix, stream, topic string, rc *recv) (consumer, error) {
	since := rc.track.epoch.Add(-time.Second)
	switch {
	case len(o.kafkaBrokers) > 0:
		return startKafka(ctx, o.kafkaBrokers, topic, since, rc, o.warn)
	case o.natsConsumer == "stream":
		return startNATSStream(ctx, o.natsURL, stream, prefix+".status.>", since, rc)
	default:
		return startNATSCore(o.natsURL, prefix+".status.>", rc)
	}
}
