package fakesd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Config shapes the fake server.
type Config struct {
	// StepDuration is the time each sampling step takes; 0 finishes at once
	// (benchmarks). The `easel fakesd` command defaults it to 50ms.
	StepDuration time.Duration `yaml:"step_duration"`
	// PreviewEvery makes a preview image every N steps; 0 means none.
	PreviewEvery int `yaml:"preview_every"`
	// Username and Password, when set, protect every /sdapi endpoint with
	// HTTP basic auth, like A1111's --api-auth. Default: open.
	Username string `yaml:"username"`
	Password string `yaml:"-"`
	// Models are the checkpoint names offered. Default fake-v1-5, fake-xl.
	Models []string `yaml:"models"`
	// Samplers are the sampler names accepted. Default Euler a, Euler,
	// DPM++ 2M Karras, DDIM.
	Samplers []string `yaml:"samplers"`
	// MaxSize is the largest width or height accepted, in pixels. Default 2048.
	MaxSize int `yaml:"max_size"`
}

// Server is the fake backend. One generation runs at a time, like the real
// server's queue lock; progress answers without the lock.
type Server struct {
	cfg Config
	run sync.Mutex // the generation lock

	mu          sync.Mutex
	cond        *sync.Cond
	jobCount    int // -1 while loading, 1 while sampling, 0 idle
	step, steps int
	started     time.Time
	preview     []byte
	interrupted bool
	model       string
	// counters for tests
	generations int
	interrupts  int
	failN       int
	failStatus  int
	down        bool
}

// New returns a server with cfg's defaults filled.
func New(cfg Config) *Server {
	if len(cfg.Models) == 0 {
		cfg.Models = []string{"fake-v1-5", "fake-xl"}
	}
	if len(cfg.Samplers) == 0 {
		cfg.Samplers = []string{"Euler a", "Euler", "DPM++ 2M Karras", "DDIM"}
	}
	if cfg.MaxSize == 0 {
		cfg.MaxSize = 2048
	}
	s := &Server{cfg: cfg, model: cfg.Models[0]}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// FailNext makes the next n txt2img calls answer HTTP status in A1111's
// error shape.
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failN, s.failStatus = n, status
}

// SetDown makes the server drop every connection (as if it crashed) until
// called with false.
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// Interrupts counts interrupt requests that stopped a running generation.
func (s *Server) Interrupts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.interrupts
}

// WaitStarted blocks until at least n generations have started sampling.
func (s *Server) WaitStarted(ctx context.Context, n int) error {
	stop := context.AfterFunc(ctx, func() { s.mu.Lock(); s.cond.Broadcast(); s.mu.Unlock() })
	defer stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.generations < n {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.cond.Wait()
	}
	return nil
}

// Handler serves the A1111 API subset Easel uses.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /sdapi/v1/txt2img", s.txt2img)
	mux.HandleFunc("GET /sdapi/v1/progress", s.progress)
	mux.HandleFunc("POST /sdapi/v1/extra-single-image", s.extraSingle)
	mux.HandleFunc("POST /sdapi/v1/interrupt", s.interrupt)
	mux.HandleFunc("GET /sdapi/v1/sd-models", s.models)
	mux.HandleFunc("GET /sdapi/v1/samplers", s.samplers)
	mux.HandleFunc("GET /sdapi/v1/options", s.getOptions)
	mux.HandleFunc("POST /sdapi/v1/options", s.setOptions)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		down := s.down
		s.mu.Unlock()
		if down {
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					_ = c.Close()
					return
				}
			}
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if s.cfg.Username != "" {
			u, p, ok := r.BasicAuth()
			if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(s.cfg.Username)) != 1 ||
				subtle.ConstantTimeCompare([]byte(p), []byte(s.cfg.Password)) != 1 {
				w.Header().Set("WWW-Authenticate", "Basic")
				writeJSON(w, http.StatusUnauthorized, map[string]any{"detail": "Incorrect username or password"})
				return
			}
		}
		mux.ServeHTTP(w, r)
	})
}

// Run serves the fake on addr until ctx ends.
func Run(ctx context.Context, addr string, cfg Config, logf func(string, ...any)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: New(cfg).Handler(), ReadHeaderTimeout: 10 * time.Second}
	logf("fake Stable Diffusion (A1111 API) on http://%s, %s per step", ln.Addr(), cfg.StepDuration)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	case err := <-errc:
		return err
	}
}

