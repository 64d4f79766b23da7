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

// Request is one generation: a text-to-image job of Count images.
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
	// Seeds holds the seed of each image, in order.
	Seeds []int64
	// Info is the backend's free-form generation info (A1111's info JSON string).
	Info string
}

// Model is one checkpoint a backend can load.
type Model struct {
	Name  string `json:"name"`
	Title string `json:"title"`
	Hash  string `json:"hash,omitempty"`
}

// Backend is one Stable Diffusion server able to run one job at a time.
type Backend interface {
	// Generate runs req and calls progress (never concurrently) while it runs.
	// When ctx is canceled it interrupts the server and returns ctx's error.
	Generate(ctx context.Context, req Request, progress func(Progress)) (*Result, error)
	// Upscale enlarges one image (A1111 extras).
	Upscale(ctx context.Context, req UpscaleRequest) (*Result, error)
	// Interrupt asks the server to stop the running generation.
	Interrupt(ctx context.Context) error
	// Models lists the checkpoints the server knows.
	Models(ctx context.Context) ([]Model, error)
	// Samplers lists the sampler names the server accepts.
	Samplers(ctx context.Context) ([]string, error)
	// Health returns nil when the server answers.
	Health(ctx context.Context) error
}

// ErrUnavailable marks a backend that could not be reached (connection refused,
// timeout, 502/503). Callers retry these.
var ErrUnavailable = errors.New("backend unavailable")

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
