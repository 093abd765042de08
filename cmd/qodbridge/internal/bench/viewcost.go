package bench

import (
	"context"
	"fmt"
	"io"
	"time"
)

// viewCost is -view-cost: the bridge (session view on, the default)
// against a second in-process bridge with the view off, their phases
// interleaved in the same rounds, so the ratios compare like with like.
type viewCost struct {
	// WithoutView is the second bridge's run, with its own consumer and
	// accounting.
	WithoutView bridgeStats `json:"without_view"`
	// ThroughputRatio is the bridge's events/s over the view-off
	// bridge's; CPURatio the same for cpu_us_per_event, and
	// CPUAddedPerEvent their difference in microseconds: the view's cost.
	ThroughputRatio  float64 `json:"throughput_ratio"`
	CPURatio         float64 `json:"cpu_ratio"`
	CPUAddedPerEvent float64 `json:"cpu_us_added_per_event"`
	// P50Added and P99Added are the HTTP latencies' differences, in ms.
	P50Added float64 `json:"p50_added_ms"`
	P99Added float64 `json:"p99_added_ms"`
}

// noViewBridge is the second in-process bridge of -view-cost and what
// measures it.
type noViewBridge struct {
	phase   *phaseRun
	track   *tracker
	cons    consumer
	client  *loadClient
	cleanup func()
}

// startNoView starts the view-off bridge, its consumer and its load.
func startNoView(ctx context.Context, o *options, version string, stderr io.Writer, ids runIDs, shape *shaper) (_ *noViewBridge, err error) {
	b, token, cleanup, err := startBridge(ctx, o, version, stderr, true)
	if err != nil {
		return nil, fmt.Errorf("bench: -view-cost: %w", err)
	}
	nv := &noViewBridge{cleanup: cleanup, track: newTracker(time.Now())}
	defer func() {
		if err != nil {
			nv.close()
		}
	}()
	o2 := *o
	o2.natsURL = b.NATSURL()
	if nv.cons, err = startConsumer(ctx, &o2, o.prefix, o.stream, o.topic, &recv{ids: ids, track: nv.track}); err != nil {
		return nil, fmt.Errorf("bench: -view-cost: consumer: %w", err)
	}
	if nv.client, err = newLoadClient(b.NotifyURL(), token, o.conc, o.timeout); err != nil {
		return nil, err
	}
	nv.phase = httpPhase("bridge, view off", &httpLoad{client: nv.client, shape: shape, stats: newOpStats(), track: nv.track}, &seqAlloc{})
	return nv, nil
}

// report drains the view-off bridge's events and compares with with.
func (nv *noViewBridge) report(ctx context.Context, drain time.Duration, batch int, with *bridgeStats) (*viewCost, error) {
	waitDrain(ctx, nv.track, drain)
	dropped, err := nv.cons.stop()
	nv.cons = nil
	if err != nil {
		return nil, fmt.Errorf("bench: -view-cost: consumer: %w", err)
	}
	v := &viewCost{WithoutView: bridgeStatsFrom(nv.phase.result(batch), nv.track, dropped)}
	wo := &v.WithoutView
	if wo.EventsPerS > 0 {
		v.ThroughputRatio = roundTo(with.EventsPerS/wo.EventsPerS, 3)
	}
	if wo.CPUPerEvent > 0 {
		v.CPURatio = roundTo(with.CPUPerEvent/wo.CPUPerEvent, 3)
		v.CPUAddedPerEvent = roundTo(with.CPUPerEvent-wo.CPUPerEvent, 1)
	}
	if with.Latency != nil && wo.Latency != nil {
		v.P50Added = roundTo(with.Latency.P50-wo.Latency.P50, 3)
		v.P99Added = roundTo(with.Latency.P99-wo.Latency.P99, 3)
	}
	return v, nil
}

func (nv *noViewBridge) close() {
	if nv.cons != nil {
		_, _ = nv.cons.stop()
		nv.cons = nil
	}
	if nv.client != nil {
		nv.client.closeIdle()
	}
	nv.cleanup()
}
