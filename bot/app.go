package bot

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/easelbot/easel/adapters"
	"github.com/easelbot/easel/adapters/discord"
	"github.com/easelbot/easel/adapters/httpapi"
	"github.com/easelbot/easel/adapters/slack"
	"github.com/easelbot/easel/commands"
	"github.com/easelbot/easel/internal/redisproc"
	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/sdclient"
	"github.com/easelbot/easel/sdclient/a1111"
	"github.com/easelbot/easel/sdclient/comfyui"
	"github.com/easelbot/easel/sdclient/fakesd"
	"github.com/easelbot/easel/storage"
	"github.com/easelbot/easel/storage/blob"
	"github.com/easelbot/easel/worker"
)

// Role is what a process runs.
type Role string

// Roles.
const (
	RoleServe  Role = "serve"
	RoleWorker Role = "worker"
)

// NewLogger builds the process logger from cfg.
func NewLogger(cfg LogConfig) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(cfg.Level)
	if err != nil {
		return nil, &ConfigError{"log.level", err.Error()}
	}
	zc := zap.NewProductionConfig()
	if cfg.Format == "console" {
		zc = zap.NewDevelopmentConfig()
		zc.DisableStacktrace = true
		zc.EncoderConfig.EncodeLevel = zapcore.CapitalColorLevelEncoder
	}
	zc.Level = zap.NewAtomicLevelAt(level)
	return zc.Build()
}

// App is a started Easel process.
type App struct {
	app *fx.App
	// HTTP is the API server (serve role), for tests reading its address.
	HTTP *httpapi.Server
	// Slack is the Slack adapter (serve role with slack.bot_token set;
	// nil otherwise), for tests waiting on its Socket Mode state.
	Slack *slack.Adapter
	// Sched is the scheduler.
	Sched *scheduler.Scheduler
	// Store is the Redis store.
	Store *storage.Store
	// Registry holds the process's Prometheus metrics.
	Registry *prometheus.Registry
}

// Options tunes New for tests.
type Options struct {
	// Lookup reads the environment; default os.LookupEnv.
	Lookup func(string) (string, bool)
	// check builds for Check: the in-process Redis, nothing started.
	check bool
}

// New builds the fx application of role from cfg.
func New(cfg *Config, role Role, log *zap.Logger, opts Options) (*App, error) {
	if opts.Lookup == nil {
		opts.Lookup = os.LookupEnv
	}
	if role == RoleWorker && len(cfg.Backends) == 0 {
		return nil, &ConfigError{"backends", "easel worker needs at least one backend"}
	}
	if err := workerNeedsRedis(cfg, role); err != nil && !opts.check {
		return nil, err
	}
	if !opts.check {
		if err := checkPort(cfg, role); err != nil {
			return nil, err
		}
	}
	out := &App{}
	children := &childProcs{}
	options := []fx.Option{
		fx.WithLogger(func() fxevent.Logger {
			if log.Core().Enabled(zap.DebugLevel) {
				return &fxevent.ZapLogger{Logger: log}
			}
			return fxevent.NopLogger
		}),
		fx.Supply(cfg, log, role, opts, children),
		fx.Provide(newStore, newScheduler, newRegistry, newReadiness),
		fx.Invoke(startMaintainer),
		fx.Invoke(startWorker),
		fx.Populate(&out.Sched, &out.Store, &out.Registry),
	}
	if role == RoleWorker {
		options = append(options, fx.Invoke(startHealthServer))
	}
	if role == RoleServe {
		options = append(options,
			fx.Provide(newPolicies, newCommands, newSlack, newHTTP),
			fx.Invoke(func(*httpapi.Server) {}),
			fx.Invoke(startChat),
			fx.Populate(&out.HTTP, &out.Slack),
		)
	}
	out.app = fx.New(options...)
	if err := out.app.Err(); err != nil {
		children.stop() // no stop hook runs for an app that failed to build
		return nil, unwrapFx(err)
	}
	return out, nil
}

// childProcs are the child processes started while the app is built (the
// durable redis-server), stopped if the build fails.
type childProcs struct{ stops []func() error }

func (c *childProcs) stop() {
	for _, s := range c.stops {
		_ = s()
	}
}

// workerNeedsRedis refuses a worker without redis.url: a private Redis
// would hold no jobs.
func workerNeedsRedis(cfg *Config, role Role) error {
	if role == RoleWorker && cfg.Redis.URL == "" {
		return &ConfigError{"redis.url", "easel worker needs the queue's Redis, e.g. redis://:password@queue-host:6379/0"}
	}
	return nil
}

