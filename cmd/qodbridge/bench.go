package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qodbridge/qodbridge/bridge/ingress"
	"github.com/qodbridge/qodbridge/cmd/qodbridge/internal/process"
	"github.com/qodbridge/qodbridge/config"
)

// qodbridge bench drives the notification ingress with qos-status-changed
// events, consumes what the bridge publishes at the same time, and reports
// throughput, latency and the correctness accounting: every event has a
// unique id, so the consumer tells which acknowledged events never arrived
// (lost) and which arrived twice (duplicates).
//
// The run, in order: (1) with -ceilings, the no-op HTTP server and the
// broker ceilings' sink and consumer start (see bench_ceiling.go); (2) the
// consumer of the bridge's output starts, subscribed before anything is
// sent; (3) H, B, B_pipelined and the bridge run interleaved in -rounds
// slices (bench_rounds.go), for -n requests or -d in all; (4) with
// -latency-at, the half-peak runs (the bridge and, with -ceilings, H and B
// in the same open loop), the same way; (5) bench waits until
// every acknowledged event arrived or -drain passed; (6) the report.
// Every phase is bounded in time.
// bench exits 1 when an acknowledged event was lost or one arrived twice.

// errBenchAccounting is returned after the report when events were lost or
// duplicated, so that a script running bench fails.
var errBenchAccounting = errors.New("bench: acknowledged events were lost or duplicated")

// countSafetyLimit bounds a -n run whose bridge stalls.
const countSafetyLimit = 10 * time.Minute

type benchOptions struct {
	url, token    string
	natsURL       string
	natsInProcess nats.InProcessConnProvider // the in-process bridge's embedded server
	kafkaBrokers  []string
	topic         string
	prefix        string
	stream        string
	natsConsumer  string
	rate          float64
	conc          int
	dur           time.Duration
	count         uint64
	sessions      int
	shape         string
	batch         int
	ceilings      bool
	jsonOut       bool
	progress      time.Duration
	drain         time.Duration
	timeout       time.Duration
	allowRemote   bool
	inProcess     bool
	ceilingsGiven bool
	metricsURL    string
	memEvery      time.Duration
	cpuProfile    string
	memProfile    string
	latencyAt     float64
	rounds        int
}

const benchUsage = `usage: qodbridge bench [flags]

Sends qos-status-changed notifications to the ingress, consumes them from
NATS or Kafka at the same time, and reports sent, acknowledged, rejected,
received, lost and duplicate events, throughput and latency percentiles
(HTTP answer and end to end). Without -url it starts the bridge in-process
with an embedded NATS server on random loopback ports and measures the
HTTP and broker ceilings too.

flags:
`

