package httpapi

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/easelbot/easel/commands"
	"github.com/easelbot/easel/scheduler"
)

// Config configures the HTTP API.
type Config struct {
	// Addr is the listen address. Default 127.0.0.1:8080.
	Addr string `yaml:"addr"`
	// Keys maps API keys to tenant names ("acme" serves as tenant
	// api:acme). Secret: set it from the environment (EASEL_HTTP_KEYS).
	// With no keys and no admin keys, only loopback clients are served, as
	// tenant api:local with admin rights. Default none.
	Keys map[string]string `yaml:"keys"`
	// AdminKeys maps keys to tenant names like Keys, and also unlock the
	// /v1/admin endpoints for that tenant. Secret. Default none.
	AdminKeys map[string]string `yaml:"admin_keys"`
	// MaxBodyBytes caps request bodies, in bytes. Default 65536.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// AllowPrivateCallbacks lets callback_url point at loopback and private
	// addresses (never allow on a shared server). Default false.
	AllowPrivateCallbacks bool `yaml:"allow_private_callbacks"`
	// WebhookSecret signs callbacks (X-Easel-Signature). Secret. Default:
	// callbacks are sent unsigned.
	WebhookSecret string `yaml:"webhook_secret"`
	// WebhookMaxAttempts is how many times a callback is tried. Default 8.
	WebhookMaxAttempts int `yaml:"webhook_max_attempts"`
	// WebhookBackoff is the first retry delay; it doubles up to 5m. Default 1s.
	WebhookBackoff time.Duration `yaml:"webhook_backoff"`
	// WebhookClaimAfter is how long a delivery may sit unacknowledged (its
	// instance stopped or died) before another instance takes it over; an
	// instance still retrying renews its hold every third of it. Default 1m.
	WebhookClaimAfter time.Duration `yaml:"webhook_claim_after"`
	// WebhookTimeout bounds one delivery attempt (connect, send, the
	// receiver's answer); a slower receiver counts as a failed attempt.
	// Keep it under webhook_claim_after, or another instance may deliver a
	// slow attempt's event again. Default 15s.
	WebhookTimeout time.Duration `yaml:"webhook_timeout"`
	// HeaderTimeout is how long a client may take to send a request's
	// headers. Default 10s.
	HeaderTimeout time.Duration `yaml:"header_timeout"`
	// BodyTimeout is how long a client may take to send a whole request,
	// headers and body; a slower client is cut off (408 when it can still
	// be told). Event streams are exempt once they start. Default 15s.
	BodyTimeout time.Duration `yaml:"body_timeout"`
	// WriteTimeout is how long writing a response may take; on an event
	// stream it bounds each event written, so a client that stops reading
	// is cut off. Default 30s.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout is how long a kept-alive connection may wait for its next
	// request. Default 60s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// RedisTimeout is the longest a request waits on Redis: beyond it, or
	// when Redis refuses connections, the API answers 503 unavailable with
	// Retry-After. Default 2s.
	RedisTimeout time.Duration `yaml:"redis_timeout"`
	// MaxInFlightPerKey caps the requests one API key (in open mode: the
	// local tenant) has in progress at once, event streams aside; beyond
	// it the API answers 429 with Retry-After. Default 64.
	MaxInFlightPerKey int `yaml:"max_in_flight_per_key"`
	// MaxInFlightPerAddr caps the requests one client IP address has in
	// progress at once, event streams aside (429 beyond). Default 64.
	MaxInFlightPerAddr int `yaml:"max_in_flight_per_addr"`
	// MaxStreamsPerKey caps the event streams one API key holds open at
	// once (429 beyond). Default 1000.
	MaxStreamsPerKey int `yaml:"max_streams_per_key"`
	// MaxStreamsPerAddr caps the event streams one client IP address holds
	// open at once (429 beyond). Default 1000.
	MaxStreamsPerAddr int `yaml:"max_streams_per_addr"`
	// TrustedNetworks are CIDR ranges (e.g. the Docker bridge,
	// 172.16.0.0/12) whose clients are served like loopback ones when no
	// keys are configured (open mode), so a browser on the host reaches a
	// container's playground. Proxied requests are still refused. Ignored
	// once keys are set. Default none (loopback only).
	TrustedNetworks []string `yaml:"trusted_networks"`
	trusted         []*net.IPNet
}