// checkPort fails when the HTTP address is taken, before anything starts
// (a Redis child, workers taking jobs, a Discord session).
func checkPort(cfg *Config, role Role) error {
	addr := cfg.HTTP.Addr
	if role == RoleServe && addr == "" {
		addr = "127.0.0.1:8080"
	}
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		msg := fmt.Sprintf("cannot listen on %s: %v", addr, err)
		if errors.Is(err, syscall.EADDRINUSE) {
			msg = fmt.Sprintf("%s is already in use (another easel serve?); choose another address with --addr or EASEL_HTTP_ADDR", addr)
		}
		return &ConfigError{"http.addr", msg}
	}
	return ln.Close()
}

// RedisError is a Redis that cannot be reached at start.
type RedisError struct {
	// URL is the configured URL with its password redacted.
	URL string
	Err error
}

func (e *RedisError) Error() string {
	return fmt.Sprintf("cannot reach Redis at %s (set by EASEL_REDIS_URL or redis.url): %v", e.URL, e.Err)
}

func (e *RedisError) Unwrap() error { return e.Err }

// unwrapFx turns fx's wrapped constructor errors into the original error,
// so a ConfigError or RedisError reaches the user as it is, without fx's
// chain of constructors.
func unwrapFx(err error) error {
	var ce *ConfigError
	if errors.As(err, &ce) {
		return ce
	}
	var re *RedisError
	if errors.As(err, &re) {
		return re
	}
	var se *scheduler.InvalidError
	if errors.As(err, &se) {
		return &ConfigError{se.Field, se.Message}
	}
	return err
}

// Start starts every component; it returns once the HTTP API listens.
func (a *App) Start(ctx context.Context) error { return unwrapFx(a.app.Start(ctx)) }

// Stop stops every component within ctx's deadline (the grace period).
func (a *App) Stop(ctx context.Context) error { return a.app.Stop(ctx) }

