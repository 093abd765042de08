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

// The ceilings are measured in the same rounds as the bridge run, closed
// loop (a ceiling is a maximum, whatever -rate says), with the same
// connections, shape and length as the run:
//
//	H            the same HTTP load against a handler that reads the body
//	             and answers 204;
//	B            synchronous acknowledged publishes of the same events from
//	             -c concurrent publishers on one connection, through the
//	             bridge's own sink, to a stream (topic) of this run only;
//	B_pipelined  one publisher keeping -c publishes in flight.
//
// B and B_pipelined publish while the same kind of consumer as the
// bridge run's reads their events (ceilingSet).
//
// S = 1/(1/H + 1/B) is the throughput of a bridge that did the HTTP work
// and the broker work one after the other at their ceilings;
// P = 1/(1/H + 1/B_pipelined) the same with the broker work pipelined.

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
func openCeilingSink(ctx context.Context, o *benchOptions, run string, conc, batch int) (ceilingSink, ceilingDest, func(), error) {
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

// phaseStats is one phase of the run, a ceiling or the bridge, as
// reported.
type phaseStats struct {
	Seconds      float64          `json:"seconds"`
	Sent         int64            `json:"sent"`
	Acked        int64            `json:"acked"`
	Rejected     int64            `json:"rejected"`
	RejectedBy   map[string]int64 `json:"rejected_by_status,omitempty"`
	Errors       int64            `json:"errors"`
	FirstError   string           `json:"first_error,omitempty"`
	RequestsPerS float64          `json:"requests_per_sec"`
	EventsPerS   float64          `json:"events_per_sec"`
	Latency      *latencyStats    `json:"latency,omitempty"`
	// PacingLag (open loop only) is how late the load generator's
	// schedule itself was: due time to hand-over to a connection. It is
	// part of Latency, and the generator's error, not the server's.
	PacingLag *latencyStats `json:"pacing_lag,omitempty"`
	// CPUPerEvent is the CPU time (user + system, all threads of the bench
	// process) the phase used per acknowledged event, in microseconds. It
	// is less sensitive than throughput to other work on the machine; with
	// the in-process bridge it covers bridge, NATS server, load and
	// consumer alike.
	CPUPerEvent   float64 `json:"cpu_us_per_event"`
	eventsPerCall int
}

func phaseFrom(st *opStats, d time.Duration, batch int) phaseStats {
	st.mu.Lock()
	defer st.mu.Unlock()
	p := phaseStats{
		Seconds:       roundTo(d.Seconds(), 3),
		Sent:          st.sent.Load(),
		Acked:         st.acked.Load(),
		Rejected:      st.rejected.Load(),
		Errors:        st.errors.Load(),
		eventsPerCall: batch,
	}
	if len(st.byStatus) > 0 {
		p.RejectedBy = map[string]int64{}
		for s, n := range st.byStatus {
			p.RejectedBy[fmt.Sprint(s)] = n
		}
	}
	if st.firstErr != nil {
		p.FirstError = st.firstErr.Error()
	}
	if ev := float64(p.Acked) * float64(batch); ev > 0 {
		p.CPUPerEvent = roundTo(float64(st.cpu)/float64(time.Microsecond)/ev, 2)
	}
	if d > 0 {
		p.RequestsPerS = roundTo(float64(p.Acked)/d.Seconds(), 1)
		p.EventsPerS = roundTo(float64(p.Acked)*float64(batch)/d.Seconds(), 1)
	}
	if st.lat.n > 0 {
		ls := st.lat.stats()
		p.Latency = &ls
	}
	if st.lag.n > 0 {
		ls := st.lag.stats()
		p.PacingLag = &ls
	}
	return p
}

func roundTo(v float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	return float64(int64(v*p+0.5)) / p
}

var _ ceilingSink = (*natssink.Sink)(nil)
var _ ceilingSink = (*kafkasink.Sink)(nil)
