package bot

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/easelbot/easel/scheduler"
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
