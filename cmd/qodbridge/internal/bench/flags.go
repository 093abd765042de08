package bench

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// countSafetyLimit bounds a -n run whose bridge stalls.
const countSafetyLimit = 10 * time.Minute

type options struct {
	url, token    string
	natsURL       string
	natsInProcess nats.InProcessConnProvider // the in-process bridge's embedded server
	warn          io.Writer                  // where consumers' warnings go: the run's stderr
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
	viewCost      bool
}

const usage = `usage: qodbridge bench [flags]

Sends qos-status-changed notifications to the ingress, consumes them from
NATS or Kafka at the same time, and reports sent, acknowledged, rejected,
received, lost and duplicate events, throughput and latency percentiles
(HTTP answer and end to end). Without -url it starts the bridge in-process
with an embedded NATS server on random loopback ports and measures the
HTTP and broker ceilings too.

examples:
  qodbridge bench -d 10s
  qodbridge bench -url http://127.0.0.1:8080/notifications -token "$TOKEN" -nats nats://127.0.0.1:4222 -c 64 -d 30s

flags:
`

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
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
	fs.StringVar(&o.shape, "shape", "structured", "input shape: "+strings.Join(shapes, ", "))
	fs.IntVar(&o.batch, "batch", 10, "events per request for -shape batch")
	fs.BoolVar(&o.ceilings, "ceilings", false, "measure the HTTP ceiling H and the broker ceilings B, B_pipelined first (default true without -url); B publishes to a stream QODBENCH_<run> (Kafka: topic qodbench.<run>) that is deleted afterwards")
	fs.BoolVar(&o.jsonOut, "json", false, "print the report as JSON")
	fs.DurationVar(&o.progress, "progress", time.Second, "interval of the progress line on stderr; 0 turns it off")
	fs.DurationVar(&o.drain, "drain", 5*time.Second, "after sending, how long to wait for acknowledged events still on their way")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "timeout of one request or publish")
	fs.StringVar(&o.metricsURL, "metrics", "", "the bridge's Prometheus endpoint (e.g. http://127.0.0.1:9090/metrics): its resident memory is sampled during the run; without -url bench samples its own process (bridge + load + consumer)")
	fs.DurationVar(&o.memEvery, "mem-every", time.Second, "interval of the resident-memory samples")
	fs.Float64Var(&o.latencyAt, "latency-at", 0, "after the closed-loop run, run again at this fraction of its peak rate (open loop, same -d/-n) and report that run's HTTP latency against the ceilings' p99 and, with -ceilings, against both ceilings driven by the same open loop, e.g. 0.5; 0 turns it off")
	fs.BoolVar(&o.viewCost, "view-cost", false, "with the in-process bridge, run a second one with the session view off (view.disabled) beside it, its phase interleaved with the bridge's, and report what the view costs per event (throughput, CPU time, latency)")
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

func (o *options) validate() error {
	switch {
	case o.conc < 1 || o.conc > 10000:
		return usagef("bench: -c %d: want 1 to 10000", o.conc)
	case o.dur <= 0:
		return usagef("bench: -d %s: want a positive duration", o.dur)
	case o.rate < 0:
		return usagef("bench: -rate %g: want 0 (closed loop) or more", o.rate)
	case o.sessions < 1:
		return usagef("bench: -sessions %d: want at least 1", o.sessions)
	case !slices.Contains(shapes, o.shape):
		return usagef("bench: -shape %q: want one of %s", o.shape, strings.Join(shapes, ", "))
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
	case o.viewCost && !o.inProcess:
		return usagef("bench: -view-cost compares two in-process bridges: leave out -url")
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