// WithDefaults returns c with its zero fields set to their defaults, as New
// uses it (for `easel config print`).
func (c Config) WithDefaults() (Config, error) {
	err := c.fill()
	return c, err
}

func (c *Config) fill() error {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8080"
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 64 << 10
	}
	if c.WebhookMaxAttempts == 0 {
		c.WebhookMaxAttempts = 8
	}
	if c.WebhookBackoff == 0 {
		c.WebhookBackoff = time.Second
	}
	if c.WebhookClaimAfter == 0 {
		c.WebhookClaimAfter = time.Minute
	}
	if c.WebhookClaimAfter < 30*time.Millisecond {
		return fmt.Errorf("http.webhook_claim_after: must be at least 30ms (got %s)", c.WebhookClaimAfter)
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&c.HeaderTimeout, 10 * time.Second}, {&c.BodyTimeout, 15 * time.Second}, {&c.WriteTimeout, 30 * time.Second},
		{&c.IdleTimeout, 60 * time.Second}, {&c.RedisTimeout, 2 * time.Second}, {&c.WebhookTimeout, 15 * time.Second}} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	for _, n := range []struct {
		v   *int
		def int
	}{{&c.MaxInFlightPerKey, 64}, {&c.MaxInFlightPerAddr, 64}, {&c.MaxStreamsPerKey, 1000}, {&c.MaxStreamsPerAddr, 1000}} {
		if *n.v == 0 {
			*n.v = n.def
		}
	}
	switch {
	case c.HeaderTimeout < 0 || c.BodyTimeout < c.HeaderTimeout:
		return fmt.Errorf("http.body_timeout: must be positive and at least http.header_timeout (got %s, header %s)", c.BodyTimeout, c.HeaderTimeout)
	case c.WriteTimeout < 0:
		return fmt.Errorf("http.write_timeout: must be positive (got %s)", c.WriteTimeout)
	case c.IdleTimeout < 0:
		return fmt.Errorf("http.idle_timeout: must be positive (got %s)", c.IdleTimeout)
	case c.WebhookTimeout < 0:
		return fmt.Errorf("http.webhook_timeout: must be positive (got %s)", c.WebhookTimeout)
	case c.RedisTimeout < 10*time.Millisecond:
		return fmt.Errorf("http.redis_timeout: must be at least 10ms (got %s)", c.RedisTimeout)
	case c.MaxInFlightPerKey < 0, c.MaxInFlightPerAddr < 0, c.MaxStreamsPerKey < 0, c.MaxStreamsPerAddr < 0:
		return errors.New("http.max_in_flight_per_key, max_in_flight_per_addr, max_streams_per_key, max_streams_per_addr: must be positive")
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("http.addr: must be host:port (got %q)", c.Addr)
	}
	c.trusted = nil
	for _, cidr := range c.TrustedNetworks {
		_, n, err := net.ParseCIDR(strings.TrimSpace(cidr))
		if err != nil {
			return fmt.Errorf("http.trusted_networks: %q is not a CIDR range such as 172.16.0.0/12", cidr)
		}
		c.trusted = append(c.trusted, n)
	}
	if c.MaxBodyBytes < 1024 {
		return fmt.Errorf("http.max_body_bytes: must be at least 1024 (got %d)", c.MaxBodyBytes)
	}
	for _, m := range []map[string]string{c.Keys, c.AdminKeys} {
		for k, t := range m {
			if len(k) < 16 {
				return errors.New("http.keys: every API key must be at least 16 characters")
			}
			if !tenantName.MatchString(tenantOf(t)) {
				return fmt.Errorf("http.keys: tenant %q must be letters, digits and _.-", t)
			}
		}
	}
	return nil
}

