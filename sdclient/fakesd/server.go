package fakesd

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Config shapes a fake server. The zero Config is the demo server: 50ms per
// step, a preview every 5 steps, two models, four samplers, no auth.
type Config struct {
	// StepDuration is the time one sampling step takes. Zero means the
	// default, 50ms; for steps that take no time at all set Instant.
	StepDuration time.Duration `yaml:"step_duration"`
	// Instant makes sampling take no time, whatever StepDuration says; tests
	// and benchmarks use it. Default false.
	Instant bool `yaml:"instant"`
	// PreviewEvery keeps a preview (progress' current_image) every N
	// sampling steps. Zero means the default, 5; for no previews at all set
	// NoPreviews.
	PreviewEvery int `yaml:"preview_every"`
	// NoPreviews turns previews off: current_image stays null. Default false.
	NoPreviews bool `yaml:"no_previews"`
	// Username and Password, when Username is set, protect every /sdapi route
	// with HTTP basic auth, like A1111's --api-auth; missing or wrong
	// credentials get 401. Default "": open.
	Username string `yaml:"username"`
	// Password goes with Username. Default "".
	Password string `yaml:"-"`
	// Models are the checkpoints' short names (A1111's model_name); the
	// first is loaded at start. Default "fake-v1-5", "fake-xl", "fake-flux".
	Models []string `yaml:"models"`
	// Samplers are the sampler names GET /sdapi/v1/samplers lists; the first
	// is used when a request names none or an unknown one (A1111 falls back
	// silently). Default "DPM++ 2M", "Euler a", "Euler", "DDIM".
	Samplers []string `yaml:"samplers"`
	// Schedulers are the noise schedules (A1111 1.9+ GET
	// /sdapi/v1/schedulers) as name and label pairs. Default A1111's
	// automatic, uniform, karras, exponential, polyexponential, sgm_uniform.
	Schedulers []Scheduler `yaml:"schedulers"`
	// LoRAs are the LoRA names GET /sdapi/v1/loras lists. Default
	// "fake-detail", "fake-style".
	LoRAs []string `yaml:"loras"`
	// Upscalers are the upscaler names extra-single-image accepts. Default
	// "None", "Lanczos", "Nearest", "R-ESRGAN 4x+".
	Upscalers []string `yaml:"upscalers"`
	// MaxSize is the largest width or height txt2img accepts, in pixels.
	// Default 2048.
	MaxSize int `yaml:"max_size"`
	// LoadDuration is the time loading a checkpoint takes (a switch of
	// model, or a restore afterwards). Zero means one step's time.
	LoadDuration time.Duration `yaml:"load_duration"`
	// FirstLoadDuration is the time the first load of each checkpoint takes
	// instead of LoadDuration (real servers take minutes to read weights
	// from disk the first time). Zero means LoadDuration.
	FirstLoadDuration time.Duration `yaml:"first_load_duration"`
	// SamplesFormat is the format of result images: "png" (default) or
	// "jxl", which SD.Next can be set to and Easel cannot decode.
	SamplesFormat string `yaml:"samples_format"`
	// NoAPI makes the server behave as one started without --api: every
	// /sdapi route answers 404 {"detail": "Not Found"} (the web UI's own
	// /internal routes still answer). Default false.
	NoAPI bool `yaml:"no_api"`
}

// Scheduler is one entry of GET /sdapi/v1/schedulers.
type Scheduler struct {
	// Name is what the scheduler field takes, e.g. "karras". Required.
	Name string `yaml:"name"`
	// Label is the display name that legacy sampler names end with, e.g.
	// "Karras" in "DPM++ 2M Karras". Required.
	Label string `yaml:"label"`
}

// Defaults filled in by New.
const (
	DefaultStepDuration = 50 * time.Millisecond
	DefaultPreviewEvery = 5
	DefaultMaxSize      = 2048
)

// WithDefaults returns cfg with its zero fields filled, as New uses it.
func (cfg Config) WithDefaults() Config { return cfg.withDefaults() }

// withDefaults returns cfg with its zero fields filled. Negative numbers are
// treated as unset: New has no error to report them with.
func (cfg Config) withDefaults() Config {
	if cfg.StepDuration <= 0 {
		cfg.StepDuration = DefaultStepDuration
	}
	if cfg.Instant {
		cfg.StepDuration = 0
	}
	if cfg.PreviewEvery <= 0 {
		cfg.PreviewEvery = DefaultPreviewEvery
	}
	if cfg.NoPreviews {
		cfg.PreviewEvery = 0
	}
	if len(cfg.Models) == 0 {
		cfg.Models = []string{"fake-v1-5", "fake-xl", "fake-flux"}
	}
	if len(cfg.Samplers) == 0 {
		// A1111 1.9+ lists DPM++ 2M first, and uses the first as default.
		cfg.Samplers = []string{"DPM++ 2M", "Euler a", "Euler", "DDIM"}
	}
	if len(cfg.Schedulers) == 0 {
		// modules/sd_schedulers.py
		cfg.Schedulers = []Scheduler{{"automatic", "Automatic"}, {"uniform", "Uniform"}, {"karras", "Karras"},
			{"exponential", "Exponential"}, {"polyexponential", "Polyexponential"}, {"sgm_uniform", "SGM Uniform"}}
	}
	if len(cfg.LoRAs) == 0 {
		cfg.LoRAs = []string{"fake-detail", "fake-style"}
	}
	if len(cfg.Upscalers) == 0 {
		cfg.Upscalers = []string{"None", "Lanczos", "Nearest", "R-ESRGAN 4x+"}
	}
	if cfg.LoadDuration <= 0 {
		cfg.LoadDuration = cfg.StepDuration
	}
	if cfg.FirstLoadDuration <= 0 {
		cfg.FirstLoadDuration = cfg.LoadDuration
	}
	if cfg.SamplesFormat == "" {
		cfg.SamplesFormat = "png"
	}
	if cfg.MaxSize <= 0 {
		cfg.MaxSize = DefaultMaxSize
	}
	return cfg
}

