package fakesd

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
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
func (s *Server) txt2img(w http.ResponseWriter, r *http.Request) {
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
	if req.SamplerName == "" {
		req.SamplerName = cmpOr(req.SamplerIndex, s.cfg.Samplers[0])
	}
	if !s.knownSampler(req.SamplerName) {
		writeHTTPException(w, http.StatusNotFound, "Sampler not found")
		return
	}
	model := ""
	if name, ok := req.OverrideSettings["sd_model_checkpoint"].(string); ok {
		if model, ok = s.resolveModel(name); !ok {
			writeHTTPException(w, http.StatusNotFound, "Model not found")
			return
		}
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

	select {
	case s.queue <- struct{}{}:
	case <-r.Context().Done():
		return
	}
	defer func() { <-s.queue }()
	ans, err := s.runTxt2Img(r.Context(), req, model)
	if err != nil {
		if r.Context().Err() == nil {
			writeException(w, "RuntimeError", err.Error())
		}
		return
	}
	writeJSON(w, http.StatusOK, ans)
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

// runTxt2Img runs one job holding the queue lock: it takes StepDuration per
// step, keeps previews, stops early when interrupted and renders the images
// as far as sampling got. It fails only when ctx ends (the client left).
func (s *Server) runTxt2Img(ctx context.Context, req Txt2ImgRequest, model string) (*txt2imgAnswer, error) {
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
		seeds[i], subseeds[i] = seed+int64(i), subseed+int64(i)
	}

	s.mu.Lock()
	s.state.begin("txt2img", time.Now())
	s.generations++
	s.last = req
	close(s.started)
	s.started = make(chan struct{})
	loaded := s.model
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.state.end()
		s.mu.Unlock()
	}()
	if model == "" {
		model = loaded
	}

	pace := newPacer(s.cfg.StepDuration)
	defer pace.stop()
	// Switching checkpoints takes a step's time with job_count -1, as A1111
	// reports while it loads weights.
	if model != loaded {
		if err := pace.wait(ctx); err != nil {
			return nil, err
		}
	}
	reached := make([]int, 0, req.NIter) // steps done per iteration that ran
	s.mu.Lock()
	s.state.jobCount, s.state.steps = req.NIter, req.Steps
	s.mu.Unlock()
iterations:
	for it := range req.NIter {
		s.mu.Lock()
		if s.state.interrupted {
			s.mu.Unlock()
			break
		}
		s.state.jobNo, s.state.step = it, 0
		s.mu.Unlock()
		reached = append(reached, 0)
		for step := 1; step <= req.Steps; step++ {
			if err := pace.wait(ctx); err != nil {
				return nil, err
			}
			s.mu.Lock()
			s.state.step = step
			reached[it] = step
			stop := s.state.interrupted
			s.mu.Unlock()
			if stop {
				break iterations
			}
			if every := s.cfg.PreviewEvery; every > 0 && step%every == 0 && step < req.Steps {
				pw, ph := previewSize(req.Width, req.Height)
				img := s.scene(req, seeds[it*perIter], subseeds[it*perIter]).draw(pw, ph, float64(step)/float64(req.Steps))
				if preview, err := encodePNG(img); err == nil {
					s.mu.Lock()
					s.state.currentImage = preview
					s.mu.Unlock()
				}
			}
		}
	}

	ans := &txt2imgAnswer{Parameters: req, Images: []string{}}
	if req.SendImages {
		for it, done := range reached {
			for b := range perIter {
				i := it*perIter + b
				img := s.scene(req, seeds[i], subseeds[i]).draw(req.Width, req.Height, float64(done)/float64(req.Steps))
				data, err := encodePNG(img)
				if err != nil {
					return nil, err
				}
				ans.Images = append(ans.Images, base64.StdEncoding.EncodeToString(data))
			}
		}
	}
	info, err := json.Marshal(s.info(req, model, seeds, subseeds))
	if err != nil {
		return nil, err
	}
	ans.Info = string(info)
	return ans, nil
}

func (s *Server) scene(req Txt2ImgRequest, seed, subseed int64) scene {
	sc := newScene(req.Prompt, seed)
	if req.SubseedStrength > 0 {
		sc = sc.mix(newScene(req.Prompt, subseed), min(req.SubseedStrength, 1))
	}
	return sc
}

// info is the subset of A1111's Processed.js() Easel and people read.
func (s *Server) info(req Txt2ImgRequest, model string, seeds, subseeds []int64) map[string]any {
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
			req.Steps, req.SamplerName, req.CFGScale, seeds[i], req.Width, req.Height, hash, model)
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
		"width": req.Width, "height": req.Height, "sampler_name": req.SamplerName,
		"cfg_scale": req.CFGScale, "steps": req.Steps, "batch_size": req.BatchSize,
		"restore_faces": false, "sd_model_name": model, "sd_model_hash": hash,
		"seed_resize_from_w": -1, "seed_resize_from_h": -1, "denoising_strength": nil,
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