// newStore opens Redis, then the image store: fs under data_dir by default
// when that Redis is durable, the demo's Redis strings otherwise.
func newStore(lc fx.Lifecycle, cfg *Config, log *zap.Logger, opts Options, children *childProcs) (*storage.Store, error) {
	s, err := openRedis(lc, cfg, log, opts, children)
	if err != nil || opts.check {
		return s, err
	}
	bc := cfg.Storage.Blobs
	if err := bc.Validate(!s.Embedded, cfg.DataDir); err != nil {
		var fe *blob.FieldError
		if errors.As(err, &fe) {
			return nil, &ConfigError{fe.Field, fe.Message}
		}
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ttl := blob.TTL{Result: cfg.Scheduler.Retention}
	blobs, err := blob.Open(ctx, bc, ttl, opts.Lookup, s.Client, func(r blob.Ref) string { return s.Keys.Blob(r.Job, r.Attempt, r.Name) })
	if err != nil {
		var fe *blob.FieldError
		if errors.As(err, &fe) {
			return nil, &ConfigError{fe.Field, fe.Message}
		}
		return nil, fmt.Errorf("storage.blobs: %w", err)
	}
	s.Blobs = blobs
	switch b := blobs.(type) {
	case *blob.FS:
		log.Info("images are kept in files", zap.String("dir", bc.Dir))
	case *blob.S3:
		log.Info("images are kept in an S3 bucket", zap.String("endpoint", bc.S3.Endpoint), zap.String("bucket", bc.S3.Bucket))
		if err := b.LifecycleErr(); err != nil {
			log.Info("the bucket takes no expiry rules; the sweeper alone deletes expired images", zap.Error(err))
		}
	}
	if bc.Kind != blob.KindRedis {
		sw := blob.NewSweeper(blobs, bc.SweepInterval, log.Named("sweeper"))
		lc.Append(fx.Hook{OnStart: sw.Start, OnStop: sw.Stop})
	}
	return s, nil
}

func openRedis(lc fx.Lifecycle, cfg *Config, log *zap.Logger, opts Options, children *childProcs) (*storage.Store, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rcfg := cfg.Redis
	if rcfg.URL == "" && cfg.DataDir != "" && !opts.check && redisproc.Available() {
		srv, err := redisproc.StartDurable(cfg.DataDir)
		if err != nil {
			return nil, &ConfigError{"data_dir", fmt.Sprintf("cannot start redis-server there: %v", err)}
		}
		stop := func() error { return srv.Stop(30 * time.Second) }
		children.stops = append(children.stops, stop)
		lc.Append(fx.StopHook(stop))
		rcfg.URL = srv.URL
		log.Info("redis.url is empty: started redis-server with its append-only file in data_dir; queued jobs survive a restart",
			zap.String("data_dir", cfg.DataDir), zap.String("addr", srv.Addr))
		s, err := storage.Open(ctx, rcfg, log)
		if err != nil {
			_ = srv.Stop(5 * time.Second)
			return nil, fmt.Errorf("local redis-server: %w", err)
		}
		lc.Append(fx.StopHook(s.Close))
		return s, nil
	}
	if rcfg.URL == "" && cfg.DataDir != "" && !opts.check {
		log.Warn("redis-server is not on PATH: install it (apt-get install redis-server, brew install redis) for a durable queue under data_dir")
	}
	s, err := storage.Open(ctx, rcfg, log)
	if err != nil {
		if cfg.Redis.URL != "" {
			return nil, &RedisError{URL: storage.RedactURL(cfg.Redis.URL), Err: rootCause(err)}
		}
		return nil, err
	}
	if !s.Embedded {
		log.Info("connected to redis", zap.String("url", storage.RedactURL(cfg.Redis.URL)))
	}
	lc.Append(fx.StopHook(s.Close))
	return s, nil
}

func newScheduler(store *storage.Store, cfg *Config, log *zap.Logger) (*scheduler.Scheduler, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return scheduler.New(ctx, store, cfg.Scheduler, log)
}

func startMaintainer(lc fx.Lifecycle, s *scheduler.Scheduler, log *zap.Logger) {
	host, _ := os.Hostname()
	m := scheduler.NewMaintainer(s, fmt.Sprintf("maint-%s-%d", host, os.Getpid()), log)
	lc.Append(fx.Hook{OnStart: m.Start, OnStop: m.Stop})
}

func newPolicies(s *scheduler.Scheduler, cfg *Config) (*scheduler.Policies, error) {
	return scheduler.NewPolicies(s, cfg.Policy)
}

func newCommands(s *scheduler.Scheduler, p *scheduler.Policies, cfg *Config, log *zap.Logger) (*commands.Service, error) {
	svc, err := commands.New(s, p, cfg.Limits, log)
	var ve *commands.ValidationError
	if errors.As(err, &ve) {
		return nil, &ConfigError{ve.Field, ve.Message}
	}
	return svc, err
}

// newRegistry is the process's Prometheus registry: Go and process
// metrics, and the scheduler's.
func newRegistry(s *scheduler.Scheduler) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		scheduler.NewCollector(s))
	return reg
}

// newSlack builds the Slack adapter when configured (nil otherwise).
func newSlack(lc fx.Lifecycle, cfg *Config, svc *commands.Service, s *scheduler.Scheduler, log *zap.Logger) (*slack.Adapter, error) {
	if cfg.Slack.BotToken == "" {
		return nil, nil
	}
	sc := cfg.Slack
	sc.RedisTimeout = cfg.HTTP.RedisTimeout // Slack's endpoints are served by the HTTP API
	a, err := slack.New(sc, svc, s, log.Named("slack"))
	if err != nil {
		field, msg, _ := strings.Cut(err.Error(), ": ")
		return nil, &ConfigError{field, msg}
	}
	lc.Append(fx.Hook{OnStart: a.Start, OnStop: a.Stop})
	return a, nil
}

func newHTTP(lc fx.Lifecycle, cfg *Config, svc *commands.Service, s *scheduler.Scheduler, sl *slack.Adapter, reg *prometheus.Registry, rd *readiness, log *zap.Logger) (*httpapi.Server, error) {
	opts := []httpapi.Option{
		httpapi.WithMetrics(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})),
		httpapi.WithReadiness(rd.check),
	}
	if sl != nil {
		for pattern, h := range sl.Routes() {
			opts = append(opts, httpapi.WithHandler(pattern, h))
		}
	}
	srv, err := httpapi.New(cfg.HTTP, svc, s, log, opts...)
	if err != nil {
		if strings.HasPrefix(err.Error(), "http.") {
			field, msg, _ := strings.Cut(err.Error(), ": ")
			return nil, &ConfigError{field, msg}
		}
		return nil, err
	}
	lc.Append(fx.Hook{
		OnStart: func(ctx context.Context) error {
			if err := srv.Start(ctx); err != nil {
				return err
			}
			log.Info("HTTP API and playground listening", zap.String("url", "http://"+srv.Addr()+"/"))
			return nil
		},
		OnStop: srv.Stop,
	})
	return srv, nil
}

