package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/sinks/kafkasink"
	"github.com/qodbridge/qodbridge/sinks/natssink"
)

// The ceilings (the package documentation says what they are and why)
// run in the same rounds as the bridge, always closed loop: H against
// noopServer, B from brokerSyncPhase's -c publishers, B_pipelined from
// brokerPipelinedPhase's one, both through a brokerLoad whose consumer
// reads what they publish.

// noopServer is the HTTP ceiling's server: it reads the body and answers
// 204.
type noopServer struct {
	url    string
	srv    *http.Server
	wg     sync.WaitGroup
	client *loadClient
	shape  *shaper
}

func startNoopServer(conc int, timeout time.Duration, shape *shaper) (*noopServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bench: no-op HTTP server: %w", err)
	}
	url := "http://" + ln.Addr().String() + "/notifications"
	client, err := newLoadClient(url, "", conc, timeout)
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	n := &noopServer{url: url, client: client, shape: shape, srv: &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusNoContent)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}}
	n.wg.Go(func() { _ = n.srv.Serve(ln) })
	return n, nil
}

// phase returns a phase that loads the server, with its own counters.
func (n *noopServer) phase(name string) *phaseRun {
	return httpPhase(name, &httpLoad{client: n.client, shape: n.shape, stats: newOpStats()}, &seqAlloc{})
}

func (n *noopServer) close() {
	n.client.closeIdle()
	_ = n.srv.Close()
	n.wg.Wait()
}

// httpPhase is the phase of HTTP load l.
func httpPhase(name string, l *httpLoad, seq *seqAlloc) *phaseRun {
	return &phaseRun{name: name, stats: l.stats, seq: seq,
		run: func(ctx context.Context, plan loadPlan, first uint64) time.Duration {
			return drive(ctx, plan, func(n uint64, due time.Time) { l.do(ctx, first+n, due) })
		}}
}

// ceilingSink is the broker as the ceilings use it: the bridge's sink
// type, on a stream or topic of this run that is removed afterwards.
type ceilingSink interface {
	bridge.Publisher
	Close() error
}

// ceilingDest is where the broker ceilings publish: subjects under prefix
// captured by stream, or topic.
type ceilingDest struct{ prefix, stream, topic string }

// openCeilingSink opens the sink the broker ceilings publish through, and
// returns where it publishes and a function that closes it and removes
// what it created.
func openCeilingSink(ctx context.Context, o *options, run string, conc, batch int) (ceilingSink, ceilingDest, func(), error) {
	dest := ceilingDest{prefix: "qodbench." + run, stream: "QODBENCH_" + strings.ToUpper(run), topic: "qodbench." + run}
	if len(o.kafkaBrokers) > 0 {
		s, err := kafkasink.Open(ctx, kafkasink.ConnOptions{Brokers: o.kafkaBrokers, ClientID: "qodbridge-bench"},
			kafkasink.Options{Topic: dest.topic, CreateTopics: true, Partitions: 6,
				MaxPending: max(kafkasink.DefaultMaxPending, 2*conc*batch)})
		if err != nil {
			return nil, dest, nil, fmt.Errorf("bench: broker ceiling: open Kafka topic %s: %w", dest.topic, err)
		}
		return s, dest, func() {
			_ = s.Close()
			deleteKafkaTopic(o.kafkaBrokers[0], dest.topic)
		}, nil
	}
	stream := dest.stream
	s, err := natssink.Open(ctx, natssink.ConnOptions{URL: o.natsURL, Name: "qodbridge-bench", InProcess: o.natsInProcess}, natssink.Options{
		Prefix: dest.prefix,
		Stream: natssink.StreamOptions{Name: stream},
		// B_pipelined keeps the events of conc requests in flight, and the
		// sink lets one call have half its slots.
		MaxPending: 2 * conc * batch,
	})
	if err != nil {
		return nil, dest, nil, fmt.Errorf("bench: broker ceiling: open stream %s: %w", stream, err)
	}
	return s, dest, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.JetStream().DeleteStream(ctx, stream) // best effort, like the Kafka topic
		_ = s.Close()
	}, nil
}

