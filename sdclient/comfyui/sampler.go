package comfyui

import "strings"

// Defaults for a request that names no sampler or scheduler: the values
// ComfyUI's own KSampler widget starts with.
const (
	defaultSampler   = "euler"
	defaultScheduler = "normal"
)

// a1111Samplers maps AUTOMATIC1111 sampler names (lower-cased, without a
// schedule suffix) to ComfyUI KSampler sampler_name values (comfy/samplers.py
// KSAMPLER_NAMES). A1111's names come from modules/sd_samplers_kdiffusion.py.
var a1111Samplers = map[string]string{
	"euler":              "euler",
	"euler a":            "euler_ancestral",
	"lms":                "lms",
	"heun":               "heun",
	"dpm2":               "dpm_2",
	"dpm2 a":             "dpm_2_ancestral",
	"dpm++ 2s a":         "dpmpp_2s_ancestral",
	"dpm++ 2m":           "dpmpp_2m",
	"dpm++ sde":          "dpmpp_sde",
	"dpm++ 2m sde":       "dpmpp_2m_sde",
	"dpm++ 2m sde gpu":   "dpmpp_2m_sde_gpu",
	"dpm++ 3m sde":       "dpmpp_3m_sde",
	"dpm fast":           "dpm_fast",
	"dpm adaptive":       "dpm_adaptive",
	"ddim":               "ddim",
	"ddpm":               "ddpm",
	"unipc":              "uni_pc",
	"lcm":                "lcm",
	"heunpp2":            "heunpp2",
	"ipndm":              "ipndm",
	"deis":               "deis",
	"euler cfg++":        "euler_cfg_pp",
	"euler a cfg++":      "euler_ancestral_cfg_pp",
	"dpm++ 2m cfg++":     "dpmpp_2m_cfg_pp",
	"dpm++ 2s a cfg++":   "dpmpp_2s_ancestral_cfg_pp",
	"dpm++ 3m sde gpu":   "dpmpp_3m_sde_gpu",
	"euler ancestral":    "euler_ancestral",
	"dpm++ 2s ancestral": "dpmpp_2s_ancestral",
}

// a1111Schedulers maps A1111 schedule names — the suffix of a legacy
// sampler name ("DPM++ 2M Karras") or the 1.9+ scheduler field's label —
// to ComfyUI scheduler values (comfy/samplers.py SCHEDULER_NAMES).
// "automatic" leaves the choice to the caller's default.
var a1111Schedulers = map[string]string{
	"automatic":        "",
	"uniform":          "normal",
	"normal":           "normal",
	"karras":           "karras",
	"exponential":      "exponential",
	"polyexponential":  "exponential",
	"sgm uniform":      "sgm_uniform",
	"simple":           "simple",
	"ddim":             "ddim_uniform",
	"beta":             "beta",
	"kl optimal":       "kl_optimal",
	"linear quadratic": "linear_quadratic",
}

// mapSampler turns a request's sampler and scheduler into ComfyUI's
// sampler_name and scheduler. It accepts A1111 names ("DPM++ 2M Karras",
// "Euler a", case-insensitive; a schedule suffix picks the scheduler) and
// ComfyUI's own names ("dpmpp_2m"), which pass through unchanged. An
// explicit scheduler wins over one implied by the sampler name. Names it
// does not know pass through too: the server validates them against its
// lists and answers 400 naming the input.
func mapSampler(sampler, scheduler string) (string, string) {
	name, implied, best := sampler, "", 0
	key := strings.ToLower(strings.Join(strings.Fields(sampler), " "))
	if s, ok := a1111Samplers[key]; ok {
		name = s
	} else {
		// A legacy name with a schedule suffix: the longest known suffix.
		for suffix, sched := range a1111Schedulers {
			base, ok := strings.CutSuffix(key, " "+suffix)
			if !ok || sched == "" {
				continue
			}
			if s, ok := a1111Samplers[base]; ok && len(suffix) > best {
				name, implied, best = s, sched, len(suffix)
			}
		}
	}
	if name == "" {
		name = defaultSampler
	}
	sched := implied
	if scheduler != "" {
		sched = scheduler
		if s, ok := a1111Schedulers[strings.ToLower(strings.Join(strings.Fields(scheduler), " "))]; ok {
			sched = s
		}
	}
	if sched == "" {
		sched = defaultScheduler
	}
	return name, sched
}
