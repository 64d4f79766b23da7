// Package sdclient is the seam between Easel's workers and Stable Diffusion
// servers: the Backend interface and the request, progress and result types
// every backend kind (a1111, comfyui, fakesd) speaks.
package sdclient

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Request is one generation of Count images: text-to-image, or
// image-to-image when InitImage is set. It is the job's payload contract,
// shared by commands (which build it), the scheduler (which stores it as
// JSON) and the workers (which hand it to a Backend).
type Request struct {
	Prompt         string  `json:"prompt"`
	NegativePrompt string  `json:"negative_prompt,omitempty"`
	Width          int     `json:"width"`
	Height         int     `json:"height"`
	Steps          int     `json:"steps"`
	CFGScale       float64 `json:"cfg_scale"`
	// Seed is the seed of the first image; -1 asks the backend for a random one.
	Seed    int64  `json:"seed"`
	Sampler string `json:"sampler,omitempty"`
	Model   string `json:"model,omitempty"`
	// Count is the number of images (A1111 batch_size).
	Count int `json:"count"`
	// SubseedStrength (0–1) makes a variation of Seed's image with a random
	// subseed (A1111 subseed -1, subseed_strength).
	SubseedStrength float64 `json:"subseed_strength,omitempty"`
	// VariationOf names the earlier result a variation (SubseedStrength >
	// 0) is made from, so that a backend without subseeds (ComfyUI) can
	// run img2img of that image instead; nil for a variation asked for by
	// seed alone.
	VariationOf *ImageRef `json:"variation_of,omitempty"`
	// VariationSource is the image VariationOf names, read by the worker
	// from the blob store before the request reaches a backend (never in
	// the payload); nil when the request has no VariationOf or the image
	// is gone.
	VariationSource []byte `json:"-"`
	// Scheduler is the noise schedule ("karras", "normal", …; A1111 1.9+
	// `scheduler`, ComfyUI KSampler `scheduler`); "" for the backend's
	// default or the one implied by a legacy sampler name.
	Scheduler string `json:"scheduler,omitempty"`
	// LoRAs are applied in order (A1111 as <lora:name:weight> prompt tags,
	// ComfyUI as chained LoraLoader nodes).
	LoRAs []LoRA `json:"loras,omitempty"`
	// InitImage is the encoded source image of an img2img job; nil for
	// txt2img.
	InitImage []byte `json:"init_image,omitempty"`
	// InitImageBytes, when above 0, says the job's init image (of that
	// many bytes) is kept in Easel's blob store beside the job
	// (scheduler.SubmitRequest.InitImage), not in InitImage: the payload
	// stays small in Redis, and the worker reads the image back
	// (scheduler.Lease.InitImage) into InitImage before the request
	// reaches a backend.
	InitImageBytes int `json:"init_image_bytes,omitempty"`
	// DenoisingStrength (0–1) is how far img2img departs from InitImage
	// (A1111 denoising_strength, ComfyUI KSampler denoise). Default 0.75.
	DenoisingStrength float64 `json:"denoising_strength,omitempty"`
	// DistilledCFGScale is Forge's guidance for Flux models
	// (distilled_cfg_scale); 0 leaves the backend's default (3.5).
	DistilledCFGScale float64 `json:"distilled_cfg_scale,omitempty"`
}

// ImageRef names one image of a finished job: image Image (0-based) of
// job Job.
type ImageRef struct {
	Job   string `json:"job"`
	Image int    `json:"image"`
}

// LoRA is one low-rank adapter applied to a generation.
type LoRA struct {
	Name   string  `json:"name"`
	Weight float64 `json:"weight"`
}

// KindUpscale is UpscaleJob's Kind.
const KindUpscale = "upscale"

// UpscaleJob is the queued payload of an upscale job, as commands writes it
// and the worker reads it (a generation's payload is a Request): image
// SourceImage (0-based) of the finished job SourceJob enlarged by Factor.
// Prompt is the source job's, kept for display.
type UpscaleJob struct {
	// Kind is KindUpscale; a payload without it is a Request.
	Kind        string  `json:"kind"`
	Prompt      string  `json:"prompt"`
	SourceJob   string  `json:"source_job"`
	SourceImage int     `json:"source_image"`
	Factor      float64 `json:"factor"`
}

// UpscaleRequest enlarges one image.
type UpscaleRequest struct {
	// Image is the encoded source image.
	Image []byte
	// Factor is the scale, e.g. 2.
	Factor float64
	// Upscaler names the backend's upscaler ("" for the backend's default).
	Upscaler string
}

// Progress is one progress report while a generation runs.
type Progress struct {
	Step     int
	Steps    int
	Fraction float64 // 0..1
	ETA      time.Duration
	// Preview is the latest preview image (encoded, format sniffed), or nil.
	Preview *Image
}

// Image is one encoded image as the backend returned it.
type Image struct {
	Data []byte
	// Format is "png", "jpeg" or "webp", sniffed from the bytes.
	Format string
}

