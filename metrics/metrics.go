// Package metrics is natter's Prometheus instrumentation: the counters the
// TVM and the gateway update as they work, the gauges read from the gateway
// at each scrape, and the HTTP server of /metrics and, when asked,
// /debug/pprof/.
//
// A nil *Metrics records nothing, so the TVM, the gateway and their tests
// run without metrics unchanged. Labels are bounded sets (error codes,
// pipeline operations): never a room, a user or anything a client chose.
package metrics

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/natterchat/natter"
)

// Namespace prefixes every metric natter defines.
const Namespace = "natter"

// OutcomeOK is the outcome label of a pipeline request answered without an
// error; other outcomes are the error code of the answer.
const OutcomeOK = "ok"

// latencyBuckets span a pipeline request from a cached read (well under a
// millisecond) to one that waits for storage until its 10 s timeout.
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Metrics holds natter's metrics in a registry of its own, with the Go
// runtime and process collectors beside them.
type Metrics struct {
	reg *prometheus.Registry

	tokensIssued     prometheus.Counter
	tokensRefused    *prometheus.CounterVec
	messagesAccepted prometheus.Counter
	messagesRefused  *prometheus.CounterVec
	requests         *prometheus.CounterVec
	latency          *prometheus.HistogramVec
}

// New makes the metrics and registers them, with the Go and process
// collectors (go_*, process_cpu_seconds_total, process_resident_memory_bytes…).
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		tokensIssued: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "tokens_issued_total",
			Help: "User JWTs the TVM signed and sent.",
		}),
		tokensRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "tokens_refused_total",
			Help: "Token requests the TVM refused, by error code.",
		}, []string{"code"}),
		messagesAccepted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "messages_accepted_total",
			Help: "Sends the gateway acknowledged (a resent message id included).",
		}),
		messagesRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "messages_refused_total",
			Help: "Sends the gateway refused, by the error code of the ack.",
		}, []string{"code"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "pipeline_requests_total",
			Help: "Pipeline requests handled, by operation and outcome (ok or the error code).",
		}, []string{"op", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "pipeline_request_duration_seconds",
			Help:    "Time the gateway spent handling a pipeline request, by operation.",
			Buckets: latencyBuckets,
		}, []string{"op"}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.tokensIssued, m.tokensRefused,
		m.messagesAccepted, m.messagesRefused,
		m.requests, m.latency,
	)
	return m
}

// Registry is where the metrics live, for tests and for collectors of
// other parts.
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// TokenIssued counts a token the TVM signed and sent.
func (m *Metrics) TokenIssued() {
	if m != nil {
		m.tokensIssued.Inc()
	}
}

// TokenRefused counts a token request answered with the error code.
func (m *Metrics) TokenRefused(code string) {
	if m != nil {
		m.tokensRefused.WithLabelValues(code).Inc()
	}
}

// Request counts one pipeline request of op that took took and was answered
// with the error code, or with none when code is empty. For sends it also
// counts the message as accepted or refused.
func (m *Metrics) Request(op, code string, took time.Duration) {
	if m == nil {
		return
	}
	outcome := code
	if code == "" {
		outcome = OutcomeOK
	}
	m.requests.WithLabelValues(op, outcome).Inc()
	m.latency.WithLabelValues(op).Observe(took.Seconds())
	if op != string(natter.OpSend) {
		return
	}
	if code == "" {
		m.messagesAccepted.Inc()
	} else {
		m.messagesRefused.WithLabelValues(code).Inc()
	}
}

// Gauges are read from the gateway at each scrape, so they cost nothing
// between scrapes. A nil function leaves its metric out.
type Gauges struct {
	RoomsOpen      func() int    // natter_rooms_open
	MembersOnline  func() int    // natter_members_online
	NATSConnected  func() bool   // natter_nats_connected
	NATSReconnects func() uint64 // natter_nats_reconnects_total
}

// WatchGateway registers g's gauges. It fails when called twice on m: one
// natter process has one gateway.
func (m *Metrics) WatchGateway(g Gauges) error {
	if m == nil {
		return nil
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Name: name, Help: help}, f)
	}
	var cs []prometheus.Collector
	if f := g.RoomsOpen; f != nil {
		cs = append(cs, gauge("rooms_open", "Rooms open now, as this process's view of the rooms bucket holds them.",
			func() float64 { return float64(f()) }))
	}
	if f := g.MembersOnline; f != nil {
		cs = append(cs, gauge("members_online", "Members present in rooms now; a user in two rooms counts twice.",
			func() float64 { return float64(f()) }))
	}
	if f := g.NATSConnected; f != nil {
		cs = append(cs, gauge("nats_connected", "1 while natter's own NATS connection is connected, else 0.",
			func() float64 {
				if f() {
					return 1
				}
				return 0
			}))
	}
	if f := g.NATSReconnects; f != nil {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: Namespace, Name: "nats_reconnects_total",
			Help: "Times natter's own NATS connection reconnected.",
		}, func() float64 { return float64(f()) }))
	}
	var errs []error
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("register gateway metrics: %w", err)
	}
	return nil
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
