package worker

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics observes a worker for Prometheus: job durations by outcome, busy
// and healthy backends, and whether at least one backend is healthy (for
// readiness).
type Metrics struct {
	mu      sync.Mutex
	started map[string]time.Time // job → start
	down    map[string]bool      // backend → out of rotation
	busy    map[string]bool
	total   int

	duration *prometheus.HistogramVec
	wait     *prometheus.HistogramVec
	busyG    prometheus.GaugeFunc
	healthyG prometheus.GaugeFunc
}

// NewMetrics attaches metrics to w and registers them on reg.
func NewMetrics(w *Worker, reg prometheus.Registerer) *Metrics {
	m := &Metrics{started: map[string]time.Time{}, down: map[string]bool{}, busy: map[string]bool{}, total: len(w.backends)}
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "easel_job_duration_seconds",
		Help:    "Time a backend spent on a job attempt, by outcome.",
		Buckets: prometheus.ExponentialBuckets(0.05, 2, 14)}, []string{"outcome"})
	m.wait = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "easel_job_start_latency_seconds",
		Help:    "From submit (stage=queue) or from dispatch (stage=dispatch) to the worker starting the attempt.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 24)}, []string{"stage"})
	m.busyG = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "easel_backend_busy_ratio",
		Help: "Share of this process's backend slots running a job."}, func() float64 {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.total == 0 {
			return 0
		}
		return float64(len(m.busy)) / float64(m.total)
	})
	m.healthyG = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "easel_backends_healthy",
		Help: "Backends of this process in rotation."}, func() float64 { return float64(m.healthy()) })
	if reg != nil {
		reg.MustRegister(m.duration, m.wait, m.busyG, m.healthyG)
	}
	w.Observe(m.observe)
	return m
}

func (m *Metrics) healthy() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.total - len(m.down)
}

func (m *Metrics) observe(o Observation) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch o.Kind {
	case "started":
		m.started[o.JobID] = o.At
		m.busy[o.Backend] = true
		if !o.Queued.IsZero() {
			m.wait.WithLabelValues("queue").Observe(o.At.Sub(o.Queued).Seconds())
		}
		if !o.Dispatched.IsZero() {
			m.wait.WithLabelValues("dispatch").Observe(max(o.At.Sub(o.Dispatched).Seconds(), 0))
		}
	case "finished":
		if t, ok := m.started[o.JobID]; ok {
			m.duration.WithLabelValues(o.Outcome).Observe(o.At.Sub(t).Seconds())
			delete(m.started, o.JobID)
		}
		delete(m.busy, o.Backend)
	case "down":
		m.down[o.Backend] = true
	case "up":
		delete(m.down, o.Backend)
	}
}

// Ready fails when every backend is out of rotation.
func (m *Metrics) Ready(context.Context) error {
	if m.total > 0 && m.healthy() == 0 {
		return errors.New("no healthy backend")
	}
	return nil
}