// startChat runs the chat adapters that are configured and the relay that
// delivers their jobs' events.
func startChat(lc fx.Lifecycle, cfg *Config, svc *commands.Service, s *scheduler.Scheduler, sl *slack.Adapter, rd *readiness, reg *prometheus.Registry, log *zap.Logger) error {
	var renderers []adapters.Renderer
	if sl != nil {
		renderers = append(renderers, sl)
		rd.add(sl.Ready)
	}
	if cfg.Discord.Token != "" {
		d, err := discord.New(cfg.Discord, svc, s, log.Named("discord"))
		if err != nil {
			field, msg, _ := strings.Cut(err.Error(), ": ")
			return &ConfigError{field, msg}
		}
		lc.Append(fx.Hook{OnStart: d.Start, OnStop: d.Stop})
		renderers = append(renderers, d)
		rd.add(d.Ready)
		reg.MustRegister(d.Errors)
	}
	if len(renderers) == 0 {
		return nil
	}
	relay := adapters.NewRelay(s, log.Named("relay"), renderers...)
	reg.MustRegister(relay.Lag)
	lc.Append(fx.Hook{OnStart: relay.Start, OnStop: relay.Stop})
	return nil
}

// startWorker runs worker slots for the configured backends; a serve process
// with none gets the embedded fake backend.
func startWorker(lc fx.Lifecycle, cfg *Config, role Role, s *scheduler.Scheduler, reg *prometheus.Registry, rd *readiness, log *zap.Logger, opts Options) error {
	if role == RoleServe && cfg.Worker.Disabled {
		return nil
	}
	var backends []worker.Backend
	for _, bc := range cfg.Backends {
		pw, err := bc.password(opts.Lookup)
		if err != nil {
			return &ConfigError{"backends." + bc.Name, err.Error()}
		}
		var c sdclient.Backend
		if bc.Kind == "comfyui" {
			c, err = comfyui.New(comfyui.Config{BaseURL: bc.URL, Username: bc.Username, Password: pw,
				Model: bc.DefaultModel, Workflows: bc.Workflows, Timeouts: bc.Timeouts})
		} else {
			c, err = a1111.New(a1111.Config{BaseURL: bc.URL, Username: bc.Username, Password: pw, Timeouts: bc.Timeouts})
		}
		if err != nil {
			return &ConfigError{"backends." + bc.Name, err.Error()}
		}
		backends = append(backends, worker.Backend{Name: bc.Name, Backend: c})
	}
	if len(backends) == 0 && role == RoleServe {
		b, err := embeddedFake(lc, cfg, log)
		if err != nil {
			return err
		}
		backends = append(backends, worker.Backend{Name: "embedded-fakesd", Backend: b})
	}
	w, err := worker.New(cfg.Worker, s, backends, log)
	if err != nil {
		return err
	}
	rd.add(worker.NewMetrics(w, reg).Ready)
	if role == RoleWorker || len(cfg.Backends) > 0 {
		probe := &backendProbe{backends: backends, urls: backendURLs(cfg), log: log}
		rd.add(probe.check)
		lc.Append(fx.StartHook(probe.logAtStart))
	}
	grace := 30 * time.Second
	lc.Append(fx.Hook{
		OnStart: w.Start,
		OnStop: func(ctx context.Context) error {
			if _, ok := ctx.Deadline(); !ok {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, grace)
				defer cancel()
			}
			return w.Stop(ctx)
		},
	})
	return nil
}

// embeddedFake starts the fake SD server on a loopback port and returns a
// client of it, so the demo exercises the real A1111 client over HTTP.
func embeddedFake(lc fx.Lifecycle, cfg *Config, log *zap.Logger) (sdclient.Backend, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("embedded fakesd: %w", err)
	}
	fake := fakesd.New(cfg.FakeSD)
	srv := &http.Server{Handler: fake.Handler(), ReadHeaderTimeout: 10 * time.Second}
	base := "http://" + ln.Addr().String()
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			go func() { _ = srv.Serve(ln) }()
			log.Info("no backends configured: running the embedded fake Stable Diffusion backend", zap.String("url", base))
			return nil
		},
		OnStop: func(ctx context.Context) error {
			fake.Close() // running jobs stop; their requests then end
			return srv.Shutdown(ctx)
		},
	})
	return a1111.New(a1111.Config{BaseURL: base})
}