func parseBenchFlags(args []string, stderr io.Writer) (*benchOptions, error) {
	o := &benchOptions{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, benchUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.url, "url", "", "ingress URL to POST to, e.g. http://127.0.0.1:8080/notifications; empty starts the bridge in-process")
	fs.StringVar(&o.token, "token", os.Getenv("QODBRIDGE_TOKEN"), "bearer token (default $QODBRIDGE_TOKEN; the in-process bridge's own token without -url)")
	fs.StringVar(&o.natsURL, "nats", "", "NATS URL to consume from (default: the in-process bridge's server, or nats://127.0.0.1:4222 with -url)")
	kafka := fs.String("kafka", "", "comma-separated Kafka brokers: consume -topic from Kafka instead of NATS (needs -url)")
	fs.StringVar(&o.topic, "topic", "qod.status", "Kafka status topic")
	fs.StringVar(&o.prefix, "subject-prefix", "qod", "NATS subject prefix: events are consumed from <prefix>.status.>")
	fs.StringVar(&o.stream, "stream", "QOD_STATUS", "JetStream status stream (for -nats-consumer stream)")
	fs.StringVar(&o.natsConsumer, "nats-consumer", "core", "core: a plain subscription (lowest latency; may drop under overload, reported as consumer_dropped); stream: an ordered JetStream consumer (reads what was stored, drops nothing)")
	fs.Float64Var(&o.rate, "rate", 0, "requests per second (open loop, latency counted from the scheduled time); 0 is a closed loop")
	fs.IntVar(&o.conc, "c", 32, "concurrent requests (HTTP connections); also the broker ceilings' publishers")
	fs.DurationVar(&o.dur, "d", 10*time.Second, "how long to send")
	n := fs.Uint64("n", 0, "requests to send; overrides -d (bounded by "+countSafetyLimit.String()+")")
	fs.IntVar(&o.sessions, "sessions", 1000, "distinct sessionIds the events are spread over")
	fs.StringVar(&o.shape, "shape", "structured", "input shape: "+strings.Join(benchShapes, ", "))
	fs.IntVar(&o.batch, "batch", 10, "events per request for -shape batch")
	fs.BoolVar(&o.ceilings, "ceilings", false, "measure the HTTP ceiling H and the broker ceilings B, B_pipelined first (default true without -url); B publishes to a stream QODBENCH_<run> (Kafka: topic qodbench.<run>) that is deleted afterwards")
	fs.BoolVar(&o.jsonOut, "json", false, "print the report as JSON")
	fs.DurationVar(&o.progress, "progress", time.Second, "interval of the progress line on stderr; 0 turns it off")
	fs.DurationVar(&o.drain, "drain", 5*time.Second, "after sending, how long to wait for acknowledged events still on their way")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "timeout of one request or publish")
	fs.StringVar(&o.metricsURL, "metrics", "", "the bridge's Prometheus endpoint (e.g. http://127.0.0.1:9090/metrics): its resident memory is sampled during the run; without -url bench samples its own process (bridge + load + consumer)")
	fs.DurationVar(&o.memEvery, "mem-every", time.Second, "interval of the resident-memory samples")
	fs.Float64Var(&o.latencyAt, "latency-at", 0, "after the closed-loop run, run again at this fraction of its peak rate (open loop, same -d/-n) and report that run's HTTP latency against the ceilings' p99 and, with -ceilings, against both ceilings driven by the same open loop, e.g. 0.5; 0 turns it off")
	fs.IntVar(&o.rounds, "rounds", 5, "run the phases (ceilings, bridge; then the -latency-at runs) interleaved in this many rounds, each a rounds-th of -d/-n, so that every phase samples the same stretches of a machine whose speed drifts; 1 runs each phase once, whole")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the bridge phase to this file (go tool pprof; needs -rounds 1); with -url it profiles the load generator only")
	fs.StringVar(&o.memProfile, "memprofile", "", "write a heap profile (allocations) taken after the bridge phase to this file")
	fs.BoolVar(&o.allowRemote, "allow-remote", false, "allow targets (ingress, NATS, Kafka) that are not on loopback")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError{err}
	}
	if fs.NArg() > 0 {
		return nil, usagef("bench: unexpected argument %q", fs.Arg(0))
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "ceilings" {
			o.ceilingsGiven = true
		}
	})
	o.count = *n
	if o.count > 0 {
		o.dur = countSafetyLimit
	}
	if *kafka != "" {
		for b := range strings.SplitSeq(*kafka, ",") {
			if b = strings.TrimSpace(b); b != "" {
				o.kafkaBrokers = append(o.kafkaBrokers, b)
			}
		}
	}
	o.inProcess = o.url == ""
	if !o.ceilingsGiven {
		o.ceilings = o.inProcess
	}
	if !o.inProcess && o.natsURL == "" && len(o.kafkaBrokers) == 0 {
		// Where `qodbridge serve` runs its embedded server by default. (The
		// in-process bridge's URL is filled in once it runs.)
		o.natsURL = "nats://127.0.0.1:4222"
	}
	return o, o.validate()
}

func (o *benchOptions) validate() error {
	switch {
	case o.conc < 1 || o.conc > 10000:
		return usagef("bench: -c %d: want 1 to 10000", o.conc)
	case o.dur <= 0:
		return usagef("bench: -d %s: want a positive duration", o.dur)
	case o.rate < 0:
		return usagef("bench: -rate %g: want 0 (closed loop) or more", o.rate)
	case o.sessions < 1:
		return usagef("bench: -sessions %d: want at least 1", o.sessions)
	case !slices.Contains(benchShapes, o.shape):
		return usagef("bench: -shape %q: want one of %s", o.shape, strings.Join(benchShapes, ", "))
	case o.batch < 1 || o.batch > 1000:
		return usagef("bench: -batch %d: want 1 to 1000", o.batch)
	case o.natsConsumer != "core" && o.natsConsumer != "stream":
		return usagef("bench: -nats-consumer %q: want core or stream", o.natsConsumer)
	case o.latencyAt < 0 || o.latencyAt >= 1:
		return usagef("bench: -latency-at %g: want a fraction of the peak rate between 0 and 1 (0: off)", o.latencyAt)
	case o.latencyAt > 0 && o.rate > 0:
		return usagef("bench: -latency-at needs a closed-loop run to find the peak: leave out -rate")
	case o.rounds < 1 || o.rounds > 100:
		return usagef("bench: -rounds %d: want 1 to 100", o.rounds)
	case o.cpuProfile != "" && o.rounds != 1:
		return usagef("bench: -cpuprofile profiles the bridge phase alone: give -rounds 1")
	case o.memEvery <= 0:
		return usagef("bench: -mem-every %s: want a positive duration", o.memEvery)
	case o.drain < 0 || o.progress < 0 || o.timeout <= 0:
		return usagef("bench: -drain, -progress and -timeout must not be negative (-timeout positive)")
	case o.inProcess && len(o.kafkaBrokers) > 0:
		return usagef("bench: -kafka needs -url: the in-process bridge publishes to its embedded NATS only")
	case o.inProcess && o.natsURL != "":
		return usagef("bench: -nats needs -url: the in-process bridge runs its own NATS server")
	}
	if o.shape != "batch" {
		o.batch = 1
	}
	var u *url.URL
	if o.url != "" {
		var err error
		u, err = url.Parse(o.url)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return usagef("bench: -url %q is not an http(s) URL", o.url)
		}
	}
	if o.allowRemote {
		return nil
	}
	// Load on a shared network is not this tool's call to make silently.
	if u != nil && !loopbackHost(u.Hostname()) {
		return usagef("bench: -url %s is not on loopback; give -allow-remote to load it anyway", o.url)
	}
	if o.natsURL != "" {
		for s := range strings.SplitSeq(o.natsURL, ",") {
			s = strings.TrimSpace(s)
			if !strings.Contains(s, "://") {
				s = "nats://" + s
			}
			u, err := url.Parse(s)
			if err != nil || !loopbackHost(u.Hostname()) {
				return usagef("bench: -nats %s is not on loopback; give -allow-remote to use it anyway", o.natsURL)
			}
		}
	}
	for _, b := range o.kafkaBrokers {
		host, _, err := net.SplitHostPort(b)
		if err != nil || !loopbackHost(host) {
			return usagef("bench: -kafka broker %s is not a loopback host:port; give -allow-remote to use it anyway", b)
		}
	}
	return nil
}

