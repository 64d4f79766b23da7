package commands

import (
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/sdclient"
)

// Imagine is a user's generation request, as every adapter collects it.
// Zero values take the defaults of Limits.
type Imagine struct {
	Prompt         string  `json:"prompt"`
	NegativePrompt string  `json:"negative_prompt,omitempty"`
	Width          int     `json:"width,omitempty"`
	Height         int     `json:"height,omitempty"`
	Steps          int     `json:"steps,omitempty"`
	CFGScale       float64 `json:"cfg_scale,omitempty"`
	Seed           *int64  `json:"seed,omitempty"`
	Sampler        string  `json:"sampler,omitempty"`
	Model          string  `json:"model,omitempty"`
	Count          int     `json:"count,omitempty"`
	// VariationStrength (0–1) blends a random variation into the seed's
	// image: a variation of an earlier image keeps its seed and sets this.
	VariationStrength float64 `json:"variation_strength,omitempty"`
	// VariationOf is the image a variation (Rerun) is made from: a backend
	// without subseeds (ComfyUI) runs img2img of it instead.
	VariationOf *sdclient.ImageRef `json:"-"`
	// Scheduler is the noise schedule ("karras", …); "" for the backend's
	// default or the one a legacy sampler name implies.
	Scheduler string `json:"scheduler,omitempty"`
	// LoRAs are applied in order; names are checked against the catalog,
	// weights against MinLoRAWeight..MaxLoRAWeight.
	LoRAs []sdclient.LoRA `json:"loras,omitempty"`
	// InitImage makes the request image-to-image: an http(s) URL (fetched
	// under the private-address rules, Limits.MaxInitImageBytes and
	// Limits.InitImageTimeout), a data: URL or plain base64. A job's payload
	// only says the image is kept in the blob store beside the job
	// (sdclient.Request.InitImageBytes): a rerun reads it from there
	// (InitImageFrom).
	InitImage string `json:"init_image,omitempty"`
	// InitImageFrom is the id of an earlier job whose stored init image
	// this request uses (a reroll or variation of an img2img job); it is
	// read from the blob store and checked like any other.
	InitImageFrom string `json:"-"`
	// InitImageData is an init image an adapter already downloaded (a
	// Slack file needs the bot token); it wins over InitImage and is
	// checked the same way.
	InitImageData []byte `json:"-"`
	// InitImageField names the init image in errors as the adapter calls it
	// ("image" on Discord); default "init_image".
	InitImageField string `json:"-"`
	// DenoisingStrength (0 < s ≤ 1) is how far img2img departs from the
	// init image; 0 takes DefaultDenoisingStrength. Only with an init image.
	DenoisingStrength float64 `json:"denoising_strength,omitempty"`
	// DistilledCFGScale is the guidance of guidance-distilled models such
	// as Flux: Forge's distilled_cfg_scale, ComfyUI's FluxGuidance node.
	// 0 leaves the backend's default (3.5); at most MaxDistilledCFG.
	DistilledCFGScale float64 `json:"distilled_cfg_scale,omitempty"`
}

// MaxDistilledCFG is the largest distilled_cfg_scale a request may ask
// for: the top of Forge's "Distilled CFG Scale" slider (modules/ui.py:
// 0 to 30, default 3.5).
const MaxDistilledCFG = 30

// DefaultDenoisingStrength is an img2img request's denoising strength when
// it names none.
const DefaultDenoisingStrength = 0.75