// Txt2ImgRequest is the subset of A1111's StableDiffusionTxt2ImgProcessingAPI
// the fake reads.
type Txt2ImgRequest struct {
	Prompt           string         `json:"prompt"`
	NegativePrompt   string         `json:"negative_prompt"`
	Width            int            `json:"width"`
	Height           int            `json:"height"`
	Steps            int            `json:"steps"`
	CFGScale         float64        `json:"cfg_scale"`
	Seed             int64          `json:"seed"`
	SamplerName      string         `json:"sampler_name"`
	BatchSize        int            `json:"batch_size"`
	NIter            int            `json:"n_iter"`
	OverrideSettings map[string]any `json:"override_settings"`
}

type validationDetail struct {
	Loc  []string `json:"loc"`
	Msg  string   `json:"msg"`
	Type string   `json:"type"`
}

// DecodeTxt2Img parses and checks a txt2img body; the error list is in
// FastAPI's 422 shape.
func DecodeTxt2Img(body []byte, maxSize int) (Txt2ImgRequest, []validationDetail) {
	req := Txt2ImgRequest{Width: 512, Height: 512, Steps: 50, CFGScale: 7, Seed: -1, BatchSize: 1, NIter: 1, SamplerName: "Euler a"}
	if err := json.Unmarshal(body, &req); err != nil {
		return req, []validationDetail{{Loc: []string{"body"}, Msg: "JSON decode error: " + err.Error(), Type: "value_error.jsondecode"}}
	}
	var errs []validationDetail
	check := func(ok bool, field, msg string) {
		if !ok {
			errs = append(errs, validationDetail{Loc: []string{"body", field}, Msg: msg, Type: "value_error"})
		}
	}
	check(req.Width >= 64 && req.Width <= maxSize && req.Width%8 == 0, "width", fmt.Sprintf("width must be a multiple of 8 between 64 and %d", maxSize))
	check(req.Height >= 64 && req.Height <= maxSize && req.Height%8 == 0, "height", fmt.Sprintf("height must be a multiple of 8 between 64 and %d", maxSize))
	check(req.Steps >= 1 && req.Steps <= 1000, "steps", "steps must be between 1 and 1000")
	check(req.BatchSize >= 1 && req.BatchSize <= 16, "batch_size", "batch_size must be between 1 and 16")
	check(req.NIter >= 1 && req.NIter <= 16, "n_iter", "n_iter must be between 1 and 16")
	return req, errs
}

func (s *Server) txt2img(w http.ResponseWriter, r *http.Request) {
	body, err := readAll(r, 1<<20)
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]any{"detail": "request too large"})
		return
	}
	req, verrs := DecodeTxt2Img(body, s.cfg.MaxSize)
	if verrs != nil {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": verrs})
		return
	}
	s.mu.Lock()
	if s.failN > 0 {
		s.failN--
		status := s.failStatus
		s.mu.Unlock()
		writeJSON(w, status, map[string]any{"error": "RuntimeError", "detail": "", "body": "",
			"errors": "simulated failure (fakesd FailNext)"})
		return
	}
	s.mu.Unlock()
	if m, ok := req.OverrideSettings["sd_model_checkpoint"].(string); ok && !contains(s.cfg.Models, m) {
		writeJSON(w, http.StatusInternalServerError, map[string]any{"error": "RuntimeError", "detail": "", "body": "",
			"errors": fmt.Sprintf("model %q not found", m)})
		return
	}

	s.run.Lock()
	defer s.run.Unlock()
	seed := req.Seed
	if seed < 0 {
		seed = int64(rand.Uint32())
	}
	count := req.BatchSize * req.NIter
	s.mu.Lock()
	s.jobCount, s.step, s.steps, s.started, s.preview, s.interrupted = -1, 0, req.Steps, time.Now(), nil, false
	s.generations++
	s.cond.Broadcast()
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.jobCount, s.step, s.steps, s.preview = 0, 0, 0, nil
		s.mu.Unlock()
	}()

	reached := req.Steps
	var timer *time.Timer
	for step := 1; step <= req.Steps; step++ {
		if s.cfg.StepDuration > 0 {
			if timer == nil {
				timer = time.NewTimer(s.cfg.StepDuration)
				defer timer.Stop()
			} else {
				timer.Reset(s.cfg.StepDuration)
			}
			select {
			case <-timer.C:
			case <-r.Context().Done():
				return // the client went away
			}
		}
		s.mu.Lock()
		if s.interrupted {
			s.mu.Unlock()
			reached = step - 1
			break
		}
		s.jobCount, s.step = 1, step
		wantPreview := s.cfg.PreviewEvery > 0 && step%s.cfg.PreviewEvery == 0 && step < req.Steps
		s.mu.Unlock()
		if wantPreview {
			p := render(req.Prompt, seed, min(req.Width, 256), min(req.Height, 256), float64(step)/float64(req.Steps))
			s.mu.Lock()
			s.preview = p
			s.mu.Unlock()
		}
	}
	images := make([]string, count)
	seeds := make([]int64, count)
	for i := range count {
		seeds[i] = seed + int64(i)
		images[i] = base64.StdEncoding.EncodeToString(render(req.Prompt, seeds[i], req.Width, req.Height, float64(reached)/float64(req.Steps)))
	}
	info, _ := json.Marshal(map[string]any{
		"prompt": req.Prompt, "negative_prompt": req.NegativePrompt, "seed": seed, "all_seeds": seeds,
		"width": req.Width, "height": req.Height, "steps": req.Steps, "cfg_scale": req.CFGScale,
		"sampler_name": req.SamplerName, "sd_model_name": s.currentModel(req),
	})
	writeJSON(w, http.StatusOK, map[string]any{"images": images, "parameters": req, "info": string(info)})
}

