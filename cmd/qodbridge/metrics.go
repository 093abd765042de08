package main

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/qodbridge/qodbridge/bridge/ingress"
)

// metrics is the bridge's Prometheus registry. It is per process (not the
// global registry) so in-process tests can run several bridges.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	events   prometheus.Counter
	publish  prometheus.Histogram
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qodbridge_ingress_requests_total",
			Help: "Notification requests answered, by HTTP status and input shape.",
		}, []string{"status", "shape"}),
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "qodbridge_ingress_events_published_total",
			Help: "Status events acknowledged by every configured broker.",
		}),
		publish: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "qodbridge_publish_duration_seconds",
			Help:    "Time from publish to acknowledgement by every configured broker.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12),
		}),
	}
	m.reg.MustRegister(m.requests, m.events, m.publish,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observe(o ingress.Outcome) {
	shape := string(o.Shape)
	if shape == "" {
		shape = "none"
	}
	m.requests.WithLabelValues(strconv.Itoa(o.Status), shape).Inc()
	if o.Publish > 0 {
		m.publish.Observe(o.Publish.Seconds())
	}
	m.events.Add(float64(o.Events))
}

func (m *metrics) inFlight(f func() int) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "qodbridge_ingress_in_flight_requests",
		Help: "Notification requests being handled.",
	}, func() float64 { return float64(f()) }))
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}