func (c *Config) isTrusted(ip net.IP) bool {
	for _, n := range c.trusted {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

var tenantName = regexp.MustCompile(`^api:[A-Za-z0-9_.-]{1,64}$`)

func tenantOf(name string) string {
	if strings.HasPrefix(name, "api:") {
		return name
	}
	return "api:" + name
}

// Server is the HTTP API server.
type Server struct {
	cfg      Config
	svc      *commands.Service
	sched    *scheduler.Scheduler
	log      *zap.Logger
	mux      *http.ServeMux
	hooks    *Webhooks
	feed     *feed
	srv      *http.Server
	ln       net.Listener
	metrics  http.Handler
	extra    []route
	ready    []func(context.Context) error
	serveErr chan error
	// streams ends the event streams when the server stops: they would
	// otherwise hold Shutdown until the stop deadline; clients resume from
	// Last-Event-ID on the next process.
	streams    context.Context
	endStreams context.CancelFunc
	// inFlight and streamsLim count requests and event streams per key and
	// per client address.
	inFlight, streamsLim limit
}

// Option adds to a Server.
type Option func(*Server)

// WithMetrics serves h at /metrics.
func WithMetrics(h http.Handler) Option { return func(s *Server) { s.metrics = h } }

// WithHandler mounts h at pattern (a ServeMux pattern such as
// "POST /slack/events"), for adapters that receive webhooks.
func WithHandler(pattern string, h http.Handler) Option {
	return func(s *Server) { s.extra = append(s.extra, route{pattern, h}) }
}

type route struct {
	pattern string
	h       http.Handler
}

// WithReadiness adds a check to /readyz.
func WithReadiness(check func(context.Context) error) Option {
	return func(s *Server) { s.ready = append(s.ready, check) }
}

// New returns the API server. Commands run through svc; job state, images,
// event streams and webhooks read from sched.
func New(cfg Config, svc *commands.Service, sched *scheduler.Scheduler, log *zap.Logger, opts ...Option) (*Server, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, svc: svc, sched: sched, log: log, mux: http.NewServeMux()}
	s.streams, s.endStreams = context.WithCancel(context.Background())
	s.inFlight = limit{count: newCounter(), perKey: cfg.MaxInFlightPerKey, perAddr: cfg.MaxInFlightPerAddr,
		keyField: "http.max_in_flight_per_key", adField: "http.max_in_flight_per_addr",
		code: "too_many_requests", what: "requests", retryAfter: 1}
	s.streamsLim = limit{count: newCounter(), perKey: cfg.MaxStreamsPerKey, perAddr: cfg.MaxStreamsPerAddr,
		keyField: "http.max_streams_per_key", adField: "http.max_streams_per_addr",
		code: "too_many_streams", what: "event streams", retryAfter: 5}
	for _, o := range opts {
		o(s)
	}
	s.feed = newFeed(s.sched, log)
	s.hooks = newWebhooks(s.cfg, s.sched, log)
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("POST /v1/jobs", s.auth(s.postJob))
	m.HandleFunc("GET /v1/jobs/{id}", s.auth(s.getJob))
	m.HandleFunc("DELETE /v1/jobs/{id}", s.auth(s.deleteJob))
	m.HandleFunc("GET /v1/jobs/{id}/events", s.authStream(s.events))
	m.HandleFunc("GET /v1/jobs/{id}/images/{n}", s.auth(s.image))
	m.HandleFunc("GET /v1/jobs/{id}/previews/{name}", s.auth(s.preview))
	m.HandleFunc("GET /v1/queue", s.auth(s.queue))
	m.HandleFunc("GET /v1/usage", s.auth(s.usage))
	m.HandleFunc("GET /v1/models", s.auth(s.models))
	m.HandleFunc("GET /v1/admin/policy", s.auth(s.getPolicy))
	m.HandleFunc("PATCH /v1/admin/policy", s.auth(s.patchPolicy))
	m.HandleFunc("GET /v1/admin/defaults", s.auth(s.getDefaults))
	m.HandleFunc("PATCH /v1/admin/defaults", s.auth(s.patchDefaults))
	m.HandleFunc("GET /v1/admin/usage", s.auth(s.adminUsage))
	m.HandleFunc("POST /v1/admin/users/{user}/reset", s.auth(s.resetUser))
	m.HandleFunc("PUT /v1/admin/users/{user}/block", s.auth(s.blockUser(true)))
	m.HandleFunc("DELETE /v1/admin/users/{user}/block", s.auth(s.blockUser(false)))
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, map[string]string{"status": "ok"}) })
	m.HandleFunc("GET /readyz", s.readyz)
	if s.metrics != nil {
		m.Handle("GET /metrics", s.metrics)
	}
	for _, r := range s.extra {
		m.Handle(r.pattern, r.h)
	}
	s.webRoutes()
	s.extraRoutes()
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+r.URL.Path, "")
	})
}

