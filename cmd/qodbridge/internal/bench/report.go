package bench

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// runReport is the result of a run; its JSON field names are stable
// (scripts and the README's Performance table read them; the package
// documentation says what each means). Counts of requests: sent, acked, rejected,
// errors; counts of events: events_sent, events_acked, received, lost,
// duplicates. Latencies are in milliseconds.
type runReport struct {
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
	ViewCost         *viewCost      `json:"view_cost,omitempty"`
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

func (r *runReport) writeTable(w io.Writer) {
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
	if v := r.ViewCost; v != nil {
		nb := &v.WithoutView
		row("bridge, view off", &nb.phaseStats, strconv.FormatInt(nb.Received, 10), strconv.FormatInt(nb.Lost, 10), strconv.FormatInt(nb.Duplicates, 10), nb.Latency)
		latRow("  end-to-end", nb.E2E)
	}
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
	if v := r.ViewCost; v != nil {
		fmt.Fprintf(w, "session view (bridge vs. bridge, view off, interleaved): ev/s ×%.2f, cpu/ev %+.1fµs (×%.2f), p50 %+.2f ms, p99 %+.2f ms\n",
			v.ThroughputRatio, v.CPUAddedPerEvent, v.CPURatio, v.P50Added, v.P99Added)
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