func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// benchCmd is `qodbridge bench`.
func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// Progress lines, warnings and the in-process bridge's log share
	// stderr; the NATS client may still log (from its own goroutine) after
	// the bridge was closed, which must not reach a writer the caller
	// believes is released.
	errw := &syncWriter{w: stderr}
	defer errw.close()
	stderr = errw
	o, err := parseBenchFlags(args, stderr)
	if err != nil {
		return err
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	run := hex.EncodeToString(rnd[:4])
	ids := newRunIDs(run, binary.BigEndian.Uint64(rnd[:]))

	if o.inProcess {
		b, token, cleanup, err := startBenchBridge(ctx, o, stderr)
		if err != nil {
			return err
		}
		defer cleanup()
		o.url = b.NotifyURL()
		o.token = token
		o.natsURL = b.NATSURL()
		// The broker ceilings publish the way the bridge does, through
		// memory to the embedded server.
		o.natsInProcess = b.EmbeddedNATS()
	}

	shape := &shaper{ids: ids, shape: o.shape, batch: o.batch, sessions: o.sessions}
	plan := loadPlan{conc: o.conc, rate: o.rate, dur: o.dur, count: o.count}
	rep := &benchReport{
		RunID: run, URL: o.url, InProcess: o.inProcess, Shape: o.shape, EventsPerRequest: o.batch,
		Connections: o.conc, Rate: o.rate, Sessions: o.sessions, Rounds: o.rounds,
	}
	prog := &progressPrinter{w: stderr, every: o.progress}

	var cs *ceilingSet
	if o.ceilings {
		if cs, err = openCeilings(ctx, o, run, ids, shape); err != nil {
			return err
		}
		defer cs.close()
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("bench: interrupted: %w", err)
	}

	tr := newTracker(time.Now())
	cons, err := startConsumer(ctx, o, o.prefix, o.stream, o.topic, &recv{ids: ids, track: tr})
	if err != nil {
		return err
	}
	rep.Consumer = cons.describe()

	client, err := newLoadClient(o.url, o.token, o.conc, o.timeout)
	if err != nil {
		return err
	}
	defer client.closeIdle()
	seq := &seqAlloc{} // the bridge runs' requests, numbered across both
	bridgeRun := httpPhase("bridge", &httpLoad{client: client, shape: shape, stats: newOpStats(), track: tr}, seq)
	bridgeRun.extra = func() string { return fmt.Sprintf("  received %d", tr.receivedCount()) }
	mem := &memSampler{source: "bench process (bridge + load + consumer)", read: selfRSS, every: o.memEvery}
	if o.metricsURL != "" {
		mem.source, mem.read = "bridge ("+o.metricsURL+")", metricsRSS(&http.Client{Timeout: 2 * time.Second}, o.metricsURL)
	}
	sampleMem := o.metricsURL != "" || o.inProcess
	// Memory is sampled during the bridge's slices only; the CPU profile
	// (-rounds 1) covers its one slice.
	var stopMem, stopCPU func()
	var cpuErr error
	bridgeSlice := func(p *phaseRun, profile bool) {
		p.before = func() {
			if sampleMem {
				stopMem = mem.start(ctx)
			}
			if profile && o.cpuProfile != "" {
				stopCPU, cpuErr = startCPUProfile(o.cpuProfile)
			}
		}
		p.after = func() {
			if stopCPU != nil {
				stopCPU()
				stopCPU = nil
			}
			if stopMem != nil {
				stopMem()
				stopMem = nil
			}
		}
	}
	bridgeSlice(bridgeRun, true)
	var phases []*phaseRun
	if cs != nil {
		phases = append(phases, cs.h, cs.b, cs.bp)
	}
	runRounds(ctx, append(phases, bridgeRun), plan, o.rounds, prog)
	if cpuErr != nil {
		return cpuErr
	}
	peak := bridgeRun.result(o.batch)
	if cs != nil {
		// Before the half-peak runs, which do not use the broker ceilings:
		// their stream's duplicate-window ids and block caches would
		// otherwise stay in this process's heap, and every GC mark of the
		// half-peak runs would scan them (see report).
		if rep.Ceilings, err = cs.report(ctx, o.drain, o.batch); err != nil {
			return err
		}
	}
	if o.latencyAt > 0 && peak.RequestsPerS > 0 && ctx.Err() == nil {
		// Same tracker and consumer, event numbers after the first run's,
		// so the accounting at the end covers both runs.
		atRun := httpPhase(fmt.Sprintf("bridge at %g×peak", o.latencyAt),
			&httpLoad{client: client, shape: shape, stats: newOpStats(), track: tr}, seq)
		bridgeSlice(atRun, false)
		aplan := loadPlan{conc: o.conc, rate: o.latencyAt * peak.RequestsPerS, dur: o.dur, count: o.count}
		phases := []*phaseRun{atRun}
		var noopAt, brokerAt *phaseRun
		var bl *brokerLoad
		if cs != nil {
			// The same open loop against each ceiling: what the load
			// generator and loopback HTTP alone, and the broker alone,
			// show at this rate. The broker's stream is a new one, so
			// that it holds (and its duplicate window remembers) only
			// events sent at this rate, as the bridge's does.
			noopAt = cs.noop.phase(fmt.Sprintf("H at %g×peak", o.latencyAt))
			if bl, err = openBrokerLoad(ctx, o, run+"-at", ids); err != nil {
				return err
			}
			defer bl.close()
			brokerAt = brokerSyncPhase(fmt.Sprintf("B at %g×peak", o.latencyAt), bl, &seqAlloc{}, shape, o.timeout)
			phases = append(phases, noopAt, brokerAt)
		}
		runRounds(ctx, phases, aplan, o.rounds, prog)
		rep.AtRate = &atRateStats{Fraction: o.latencyAt, Rate: roundTo(aplan.rate, 1), phaseStats: atRun.result(o.batch)}
		if cs != nil {
			hp := noopAt.result(o.batch)
			rep.AtRate.HTTP = &hp
			cc, err := bl.finish(ctx, o.drain)
			if err != nil {
				return err
			}
			rep.AtRate.Broker = &brokerAtRate{phaseStats: brokerAt.result(o.batch), Consumer: cc}
		}
	}
	drained := waitDrain(ctx, tr, o.drain)
	if sampleMem {
		r, err := mem.report()
		if err != nil {
			fmt.Fprintf(stderr, "bench: warning: %v\n", err)
		}
		rep.Memory = r
	}
	dropped, cerr := cons.stop()
	if cerr != nil {
		fmt.Fprintf(stderr, "bench: warning: consumer: %v\n", cerr)
	}
	if !drained {
		fmt.Fprintf(stderr, "bench: %d acknowledged events had not arrived %s after the last answer\n", tr.outstanding(), o.drain)
	}
	rep.Bridge = bridgeStatsFrom(peak, tr, dropped)
	if err := writeHeapProfile(o.memProfile); err != nil {
		return err
	}
	if dropped > 0 {
		fmt.Fprintf(stderr, "bench: warning: the consumer dropped %d events (slow consumer); they count as lost: use -nats-consumer stream\n", dropped)
	}
	if c := rep.Ceilings; c != nil {
		c.ratios(rep.Bridge.EventsPerS)
		if a := rep.AtRate; a != nil && a.Latency != nil && c.HTTP.Latency != nil && c.Broker.Latency != nil {
			a.P99VsCeilings = a.p99Over(max(c.HTTP.Latency.P99, c.Broker.Latency.P99))
			a.atRateRatios()
		}
	}

	if o.jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		rep.writeTable(stdout)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("bench: interrupted: %w", ctx.Err())
	}
	if rep.Bridge.Lost > 0 || rep.Bridge.Duplicates > 0 {
		return fmt.Errorf("%w: %d lost, %d duplicates", errBenchAccounting, rep.Bridge.Lost, rep.Bridge.Duplicates)
	}
	return nil
}

