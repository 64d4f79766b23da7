package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/worker"
)

// readiness gathers the checks of /readyz from the parts a process runs:
// Redis always; healthy backends for workers; platform connections for serve.
type readiness struct {
	mu     sync.Mutex
	checks []func(context.Context) error
}

func newReadiness() *readiness { return &readiness{} }

func (r *readiness) add(check func(context.Context) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checks = append(r.checks, check)
}

func (r *readiness) check(ctx context.Context) error {
	r.mu.Lock()
	checks := append([]func(context.Context) error(nil), r.checks...)
	r.mu.Unlock()
	var errs []error
	for _, c := range checks {
		if err := c(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// startHealthServer gives `easel worker` /healthz, /readyz and /metrics on
// http.addr when it is set (the container image sets 0.0.0.0:8080), for
// health checks and Prometheus. Unset, a worker listens on nothing, so
// several can share a machine.
func startHealthServer(lc fx.Lifecycle, cfg *Config, s *scheduler.Scheduler, reg *prometheus.Registry, rd *readiness, log *zap.Logger) {
	if cfg.HTTP.Addr == "" {
		return
	}
	mux := http.NewServeMux()
	write := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { write(w, 200, map[string]string{"status": "ok"}) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		err := s.Ping(ctx)
		if err == nil {
			err = rd.check(ctx)
		}
		if err != nil {
			write(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
			return
		}
		write(w, 200, map[string]string{"status": "ready"})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	addr := cfg.HTTP.Addr
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return &ConfigError{"http.addr", err.Error()}
			}
			go func() { _ = srv.Serve(ln) }()
			log.Info("worker health and metrics", zap.String("url", "http://"+ln.Addr().String()+"/readyz"))
			return nil
		},
		OnStop: srv.Shutdown,
	})
}

// backendProbe reports backends that do not answer: a warning at start (a
// wrong URL shows at once, not when the first job fails) and a readiness
// check failing while no backend of the process answers.
type backendProbe struct {
	backends []worker.Backend
	urls     map[string]string // backend name → URL with its password redacted
	log      *zap.Logger
}

// down probes every backend at once and returns the failures by name.
func (p *backendProbe) down(ctx context.Context) map[string]error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	out := map[string]error{}
	for _, b := range p.backends {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.Backend.Health(ctx); err != nil {
				mu.Lock()
				out[b.Name] = err
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

// logAtStart warns about each backend that does not answer, without
// holding up the start.
func (p *backendProbe) logAtStart(context.Context) error {
	go func() {
		for name, err := range p.down(context.Background()) {
			p.log.Warn("backend unreachable at start: jobs wait for it (or run on another backend) until it answers; check its url in backends (EASEL_BACKENDS)",
				zap.String("backend", name), zap.String("url", p.urls[name]), zap.Error(err))
		}
	}()
	return nil
}

// check fails when no backend answers.
func (p *backendProbe) check(ctx context.Context) error {
	down := p.down(ctx)
	if len(p.backends) == 0 || len(down) < len(p.backends) {
		return nil
	}
	names := make([]string, 0, len(down))
	for name := range down {
		names = append(names, name)
	}
	sort.Strings(names)
	return fmt.Errorf("no healthy backend: %s unreachable", strings.Join(names, ", "))
}

// backendURLs maps backend names to their URLs, passwords redacted.
func backendURLs(cfg *Config) map[string]string {
	out := map[string]string{}
	for _, b := range cfg.Backends {
		out[b.Name] = redactURL(b.URL)
	}
	return out
}

// rootCause drops storage's wrapping ("storage: ping: …") from a
// connection error, for a one-line message.
func rootCause(err error) error {
	for strings.HasPrefix(err.Error(), "storage:") {
		u := errors.Unwrap(err)
		if u == nil {
			break
		}
		err = u
	}
	return err
}