// Handler returns the API's handler.
func (s *Server) Handler() http.Handler { return s.mux }

// Start listens on Config.Addr and serves in the background.
func (s *Server) Start(context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("http: listen %s: %w", s.cfg.Addr, err)
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s.mux, ErrorLog: zap.NewStdLog(s.log),
		ReadHeaderTimeout: s.cfg.HeaderTimeout, ReadTimeout: s.cfg.BodyTimeout,
		WriteTimeout: s.cfg.WriteTimeout, IdleTimeout: s.cfg.IdleTimeout}
	s.srv.RegisterOnShutdown(s.endStreams)
	s.hooks.start()
	s.serveErr = make(chan error, 1)
	go func() { s.serveErr <- s.srv.Serve(ln) }()
	return nil
}

// Stop stops taking requests, ends the event streams, drops webhook
// followers of jobs still running, lets in-flight requests and webhook
// deliveries finish until ctx ends, then closes what is left (and says so
// in its error). It also stops the webhooks of a Server used only through
// Handler.
func (s *Server) Stop(ctx context.Context) error {
	s.endStreams()
	var errs []error
	if s.srv != nil {
		if err := s.srv.Shutdown(ctx); err != nil {
			_ = s.srv.Close()
			errs = append(errs, fmt.Errorf("http: shutdown: %w", err))
		}
	}
	if err := s.hooks.stop(ctx); err != nil {
		errs = append(errs, err)
	}
	s.feed.stop()
	return errors.Join(errs...)
}

// Addr is the address the server listens on.
func (s *Server) Addr() string {
	if s.ln == nil {
		return s.cfg.Addr
	}
	return s.ln.Addr().String()
}

