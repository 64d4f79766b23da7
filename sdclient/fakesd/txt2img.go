package fakesd

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Txt2ImgRequest is the part of A1111's StableDiffusionTxt2ImgProcessingAPI
// the fake reads; unknown fields are ignored, as pydantic does.
type Txt2ImgRequest struct {
	Prompt         string `json:"prompt"`
	NegativePrompt string `json:"negative_prompt"`
	// Width and Height are in pixels: multiples of 8, 64 to Config.MaxSize.
	// Default 512.
	Width  int `json:"width"`
	Height int `json:"height"`
	// Steps is 1 to 1000. Default 50.
	Steps    int     `json:"steps"`
	CFGScale float64 `json:"cfg_scale"`
	// Seed -1 (the default) asks for a random seed.
	Seed int64 `json:"seed"`
	// Subseed and SubseedStrength make a variation of Seed's picture;
	// Subseed -1 (the default) is random.
	Subseed         int64   `json:"subseed"`
	SubseedStrength float64 `json:"subseed_strength"`
	// SamplerName must be one of Config.Samplers; "" means SamplerIndex, the
	// older field, or else the first sampler.
	SamplerName  string `json:"sampler_name"`
	SamplerIndex string `json:"sampler_index"`
	// BatchSize images are made per iteration, NIter iterations; both 1 to
	// 16. Default 1.
	BatchSize int `json:"batch_size"`
	NIter     int `json:"n_iter"`
	// SendImages false answers with no images. Default true.
	SendImages bool `json:"send_images"`
	SaveImages bool `json:"save_images"`
	// OverrideSettings may name a checkpoint for this job in
	// "sd_model_checkpoint" (title or short name).
	OverrideSettings map[string]any `json:"override_settings"`
	// OverrideSettingsRestoreAfterwards (default true) reloads the previous
	// checkpoint after the job when the override switched it.
	OverrideSettingsRestoreAfterwards *bool `json:"override_settings_restore_afterwards"`
	// ForceTaskID names the task for /internal/progress; default a random
	// "task(txt2img-XXXXXXX)".
	ForceTaskID string `json:"force_task_id"`
	// Scheduler is the noise schedule (A1111 1.9+); "" for automatic or the
	// one implied by a legacy sampler name.
	Scheduler string `json:"scheduler"`
	// DistilledCFGScale is Forge's Flux guidance; the fake records it.
	DistilledCFGScale float64 `json:"distilled_cfg_scale"`
	// InitImages (img2img) are base64 source images; the first is used.
	InitImages []string `json:"init_images,omitempty"`
	// DenoisingStrength (img2img) is 0..1; default 0.75.
	DenoisingStrength *float64 `json:"denoising_strength,omitempty"`
}

func (r Txt2ImgRequest) denoising() float64 {
	if r.DenoisingStrength == nil {
		return 0.75
	}
	return min(max(*r.DenoisingStrength, 0), 1)
}

// Request limits beyond the ones in Config.
const (
	minSize     = 64
	maxSteps    = 1000
	maxBatch    = 16
	maxRequest  = 8 << 20 // bytes of a txt2img body
	maxUpscaled = 2       // extras output, in multiples of Config.MaxSize
)

// decodeTxt2Img parses a txt2img body, fills A1111's defaults and checks it.
// The errors are FastAPI's 422 detail list; nil means req is valid.
func decodeTxt2Img(body []byte, maxSize int) (req Txt2ImgRequest, errs []validationError) {
	req = Txt2ImgRequest{Width: 512, Height: 512, Steps: 50, CFGScale: 7, Seed: -1, Subseed: -1,
		BatchSize: 1, NIter: 1, SendImages: true}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || string(trimmed) == "null" {
		return req, []validationError{{Loc: []any{"body"}, Msg: "field required", Type: "value_error.missing"}}
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return req, []validationError{jsonError(err)}
	}
	check := func(field string, v, lo, hi, multiple int) {
		switch {
		case v < lo:
			errs = append(errs, validationError{Loc: []any{"body", field},
				Msg: fmt.Sprintf("ensure this value is greater than or equal to %d", lo), Type: "value_error.number.not_ge"})
		case v > hi:
			errs = append(errs, validationError{Loc: []any{"body", field},
				Msg: fmt.Sprintf("ensure this value is less than or equal to %d", hi), Type: "value_error.number.not_le"})
		case v%multiple != 0:
			errs = append(errs, validationError{Loc: []any{"body", field},
				Msg: fmt.Sprintf("ensure this value is a multiple of %d", multiple), Type: "value_error.number.not_multiple"})
		}
	}
	check("width", req.Width, minSize, maxSize, 8)
	check("height", req.Height, minSize, maxSize, 8)
	check("steps", req.Steps, 1, maxSteps, 1)
	check("batch_size", req.BatchSize, 1, maxBatch, 1)
	check("n_iter", req.NIter, 1, maxBatch, 1)
	return req, errs
}