// Limits are the fixed request limits and defaults; the per-tenant ones
// (steps, pixels, images, models, samplers, deny-list) come from the policy.
type Limits struct {
	// MaxPromptLength caps prompt and negative prompt, in characters. Default 2000.
	MaxPromptLength int `yaml:"max_prompt_length"`
	// MinSize and MaxSize bound width and height in pixels (multiples of 8).
	// Defaults 64 and 2048.
	MinSize int `yaml:"min_size"`
	MaxSize int `yaml:"max_size"`
	// MinCFG and MaxCFG bound the guidance scale. Defaults 1 and 30.
	MinCFG float64 `yaml:"min_cfg"`
	MaxCFG float64 `yaml:"max_cfg"`
	// DefaultWidth, DefaultHeight (pixels), DefaultSteps, DefaultCFG apply
	// when a request leaves them out. Defaults 512, 512, 20, 7.
	DefaultWidth  int     `yaml:"default_width"`
	DefaultHeight int     `yaml:"default_height"`
	DefaultSteps  int     `yaml:"default_steps"`
	DefaultCFG    float64 `yaml:"default_cfg"`
	// CostUnitSteps and CostUnitPixels define one unit of GPU work for fair
	// scheduling: a job costs steps × width × height × images /
	// (CostUnitSteps × CostUnitPixels). Defaults 20 and 262144 (512×512).
	CostUnitSteps  int `yaml:"cost_unit_steps"`
	CostUnitPixels int `yaml:"cost_unit_pixels"`
	// MaxInitImageBytes caps an img2img source image (an upload, a fetched
	// URL or decoded base64), in bytes. The image is kept in the image
	// store (storage.blobs) beside the job, not in Redis (except with the
	// demo's redis store). Default 8388608 (8 MiB).
	MaxInitImageBytes int64 `yaml:"max_init_image_bytes"`
	// InitImageTimeout bounds fetching an img2img source image from a URL
	// (connect, headers and body). Default 15s.
	InitImageTimeout time.Duration `yaml:"init_image_timeout"`
	// AllowPrivateImageURLs lets init images be fetched from loopback and
	// private addresses (never allow on a shared server: users could read
	// your network). Default false.
	AllowPrivateImageURLs bool `yaml:"allow_private_image_urls"`
	// NSFWModels tags checkpoints as NSFW: they run only where NSFW is
	// allowed (an age-restricted Discord channel, a DM when
	// discord.nsfw_in_dms is on, a Slack channel an admin allowed).
	// Names match like the catalog's (no extension or [hash] needed).
	// Default: none.
	NSFWModels []string `yaml:"nsfw_models"`
	// NSFWLoRAs tags LoRAs as NSFW, with the same rule as NSFWModels.
	// Default: none.
	NSFWLoRAs []string `yaml:"nsfw_loras"`
}

// WithDefaults returns l with its zero fields set to their defaults, as New
// uses it (for `easel config print`).
func (l Limits) WithDefaults() (Limits, error) {
	err := l.fill()
	return l, err
}

func (l *Limits) fill() error {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&l.MaxPromptLength, 2000)
	def(&l.MinSize, 64)
	def(&l.MaxSize, 2048)
	def(&l.DefaultWidth, 512)
	def(&l.DefaultHeight, 512)
	def(&l.DefaultSteps, 20)
	def(&l.CostUnitSteps, 20)
	def(&l.CostUnitPixels, 512*512)
	if l.MinCFG == 0 {
		l.MinCFG = 1
	}
	if l.MaxCFG == 0 {
		l.MaxCFG = 30
	}
	if l.DefaultCFG == 0 {
		l.DefaultCFG = 7
	}
	if l.MaxInitImageBytes == 0 {
		l.MaxInitImageBytes = 8 << 20
	}
	if l.InitImageTimeout == 0 {
		l.InitImageTimeout = 15 * time.Second
	}
	switch {
	case l.MinSize < 8 || l.MaxSize < l.MinSize || l.MaxSize > 8192:
		return &ValidationError{Field: "limits.max_size", Message: fmt.Sprintf("min_size..max_size must lie within 8..8192 (got %d..%d)", l.MinSize, l.MaxSize)}
	case l.MaxPromptLength < 1:
		return &ValidationError{Field: "limits.max_prompt_length", Message: "must be at least 1"}
	case l.MinCFG > l.MaxCFG:
		return &ValidationError{Field: "limits.min_cfg", Message: "must not exceed max_cfg"}
	case l.CostUnitSteps < 1 || l.CostUnitPixels < 1:
		return &ValidationError{Field: "limits.cost_unit_steps", Message: "cost units must be positive"}
	case l.MaxInitImageBytes < 1024 || l.MaxInitImageBytes > 64<<20:
		return &ValidationError{Field: "limits.max_init_image_bytes", Message: fmt.Sprintf("must lie within 1024..%d (got %d)", 64<<20, l.MaxInitImageBytes)}
	case l.InitImageTimeout < 0:
		return &ValidationError{Field: "limits.init_image_timeout", Message: "must be positive"}
	}
	return nil
}