// extraSingle scales the image by upscaling_resize (nearest neighbour).
func (s *Server) extraSingle(w http.ResponseWriter, r *http.Request) {
	body, err := readAll(r, 64<<20)
	var req struct {
		Image  string  `json:"image"`
		Resize float64 `json:"upscaling_resize"`
	}
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	var src image.Image
	if err == nil {
		var raw []byte
		if raw, err = base64.StdEncoding.DecodeString(req.Image); err == nil {
			src, err = png.Decode(bytes.NewReader(raw))
		}
	}
	if err != nil || req.Resize < 1 || req.Resize > 4 {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": []validationDetail{{Loc: []string{"body", "image"},
			Msg: "image must be a base64 PNG and upscaling_resize between 1 and 4", Type: "value_error"}}})
		return
	}
	s.run.Lock()
	defer s.run.Unlock()
	b := src.Bounds()
	dst := image.NewNRGBA(image.Rect(0, 0, int(float64(b.Dx())*req.Resize), int(float64(b.Dy())*req.Resize)))
	for y := 0; y < dst.Bounds().Dy(); y++ {
		for x := 0; x < dst.Bounds().Dx(); x++ {
			dst.Set(x, y, src.At(b.Min.X+int(float64(x)/req.Resize), b.Min.Y+int(float64(y)/req.Resize)))
		}
	}
	var buf bytes.Buffer
	_ = (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&buf, dst)
	writeJSON(w, http.StatusOK, map[string]any{"image": base64.StdEncoding.EncodeToString(buf.Bytes()), "html_info": "<p>fake upscale</p>"})
}