// startBenchBridge runs the bridge in-process the way `serve` does, with
// every listener on a random loopback port, its data in a temporary
// directory, and no admin listener. cleanup shuts it down and removes the
// data.
func startBenchBridge(ctx context.Context, o *benchOptions, stderr io.Writer) (_ *process.Process, token string, _ func(), _ error) {
	dir, err := os.MkdirTemp("", "qodbridge-bench-")
	if err != nil {
		return nil, "", nil, fmt.Errorf("bench: data dir: %w", err)
	}
	cfg := &config.Config{}
	cfg.HTTP.Address = "127.0.0.1:0"
	// More requests than the load makes at once are never refused 429.
	cfg.HTTP.MaxInFlight = max(ingress.DefaultMaxInFlight, 2*o.conc)
	cfg.Admin.Address = "off"
	// The status flow is what is measured; no command flow (nor its
	// built-in simulator on the fixed port 8090, which a running
	// qodbridge may hold).
	cfg.Commands.Disabled = true
	cfg.NATS.Embedded.Address = "127.0.0.1:0"
	cfg.NATS.Embedded.DataDir = dir
	cfg.NATS.SubjectPrefix = o.prefix
	// Error level: a warning per rejected request would drown the report.
	cfg.Log = config.Log{Format: "text", Level: "error"}
	err = cfg.Resolve()
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, "", nil, usageError{fmt.Errorf("bench: in-process bridge: %w", err)}
	}
	log, err := process.NewLogger(cfg.Log, stderr)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, "", nil, err
	}
	b, err := process.New(cfg, process.Options{Logger: log, Version: versionString()})
	if err == nil {
		err = b.Start(ctx)
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, "", nil, fmt.Errorf("bench: in-process bridge: %w", err)
	}
	return b, cfg.GeneratedToken, func() {
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout.D())
		defer cancel()
		if err := b.Shutdown(sctx); err != nil {
			fmt.Fprintf(stderr, "bench: in-process bridge shutdown: %v\n", err)
		}
		_ = os.RemoveAll(dir)
	}, nil
}