// Result is a finished generation.
type Result struct {
	Images []Image
	// Seeds holds the seed of each image, in order, as the backend ran it.
	Seeds []int64
	// Subseeds holds each image's variation subseed when the request had a
	// SubseedStrength (A1111 info.all_subseeds); nil otherwise. Reproducing
	// such an image needs its seed, subseed and the strength.
	Subseeds []int64
	// Info is the backend's free-form generation info (A1111's info JSON string).
	Info string
}

// Model is one checkpoint a backend can load.
type Model struct {
	Name  string `json:"name"`
	Title string `json:"title"`
	Hash  string `json:"hash,omitempty"`
}

// Catalog is what a backend offers: the names a request may use.
type Catalog struct {
	Models []Model `json:"models"`
	// Loaded is the checkpoint loaded now ("" when unknown).
	Loaded     string   `json:"loaded,omitempty"`
	Samplers   []string `json:"samplers"`
	Schedulers []string `json:"schedulers,omitempty"`
	LoRAs      []string `json:"loras,omitempty"`
	Upscalers  []string `json:"upscalers,omitempty"`
}

// Backend is one Stable Diffusion server able to run one job at a time.
//
// Servers are shared with other clients (their web UI, other bots), so an
// implementation names its own task, reads progress for that task only, and
// never interrupts a task that is not its own.
type Backend interface {
	// Generate runs req and calls progress (never concurrently) while it runs.
	// When ctx is canceled it stops its own task (removing it from the
	// server's queue, or interrupting it once it runs) and returns ctx's
	// error.
	Generate(ctx context.Context, req Request, progress func(Progress)) (*Result, error)
	// Upscale enlarges one image (A1111 extras, a ComfyUI upscale workflow).
	Upscale(ctx context.Context, req UpscaleRequest) (*Result, error)
	// Catalog lists the models, samplers, schedulers, LoRAs and upscalers
	// the server knows, and its loaded model.
	Catalog(ctx context.Context) (*Catalog, error)
	// Health returns nil when the server answers its API.
	Health(ctx context.Context) error
}

// Timeouts bound each phase of a job on a backend, so a hung server costs
// one phase's timeout rather than a lease renewed forever. Zero fields take
// the defaults of DefaultTimeouts.
type Timeouts struct {
	// Connect bounds establishing a connection and each short API call
	// (catalog, health, cancel). Default 10s.
	Connect time.Duration `yaml:"connect"`
	// Queue bounds the wait in the backend's own queue behind other
	// clients' tasks before ours starts. Default 10m.
	Queue time.Duration `yaml:"queue"`
	// ModelLoad bounds loading a checkpoint before the first step.
	// Default 5m.
	ModelLoad time.Duration `yaml:"model_load"`
	// Stall is how long a running task may go without a step advance
	// before the attempt is abandoned (ErrStalled). Default 60s.
	Stall time.Duration `yaml:"stall"`
}

// DefaultTimeouts are the timeouts a zero Timeouts field takes.
var DefaultTimeouts = Timeouts{Connect: 10 * time.Second, Queue: 10 * time.Minute, ModelLoad: 5 * time.Minute, Stall: 60 * time.Second}

// WithDefaults returns t with zero fields set from DefaultTimeouts.
func (t Timeouts) WithDefaults() Timeouts {
	if t.Connect <= 0 {
		t.Connect = DefaultTimeouts.Connect
	}
	if t.Queue <= 0 {
		t.Queue = DefaultTimeouts.Queue
	}
	if t.ModelLoad <= 0 {
		t.ModelLoad = DefaultTimeouts.ModelLoad
	}
	if t.Stall <= 0 {
		t.Stall = DefaultTimeouts.Stall
	}
	return t
}

// ErrUnavailable marks a backend that could not be reached (connection refused,
// timeout, 502/503). Callers retry these.
var ErrUnavailable = errors.New("backend unavailable")

// ErrStalled marks an attempt abandoned because the backend stopped making
// progress (no step advance for Timeouts.Stall, or a phase timeout). The
// backend's own task was interrupted; the job is retried, preferably on
// another backend.
var ErrStalled = errors.New("backend stalled")

// PermanentError is a failure a retry cannot fix: a 4xx answer, a
// deterministic server error (an unknown upscaler), or a result in a format
// Easel cannot decode. The job fails without retry and the backend stays in
// rotation.
type PermanentError struct {
	// Reason is the message for the user, naming the setting to change
	// where there is one.
	Reason string
	Err    error
}

func (e *PermanentError) Error() string {
	if e.Err != nil {
		return e.Reason + ": " + e.Err.Error()
	}
	return e.Reason
}

func (e *PermanentError) Unwrap() error { return e.Err }

// HTTPError is a non-2xx answer from a backend, with the server's message.
type HTTPError struct {
	Status  int
	Message string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("backend answered HTTP %d: %s", e.Status, e.Message)
}

// SniffFormat names an encoded image's format from its magic bytes:
// "png", "jpeg", "webp", or "" when unknown.
func SniffFormat(b []byte) string {
	switch {
	case len(b) >= 8 && string(b[:8]) == "\x89PNG\r\n\x1a\n":
		return "png"
	case len(b) >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF:
		return "jpeg"
	case len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP":
		return "webp"
	}
	return ""
}
