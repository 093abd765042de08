package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/qodbridge/qodbridge/bridge/ingress"
	"github.com/qodbridge/qodbridge/sinks/kafkasink"
	"github.com/qodbridge/qodbridge/sinks/natssink"
	"github.com/qodbridge/qodbridge/sinks/natssink/natstest"
)

// runBench runs `qodbridge bench` in-process with -json and no progress
// lines, bounded by a minute (a guard against hangs, not a threshold), and
// returns the decoded report, stderr and run's error.
func runBench(t *testing.T, args ...string) (runReport, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err := Main(ctx, "test", append([]string{"-json", "-progress", "0"}, args...), &stdout, &stderr)
	var rep runReport
	if stdout.Len() > 0 {
		dec := json.NewDecoder(&stdout)
		dec.DisallowUnknownFields()
		if derr := dec.Decode(&rep); derr != nil {
			t.Fatalf("report is not the documented JSON: %v\n%s", derr, stdout.String())
		}
	}
	return rep, stderr.String(), err
}

// checkConsistent asserts what holds for every report, whatever happened.
func checkConsistent(t *testing.T, r runReport) {
	t.Helper()
	b := r.Bridge
	if b.Sent != b.Acked+b.Rejected+b.Errors {
		t.Errorf("sent %d != acked %d + rejected %d + errors %d", b.Sent, b.Acked, b.Rejected, b.Errors)
	}
	var byStatus int64
	for _, n := range b.RejectedBy {
		byStatus += n
	}
	if byStatus != b.Rejected {
		t.Errorf("rejected_by_status sums to %d, rejected is %d", byStatus, b.Rejected)
	}
	// The event accounting covers the half-peak run too.
	sent, acked := b.Sent, b.Acked
	if a := r.AtRate; a != nil {
		sent, acked = sent+a.Sent, acked+a.Acked
	}
	if b.EventsSent != sent*int64(r.EventsPerRequest) || b.EventsAcked != acked*int64(r.EventsPerRequest) {
		t.Errorf("events sent/acked %d/%d for %d/%d requests of %d events", b.EventsSent, b.EventsAcked, sent, acked, r.EventsPerRequest)
	}
	if b.Lost != b.EventsAcked-(b.Received-b.ReceivedUnacked) {
		t.Errorf("lost %d != events acked %d - acked events received %d", b.Lost, b.EventsAcked, b.Received-b.ReceivedUnacked)
	}
	if b.Acked > 0 && (b.Latency == nil || b.Latency.Count != b.Acked) {
		t.Errorf("HTTP latency %+v, want one sample per acked request (%d)", b.Latency, b.Acked)
	}
	for _, l := range []*latencyStats{b.Latency, b.E2E} {
		if l != nil && !(l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
			t.Errorf("percentiles out of order: %+v", l)
		}
	}
}

// TestBenchInProcess: one command starts the bridge with embedded NATS,
// measures the ceilings and the bridge, and every event sent is acked and
// received once.
func TestBenchInProcess(t *testing.T) {
	r, stderr, err := runBench(t, "-n", "300", "-c", "8")
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, stderr)
	}
	checkConsistent(t, r)
	b := r.Bridge
	if !r.InProcess || b.Sent != 300 || b.Acked != 300 || b.Received != 300 || b.Lost != 0 || b.Duplicates != 0 || b.Foreign != 0 {
		t.Fatalf("accounting: %+v", b)
	}
	if b.E2E == nil || b.E2E.Count != 300 {
		t.Errorf("end-to-end latency %+v, want 300 samples", b.E2E)
	}
	if b.RequestsPerS <= 0 || b.EventsPerS != b.RequestsPerS {
		t.Errorf("throughput %g req/s, %g ev/s", b.RequestsPerS, b.EventsPerS)
	}
	c := r.Ceilings
	if c == nil {
		t.Fatal("no ceilings in an in-process run")
	}
	for name, p := range map[string]phaseStats{"http": c.HTTP, "broker": c.Broker, "broker_pipelined": c.BrokerPipelined} {
		if p.Sent != 300 || p.Acked != 300 || p.EventsPerS <= 0 {
			t.Errorf("ceiling %s: %+v", name, p)
		}
	}
	// The broker ceilings are measured with a consumer reading their
	// events, as the bridge run is: it got all 600 of B and B_pipelined.
	if cc := c.Consumer; cc == nil || cc.Received != 600 || cc.Lost != 0 || cc.Dropped != 0 ||
		!strings.Contains(cc.Describe, "qodbench."+r.RunID+".status.>") {
		t.Errorf("ceilings' consumer %+v, want 600 received, 0 lost", cc)
	}
	if c.H != c.HTTP.EventsPerS || c.B != c.Broker.EventsPerS || c.BPipelined != c.BrokerPipelined.EventsPerS {
		t.Errorf("ceilings %g/%g/%g do not match their phases", c.H, c.B, c.BPipelined)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) <= 0.01*math.Max(math.Abs(b), 1) }
	if !near(c.S, 1/(1/c.H+1/c.B)) || !near(c.P, 1/(1/c.H+1/c.BPipelined)) {
		t.Errorf("S %g, P %g do not follow from H %g, B %g, B_pipelined %g", c.S, c.P, c.H, c.B, c.BPipelined)
	}
	if !near(c.Ratio.H, b.EventsPerS/c.H) || !near(c.Ratio.S, b.EventsPerS/c.S) {
		t.Errorf("ratios %+v for bridge %g", c.Ratio, b.EventsPerS)
	}
}