// Validate fills defaults into im and checks it against the limits and the
// tenant's policy p.
func (l Limits) Validate(im *Imagine, p scheduler.Policy) error {
	d := scheduler.DefaultPolicy().Over(p)
	for _, f := range []struct{ name, v string }{{"prompt", im.Prompt}, {"negative_prompt", im.NegativePrompt},
		{"sampler", im.Sampler}, {"model", im.Model}, {"scheduler", im.Scheduler}} {
		if !utf8.ValidString(f.v) {
			return Invalid(f.name, "v_utf8")
		}
		if strings.ContainsRune(f.v, 0) {
			return Invalid(f.name, "v_nul")
		}
	}
	im.Prompt = strings.TrimSpace(im.Prompt)
	if im.Prompt == "" {
		return Invalid("prompt", "v_required")
	}
	if n := utf8.RuneCountInString(im.Prompt); n > l.MaxPromptLength {
		return Invalid("prompt", "v_max_chars_got", l.MaxPromptLength, n)
	}
	if n := utf8.RuneCountInString(im.NegativePrompt); n > l.MaxPromptLength {
		return Invalid("negative_prompt", "v_max_chars_got", l.MaxPromptLength, n)
	}
	if w := d.DeniedWord(im.Prompt); w != "" {
		return Invalid("prompt", "v_word_not_allowed", w)
	}
	if im.Width == 0 {
		im.Width = l.DefaultWidth
	}
	if im.Height == 0 {
		im.Height = l.DefaultHeight
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"width", im.Width}, {"height", im.Height}} {
		if f.v < l.MinSize || f.v > l.MaxSize {
			return Invalid(f.name, "v_between_int", l.MinSize, l.MaxSize, f.v)
		}
		if f.v%8 != 0 {
			return Invalid(f.name, "v_multiple_of_8", f.v)
		}
	}
	if px := im.Width * im.Height; px > *d.MaxPixels {
		return Invalid("width", "v_max_pixels", *d.MaxPixels, im.Width, im.Height)
	}
	if im.Steps == 0 {
		im.Steps = min(l.DefaultSteps, *d.MaxSteps)
	}
	if im.Steps < 1 || im.Steps > *d.MaxSteps {
		return Invalid("steps", "v_between_int", 1, *d.MaxSteps, im.Steps)
	}
	if im.CFGScale == 0 {
		im.CFGScale = l.DefaultCFG
	}
	if math.IsNaN(im.CFGScale) || im.CFGScale < l.MinCFG || im.CFGScale > l.MaxCFG {
		return Invalid("cfg_scale", "v_between_float", l.MinCFG, l.MaxCFG, im.CFGScale)
	}
	if im.Count == 0 {
		im.Count = 1
	}
	if im.Count < 1 || im.Count > *d.MaxImages {
		return Invalid("count", "v_between_int", 1, *d.MaxImages, im.Count)
	}
	if im.Seed == nil {
		s := int64(-1)
		im.Seed = &s
	}
	if *im.Seed < -1 || *im.Seed > math.MaxUint32 {
		return Invalid("seed", "v_seed", uint32(math.MaxUint32), *im.Seed)
	}
	if len(d.AllowedModels) > 0 && im.Model != "" && !contains(d.AllowedModels, im.Model) {
		return Invalid("model", "v_one_of", strings.Join(d.AllowedModels, ", "), im.Model)
	}
	if len(d.AllowedSamplers) > 0 && im.Sampler != "" && !contains(d.AllowedSamplers, im.Sampler) {
		return Invalid("sampler", "v_one_of", strings.Join(d.AllowedSamplers, ", "), im.Sampler)
	}
	if math.IsNaN(im.DistilledCFGScale) || im.DistilledCFGScale < 0 || im.DistilledCFGScale > MaxDistilledCFG {
		return Invalid("distilled_cfg_scale", "v_gt0_max", MaxDistilledCFG, im.DistilledCFGScale)
	}
	if math.IsNaN(im.VariationStrength) || im.VariationStrength < 0 || im.VariationStrength > 1 {
		return Invalid("variation_strength", "v_between_float", 0.0, 1.0, im.VariationStrength)
	}
	if len(im.Model) > 200 {
		return Invalid("model", "v_max_chars", 200)
	}
	if len(im.Sampler) > 100 {
		return Invalid("sampler", "v_max_chars", 100)
	}
	if len(im.Scheduler) > 100 {
		return Invalid("scheduler", "v_max_chars", 100)
	}
	if err := checkLoRAs(im.LoRAs); err != nil {
		return err
	}
	hasInit := im.InitImage != "" || im.InitImageData != nil || im.InitImageFrom != ""
	switch {
	case math.IsNaN(im.DenoisingStrength) || im.DenoisingStrength < 0 || im.DenoisingStrength > 1:
		return Invalid("denoising_strength", "v_gt0_max", 1, im.DenoisingStrength)
	case im.DenoisingStrength != 0 && !hasInit:
		return Invalid("denoising_strength", "v_img2img_only")
	case hasInit && im.DenoisingStrength == 0:
		im.DenoisingStrength = DefaultDenoisingStrength
	}
	return nil
}

// Cost is the job's GPU work estimate in cost units: steps × width × height
// × images, normalised by the limits' cost unit (by default one 512×512
// image at 20 steps costs 1).
func (l Limits) Cost(im *Imagine) float64 {
	return float64(im.Steps) * float64(im.Width) * float64(im.Height) * float64(max(im.Count, 1)) /
		(float64(l.CostUnitSteps) * float64(l.CostUnitPixels))
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
