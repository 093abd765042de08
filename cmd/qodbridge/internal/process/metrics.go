package process

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/bridge/command"
	"github.com/qodbridge/qodbridge/bridge/ingress"
	"github.com/qodbridge/qodbridge/bridge/qodapi"
)

// metrics is the bridge's Prometheus registry. It is per process (not the
// global registry) so in-process tests can run several bridges. Every
// hook is non-blocking: counters and histograms only.
type metrics struct {
	reg         *prometheus.Registry
	requests    *prometheus.CounterVec
	events      prometheus.Counter
	publish     *prometheus.HistogramVec
	publishErrs *prometheus.CounterVec
	dedupe      *prometheus.CounterVec
	commands    *prometheus.CounterVec
	deadLetters prometheus.Counter
	apiCalls    *prometheus.CounterVec
	apiLatency  *prometheus.HistogramVec
	apiRetries  *prometheus.CounterVec
	viewStale   *prometheus.CounterVec
	viewErrs    *prometheus.CounterVec
	viewLatency *prometheus.HistogramVec
}

var latencyBuckets = prometheus.ExponentialBuckets(0.0002, 2, 16) // 0.2 ms … 6.5 s

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qodbridge_ingress_requests_total",
			Help: "Notification requests answered, by HTTP status code (the label code, as promhttp names it) and input shape (none: not parsed).",
		}, []string{"code", "shape"}),
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "qodbridge_ingress_events_published_total",
			Help: "Status events acknowledged by every configured broker.",
		}),
		publish: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "qodbridge_publish_duration_seconds",
			Help:    "Time from publish to the broker's acknowledgement (or failure), per sink.",
			Buckets: latencyBuckets,
		}, []string{"sink"}),
		publishErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qodbridge_publish_errors_total",
			Help: "Publish calls a sink failed (answered 503), per sink.",
		}, []string{"sink"}),
		dedupe: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qodbridge_dedupe_hits_total",
			Help: "Events a broker recognised as already stored (resent notifications), per sink.",
		}, []string{"sink"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qodbridge_commands_total",
			Help: "Commands handled, by action (\"invalid\" for any other) and outcome (ok, error, dead_letter, internal_error, unfinished, terminated).",
		}, []string{"action", "outcome"}),
		deadLetters: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "qodbridge_dead_letters_total",
			Help: "Commands dead-lettered (invalid, refused by the API, or internal error).",
		}),
		apiCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qodbridge_qod_api_requests_total",
			Help: "QoD API calls, by action and HTTP status code (the label code, as promhttp names it; 0: no answer: timeout or network error).",
		}, []string{"action", "code"}),
		apiLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "qodbridge_qod_api_duration_seconds",
			Help:    "QoD API call latency, by action.",
			Buckets: latencyBuckets,
		}, []string{"action"}),
		apiRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qodbridge_qod_api_retries_total",
			Help: "QoD API calls that failed temporarily and were retried, by action.",
		}, []string{"action"}),
		viewStale: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qodbridge_view_stale_total",
			Help: "Events stored in the history that did not advance the session view, per broker's view and the rule's reason (bridge/view.go).",
		}, []string{"view", "reason"}),
		viewErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qodbridge_view_update_errors_total",
			Help: "View updates that failed after the history publish was acknowledged (the request is still answered 204; the view is repaired by the session's next event or a rebuild), per broker's view.",
		}, []string{"view"}),
		viewLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "qodbridge_view_update_duration_seconds",
			Help:    "Time to update the session view after the history publish, per broker's view.",
			Buckets: latencyBuckets,
		}, []string{"view"}),
	}
	m.reg.MustRegister(m.requests, m.events, m.publish, m.publishErrs, m.dedupe, m.commands, m.deadLetters,
		m.apiCalls, m.apiLatency, m.apiRetries, m.viewStale, m.viewErrs, m.viewLatency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observe(o ingress.Outcome) {
	shape := string(o.Shape)
	if shape == "" {
		shape = "none"
	}
	m.requests.WithLabelValues(strconv.Itoa(o.Status), shape).Inc()
	m.events.Add(float64(o.Events))
}

func (m *metrics) published(sink string, took time.Duration, err error) {
	m.publish.WithLabelValues(sink).Observe(took.Seconds())
	if err != nil {
		m.publishErrs.WithLabelValues(sink).Inc()
	}
}

func (m *metrics) duplicate(sink string) { m.dedupe.WithLabelValues(sink).Inc() }

func (m *metrics) viewUpdated(view string, took time.Duration, err error) {
	m.viewLatency.WithLabelValues(view).Observe(took.Seconds())
	if err != nil {
		m.viewErrs.WithLabelValues(view).Inc()
	}
}

func (m *metrics) stale(view string, reason bridge.StaleReason) {
	m.viewStale.WithLabelValues(view, string(reason)).Inc()
}

// command counts one command's outcome. Label values come from closed
// sets only: the action's Label (its name, or "invalid"), and the
// outcome labels of package command.
func (m *metrics) command(a command.Action, outcome string) {
	m.commands.WithLabelValues(a.Label(), outcome).Inc()
	if outcome == command.OutcomeDeadLetter || outcome == command.OutcomeInternal {
		m.deadLetters.Inc()
	}
}

func (m *metrics) apiAttempt(a command.Action, status int, err error, took time.Duration) {
	m.apiCalls.WithLabelValues(a.Label(), strconv.Itoa(status)).Inc()
	m.apiLatency.WithLabelValues(a.Label()).Observe(took.Seconds())
	if err != nil && qodapi.Retryable(err) && !errors.Is(err, qodapi.ErrInvalidInput) {
		m.apiRetries.WithLabelValues(a.Label()).Inc()
	}
}

func (m *metrics) inFlight(name, help string, f func() int) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help},
		func() float64 { return float64(f()) }))
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}