// TestBenchLatencyAt: the second run at half the peak rate is reported
// apart, its events are accounted for with the first run's, and the memory
// and CPU figures are filled in.
func TestBenchLatencyAt(t *testing.T) {
	r, stderr, err := runBench(t, "-n", "300", "-c", "8", "-latency-at", "0.5")
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, stderr)
	}
	a := r.AtRate
	if a == nil {
		t.Fatal("no at_rate in the report")
	}
	if a.Fraction != 0.5 || a.Sent != 300 || a.Acked != 300 || a.Latency == nil || a.Latency.Count != 300 {
		t.Fatalf("at_rate %+v", a)
	}
	if want := roundTo(0.5*r.Bridge.RequestsPerS, 1); math.Abs(a.Rate-want) > 1 {
		t.Errorf("at_rate rate %g, want half the peak %g", a.Rate, want)
	}
	if a.P99VsCeilings <= 0 {
		t.Errorf("p99_vs_ceilings_p99 %g", a.P99VsCeilings)
	}
	if a.HTTP == nil || a.HTTP.Acked != 300 || a.HTTP.Latency == nil || a.P99VsHTTP <= 0 {
		t.Errorf("no-op HTTP at the same rate: %+v, p99 ratio %g", a.HTTP, a.P99VsHTTP)
	}
	checkBrokerAtRate(t, a, 300)
	// Every open-loop run reports how late its schedule was; the closed
	// loop has no schedule.
	for name, l := range map[string]*latencyStats{"bridge": a.PacingLag, "no-op HTTP": a.HTTP.PacingLag, "broker": a.Broker.PacingLag} {
		if l == nil || l.Count != 300 || l.Max < l.P50 {
			t.Errorf("%s at rate: schedule lag %+v, want 300 samples", name, l)
		}
	}
	if r.Bridge.PacingLag != nil {
		t.Errorf("closed loop with a schedule lag: %+v", r.Bridge.PacingLag)
	}
	if b := r.Bridge; b.Received != 600 || b.Lost != 0 || b.Duplicates != 0 {
		t.Errorf("both runs' events: received %d, lost %d, dup %d; want 600, 0, 0", b.Received, b.Lost, b.Duplicates)
	}
	if m := r.Memory; m == nil || m.Samples < 2 || m.Peak < m.First || m.Peak <= 0 {
		t.Errorf("resident memory %+v", m)
	}
	if r.Bridge.CPUPerEvent <= 0 || r.Ceilings.HTTP.CPUPerEvent <= 0 {
		t.Errorf("cpu per event: bridge %g, H %g", r.Bridge.CPUPerEvent, r.Ceilings.HTTP.CPUPerEvent)
	}
}

// checkBrokerAtRate checks the broker ceiling driven by the half-peak open
// loop: n publishes acknowledged, all of them received by its own
// consumer, and the bridge's p99 compared with it.
func checkBrokerAtRate(t *testing.T, a *atRateStats, n int64) {
	t.Helper()
	b := a.Broker
	if b == nil {
		t.Fatal("no at_rate.broker in the report")
	}
	if b.Sent != n || b.Acked != n || b.Latency == nil || b.Latency.Count != n {
		t.Errorf("broker at rate: %+v", b.phaseStats)
	}
	if c := b.Consumer; c == nil || c.Received != n || c.Lost != 0 {
		t.Errorf("broker at rate, its consumer: %+v", c)
	}
	if b.Latency == nil || a.HTTP == nil || a.HTTP.Latency == nil {
		return
	}
	if want := roundTo(a.Latency.P99/b.Latency.P99, 2); a.P99VsBroker != want {
		t.Errorf("p99_vs_broker_at_rate %g, want %g", a.P99VsBroker, want)
	}
	if want := roundTo(a.Latency.P99/max(a.HTTP.Latency.P99, b.Latency.P99), 2); a.P99VsCeilingsAtRate != want {
		t.Errorf("p99_vs_ceilings_at_rate %g, want %g", a.P99VsCeilingsAtRate, want)
	}
	if a.CPUPerEvent <= 0 || a.HTTP.CPUPerEvent <= 0 || b.CPUPerEvent <= 0 {
		t.Errorf("cpu per event at rate: bridge %g, no-op HTTP %g, broker %g", a.CPUPerEvent, a.HTTP.CPUPerEvent, b.CPUPerEvent)
	} else if want := roundTo(a.CPUPerEvent/(a.HTTP.CPUPerEvent+b.CPUPerEvent), 2); a.CPUVsCeilingsAtRate != want {
		t.Errorf("cpu_vs_ceilings_at_rate %g, want %g", a.CPUVsCeilingsAtRate, want)
	}
}