// refuse answers a request without a valid caller.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request) {
	if len(s.cfg.Keys) == 0 && len(s.cfg.AdminKeys) == 0 {
		if h := proxyHeader(r.Header); h != "" {
			writeError(w, http.StatusForbidden, "forbidden", "this Easel has no API keys configured and refuses proxied requests (this one has a "+
				h+" header): a proxy would make every client look local; configure keys (http.keys, EASEL_HTTP_KEYS) to serve through a proxy", "")
			return
		}
		writeError(w, http.StatusForbidden, "forbidden", "this Easel has no API keys configured and answers only to loopback clients; configure keys (http.keys, EASEL_HTTP_KEYS) to serve others", "")
		return
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="easel"`)
	writeError(w, http.StatusUnauthorized, "unauthorized", "a valid API key is required (Authorization: Bearer <key>)", "")
}

// proxyHeaders mark a request relayed by a proxy: on loopback it may still
// come from anywhere. Their presence counts, even empty.
var proxyHeaders = []string{"Forwarded", "X-Real-Ip", "X-Client-Ip", "True-Client-Ip", "Cf-Connecting-Ip", "Via"}

// proxyHeader names a proxy header of h, or "" when there is none.
func proxyHeader(h http.Header) string {
	for _, p := range proxyHeaders {
		if _, ok := h[p]; ok {
			return p
		}
	}
	for k := range h {
		if strings.HasPrefix(k, "X-Forwarded-") {
			return k
		}
	}
	return ""
}

// caller resolves the caller from the bearer key (or loopback in open
// mode), with the key its limits are counted under.
func (s *Server) caller(r *http.Request) (commands.Caller, string, bool) {
	if len(s.cfg.Keys) == 0 && len(s.cfg.AdminKeys) == 0 {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		ip := net.ParseIP(host)
		if err != nil || ip == nil || !(ip.IsLoopback() || s.cfg.isTrusted(ip)) || proxyHeader(r.Header) != "" {
			return commands.Caller{}, "", false
		}
		return commands.Caller{Tenant: "api:local", User: "api", Admin: true}, "local", true
	}
	key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || key == "" {
		return commands.Caller{}, "", false
	}
	for admin, m := range map[bool]map[string]string{false: s.cfg.Keys, true: s.cfg.AdminKeys} {
		for k, t := range m {
			if subtle.ConstantTimeCompare([]byte(k), []byte(key)) == 1 {
				return commands.Caller{Tenant: tenantOf(t), User: "api", Admin: admin}, k, true
			}
		}
	}
	return commands.Caller{}, "", false
}

func (s *Server) postJob(w http.ResponseWriter, r *http.Request, c commands.Caller) {
	body, err := io.ReadAll(r.Body) // read in full and bounded by auth
	if err != nil {
		s.bodyError(w, err)
		return
	}
	req, err := DecodeJobRequest(body)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	if req.User != "" {
		c.User = req.User
		if len(c.User) > 64 || !userName.MatchString(c.User) {
			writeError(w, http.StatusBadRequest, "invalid_request", "user: must be 1-64 letters, digits and _.@-", "user")
			return
		}
	}
	origin := map[string]string{"kind": "http"}
	if req.CallbackURL != "" {
		if err := checkCallback(r.Context(), req.CallbackURL, s.cfg.AllowPrivateCallbacks); err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request", "callback_url: "+err.Error(), "callback_url")
			return
		}
		origin["callback_url"] = req.CallbackURL
		// The delivery group must exist before the job can end; its reader
		// runs from Start, or from here for a Server used through Handler.
		if err := s.hooks.join(r.Context()); err != nil {
			s.writeErr(w, err)
			return
		}
		s.hooks.start()
	}
	originJSON, _ := json.Marshal(origin)
	idem := r.Header.Get("Idempotency-Key")
	res, _, err := s.svc.Imagine(r.Context(), c, originJSON, req.Imagine, idem)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeAccepted(w, res)
}

// writeAccepted answers 202 for a job just submitted: its id, status
// (queued, or dispatched at once), place in line and links.
func writeAccepted(w http.ResponseWriter, res scheduler.SubmitResult) {
	status := "queued"
	if res.Position == 0 {
		status = string(scheduler.StatusDispatched)
	}
	writeJSON(w, http.StatusAccepted, map[string]any{
		"id": res.ID, "status": status, "position": res.Position, "relaxed": res.Relaxed,
		"links": map[string]string{"self": "/v1/jobs/" + res.ID, "events": "/v1/jobs/" + res.ID + "/events"},
	})
}

var userName = regexp.MustCompile(`^[A-Za-z0-9_.@-]+$`)

// JobView is the JSON of a job.
type JobView struct {
	ID         string          `json:"id"`
	Status     string          `json:"status"`
	Position   int             `json:"position"`
	ETASec     float64         `json:"eta_s,omitempty"`
	Progress   float64         `json:"progress"`
	Step       int             `json:"step"`
	Steps      int             `json:"steps"`
	CreatedAt  *time.Time      `json:"created_at"`
	StartedAt  *time.Time      `json:"started_at"`
	FinishedAt *time.Time      `json:"finished_at"`
	Error      *ErrorView      `json:"error"`
	Images     []ImageView     `json:"images"`
	Request    json.RawMessage `json:"request,omitempty"`
	User       string          `json:"user"`
	Attempt    int             `json:"attempt"`
	// Waiting says why a queued job cannot start (every backend down).
	Waiting *scheduler.Waiting `json:"waiting,omitempty"`
}

// ErrorView is a failed job's error.
type ErrorView struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// ImageView is one result image: its seed, and for a variation its
// subseed (absent otherwise).
type ImageView struct {
	URL string `json:"url"`
	// ThumbURL is the image's thumbnail (URL?size=thumb).
	ThumbURL string `json:"thumb_url"`
	Seed     int64  `json:"seed"`
	Subseed  *int64 `json:"subseed,omitempty"`
}

func tp(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func view(j *scheduler.Job, pos int) JobView {
	v := JobView{ID: j.ID, Status: string(j.Status), Position: pos, Progress: j.Fraction, Step: j.Step, Steps: j.Steps,
		CreatedAt: tp(j.CreatedAt), StartedAt: tp(j.StartedAt), FinishedAt: tp(j.FinishedAt), Request: requestView(j.Payload),
		User: j.User, Attempt: j.Attempt, Images: []ImageView{}}
	switch j.Status {
	case scheduler.StatusFailed:
		v.Error = &ErrorView{Code: j.ErrorCode, Message: j.Error}
	case scheduler.StatusCanceled:
		v.Error = &ErrorView{Code: "canceled", Message: "canceled by " + j.CanceledBy}
	case scheduler.StatusSucceeded:
		for i := 0; i < j.Images; i++ {
			var seed int64
			if i < len(j.Seeds) {
				seed = j.Seeds[i]
			}
			u := fmt.Sprintf("/v1/jobs/%s/images/%d", j.ID, i)
			iv := ImageView{URL: u, ThumbURL: u + "?size=thumb", Seed: seed}
			if i < len(j.Subseeds) {
				iv.Subseed = &j.Subseeds[i]
			}
			v.Images = append(v.Images, iv)
		}
	}
	return v
}

// requestView is the job's request as the API shows it: an img2img job's
// init image is shown by its size, {"omitted": true, "bytes": n}, whether
// the payload holds it (jobs from before the blob store kept it, up to
// megabytes of base64) or names its size (init_image_bytes: the image is
// in the blob store), so job views, SSE followers and webhook bodies stay
// small and never echo it.
func requestView(payload []byte) json.RawMessage {
	if !bytes.Contains(payload, []byte(`"init_image`)) {
		return payload
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(payload, &m) != nil {
		return payload
	}
	n := -1
	if raw, ok := m["init_image_bytes"]; ok {
		if json.Unmarshal(raw, &n) != nil {
			return payload
		}
		delete(m, "init_image_bytes")
	} else {
		var img []byte
		if json.Unmarshal(m["init_image"], &img) != nil {
			return payload
		}
		n = len(img)
	}
	m["init_image"], _ = json.Marshal(map[string]any{"omitted": true, "bytes": n})
	out, err := json.Marshal(m)
	if err != nil {
		return payload
	}
	return out
}