// jsonError renders a decoding error the way pydantic v1 reports it.
func jsonError(err error) validationError {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return validationError{Loc: []any{"body", syn.Offset}, Msg: err.Error(), Type: "value_error.jsondecode"}
	case errors.As(err, &typ) && typ.Field == "":
		return validationError{Loc: []any{"body"}, Msg: "value is not a valid dict", Type: "type_error.dict"}
	case errors.As(err, &typ):
		loc := []any{"body"}
		for _, f := range strings.Split(typ.Field, ".") {
			loc = append(loc, f)
		}
		msg, kind := "value is not a valid "+typ.Type.Kind().String(), "type_error."+typ.Type.Kind().String()
		switch typ.Type.Kind().String() {
		case "int", "int64":
			msg, kind = "value is not a valid integer", "type_error.integer"
		case "float64":
			msg, kind = "value is not a valid float", "type_error.float"
		case "string":
			msg, kind = "str type expected", "type_error.str"
		case "bool":
			msg, kind = "value could not be parsed to a boolean", "type_error.bool"
		case "map":
			msg, kind = "value is not a valid dict", "type_error.dict"
		}
		return validationError{Loc: loc, Msg: msg, Type: kind}
	}
	return validationError{Loc: []any{"body"}, Msg: err.Error(), Type: "value_error"}
}

// txt2img serves POST /sdapi/v1/txt2img.
func (s *Server) txt2img(w http.ResponseWriter, r *http.Request) { s.generate(w, r, "txt2img") }

// img2img serves POST /sdapi/v1/img2img.
func (s *Server) img2img(w http.ResponseWriter, r *http.Request) { s.generate(w, r, "img2img") }

// generate serves txt2img and img2img as api.py's text2imgapi and
// img2imgapi do: the task is added to the pending list, waits for the one
// queue lock every client shares, runs (begin, start_task, processing,
// finish_task, end) and is answered. A client that goes away does not stop
// it: the task keeps its place and runs in full.
func (s *Server) generate(w http.ResponseWriter, r *http.Request, kind string) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequest+1))
	if err != nil {
		return // the client went away
	}
	if len(body) > maxRequest {
		writeHTTPException(w, http.StatusRequestEntityTooLarge, "Request body too large")
		return
	}
	req, errs := decodeTxt2Img(body, s.cfg.MaxSize)
	if errs != nil {
		writeValidation(w, errs)
		return
	}
	t := &task{id: req.ForceTaskID, kind: kind, req: req, done: make(chan struct{})}
	if kind == "img2img" {
		if len(req.InitImages) == 0 {
			writeHTTPException(w, http.StatusNotFound, "Init image not found") // api.py img2imgapi
			return
		}
		img, err := decodeSource(req.InitImages[0], maxUpscaled*s.cfg.MaxSize)
		if err != nil {
			writeHTTPException(w, http.StatusInternalServerError, "Invalid encoded image") // api.py decode_base64_to_image
			return
		}
		t.init = &initImage{img}
	}
	if status, fail := s.takeFailure(); fail {
		const msg = "injected failure (fakesd FailNext)"
		if status == http.StatusInternalServerError {
			writeException(w, "RuntimeError", msg)
		} else {
			writeHTTPException(w, status, msg)
		}
		return
	}
	if t.id == "" {
		t.id = newTaskID(kind)
	}
	s.mu.Lock()
	if s.hang {
		s.mu.Unlock()
		select { // accepted, never answered
		case <-r.Context().Done():
		case <-s.ctx.Done():
		}
		return
	}
	s.addTask(t)
	s.jobs.Add(1)
	s.mu.Unlock()
	go s.runTask(t)
	select {
	case <-t.done:
	case <-r.Context().Done():
		return
	}
	if t.err != nil {
		writeException(w, "RuntimeError", t.err.Error())
		return
	}
	writeJSON(w, http.StatusOK, t.ans)
}

