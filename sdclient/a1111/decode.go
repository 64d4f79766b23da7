package a1111

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/easelbot/easel/sdclient"
)

// txt2imgAnswer is A1111's TextToImageResponse. Info is a JSON document
// encoded as a string (Processed.js()); a few forks send the object itself.
type txt2imgAnswer struct {
	Images []string        `json:"images"`
	Info   json.RawMessage `json:"info"`
}

// generationInfo is the part of the info document Easel reads.
type generationInfo struct {
	Seed     *int64  `json:"seed"`
	AllSeeds []int64 `json:"all_seeds"`
	// IndexOfFirstImage is 1 when a grid of the batch comes first.
	IndexOfFirstImage int `json:"index_of_first_image"`
}

// decodeTxt2Img turns a txt2img answer into a result of at most want images
// (all when want <= 0). Images after the batch (ControlNet maps and other
// script output) and a leading grid are dropped. Seeds come from all_seeds,
// else count up from seed, else from reqSeed, else are -1 (unknown).
func decodeTxt2Img(raw []byte, want int, reqSeed int64) (*sdclient.Result, error) {
	var a txt2imgAnswer
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, fmt.Errorf("answer is not TextToImageResponse JSON: %w", err)
	}
	info := infoText(a.Info)
	var gi generationInfo
	if info != "" {
		_ = json.Unmarshal([]byte(info), &gi) // info is a bonus; images are what matter
	}
	images := a.Images
	if gi.IndexOfFirstImage > 0 && gi.IndexOfFirstImage < len(images) {
		images = images[gi.IndexOfFirstImage:]
	}
	if want > 0 && len(images) > want {
		images = images[:want]
	}
	if len(images) == 0 {
		return nil, errors.New("answer has no images")
	}
	base := reqSeed
	if gi.Seed != nil {
		base = *gi.Seed
	}
	res := &sdclient.Result{Info: info, Images: make([]sdclient.Image, len(images)), Seeds: make([]int64, len(images))}
	for i, s := range images {
		img, err := decodeImage(s)
		if err != nil {
			return nil, fmt.Errorf("image %d: %w", i, err)
		}
		res.Images[i] = img
		switch {
		case i < len(gi.AllSeeds):
			res.Seeds[i] = gi.AllSeeds[i]
		case base >= 0:
			res.Seeds[i] = base + int64(i)
		default:
			res.Seeds[i] = -1
		}
	}
	return res, nil
}

// infoText returns the info document as text, whether it came as a JSON
// string or as an object.
func infoText(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	if len(v) > 0 && v[0] == '{' {
		return string(v)
	}
	return ""
}

// decodeImage decodes one base64 image, tolerating a "data:image/...;base64,"
// prefix and missing padding, and checks it is PNG, JPEG or WebP.
func decodeImage(s string) (sdclient.Image, error) {
	if rest, ok := strings.CutPrefix(s, "data:"); ok {
		if _, data, ok := strings.Cut(rest, ";base64,"); ok {
			s = data
		}
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		var err2 error
		if b, err2 = base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "=")); err2 != nil {
			return sdclient.Image{}, fmt.Errorf("not base64: %w", err)
		}
	}
	f := sdclient.SniffFormat(b)
	if f == "" {
		return sdclient.Image{}, errors.New("not a PNG, JPEG or WebP image")
	}
	return sdclient.Image{Data: b, Format: f}, nil
}

// progressAnswer is A1111's ProgressResponse. State numbers are read as
// float64 so a fork that sends 3.0 for 3 still parses.
type progressAnswer struct {
	Progress    float64 `json:"progress"`
	ETARelative float64 `json:"eta_relative"`
	State       struct {
		Skipped       bool    `json:"skipped"`
		Interrupted   bool    `json:"interrupted"`
		Job           string  `json:"job"`
		JobCount      float64 `json:"job_count"`
		JobNo         float64 `json:"job_no"`
		SamplingStep  float64 `json:"sampling_step"`
		SamplingSteps float64 `json:"sampling_steps"`
	} `json:"state"`
	// CurrentImage is the latest live preview in base64, or null.
	CurrentImage *string `json:"current_image"`
	TextInfo     *string `json:"textinfo"`
}

// progressPoint is what decides whether a poll is news: the ETA moves on
// every poll and is left out.
type progressPoint struct {
	jobNo, jobCount, step, steps int
}

// readProgress maps a progress answer to a report. ok is false while the
// server is idle (job_count 0) or still loading (job_count -1, when the
// sampling fields are left over from the previous job); the preview is left
// for the caller, which decodes it only when it changed.
func readProgress(a progressAnswer) (p sdclient.Progress, at progressPoint, ok bool) {
	at = progressPoint{
		jobNo: toInt(a.State.JobNo), jobCount: toInt(a.State.JobCount),
		step: toInt(a.State.SamplingStep), steps: toInt(a.State.SamplingSteps),
	}
	if at.jobCount <= 0 || at.steps <= 0 {
		return sdclient.Progress{}, at, false
	}
	return sdclient.Progress{
		Step:     min(max(at.step, 0), at.steps),
		Steps:    at.steps,
		Fraction: clamp(a.Progress, 0, 1),
		ETA:      time.Duration(clamp(a.ETARelative, 0, (24*time.Hour).Seconds()) * float64(time.Second)),
	}, at, true
}

func toInt(f float64) int {
	if math.IsNaN(f) {
		return 0
	}
	return int(clamp(f, math.MinInt32, math.MaxInt32))
}

func clamp(f, lo, hi float64) float64 {
	if math.IsNaN(f) {
		return lo
	}
	return min(max(f, lo), hi)
}
