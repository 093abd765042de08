package bench

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/qodbridge/qodbridge/bridge/ingress"
	"github.com/qodbridge/qodbridge/cmd/qodbridge/internal/process"
	"github.com/qodbridge/qodbridge/config"
)

// ErrAccounting is returned after the report when events were lost or
// duplicated, so that a script running bench fails.
var ErrAccounting = errors.New("bench: acknowledged events were lost or duplicated")

// ErrUsage is in the chain of every error that is the caller's fault: a bad
// flag, or a configuration the in-process bridge refuses. The command's
// exit status for it is 2, not 1.
var ErrUsage = errors.New("bench: usage")

// usageError is a bad flag or setting. Its message is the cause's alone;
// errors.Is finds both the cause and ErrUsage.
type usageError struct{ err error }

func (e usageError) Error() string   { return e.err.Error() }
func (e usageError) Unwrap() []error { return []error{e.err, ErrUsage} }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// Main is `qodbridge bench`: args are the flags after "bench", version is
// the in-process bridge's (for its traces). The report goes to stdout;
// progress lines, warnings and the in-process bridge's log to stderr.
//
// It returns nil, flag.ErrHelp for -h, an error wrapping ErrUsage for bad
// flags, one wrapping ErrAccounting after the report when an acknowledged
// event was lost or duplicated, or another error on a failure.
func Main(ctx context.Context, version string, args []string, stdout, stderr io.Writer) error {
	// Progress lines, warnings and the in-process bridge's log share
	// stderr; the NATS client may still log (from its own goroutine) after
	// the bridge was closed, which must not reach a writer the caller
	// believes is released.
	errw := &syncWriter{w: stderr}
	defer errw.close()
	stderr = errw
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	o.warn = stderr
	var rnd [8]byte
	rand.Read(rnd[:])
	run := hex.EncodeToString(rnd[:4])
	ids := newRunIDs(run, binary.BigEndian.Uint64(rnd[:]))

	if o.inProcess {
		b, token, cleanup, err := startBridge(ctx, o, version, stderr, false)
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
	rep := &runReport{
		RunID: run, URL: o.url, InProcess: o.inProcess, Shape: o.shape, EventsPerRequest: o.batch,
		Connections: o.conc, Rate: o.rate, Sessions: o.sessions, Rounds: o.rounds,
	}
	prog := &progressPrinter{w: stderr, every: o.progress}

	var nv *noViewBridge
	if o.viewCost {
		if nv, err = startNoView(ctx, o, version, stderr, ids, shape); err != nil {
			return err
		}
		defer nv.close()
	}

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
	if nv != nil {
		phases = append(phases, nv.phase)
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
		// half-peak runs would scan them (measured: a live heap of 55-67 MB
		// after each GC there with them, 18-19 MB without).
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
	if nv != nil {
		if rep.ViewCost, err = nv.report(ctx, o.drain, o.batch, &rep.Bridge); err != nil {
			return err
		}
	}
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
		return fmt.Errorf("%w: %d lost, %d duplicates", ErrAccounting, rep.Bridge.Lost, rep.Bridge.Duplicates)
	}
	if v := rep.ViewCost; v != nil && (v.WithoutView.Lost > 0 || v.WithoutView.Duplicates > 0) {
		return fmt.Errorf("%w: view off: %d lost, %d duplicates", ErrAccounting, v.WithoutView.Lost, v.WithoutView.Duplicates)
	}
	return nil
}

// startBridge runs the bridge in-process the way `serve` does, with
// every listener on a random loopback port, its data in a temporary
// directory, and no admin listener; noView turns the session view off.
// cleanup shuts it down and removes the data.
func startBridge(ctx context.Context, o *options, version string, stderr io.Writer, noView bool) (_ *process.Process, token string, _ func(), _ error) {
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
	cfg.View.Disabled = noView
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
	b, err := process.New(cfg, process.Options{Logger: log, Version: version})
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