// deleteKafkaTopic removes the ceiling's topic, best effort: a leftover
// topic of a few MB is not worth failing a measurement for.
func deleteKafkaTopic(broker, topic string) {
	conn, err := kafka.Dial("tcp", broker)
	if err != nil {
		return
	}
	defer func() { _ = conn.Close() }()
	ctrl, err := conn.Controller()
	if err != nil {
		return
	}
	cc, err := kafka.Dial("tcp", net.JoinHostPort(ctrl.Host, fmt.Sprint(ctrl.Port)))
	if err != nil {
		return
	}
	defer func() { _ = cc.Close() }()
	_ = cc.SetDeadline(time.Now().Add(5 * time.Second))
	_ = cc.DeleteTopics(topic)
}

// brokerSyncPhase is B's load: plan.conc publishers through bl's sink,
// each publishing one request's events and waiting for the ack before the
// next (or, in an open loop, before its next scheduled publish).
func brokerSyncPhase(name string, bl *brokerLoad, seq *seqAlloc, shape *shaper, timeout time.Duration) *phaseRun {
	st := newOpStats()
	return &phaseRun{name: name, stats: st, seq: seq,
		run: func(ctx context.Context, plan loadPlan, first uint64) time.Duration {
			return drive(ctx, plan, func(n uint64, due time.Time) {
				n += first
				evs := shape.events(n)
				st.sent.Add(1)
				ev0, k := n*uint64(shape.batch), shape.batch
				bl.track.sending(ev0, k, time.Now())
				pctx, cancel := context.WithTimeout(ctx, timeout)
				err := bl.sink.Publish(pctx, evs...)
				cancel()
				st.done(200, err, time.Since(due))
				bl.track.answered(ev0, k, err == nil)
			})
		}}
}

// brokerPipelinedPhase measures B_pipelined: one publisher with the events
// of conc requests in flight. A NATS sink keeps that window across the
// events of one call, so calls carry 64 times as many; a Kafka sink
// batches the events of one call, so calls carry exactly that many.
func brokerPipelinedPhase(bl *brokerLoad, seq *seqAlloc, kafkaSink bool, shape *shaper, timeout time.Duration) *phaseRun {
	st := newOpStats()
	return &phaseRun{name: "ceiling B_pipelined", stats: st, seq: seq, closed: true,
		run: func(ctx context.Context, plan loadPlan, first uint64) time.Duration {
			chunk := uint64(plan.conc) * 64
			if kafkaSink {
				chunk = uint64(plan.conc)
			}
			start := time.Now()
			deadline := start.Add(plan.dur)
			evs := make([]bridge.Event, 0, chunk*uint64(shape.batch))
			for n := uint64(0); ctx.Err() == nil; n += chunk {
				if plan.count > 0 && n >= plan.count || time.Now().After(deadline) {
					break
				}
				k := chunk
				if plan.count > 0 {
					k = min(chunk, plan.count-n)
				}
				evs = evs[:0]
				for i := range k {
					evs = append(evs, shape.events(first+n+i)...)
				}
				st.sent.Add(int64(k))
				ev0 := (first + n) * uint64(shape.batch)
				bl.track.sending(ev0, len(evs), time.Now())
				pctx, cancel := context.WithTimeout(ctx, timeout)
				err := bl.sink.Publish(pctx, evs...)
				cancel()
				bl.track.answered(ev0, len(evs), err == nil)
				if err != nil {
					st.done(0, err, 0)
					st.errors.Add(int64(k) - 1)
					continue
				}
				st.acked.Add(int64(k))
			}
			return time.Since(start)
		}}
}

// ceilingSet is what the ceilings need while the rounds run: the no-op
// HTTP server (H), and the broker side B and B_pipelined publish through.
type ceilingSet struct {
	noop     *noopServer
	h, b, bp *phaseRun
	broker   *brokerLoad
}