func (s *Server) takeFailure() (status int, fail bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failN <= 0 {
		return 0, false
	}
	s.failN--
	return s.failStatus, true
}

// txt2imgAnswer is A1111's TextToImageResponse.
type txt2imgAnswer struct {
	Images     []string       `json:"images"`
	Parameters Txt2ImgRequest `json:"parameters"`
	// Info is a JSON document in a string, as Processed.js() makes it.
	Info string `json:"info"`
}

// runTask waits for the queue lock and runs t under it; only closing the
// server stops it.
func (s *Server) runTask(t *task) {
	defer s.jobs.Done()
	defer close(t.done)
	select {
	case s.queue <- struct{}{}:
	case <-s.ctx.Done():
		s.mu.Lock()
		t.state, t.err = "failed", s.ctx.Err()
		s.pending = slices.DeleteFunc(s.pending, func(id string) bool { return id == t.id })
		s.notify()
		s.mu.Unlock()
		return
	}
	defer func() { <-s.queue }()

	s.mu.Lock()
	// api.py: shared.state.begin() (which clears an interrupt sent before
	// this task ran), then progress.start_task().
	s.state.begin("scripts_"+t.kind, time.Now())
	s.startTask(t)
	s.generations++
	s.last = t.req
	s.notify()
	s.mu.Unlock()

	t.ans, t.err = s.process(t)
	s.mu.Lock()
	if t.err == nil {
		s.finishTask(t)
	} else {
		t.state = "failed"
	}
	s.state.end()
	s.notify()
	s.mu.Unlock()
}

// load makes model the loaded checkpoint, taking FirstLoadDuration the
// first time a checkpoint is loaded and LoadDuration afterwards; job_count
// stays -1 meanwhile. Loading is not interruptible, as in A1111.
func (s *Server) load(model string) error {
	s.mu.Lock()
	if s.model == model {
		s.mu.Unlock()
		return nil
	}
	d := s.cfg.LoadDuration
	if !s.everLoaded[model] {
		d = s.cfg.FirstLoadDuration
	}
	s.mu.Unlock()
	if s.cfg.StepDuration > 0 && d > 0 {
		timer := time.NewTimer(d)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-s.ctx.Done():
			return s.ctx.Err()
		}
	}
	s.mu.Lock()
	s.model, s.everLoaded[model] = model, true
	s.loads++
	s.notify()
	s.mu.Unlock()
	return nil
}