func (s *Server) jobView(ctx context.Context, j *scheduler.Job) (JobView, error) {
	pos := 0
	var eta time.Duration
	if j.Status == scheduler.StatusQueued {
		var err error
		if pos, err = s.sched.Position(ctx, j.ID); err != nil {
			return JobView{}, err
		}
		if eta, err = s.sched.ETA(ctx, pos); err != nil {
			return JobView{}, err
		}
	}
	v := view(j, pos)
	v.ETASec = eta.Seconds()
	if j.Status == scheduler.StatusQueued {
		w, err := s.sched.WaitingFor(ctx)
		if err != nil {
			return JobView{}, err
		}
		if v.Waiting = w; w != nil {
			v.ETASec = 0 // no estimate while nothing can run
		}
	}
	return v, nil
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request, c commands.Caller) {
	j, err := s.svc.Job(r.Context(), c, r.PathValue("id"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	v, err := s.jobView(r.Context(), j)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// keyHolder is the caller acting for user: an API key acts for every user
// of its tenant, since the body's "user" only labels whom a job is for
// (fairness, quotas), and the key holder chose it.
func keyHolder(c commands.Caller, user string) commands.Caller {
	c.User = user
	return c
}

func (s *Server) deleteJob(w http.ResponseWriter, r *http.Request, c commands.Caller) {
	j, err := s.svc.Job(r.Context(), c, r.PathValue("id"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	j, err = s.svc.Cancel(r.Context(), keyHolder(c, j.User), j.ID)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, view(j, 0))
}

// queue lists the tenant's active jobs, or one user's with ?user=, a page
// at a time: ?limit= (1-100, default 100) and ?cursor= (the previous
// page's next_cursor); one Redis round trip per page.
func (s *Server) queue(w http.ResponseWriter, r *http.Request, c commands.Caller) {
	q := r.URL.Query()
	// The key holder sees every user's jobs (see keyHolder).
	limit := scheduler.MaxPageSize
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > scheduler.MaxPageSize {
			writeError(w, http.StatusBadRequest, "invalid_request",
				fmt.Sprintf("limit: must be a whole number between 1 and %d (got %q)", scheduler.MaxPageSize, v), "limit")
			return
		}
		limit = n
	}
	page, err := s.sched.ActivePage(r.Context(), c.Tenant, q.Get("user"), q.Get("cursor"), limit)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	out := make([]JobView, 0, len(page.Entries))
	for _, e := range page.Entries {
		v := view(e.Job, e.Position)
		v.ETASec = e.ETA.Seconds()
		v.Request = nil
		out = append(out, v)
	}
	body := map[string]any{"jobs": out}
	if page.Next != "" {
		body["next_cursor"] = page.Next
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) usage(w http.ResponseWriter, r *http.Request, c commands.Caller) {
	if u := r.URL.Query().Get("user"); u != "" {
		c.User = u
	}
	u, err := s.svc.Usage(r.Context(), c)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, u)
}

func (s *Server) getPolicy(w http.ResponseWriter, r *http.Request, c commands.Caller) {
	p, err := s.svc.Policy(r.Context(), c)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *Server) patchPolicy(w http.ResponseWriter, r *http.Request, c commands.Caller) {
	var body struct {
		Field string `json:"field"`
		Value string `json:"value"`
		User  string `json:"user"`
	}
	if err := decodeBody(r, &body); err != nil {
		s.writeErr(w, err)
		return
	}
	p, err := s.svc.SetPolicy(r.Context(), c, body.User, body.Field, body.Value)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *Server) adminUsage(w http.ResponseWriter, r *http.Request, c commands.Caller) {
	top, err := s.svc.TopUsers(r.Context(), c, 20)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"top_users": top})
}

func (s *Server) resetUser(w http.ResponseWriter, r *http.Request, c commands.Caller) {
	if err := s.svc.ResetUsage(r.Context(), c, r.PathValue("user")); err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "reset"})
}