func openCeilings(ctx context.Context, o *options, run string, ids runIDs, shape *shaper) (*ceilingSet, error) {
	noop, err := startNoopServer(o.conc, o.timeout, shape)
	if err != nil {
		return nil, err
	}
	bl, err := openBrokerLoad(ctx, o, run, ids)
	if err != nil {
		noop.close()
		return nil, err
	}
	seq := &seqAlloc{} // B's and B_pipelined's events are numbered apart
	c := &ceilingSet{
		noop: noop, h: noop.phase("ceiling H"),
		b:      brokerSyncPhase("ceiling B", bl, seq, shape, o.timeout),
		bp:     brokerPipelinedPhase(bl, seq, len(o.kafkaBrokers) > 0, shape, o.timeout),
		broker: bl,
	}
	c.h.closed, c.b.closed = true, true
	return c, nil
}

// report waits up to drain for B's and B_pipelined's events, releases the
// broker side (consumer, sink, and the stream or topic with everything the
// embedded server keeps for it), and returns the ceilings. The no-op
// server stays up for the half-peak runs.
func (c *ceilingSet) report(ctx context.Context, drain time.Duration, batch int) (*ceilingReport, error) {
	cc, err := c.broker.finish(ctx, drain)
	if err != nil {
		return nil, err
	}
	return &ceilingReport{
		HTTP: c.h.result(batch), Broker: c.b.result(batch), BrokerPipelined: c.bp.result(batch), Consumer: cc,
	}, nil
}

// close releases what openCeilings started and removes the ceilings'
// stream or topic.
func (c *ceilingSet) close() {
	c.broker.close()
	c.noop.close()
}

// brokerLoad is the broker side of a ceiling: the bridge's sink type on a
// stream (topic) of its own, and a consumer of that stream that reads and
// accounts for what is published, as the bridge run's consumer does for
// the bridge's. In the bridge run the broker delivers every event to that
// consumer and the consumer's work shares the cores, so a broker
// measurement without it would compare the bridge with less work than the
// bridge run does.
type brokerLoad struct {
	sink      ceilingSink
	track     *tracker
	cons      consumer // nil once stopped
	closeSink func()   // nil once released
}

// openBrokerLoad opens a sink on the stream (topic) named after name, and
// its consumer.
func openBrokerLoad(ctx context.Context, o *options, name string, ids runIDs) (*brokerLoad, error) {
	sink, dest, closeSink, err := openCeilingSink(ctx, o, name, o.conc, o.batch)
	if err != nil {
		return nil, err
	}
	tr := newTracker(time.Now())
	cons, err := startConsumer(ctx, o, dest.prefix, dest.stream, dest.topic, &recv{ids: ids, track: tr})
	if err != nil {
		closeSink()
		return nil, err
	}
	return &brokerLoad{sink: sink, track: tr, cons: cons, closeSink: closeSink}, nil
}

// finish waits up to drain for every acknowledged event to arrive, stops
// the consumer, releases the sink and removes its stream or topic, and
// returns what the consumer saw.
func (b *brokerLoad) finish(ctx context.Context, drain time.Duration) (*ceilingConsumer, error) {
	waitDrain(ctx, b.track, drain)
	dropped, err := b.cons.stop()
	desc := b.cons.describe()
	b.cons = nil
	b.close()
	if err != nil {
		return nil, err
	}
	return &ceilingConsumer{Describe: desc, Received: b.track.receivedCount(), Lost: b.track.outstanding(), Dropped: dropped}, nil
}

// close stops the consumer and releases the sink, if finish did not; it
// may be called more than once.
func (b *brokerLoad) close() {
	if b.cons != nil {
		_, _ = b.cons.stop()
		b.cons = nil
	}
	if b.closeSink != nil {
		b.closeSink()
		b.closeSink = nil
	}
}

var (
	_ ceilingSink = (*natssink.Sink)(nil)
	_ ceilingSink = (*kafkasink.Sink)(nil)
)