// process is processing.process_images for one task holding the queue
// lock: the checkpoint override (an unknown name is dropped and the loaded
// checkpoint runs), sampling at StepDuration a step with a preview every
// PreviewEvery steps, a stop at the next step when interrupted (the
// answer then has the partial images), and the restore of the overridden
// checkpoint afterwards unless override_settings_restore_afterwards is
// false. It fails only when the server closes.
func (s *Server) process(t *task) (*txt2imgAnswer, error) {
	req := t.req
	seed, subseed := req.Seed, req.Subseed
	if seed == -1 {
		seed = rand.Int64N(4294967294) // A1111's range
	}
	if subseed == -1 {
		subseed = rand.Int64N(4294967294)
	}
	perIter := req.BatchSize
	seeds := make([]int64, req.NIter*perIter)
	subseeds := make([]int64, len(seeds))
	for i := range seeds {
		// processing.py: a variation keeps the base seed for every image
		// and counts the subseed up; otherwise the seed counts up.
		if req.SubseedStrength > 0 {
			seeds[i], subseeds[i] = seed, subseed+int64(i)
		} else {
			seeds[i], subseeds[i] = seed+int64(i), subseed+int64(i)
		}
	}

	s.mu.Lock()
	previous := s.model
	stallAt := s.stallAt
	s.mu.Unlock()
	overridden := false
	if name, ok := req.OverrideSettings["sd_model_checkpoint"].(string); ok {
		if model, ok := s.resolveModel(name); ok {
			if err := s.load(model); err != nil {
				return nil, err
			}
			overridden = true
		}
	}
	if overridden && (req.OverrideSettingsRestoreAfterwards == nil || *req.OverrideSettingsRestoreAfterwards) {
		defer func() { _ = s.load(previous) }()
	}
	sampler, scheduler := s.samplerAndScheduler(cmpOr(req.SamplerName, req.SamplerIndex), req.Scheduler)
	steps := req.Steps
	if t.kind == "img2img" {
		// processing.py img2img runs int(min(denoising_strength, 0.999) * steps).
		steps = max(int(min(req.denoising(), 0.999)*float64(req.Steps)), 1)
	}
	s.mu.Lock()
	model := s.model
	t.model, t.sampler, t.scheduler = model, sampler, scheduler
	s.state.jobCount, s.state.steps = req.NIter, steps
	s.notify()
	s.mu.Unlock()

	pace := newPacer(s.cfg.StepDuration)
	defer pace.stop()
	reached := make([]int, 0, req.NIter) // steps done per iteration that ran
iterations:
	for it := range req.NIter {
		s.mu.Lock()
		if s.state.interrupted {
			s.mu.Unlock()
			break
		}
		s.state.jobNo, s.state.step = it, 0
		s.notify()
		s.mu.Unlock()
		reached = append(reached, 0)
		for step := 1; step <= steps; step++ {
			if stallAt > 0 && step > stallAt {
				if err := s.stall(); err != nil {
					return nil, err
				}
				break iterations
			}
			if err := pace.wait(s.ctx); err != nil {
				return nil, err
			}
			s.mu.Lock()
			s.state.step = step
			reached[it] = step
			t.stepsDone++
			stop := s.state.interrupted
			s.notify()
			s.mu.Unlock()
			if stop {
				break iterations
			}
			if every := s.cfg.PreviewEvery; every > 0 && step%every == 0 && step < steps {
				pw, ph := previewSize(req.Width, req.Height)
				img := s.picture(t, seeds[it*perIter], subseeds[it*perIter], pw, ph, float64(step)/float64(steps))
				if preview, err := encodePNG(img); err == nil {
					s.mu.Lock()
					s.state.currentImage = preview
					s.state.idLivePreview++
					s.notify()
					s.mu.Unlock()
				}
			}
		}
	}
	s.mu.Lock()
	t.interrupted = s.state.interrupted
	s.mu.Unlock()

	ans := &txt2imgAnswer{Parameters: req, Images: []string{}}
	if req.SendImages {
		for it, done := range reached {
			for b := range perIter {
				i := it*perIter + b
				data, err := s.encode(s.picture(t, seeds[i], subseeds[i], req.Width, req.Height, float64(done)/float64(steps)))
				if err != nil {
					return nil, err
				}
				ans.Images = append(ans.Images, base64.StdEncoding.EncodeToString(data))
			}
		}
	}
	info, err := json.Marshal(s.info(req, model, sampler, seeds, subseeds))
	if err != nil {
		return nil, err
	}
	ans.Info = string(info)
	return ans, nil
}

// stall waits until the running job is interrupted or the server closes.
func (s *Server) stall() error {
	for {
		s.mu.Lock()
		stop, wake := s.state.interrupted, s.interrupted
		s.mu.Unlock()
		if stop {
			return nil
		}
		select {
		case <-wake:
		case <-s.ctx.Done():
			return s.ctx.Err()
		}
	}
}