// TestBenchShapes: every input shape reaches the consumer, the QoD v0.9
// body (which has no id of its own) included; rate mode and the JetStream
// consumer too.
func TestBenchShapes(t *testing.T) {
	for _, tc := range []struct {
		shape string
		args  []string
	}{
		{"structured", []string{"-rate", "400"}},
		{"binary", nil},
		{"json", nil},
		{"nac", []string{"-nats-consumer", "stream"}},
		{"legacy", []string{"-nats-consumer", "stream"}},
		// With ceilings: 4 publishers of 5-event batches must not starve
		// each other of the sink's pending slots.
		{"batch", []string{"-batch", "5", "-sessions", "7", "-ceilings"}},
	} {
		t.Run(tc.shape, func(t *testing.T) {
			r, stderr, err := runBench(t, append([]string{"-shape", tc.shape, "-n", "40", "-c", "4", "-ceilings=false"}, tc.args...)...)
			if err != nil {
				t.Fatalf("bench: %v\n%s", err, stderr)
			}
			checkConsistent(t, r)
			want := int64(40 * r.EventsPerRequest)
			b := r.Bridge
			if b.Acked != 40 || b.EventsAcked != want || b.Received != want || b.Lost != 0 || b.Duplicates != 0 {
				t.Fatalf("accounting: %+v", b)
			}
			if c := r.Ceilings; c != nil {
				if c.HTTP.Acked != 40 || c.Broker.Acked != 40 || c.BrokerPipelined.Acked != 40 || math.Abs(c.Broker.EventsPerS-5*c.Broker.RequestsPerS) > 1 {
					t.Errorf("ceilings: %+v", c)
				}
			} else if tc.shape == "batch" {
				t.Error("no ceilings despite -ceilings")
			}
		})
	}
}