// Server is one fake A1111 server. Its methods are safe for concurrent use.
type Server struct {
	cfg Config
	// queue is A1111's queue_lock (modules/call_queue.py, api.py): one job
	// (txt2img, img2img or extras) at a time, from every client, in arrival
	// order. A channel rather than a mutex so a waiting job can be dropped
	// when the server closes.
	queue chan struct{}
	// ctx ends when the server closes; jobs run under it, not under their
	// request, because A1111 runs a job whose client went away.
	ctx    context.Context
	cancel context.CancelFunc
	jobs   sync.WaitGroup

	mu    sync.Mutex
	state jobState // what progress reports
	model string   // the loaded checkpoint's short name
	opts  map[string]any
	// Task bookkeeping of modules/progress.py: pending (queued) tasks, the
	// current one and the last 16 finished ones.
	tasks    map[string]*task
	seq      int
	pending  []string
	current  string
	finished []string
	// interrupted is closed and replaced by every interrupt, waking a
	// stalled job.
	interrupted chan struct{}
	everLoaded  map[string]bool
	// Test controls and observations.
	failN, failStatus int
	down              bool
	hang              bool
	stallAt           int
	interrupts        int
	generations       int
	loads             int
	last              Txt2ImgRequest
	// changed is closed and replaced by every change of state Await
	// conditions read (notify).
	changed chan struct{}
}

// New returns a server for cfg, its defaults filled. Serve its Handler, or
// use Run; Close stops its jobs.
func New(cfg Config) *Server {
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		cfg:         cfg,
		queue:       make(chan struct{}, 1),
		ctx:         ctx,
		cancel:      cancel,
		model:       cfg.Models[0],
		opts:        map[string]any{},
		tasks:       map[string]*task{},
		interrupted: make(chan struct{}),
		everLoaded:  map[string]bool{cfg.Models[0]: true},
		changed:     make(chan struct{}),
	}
}

// Close stops running jobs at their next step, drops queued ones and waits
// for them to end. Requests still waiting get no answer. Idempotent.
func (s *Server) Close() {
	s.cancel()
	s.jobs.Wait()
}

// Config returns the server's configuration with defaults filled.
func (s *Server) Config() Config { return s.cfg }

// Handler serves the API. Unknown routes get FastAPI's 404 {"detail": "Not
// Found"}.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /sdapi/v1/txt2img", s.txt2img)
	mux.HandleFunc("POST /sdapi/v1/img2img", s.img2img)
	mux.HandleFunc("POST /internal/progress", s.internalProgress)
	mux.HandleFunc("GET /sdapi/v1/schedulers", s.schedulers)
	mux.HandleFunc("GET /sdapi/v1/loras", s.loras)
	mux.HandleFunc("GET /sdapi/v1/upscalers", s.upscalers)
	mux.HandleFunc("GET /sdapi/v1/progress", s.progress)
	mux.HandleFunc("POST /sdapi/v1/interrupt", s.interrupt)
	mux.HandleFunc("POST /sdapi/v1/extra-single-image", s.extraSingleImage)
	mux.HandleFunc("GET /sdapi/v1/sd-models", s.sdModels)
	mux.HandleFunc("GET /sdapi/v1/samplers", s.samplers)
	mux.HandleFunc("GET /sdapi/v1/options", s.getOptions)
	mux.HandleFunc("POST /sdapi/v1/options", s.setOptions)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]any{"detail": "Not Found"})
	})
	return s.downOr(s.apiOr(s.authOr(mux)))
}

// apiOr answers 404 on every /sdapi route when the server runs without
// --api: webui.py only mounts modules/api/api.py's routes with --api, while
// modules/progress.py's /internal/progress belongs to the UI.
func (s *Server) apiOr(next http.Handler) http.Handler {
	if !s.cfg.NoAPI {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/sdapi/") {
			writeJSON(w, http.StatusNotFound, map[string]any{"detail": "Not Found"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// downOr drops the connection while the server is down: the client sees a
// reset, as when the process died. Where the connection cannot be taken
// over (HTTP/2), it answers 503 instead.
func (s *Server) downOr(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		down := s.down
		s.mu.Unlock()
		if !down {
			next.ServeHTTP(w, r)
			return
		}
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"detail": "Service Unavailable"})
	})
}

