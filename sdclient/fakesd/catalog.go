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

func (s *Server) knownSampler(name string) bool {
	for _, n := range s.cfg.Samplers {
		if name == n || name == samplerAlias(n) {
			return true
		}
	}
	return false
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
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, nil)
}