// testIngress is an ingress in front of the given NATS server, with the
// bench token, behind wrap.
func testIngress(t *testing.T, natsURL string, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	sink, err := natssink.Open(context.Background(), natssink.ConnOptions{URL: natsURL}, natssink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	h, err := ingress.New(sink, ingress.Options{Tokens: []string{testToken}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(wrap(h))
	t.Cleanup(srv.Close)
	return srv.URL + "/notifications"
}

const testToken = "bench-test-token-0123456789"

// TestBenchRejectedByStatus: an ingress that answers 503 to every third
// request (without publishing it) shows as rejected by status; the rest
// is acked and received.
func TestBenchRejectedByStatus(t *testing.T) {
	ns := natstest.Embedded(t)
	var n atomic.Int64
	url := testIngress(t, ns.ClientURL(), func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1)%3 == 0 {
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	r, stderr, err := runBench(t, "-url", url, "-token", testToken, "-nats", ns.ClientURL(), "-n", "90", "-c", "4")
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, stderr)
	}
	checkConsistent(t, r)
	b := r.Bridge
	if b.Sent != 90 || b.Rejected != 30 || b.RejectedBy["503"] != 30 || b.Acked != 60 || b.Received != 60 || b.Lost != 0 || b.ReceivedUnacked != 0 {
		t.Fatalf("accounting: %+v", b)
	}
	if r.InProcess || r.Ceilings != nil {
		t.Errorf("in_process %v, ceilings %v: with -url neither is the default", r.InProcess, r.Ceilings)
	}

	// A wrong token: what the wrapper lets through is rejected 401, nothing
	// is lost.
	r, _, err = runBench(t, "-url", url, "-token", "wrong-token-0123456789", "-nats", ns.ClientURL(), "-n", "10", "-c", "2")
	if by := r.Bridge.RejectedBy; err != nil || by["401"] == 0 || by["401"]+by["503"] != 10 || r.Bridge.Acked != 0 || r.Bridge.Lost != 0 {
		t.Fatalf("wrong token: %v, %+v", err, r.Bridge)
	}
}

// TestBenchDetectsLoss: an ingress that answers 204 and publishes nothing
// loses every acknowledged event, and bench says so and fails.
func TestBenchDetectsLoss(t *testing.T) {
	ns := natstest.Embedded(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	r, _, err := runBench(t, "-url", srv.URL, "-nats", ns.ClientURL(), "-n", "50", "-c", "4", "-drain", "200ms")
	if !errors.Is(err, ErrAccounting) || errors.Is(err, ErrUsage) {
		t.Fatalf("bench returned %v, want ErrAccounting (exit status 1)", err)
	}
	checkConsistent(t, r)
	if b := r.Bridge; b.Acked != 50 || b.Lost != 50 || b.Lost != b.EventsAcked || b.Received != 0 || b.E2E != nil {
		t.Fatalf("accounting: %+v", b)
	}
}

// TestBenchDetectsDuplicates: an ingress that publishes every event twice
// shows one duplicate per event.
func TestBenchDetectsDuplicates(t *testing.T) {
	ns := natstest.Embedded(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ce struct{ ID, Time string }
		if err := json.NewDecoder(r.Body).Decode(&ce); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		for range 2 {
			m := nats.NewMsg("qod.status.s")
			m.Header["ce-id"] = []string{ce.ID}
			if err := nc.PublishMsg(m); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
		}
		if err := nc.Flush(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	r, _, err := runBench(t, "-url", srv.URL, "-nats", ns.ClientURL(), "-n", "40", "-c", "4")
	if !errors.Is(err, ErrAccounting) {
		t.Fatalf("bench returned %v, want ErrAccounting", err)
	}
	checkConsistent(t, r)
	if b := r.Bridge; b.Acked != 40 || b.Received != 40 || b.Duplicates != 40 || b.Lost != 0 {
		t.Fatalf("accounting: %+v", b)
	}
}

// TestBenchKafka: a bridge publishing to Kafka (kfake), consumed from the
// status topic, with the broker ceilings measured on Kafka.
func TestBenchKafka(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "qod.status"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	co := kafkasink.ConnOptions{Brokers: cluster.ListenAddrs(), DialTimeout: 2 * time.Second}
	sink, err := kafkasink.Open(context.Background(), co, kafkasink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	h, err := ingress.New(sink, ingress.Options{Tokens: []string{testToken}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	r, stderr, err := runBench(t, "-url", srv.URL+"/notifications", "-token", testToken,
		"-kafka", strings.Join(cluster.ListenAddrs(), ","), "-ceilings", "-n", "60", "-c", "4", "-latency-at", "0.5")
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, stderr)
	}
	checkConsistent(t, r)
	if b := r.Bridge; b.Acked != 60 || b.Received != 120 || b.Lost != 0 || b.Duplicates != 0 {
		t.Fatalf("accounting of both bridge runs: %+v", b)
	}
	if r.AtRate == nil {
		t.Fatal("no at_rate in the report")
	}
	checkBrokerAtRate(t, r.AtRate, 60)
	if !strings.Contains(r.Consumer, "Kafka topic qod.status") {
		t.Errorf("consumer %q", r.Consumer)
	}
	if c := r.Ceilings; c == nil || c.Broker.Acked != 60 || c.BrokerPipelined.Acked != 60 ||
		c.Consumer == nil || c.Consumer.Received != 120 || c.Consumer.Lost != 0 {
		t.Fatalf("Kafka ceilings: %+v", c)
	}
}

// TestBenchTable: the human-readable report has the table, the ceilings
// line and the ratios; progress lines go to stderr.
func TestBenchTable(t *testing.T) {
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// -d with a tiny progress interval: the run is bounded by time here.
	if err := Main(ctx, "test", []string{"-d", "300ms", "-c", "2", "-progress", "50ms", "-sessions", "3"}, &stdout, &stderr); err != nil {
		t.Fatalf("bench: %v\n%s", err, stderr.String())
	}
	out := stdout.String()
	t.Logf("stdout:\n%s\nstderr:\n%s", out, stderr.String())
	for _, want := range []string{"sent", "acked", "p99.9", "noop HTTP (H)", "broker (B)", "broker pipelined", "bridge end-to-end",
		"ceilings (events/s): H=", "bridge/H=", "bridge/P="} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(stderr.String(), "bench: bridge") || !strings.Contains(stderr.String(), "bench: ceiling H") {
		t.Errorf("no progress lines on stderr:\n%s", stderr.String())
	}
}