// startConsumer starts the consumer o asks for on the subjects under
// prefix (NATS core), the stream (JetStream) or the topic (Kafka).
func startConsumer(ctx context.Context, o *benchOptions, prefix, stream, topic string, rc *recv) (consumer, error) {
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

// ceilingSet is what the ceilings need while the rounds run: the no-op
// HTTP server (H), and the broker side B and B_pipelined publish through.
type ceilingSet struct {
	noop     *noopServer
	h, b, bp *phaseRun
	broker   *brokerLoad
}

func openCeilings(ctx context.Context, o *benchOptions, run string, ids runIDs, shape *shaper) (*ceilingSet, error) {
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
func openBrokerLoad(ctx context.Context, o *benchOptions, name string, ids runIDs) (*brokerLoad, error) {
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

// waitDrain waits until every acknowledged event was received, for at most
// grace; it reports whether they all were.
func waitDrain(ctx context.Context, tr *tracker, grace time.Duration) bool {
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for tr.outstanding() > 0 {
		select {
		case <-tick.C:
		case <-deadline.C:
			return tr.outstanding() == 0
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// progressPrinter prints one line per interval while a phase runs.
type progressPrinter struct {
	w     io.Writer
	every time.Duration
}

// start prints progress of st until the returned function is called, which
// waits for the printer to stop.
func (p *progressPrinter) start(name string, st *opStats, extra func() string) func() {
	if p.every <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t0 := time.Now()
		tick := time.NewTicker(p.every)
		defer tick.Stop()
		var lastAcked int64
		last := t0
		for {
			select {
			case <-done:
				return
			case now := <-tick.C:
				acked := st.acked.Load()
				rate := float64(acked-lastAcked) / now.Sub(last).Seconds()
				lastAcked, last = acked, now
				x := ""
				if extra != nil {
					x = extra()
				}
				fmt.Fprintf(p.w, "bench: %-19s %6.1fs  sent %d  acked %d  rejected %d  errors %d%s  %.0f/s\n",
					name, now.Sub(t0).Seconds(), st.sent.Load(), acked, st.rejected.Load(), st.errors.Load(), x, rate)
			}
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
		})
	}
}

// benchReport is the result of a run; its JSON field names are stable
// (README, "Performance"). Counts of requests: sent, acked, rejected,
// errors; counts of events: events_sent, events_acked, received, lost,
// duplicates. Latencies are in milliseconds.
type benchReport struct {
	RunID            string         `json:"run_id"`
	URL              string         `json:"url"`
	InProcess        bool           `json:"in_process"`
	Consumer         string         `json:"consumer"`
	Shape            string         `json:"shape"`
	EventsPerRequest int            `json:"events_per_request"`
	Connections      int            `json:"connections"`
	Rate             float64        `json:"rate"`
	Sessions         int            `json:"sessions"`
	Rounds           int            `json:"rounds"`
	Bridge           bridgeStats    `json:"bridge"`
	Ceilings         *ceilingReport `json:"ceilings,omitempty"`
	Memory           *memReport     `json:"resident_memory,omitempty"`
	AtRate           *atRateStats   `json:"at_rate,omitempty"`
}

// atRateStats is the -latency-at run: open loop at Fraction of the peak
// request rate. Its HTTP latency is what a bridge adds when it is not
// saturated; P99VsCeilings compares its p99 with the larger of the two
// ceilings' p99 (the target is at most 1.5).
type atRateStats struct {
	Fraction float64 `json:"fraction_of_peak"`
	Rate     float64 `json:"rate"`
	phaseStats
	P99VsCeilings float64 `json:"p99_vs_ceilings_p99,omitempty"`
	// HTTP is the no-op HTTP server driven by the same open loop (with
	// -ceilings); P99VsHTTP compares the bridge's p99 with its p99.
	HTTP      *phaseStats `json:"http,omitempty"`
	P99VsHTTP float64     `json:"p99_vs_http_at_rate,omitempty"`
	// Broker is B driven by the same open loop (with -ceilings), on a
	// stream of its own; P99VsBroker compares the bridge's p99 with its
	// p99, and P99VsCeilingsAtRate with the larger of HTTP's and Broker's.
	Broker              *brokerAtRate `json:"broker,omitempty"`
	P99VsBroker         float64       `json:"p99_vs_broker_at_rate,omitempty"`
	P99VsCeilingsAtRate float64       `json:"p99_vs_ceilings_at_rate,omitempty"`
	// CPUVsCeilingsAtRate is the bridge's CPU time per event divided by
	// the sum of HTTP's and Broker's, all three at the same rate: what
	// S's serial model predicts, with each part's cost taken at the
	// bridge's rate rather than at its own peak, where it is lower.
	CPUVsCeilingsAtRate float64 `json:"cpu_vs_ceilings_at_rate,omitempty"`
}

// brokerAtRate is B in the half-peak open loop, with what its consumer
// received.
type brokerAtRate struct {
	phaseStats
	Consumer *ceilingConsumer `json:"consumer"`
}

// p99Over is the bridge's p99 divided by base, or 0 when either is
// missing.
func (a *atRateStats) p99Over(base float64) float64 {
	if a.Latency == nil || base <= 0 {
		return 0
	}
	return roundTo(a.Latency.P99/base, 2)
}

// atRateRatios fills in the ratios of the bridge's p99 to the ceilings'
// in the same open loop; a ratio stays 0 where either p99 is missing.
func (a *atRateStats) atRateRatios() {
	var h, b float64
	if a.HTTP != nil && a.HTTP.Latency != nil {
		h = a.HTTP.Latency.P99
	}
	if a.Broker != nil && a.Broker.Latency != nil {
		b = a.Broker.Latency.P99
	}
	a.P99VsHTTP, a.P99VsBroker = a.p99Over(h), a.p99Over(b)
	if h > 0 && b > 0 {
		a.P99VsCeilingsAtRate = a.p99Over(max(h, b))
	}
	if a.HTTP != nil && a.Broker != nil && a.CPUPerEvent > 0 && a.HTTP.CPUPerEvent > 0 && a.Broker.CPUPerEvent > 0 {
		a.CPUVsCeilingsAtRate = roundTo(a.CPUPerEvent/(a.HTTP.CPUPerEvent+a.Broker.CPUPerEvent), 2)
	}
}

// bridgeStats is the bridge run: the request counts and HTTP answer
// latency (of 2xx answers) of phaseStats, plus the event accounting.
type bridgeStats struct {
	phaseStats
	EventsSent  int64 `json:"events_sent"`
	EventsAcked int64 `json:"events_acked"`
	// Received counts distinct events of this run the consumer saw.
	Received int64 `json:"received"`
	// Lost counts events acknowledged 2xx and not received by the end of
	// the drain.
	Lost int64 `json:"lost"`
	// Duplicates counts receipts of an event already received.
	Duplicates int64 `json:"duplicates"`
	// ReceivedUnacked counts events received whose request was not
	// answered 2xx (published, then the answer failed or timed out).
	ReceivedUnacked int64 `json:"received_unacked"`
	// Foreign counts messages on the subject or topic that were not this
	// run's.
	Foreign int64 `json:"foreign"`
	// ConsumerDropped counts events the consumer itself lost (NATS slow
	// consumer); they are included in Lost.
	ConsumerDropped int64 `json:"consumer_dropped"`
	// E2E is POST (scheduled time with -rate) to receipt by the consumer.
	E2E *latencyStats `json:"e2e_latency,omitempty"`
}

func bridgeStatsFrom(peak phaseStats, tr *tracker, dropped int64) bridgeStats {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	b := bridgeStats{
		phaseStats:      peak,
		EventsSent:      int64(tr.sent),
		EventsAcked:     tr.nAcked,
		Received:        tr.nReceived,
		Lost:            tr.nAcked - tr.nAckedReceived,
		Duplicates:      tr.nDup,
		ReceivedUnacked: tr.nReceived - tr.nAckedReceived,
		Foreign:         tr.nForeign,
		ConsumerDropped: dropped,
	}
	if tr.e2e.n > 0 {
		s := tr.e2e.stats()
		b.E2E = &s
	}
	return b
}

// ceilingReport holds the ceilings and the bridge's throughput as a
// fraction of each. Throughputs are in events per second.
type ceilingReport struct {
	HTTP            phaseStats `json:"http"`
	Broker          phaseStats `json:"broker"`
	BrokerPipelined phaseStats `json:"broker_pipelined"`
	// Consumer is what the consumer that read B's and B_pipelined's
	// events received.
	Consumer   *ceilingConsumer `json:"broker_consumer,omitempty"`
	H          float64          `json:"h"`
	B          float64          `json:"b"`
	BPipelined float64          `json:"b_pipelined"`
	S          float64          `json:"s"`
	P          float64          `json:"p"`
	Ratio      struct {
		H float64 `json:"h"`
		B float64 `json:"b"`
		S float64 `json:"s"`
		P float64 `json:"p"`
	} `json:"bridge_ratio"`
}

// ceilingConsumer is the consumer of the broker ceilings' events: events
// received, acknowledged but not received (lost), dropped by the
// consumer itself.
type ceilingConsumer struct {
	Describe string `json:"consumer"`
	Received int64  `json:"received"`
	Lost     int64  `json:"lost"`
	Dropped  int64  `json:"dropped"`
}

func (c *ceilingReport) ratios(bridge float64) {
	c.H, c.B, c.BPipelined = c.HTTP.EventsPerS, c.Broker.EventsPerS, c.BrokerPipelined.EventsPerS
	serial := func(a, b float64) float64 {
		if a <= 0 || b <= 0 {
			return 0
		}
		return roundTo(1/(1/a+1/b), 1)
	}
	c.S, c.P = serial(c.H, c.B), serial(c.H, c.BPipelined)
	ratio := func(x float64) float64 {
		if x <= 0 {
			return 0
		}
		return roundTo(bridge/x, 3)
	}
	c.Ratio.H, c.Ratio.B, c.Ratio.S, c.Ratio.P = ratio(c.H), ratio(c.B), ratio(c.S), ratio(c.P)
}

// fmtMs prints milliseconds with three significant digits and a unit.
func fmtMs(ms float64) string {
	d := time.Duration(ms * float64(time.Millisecond))
	switch {
	case d >= 100*time.Millisecond:
		return d.Round(time.Millisecond).String()
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	case d >= 100*time.Microsecond:
		return d.Round(time.Microsecond).String()
	}
	return d.Round(100 * time.Nanosecond).String()
}

func (r *benchReport) writeTable(w io.Writer) {
	mode := "closed loop"
	if r.Rate > 0 {
		mode = fmt.Sprintf("%g req/s", r.Rate)
	}
	where := r.URL
	if r.InProcess {
		where += " (in-process bridge, embedded NATS)"
	}
	rounds := ""
	if r.Rounds > 1 {
		rounds = fmt.Sprintf("; phases interleaved in %d rounds", r.Rounds)
	}
	fmt.Fprintf(w, "run %s: POST %s\n  shape %s, %d event(s)/request, %d connections, %s, %d sessions; consumer: %s%s\n\n",
		r.RunID, where, r.Shape, r.EventsPerRequest, r.Connections, mode, r.Sessions, r.Consumer, rounds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tsent\tacked\trejected\terrors\treceived\tlost\tdup\treq/s\tev/s\tcpu/ev\tp50\tp90\tp99\tp99.9\tmax\t")
	lat := func(l *latencyStats) string {
		if l == nil {
			return "-\t-\t-\t-\t-"
		}
		return strings.Join([]string{fmtMs(l.P50), fmtMs(l.P90), fmtMs(l.P99), fmtMs(l.P999), fmtMs(l.Max)}, "\t")
	}
	row := func(name string, p *phaseStats, recv, lost, dup string, l *latencyStats) {
		cpu := "-"
		if p.CPUPerEvent > 0 {
			cpu = fmt.Sprintf("%.1fµs", p.CPUPerEvent)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%.0f\t%.0f\t%s\t%s\t\n", name, p.Sent, p.Acked, p.Rejected, p.Errors,
			recv, lost, dup, p.RequestsPerS, p.EventsPerS, cpu, lat(l))
	}
	if c := r.Ceilings; c != nil {
		row("noop HTTP (H)", &c.HTTP, "-", "-", "-", c.HTTP.Latency)
		row("broker (B)", &c.Broker, "-", "-", "-", c.Broker.Latency)
		row("broker pipelined", &c.BrokerPipelined, "-", "-", "-", nil)
	}
	b := &r.Bridge
	row("bridge", &b.phaseStats, strconv.FormatInt(b.Received, 10), strconv.FormatInt(b.Lost, 10), strconv.FormatInt(b.Duplicates, 10), b.Latency)
	latRow := func(name string, l *latencyStats) {
		if l != nil {
			fmt.Fprintf(tw, "%s\t\t\t\t\t\t\t\t\t\t\t%s\t\n", name, lat(l))
		}
	}
	latRow("  schedule lag", b.PacingLag)
	latRow("bridge end-to-end", b.E2E)
	if a := r.AtRate; a != nil {
		row(fmt.Sprintf("bridge at %g×peak", a.Fraction), &a.phaseStats, "-", "-", "-", a.Latency)
		latRow("  schedule lag", a.PacingLag)
		if a.HTTP != nil {
			row(fmt.Sprintf("noop HTTP at %g×peak", a.Fraction), a.HTTP, "-", "-", "-", a.HTTP.Latency)
			latRow("  schedule lag", a.HTTP.PacingLag)
		}
		if ab := a.Broker; ab != nil {
			recv, lost := "-", "-"
			if ab.Consumer != nil {
				recv, lost = strconv.FormatInt(ab.Consumer.Received, 10), strconv.FormatInt(ab.Consumer.Lost, 10)
			}
			row(fmt.Sprintf("broker at %g×peak", a.Fraction), &ab.phaseStats, recv, lost, "-", ab.Latency)
			latRow("  schedule lag", ab.PacingLag)
		}
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\nlatency: HTTP answer of 2xx requests (broker ack for B); end-to-end: POST to consumer receipt\n")
	if b.PacingLag != nil || r.AtRate != nil {
		fmt.Fprintf(w, "open loop: latency counts from the scheduled time; schedule lag is the load generator's own lateness in that\n")
	}
	if r.AtRate != nil {
		fmt.Fprintf(w, "received/lost/dup and end-to-end cover both bridge runs\n")
	}
	if b.eventsPerCall > 1 {
		fmt.Fprintf(w, "sent/acked/rejected/errors count requests; received/lost/dup count events (%d sent, %d acked)\n", b.EventsSent, b.EventsAcked)
	}
	if len(b.RejectedBy) > 0 {
		keys := make([]string, 0, len(b.RejectedBy))
		for k := range b.RejectedBy {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		fmt.Fprint(w, "rejected by status:")
		for _, k := range keys {
			fmt.Fprintf(w, " %s=%d", k, b.RejectedBy[k])
		}
		fmt.Fprintln(w)
	}
	if b.FirstError != "" {
		fmt.Fprintf(w, "first error: %s\n", b.FirstError)
	}
	if b.ReceivedUnacked > 0 || b.ConsumerDropped > 0 || b.Foreign > 0 {
		fmt.Fprintf(w, "received but not acked %d, dropped by the consumer %d, foreign messages %d\n", b.ReceivedUnacked, b.ConsumerDropped, b.Foreign)
	}
	if m := r.Memory; m != nil {
		growth := ""
		if m.Growth > 0 {
			growth = fmt.Sprintf(", last quarter/second quarter %.2f", m.Growth)
		}
		fmt.Fprintf(w, "resident memory of the %s: first %.1f MiB, peak %.1f MiB, last %.1f MiB over %d samples%s\n",
			m.Source, m.First, m.Peak, m.Last, m.Samples, growth)
	}
	if c := r.Ceilings; c != nil {
		if cc := c.Consumer; cc != nil {
			fmt.Fprintf(w, "B and B_pipelined publish while a consumer reads their events, as in the bridge run (%s): received %d, lost %d\n",
				cc.Describe, cc.Received, cc.Lost)
		}
		fmt.Fprintf(w, "ceilings (events/s): H=%.0f  B=%.0f  B_pipelined=%.0f  S=%.0f  P=%.0f\n", c.H, c.B, c.BPipelined, c.S, c.P)
		fmt.Fprintf(w, "bridge/H=%.2f  bridge/B=%.2f  bridge/S=%.2f  bridge/P=%.2f\n", c.Ratio.H, c.Ratio.B, c.Ratio.S, c.Ratio.P)
		if a := r.AtRate; a != nil && a.P99VsCeilings > 0 {
			fmt.Fprintf(w, "p99 at %g×peak (%.0f req/s): %s = %.2f × the larger ceiling p99 (%s)", a.Fraction, a.Rate,
				fmtMs(a.Latency.P99), a.P99VsCeilings, fmtMs(max(c.HTTP.Latency.P99, c.Broker.Latency.P99)))
			fmt.Fprintln(w)
			if a.P99VsHTTP > 0 {
				fmt.Fprintf(w, "  in the same open loop: %.2f × the no-op HTTP server's p99 (%s)", a.P99VsHTTP, fmtMs(a.HTTP.Latency.P99))
				if a.P99VsBroker > 0 {
					fmt.Fprintf(w, ", %.2f × the broker's (%s), %.2f × the larger", a.P99VsBroker, fmtMs(a.Broker.Latency.P99), a.P99VsCeilingsAtRate)
				}
				fmt.Fprintln(w)
			}
			if a.CPUVsCeilingsAtRate > 0 {
				fmt.Fprintf(w, "  cpu/ev in the same open loop: bridge %.1fµs = %.2f × (no-op HTTP %.1fµs + broker %.1fµs); at their peaks H+B = %.1fµs\n",
					a.CPUPerEvent, a.CPUVsCeilingsAtRate, a.HTTP.CPUPerEvent, a.Broker.CPUPerEvent, c.HTTP.CPUPerEvent+c.Broker.CPUPerEvent)
			}
		}
	}
}

// syncWriter serialises writes to w and drops those after close.
type syncWriter struct {
	mu     sync.Mutex
	w      io.Writer
	closed bool
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return len(p), nil
	}
	return s.w.Write(p)
}

func (s *syncWriter) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}
