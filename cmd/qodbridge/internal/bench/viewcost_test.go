package bench

import (
	"errors"
	"strings"
	"testing"
)

// TestBenchViewCost: -view-cost runs a view-off bridge beside the bridge,
// accounts for both, and reports the view's cost from their phases.
func TestBenchViewCost(t *testing.T) {
	r, stderr, err := runBench(t, "-n", "300", "-c", "8", "-ceilings=false", "-rounds", "2", "-sessions", "500", "-view-cost")
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, stderr)
	}
	v := r.ViewCost
	if v == nil {
		t.Fatal("no view_cost in the report")
	}
	w := v.WithoutView
	if w.Sent != 300 || w.Acked != 300 || w.Received != 300 || w.Lost != 0 || w.Duplicates != 0 {
		t.Fatalf("view-off accounting: %+v", w)
	}
	if b := r.Bridge; b.Received != 300 || b.Lost != 0 {
		t.Fatalf("bridge accounting: %+v", b)
	}
	if v.ThroughputRatio <= 0 || v.CPURatio <= 0 || v.ThroughputRatio != roundTo(r.Bridge.EventsPerS/w.EventsPerS, 3) {
		t.Errorf("ratios %+v for %g and %g ev/s", v, r.Bridge.EventsPerS, w.EventsPerS)
	}
	if _, _, err := runBench(t, "-url", "http://127.0.0.1:1/notifications", "-view-cost"); !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "-view-cost") {
		t.Errorf("-view-cost with -url: %v", err)
	}
}
