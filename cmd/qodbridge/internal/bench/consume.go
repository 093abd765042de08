package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kgo"
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

// kafkaConsumer reads the status topic with franz-go from the first
// record at or after a time shortly before the run, so it needs no
// consumer group and cannot miss an event written before its first fetch.
type kafkaConsumer struct {
	cl     *kgo.Client
	topic  string
	cancel context.CancelFunc
	wg     sync.WaitGroup
	err    error // set by the poll loop before wg.Done
}

func startKafka(brokers []string, topic string, since time.Time, r *recv) (*kafkaConsumer, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ClientID("qodbridge-bench"),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AfterMilli(since.UnixMilli())),
		kgo.FetchMaxWait(100*time.Millisecond),
	)
	if err != nil {
		return nil, fmt.Errorf("bench: Kafka client: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &kafkaConsumer{cl: cl, topic: topic, cancel: cancel}
	c.wg.Go(func() {
		for {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				return
			}
			fs.EachError(func(t string, p int32, err error) {
				if c.err == nil && !errors.Is(err, context.Canceled) {
					c.err = fmt.Errorf("bench: fetch %s/%d: %w", t, p, err)
				}
			})
			fs.EachRecord(func(rec *kgo.Record) {
				var id, tm string
				for _, h := range rec.Headers {
					switch h.Key {
					case "ce_id":
						id = string(h.Value)
					case "ce_time":
						tm = string(h.Value)
					}
				}
				r.event(id, tm, rec.Value)
			})
		}
	})
	return c, nil
}

func (c *kafkaConsumer) describe() string { return "Kafka topic " + c.topic }

func (c *kafkaConsumer) stop() (int64, error) {
	c.cancel()
	c.wg.Wait()
	c.cl.Close()
	return 0, c.err
}

// startConsumer starts the consumer o asks for on the subjects under
// prefix (NATS core), the stream (JetStream) or the topic (Kafka).
func startConsumer(ctx context.Context, o *options, prefix, stream, topic string, rc *recv) (consumer, error) {
	since := rc.track.epoch.Add(-time.Second)
	switch {
	case len(o.kafkaBrokers) > 0:
		return startKafka(o.kafkaBrokers, topic, since, rc)
	case o.natsConsumer == "stream":
		return startNATSStream(ctx, o.natsURL, stream, prefix+".status.>", since, rc)
	default:
		return startNATSCore(o.natsURL, prefix+".status.>", rc)
	}
}