// encode encodes a result image in Config.SamplesFormat.
func (s *Server) encode(img image.Image) ([]byte, error) {
	if s.cfg.SamplesFormat == "jxl" {
		// A JPEG XL container signature (ISO/IEC 18181-2) and filler: the
		// fake cannot encode JPEG XL, and a client must not decode it.
		return append([]byte("\x00\x00\x00\x0cJXL \r\n\x87\n"), make([]byte, 64)...), nil
	}
	return encodePNG(img)
}

// picture renders one image of t: the scene of its prompt and seed (mixed
// with the subseed's for a variation), and for img2img the source picture
// showing through by 1 - denoising_strength.
func (s *Server) picture(t *task, seed, subseed int64, w, h int, done float64) image.Image {
	img := s.scene(t.req, seed, subseed).draw(w, h, done)
	if t.init == nil {
		return img
	}
	return t.init.blend(img, 1-min(t.req.denoising(), 1))
}

func (s *Server) scene(req Txt2ImgRequest, seed, subseed int64) scene {
	sc := newScene(req.Prompt, seed)
	if req.SubseedStrength > 0 {
		sc = sc.mix(newScene(req.Prompt, subseed), min(req.SubseedStrength, 1))
	}
	return sc
}

// info is the subset of A1111's Processed.js() Easel and people read.
func (s *Server) info(req Txt2ImgRequest, model, sampler string, seeds, subseeds []int64) map[string]any {
	hash := shortHash(model)
	prompts := make([]string, len(seeds))
	negatives := make([]string, len(seeds))
	infotexts := make([]string, len(seeds))
	for i := range seeds {
		prompts[i], negatives[i] = req.Prompt, req.NegativePrompt
		var b strings.Builder
		b.WriteString(req.Prompt)
		if req.NegativePrompt != "" {
			b.WriteString("\nNegative prompt: " + req.NegativePrompt)
		}
		fmt.Fprintf(&b, "\nSteps: %d, Sampler: %s, CFG scale: %g, Seed: %d, Size: %dx%d, Model hash: %s, Model: %s",
			req.Steps, sampler, req.CFGScale, seeds[i], req.Width, req.Height, hash, model)
		if req.SubseedStrength > 0 {
			fmt.Fprintf(&b, ", Variation seed: %d, Variation seed strength: %g", subseeds[i], req.SubseedStrength)
		}
		b.WriteString(", Version: fakesd")
		infotexts[i] = b.String()
	}
	return map[string]any{
		"prompt": req.Prompt, "all_prompts": prompts,
		"negative_prompt": req.NegativePrompt, "all_negative_prompts": negatives,
		"seed": seeds[0], "all_seeds": seeds,
		"subseed": subseeds[0], "all_subseeds": subseeds, "subseed_strength": req.SubseedStrength,
		"width": req.Width, "height": req.Height, "sampler_name": sampler,
		"cfg_scale": req.CFGScale, "steps": req.Steps, "batch_size": req.BatchSize,
		"restore_faces": false, "sd_model_name": model, "sd_model_hash": hash,
		"seed_resize_from_w": -1, "seed_resize_from_h": -1, "denoising_strength": req.DenoisingStrength,
		"extra_generation_params": map[string]any{}, "index_of_first_image": 0,
		"infotexts": infotexts, "styles": []string{}, "job_timestamp": s.jobTimestamp(),
		"clip_skip": 1, "is_using_inpainting_conditioning": false, "version": "fakesd",
	}
}

func (s *Server) jobTimestamp() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state.timestamp
}

// pacer spaces sampling steps StepDuration apart; with 0 it never waits.
type pacer struct {
	d time.Duration
	t *time.Timer
}

func newPacer(d time.Duration) *pacer { return &pacer{d: d} }

// wait takes one step's time, or returns ctx's error if ctx ends first.
func (p *pacer) wait(ctx context.Context) error {
	if p.d <= 0 {
		return ctx.Err()
	}
	if p.t == nil {
		p.t = time.NewTimer(p.d)
	} else {
		p.t.Reset(p.d)
	}
	select {
	case <-p.t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *pacer) stop() {
	if p.t != nil {
		p.t.Stop()
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
