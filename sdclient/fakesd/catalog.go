package fakesd

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// modelHash is a checkpoint's sha256, made up from its name.
func modelHash(name string) string {
	sum := sha256.Sum256([]byte("fakesd checkpoint " + name))
	return hex.EncodeToString(sum[:])
}

// shortHash is A1111's shorthash: the sha256's first 10 hex digits.
func shortHash(name string) string { return modelHash(name)[:10] }

// modelTitle is A1111's checkpoint title: "file.safetensors [shorthash]".
func modelTitle(name string) string {
	return fmt.Sprintf("%s.safetensors [%s]", name, shortHash(name))
}

// resolveModel finds a checkpoint by any name A1111 accepts for it: short
// name, title, file name or short hash.
func (s *Server) resolveModel(name string) (string, bool) {
	for _, m := range s.cfg.Models {
		if name == m || name == modelTitle(m) || name == m+".safetensors" || name == shortHash(m) {
			return m, true
		}
	}
	return "", false
}

// samplerAndScheduler is sd_samplers.get_sampler_and_scheduler (A1111
// 1.9+): a legacy name ending in a scheduler's label or name ("DPM++ 2M
// Karras") is split into sampler and scheduler, and an unknown sampler
// silently becomes the first one (the default). An explicit scheduler wins
// over one implied by the name; an unknown scheduler becomes "automatic".
func (s *Server) samplerAndScheduler(samplerName, schedulerName string) (sampler, scheduler string) {
	name := cmpOr(samplerName, s.cfg.Samplers[0])
	implied := ""
	for _, sc := range s.cfg.Schedulers {
		for _, opt := range []string{sc.Label, sc.Name} {
			if rest, ok := strings.CutSuffix(name, " "+opt); ok && s.sampler(rest) != "" {
				name, implied = rest, sc.Name
			}
		}
	}
	sampler = s.sampler(name)
	if sampler == "" {
		sampler = s.cfg.Samplers[0]
	}
	scheduler = "automatic"
	for _, sc := range s.cfg.Schedulers {
		if schedulerName == sc.Name || schedulerName == sc.Label {
			return sampler, sc.Name
		}
		if implied == sc.Name {
			scheduler = sc.Name
		}
	}
	return sampler, scheduler
}

// sampler resolves a sampler name or alias to its name; "" if unknown.
func (s *Server) sampler(name string) string {
	for _, n := range s.cfg.Samplers {
		if name == n || name == samplerAlias(n) {
			return n
		}
	}
	return ""
}

// schedulers serves GET /sdapi/v1/schedulers (api.py get_schedulers).
func (s *Server) schedulers(w http.ResponseWriter, _ *http.Request) {
	out := make([]map[string]any, 0, len(s.cfg.Schedulers))
	for _, sc := range s.cfg.Schedulers {
		out = append(out, map[string]any{"name": sc.Name, "label": sc.Label, "aliases": nil,
			"default_rho": -1, "need_inner_model": false})
	}
	writeJSON(w, http.StatusOK, out)
}

// loras serves GET /sdapi/v1/loras, the route the built-in Lora extension
// adds (extensions-builtin/Lora/lora_script.py api_networks).
func (s *Server) loras(w http.ResponseWriter, _ *http.Request) {
	out := make([]map[string]any, 0, len(s.cfg.LoRAs))
	for _, n := range s.cfg.LoRAs {
		out = append(out, map[string]any{"name": n, "alias": n, "path": "/models/Lora/" + n + ".safetensors", "metadata": map[string]any{}})
	}
	writeJSON(w, http.StatusOK, out)
}

// upscalers serves GET /sdapi/v1/upscalers (api.py get_upscalers).
func (s *Server) upscalers(w http.ResponseWriter, _ *http.Request) {
	out := make([]map[string]any, 0, len(s.cfg.Upscalers))
	for _, n := range s.cfg.Upscalers {
		out = append(out, map[string]any{"name": n, "model_name": nil, "model_path": nil, "model_url": nil, "scale": 4})
	}
	writeJSON(w, http.StatusOK, out)
}

// samplerAlias is the k-diffusion style alias A1111 lists for a sampler:
// "DPM++ 2M Karras" is "k_dpmpp_2m_karras".
func samplerAlias(name string) string {
	r := strings.NewReplacer("++", "pp", " ", "_", "-", "_")
	return "k_" + strings.ToLower(r.Replace(name))
}

// sdModels serves GET /sdapi/v1/sd-models.
func (s *Server) sdModels(w http.ResponseWriter, _ *http.Request) {
	out := make([]map[string]any, 0, len(s.cfg.Models))
	for _, m := range s.cfg.Models {
		out = append(out, map[string]any{
			"title": modelTitle(m), "model_name": m, "hash": shortHash(m), "sha256": modelHash(m),
			"filename": "/models/Stable-diffusion/" + m + ".safetensors", "config": nil,
		})
	}
	writeJSON(w, http.StatusOK, out)
}

// samplers serves GET /sdapi/v1/samplers.
func (s *Server) samplers(w http.ResponseWriter, _ *http.Request) {
	out := make([]map[string]any, 0, len(s.cfg.Samplers))
	for _, n := range s.cfg.Samplers {
		out = append(out, map[string]any{"name": n, "aliases": []string{samplerAlias(n)}, "options": map[string]string{}})
	}
	writeJSON(w, http.StatusOK, out)
}

// getOptions serves GET /sdapi/v1/options: the options set through POST,
// over a few A1111 defaults, with the loaded checkpoint's title.
func (s *Server) getOptions(w http.ResponseWriter, _ *http.Request) {
	out := map[string]any{
		"samples_format": "png", "jpeg_quality": 80, "live_previews_enable": s.cfg.PreviewEvery > 0,
		"show_progress_every_n_steps": s.cfg.PreviewEvery, "show_progress_type": "Approx NN",
	}
	s.mu.Lock()
	for k, v := range s.opts {
		out[k] = v
	}
	out["sd_model_checkpoint"] = modelTitle(s.model)
	out["sd_checkpoint_hash"] = modelHash(s.model)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// setOptions serves POST /sdapi/v1/options. An unknown checkpoint fails the
// way A1111's set_config does: RuntimeError, HTTP 500.
func (s *Server) setOptions(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return
	}
	var opts map[string]any
	if err := json.Unmarshal(body, &opts); err != nil {
		writeValidation(w, []validationError{jsonError(err)})
		return
	}
	model := ""
	if v, ok := opts["sd_model_checkpoint"]; ok {
		name, _ := v.(string)
		if model, ok = s.resolveModel(name); !ok {
			writeException(w, "RuntimeError", fmt.Sprintf("model '%v' not found", v))
			return
		}
		delete(opts, "sd_model_checkpoint")
	}
	s.mu.Lock()
	if model != "" {
		s.model = model
	}
	for k, v := range opts {
		s.opts[k] = v
	}
	s.notify()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, nil)
}