func (s *Server) currentModel(req Txt2ImgRequest) string {
	if m, ok := req.OverrideSettings["sd_model_checkpoint"].(string); ok {
		return m
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.model
}

// progress follows A1111's progressapi: 0.01 while loading (job_count -1),
// then 0.01 + job_no/job_count + step/steps/job_count, and eta_relative
// from the time since start.
func (s *Server) progress(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	jc, step, steps, started, preview := s.jobCount, s.step, s.steps, s.started, s.preview
	s.mu.Unlock()
	state := map[string]any{"skipped": false, "interrupted": false, "job": "", "job_count": jc,
		"job_timestamp": started.Format("20060102150405"), "job_no": 0, "sampling_step": step, "sampling_steps": steps}
	if jc == 0 {
		writeJSON(w, http.StatusOK, map[string]any{"progress": 0, "eta_relative": 0, "state": state, "current_image": nil, "textinfo": nil})
		return
	}
	p := 0.01
	if jc > 0 && steps > 0 {
		p += float64(step) / float64(steps) / float64(jc)
	}
	elapsed := time.Since(started).Seconds()
	eta := elapsed/p - elapsed
	p = math.Min(p, 1)
	var img any
	if preview != nil && r.URL.Query().Get("skip_current_image") != "true" {
		img = base64.StdEncoding.EncodeToString(preview)
	}
	writeJSON(w, http.StatusOK, map[string]any{"progress": p, "eta_relative": eta, "state": state, "current_image": img, "textinfo": nil})
}

func (s *Server) interrupt(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	if s.jobCount != 0 && !s.interrupted {
		s.interrupted = true
		s.interrupts++
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{})
}

func (s *Server) models(w http.ResponseWriter, _ *http.Request) {
	out := make([]map[string]any, 0, len(s.cfg.Models))
	for _, m := range s.cfg.Models {
		h := sha256.Sum256([]byte(m))
		out = append(out, map[string]any{"title": fmt.Sprintf("%s.safetensors [%x]", m, h[:5]), "model_name": m,
			"hash": fmt.Sprintf("%x", h[:5]), "sha256": fmt.Sprintf("%x", h), "filename": "/models/" + m + ".safetensors", "config": nil})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) samplers(w http.ResponseWriter, _ *http.Request) {
	out := make([]map[string]any, 0, len(s.cfg.Samplers))
	for _, n := range s.cfg.Samplers {
		out = append(out, map[string]any{"name": n, "aliases": []string{strings.ToLower(strings.ReplaceAll(n, " ", "_"))}, "options": map[string]any{}})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getOptions(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	m := s.model
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"sd_model_checkpoint": m, "samples_format": "png"})
}

func (s *Server) setOptions(w http.ResponseWriter, r *http.Request) {
	body, err := readAll(r, 1<<16)
	var opts map[string]any
	if err == nil {
		err = json.Unmarshal(body, &opts)
	}
	if err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": []validationDetail{{Loc: []string{"body"}, Msg: "invalid JSON", Type: "value_error"}}})
		return
	}
	if m, ok := opts["sd_model_checkpoint"].(string); ok {
		if !contains(s.cfg.Models, m) {
			writeJSON(w, http.StatusInternalServerError, map[string]any{"error": "RuntimeError", "detail": "", "body": "", "errors": fmt.Sprintf("model %q not found", m)})
			return
		}
		s.mu.Lock()
		s.model = m
		s.mu.Unlock()
	}
	writeJSON(w, http.StatusOK, nil)
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func readAll(r *http.Request, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	n, err := buf.ReadFrom(http.MaxBytesReader(nil, r.Body, limit))
	if err != nil {
		return nil, err
	}
	if n > limit {
		return nil, errors.New("too large")
	}
	return buf.Bytes(), nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// render draws a deterministic picture of (prompt, seed): a diagonal
// gradient between two colours and a few discs, all derived from a hash of
// both, washed out in proportion to how far sampling got (done in 0..1).
func render(prompt string, seed int64, w, h int, done float64) []byte {
	var sb [8]byte
	binary.LittleEndian.PutUint64(sb[:], uint64(seed))
	sum := sha256.Sum256(append(sb[:], prompt...))
	rng := rand.New(rand.NewPCG(binary.LittleEndian.Uint64(sum[:8]), binary.LittleEndian.Uint64(sum[8:16])))
	c1 := color.RGBA{sum[16], sum[17], sum[18], 255}
	c2 := color.RGBA{sum[19], sum[20], sum[21], 255}
	type disc struct {
		x, y, r2 int
		c        color.RGBA
	}
	discs := make([]disc, 3+rng.IntN(4))
	for i := range discs {
		r := (min(w, h) / 10) + rng.IntN(max(min(w, h)/4, 1))
		discs[i] = disc{rng.IntN(w), rng.IntN(h), r * r, color.RGBA{uint8(rng.Uint32()), uint8(rng.Uint32()), uint8(rng.Uint32()), 255}}
	}
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	wash := uint32(255 * math.Max(0, math.Min(1, done)))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			t := uint32((x + y) * 255 / max(w+h-2, 1))
			c := color.RGBA{
				uint8((uint32(c1.R)*(255-t) + uint32(c2.R)*t) / 255),
				uint8((uint32(c1.G)*(255-t) + uint32(c2.G)*t) / 255),
				uint8((uint32(c1.B)*(255-t) + uint32(c2.B)*t) / 255), 255}
			for _, d := range discs {
				dx, dy := x-d.x, y-d.y
				if dx*dx+dy*dy <= d.r2 {
					c = d.c
				}
			}
			// Unfinished images are washed towards grey, like noisy latents.
			i := img.PixOffset(x, y)
			img.Pix[i+0] = uint8((uint32(c.R)*wash + 128*(255-wash)) / 255)
			img.Pix[i+1] = uint8((uint32(c.G)*wash + 128*(255-wash)) / 255)
			img.Pix[i+2] = uint8((uint32(c.B)*wash + 128*(255-wash)) / 255)
			img.Pix[i+3] = 255
		}
	}
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	_ = enc.Encode(&buf, img)
	return buf.Bytes()
}