func (s *Server) blockUser(blocked bool) func(http.ResponseWriter, *http.Request, commands.Caller) {
	return func(w http.ResponseWriter, r *http.Request, c commands.Caller) {
		if err := s.svc.Block(r.Context(), c, r.PathValue("user"), blocked); err != nil {
			s.writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]bool{"blocked": blocked})
	}
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	checks := append([]func(context.Context) error{s.sched.Ping}, s.ready...)
	for _, check := range checks {
		if err := check(ctx); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// writeErr maps errors to API answers.
func (s *Server) writeErr(w http.ResponseWriter, err error) {
	var re *RequestError
	var ve *commands.ValidationError
	var inv *scheduler.InvalidError
	var ref *scheduler.RefusedError
	switch {
	case errors.As(err, &re):
		writeError(w, re.Status, "invalid_request", re.Error(), re.Field)
	case errors.As(err, &ve):
		writeError(w, http.StatusBadRequest, "invalid_request", ve.Error(), ve.Field)
	case errors.As(err, &inv):
		writeError(w, http.StatusBadRequest, "invalid_request", inv.Error(), inv.Field)
	case errors.As(err, &ref):
		secs := int(math.Ceil(ref.RetryAfter.Seconds()))
		body := map[string]any{"code": ref.Reason, "message": ref.Error()}
		if secs > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			body["retry_after_s"] = secs
		}
		writeJSON(w, http.StatusTooManyRequests, map[string]any{"error": body})
	case errors.Is(err, commands.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "no such job", "")
	case errors.Is(err, commands.ErrForbidden):
		writeError(w, http.StatusForbidden, "forbidden", err.Error(), "")
	case errors.Is(err, commands.ErrFinished):
		writeError(w, http.StatusConflict, "finished", "the job already finished", "")
	case scheduler.Unavailable(err):
		s.log.Warn("http api: redis unavailable", zap.Error(err))
		w.Header().Set("Retry-After", strconv.Itoa(unavailableRetry))
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": map[string]any{
			"code": "unavailable", "message": "the queue store (Redis) is not answering; retry shortly",
			"retry_after_s": unavailableRetry}})
	default:
		s.log.Error("http api", zap.Error(err))
		writeError(w, http.StatusInternalServerError, "internal", "internal error; see the server log", "")
	}
}

// unavailableRetry is the Retry-After, in seconds, of a 503 unavailable.
const unavailableRetry = 2

func writeError(w http.ResponseWriter, status int, code, msg, field string) {
	e := map[string]string{"code": code, "message": msg}
	if field != "" {
		e["field"] = field
	}
	writeJSON(w, status, map[string]any{"error": e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