// authOr checks basic auth on /sdapi routes when a Username is configured,
// answering like A1111's HTTPBasic dependency.
func (s *Server) authOr(next http.Handler) http.Handler {
	if s.cfg.Username == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/sdapi/") {
			next.ServeHTTP(w, r)
			return
		}
		user, pass, ok := r.BasicAuth()
		switch {
		case !ok:
			w.Header().Set("WWW-Authenticate", "Basic")
			writeHTTPException(w, http.StatusUnauthorized, "Not authenticated")
		case subtle.ConstantTimeCompare([]byte(user), []byte(s.cfg.Username)) != 1 ||
			subtle.ConstantTimeCompare([]byte(pass), []byte(s.cfg.Password)) != 1:
			w.Header().Set("WWW-Authenticate", "Basic")
			writeHTTPException(w, http.StatusUnauthorized, "Incorrect username or password")
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// FailNext makes the next n txt2img calls that pass validation answer the
// given HTTP status without running: 500 in the shape of an unhandled
// exception ({"error": "RuntimeError", ...}), any other status in the shape
// of an HTTPException. It replaces an earlier FailNext that has calls left.
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failN, s.failStatus = n, status
}

// SetDown makes every request, from the next one on, have its connection
// closed without an answer (as if the process had died) until SetDown(false).
// A job already running carries on.
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// SetHang makes txt2img and img2img, from the next request on, read the
// request and never answer (nor queue it) until SetHang(false), the client
// leaves or the server closes: a server that accepts work and is stuck.
func (s *Server) SetHang(hang bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hang = hang
}

// StallAt makes jobs that start from now on stop advancing after step
// sampling steps (0: never): the task stays active, its progress frozen,
// until it is interrupted (it then ends with its partial images) or the
// server closes. A GPU driver hang looks like this.
func (s *Server) StallAt(step int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stallAt = step
}

// Loads counts checkpoint loads since New: switches for an override, and
// the reloads of override_settings_restore_afterwards.
func (s *Server) Loads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loads
}

// Loaded returns the loaded checkpoint's short name.
func (s *Server) Loaded() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.model
}

// Interrupts counts POST /sdapi/v1/interrupt requests answered, whether or
// not a job was running.
func (s *Server) Interrupts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.interrupts
}

// Generations counts txt2img jobs that started (took the queue lock).
func (s *Server) Generations() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.generations
}

// LastRequest returns the last txt2img request that started, as decoded,
// with the server's defaults filled in.
func (s *Server) LastRequest() Txt2ImgRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// WaitStarted blocks until at least n txt2img jobs have started since New,
// the latest of them holding the queue lock, or until ctx ends.
func (s *Server) WaitStarted(ctx context.Context, n int) error {
	return s.Await(ctx, fmt.Sprintf("%d started jobs", n), func() bool { return s.Generations() >= n })
}

// Await blocks until cond returns true or ctx ends. It checks cond at once
// and again after each change of the server's state: a task queued,
// started or ended, a sampling step, a preview, an interrupt, a checkpoint
// loaded, options set. Tests wait on the server's own signal this way, not
// by polling. cond runs without the server's lock and may call its
// methods; what names the condition in the error.
func (s *Server) Await(ctx context.Context, what string, cond func() bool) error {
	for {
		s.mu.Lock()
		ch := s.changed // taken before cond runs: no change falls between
		s.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("fakesd: waiting for %s: %w", what, ctx.Err())
		}
	}
}

// notify wakes every Await. Caller holds s.mu.
func (s *Server) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Run serves a new server for cfg on addr until ctx ends, then shuts it down,
// stopping running jobs at their next step. logf, if not nil, gets one line
// when the server listens. It backs `easel fakesd`.
func Run(ctx context.Context, addr string, cfg Config, logf func(format string, args ...any)) error {
	return New(cfg).Serve(ctx, addr, logf)
}

// Serve serves s on addr until ctx ends, then shuts it down and closes s,
// stopping running jobs at their next step. logf, if not nil, gets one line
// when the server listens.
func (s *Server) Serve(ctx context.Context, addr string, logf func(format string, args ...any)) error {
	defer s.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("fakesd: %w", err)
	}
	// Jobs watch their request's context, which derives from this one, so
	// canceling it on shutdown frees the connections Shutdown waits for.
	base, stopJobs := context.WithCancel(context.WithoutCancel(ctx))
	defer stopJobs()
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	if logf != nil {
		logf("fake Stable Diffusion (A1111 API) on http://%s, %s per step, a preview every %d steps",
			ln.Addr(), s.cfg.StepDuration, s.cfg.PreviewEvery)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("fakesd: %w", err)
	case <-ctx.Done():
	}
	stopJobs()
	s.cancel()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("fakesd: shutdown: %w", err)
	}
	return nil
}
