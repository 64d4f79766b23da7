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
	Seed        *int64  `json:"seed"`
	AllSeeds    []int64 `json:"all_seeds"`
	Subseed     *int64  `json:"subseed"`
	AllSubseeds []int64 `json:"all_subseeds"`
	// IndexOfFirstImage is 1 when a grid of the batch comes first.
	IndexOfFirstImage int `json:"index_of_first_image"`
}

// decodeGeneration turns a txt2img or img2img answer into a result of at
// most want images (all when want <= 0). Images after the batch (ControlNet
// maps and other script output, Forge's extras) and a leading grid are
// dropped. Seeds come from all_seeds, else count up from seed, else from
// reqSeed, else are -1 (unknown). With variation, Subseeds come from
// all_subseeds (else count up from subseed): a variation's images share
// the base seed and differ by subseed (processing.py), so both are needed
// to reproduce one. An image in a format Easel cannot use (SD.Next's jxl,
// tiff, jp2) is an *sdclient.PermanentError naming the setting to change.
func decodeGeneration(raw []byte, want int, reqSeed int64, variation bool) (*sdclient.Result, error) {
	var a txt2imgAnswer
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, fmt.Errorf("answer is not TextToImageResponse JSON: %w", err)
	}
	info := infoText(a.Info)
	gi := parseInfo(info)
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
	if variation {
		res.Subseeds = make([]int64, len(images))
	}
	for i, s := range images {
		img, err := decodeImage(s)
		if err != nil {
			return nil, fmt.Errorf("image %d: %w", i, err)
		}
		res.Images[i] = img
		switch {
		case i < len(gi.AllSeeds):
			res.Seeds[i] = gi.AllSeeds[i]
		case variation && base >= 0:
			res.Seeds[i] = base
		case base >= 0:
			res.Seeds[i] = base + int64(i)
		default:
			res.Seeds[i] = -1
		}
		if variation {
			switch {
			case i < len(gi.AllSubseeds):
				res.Subseeds[i] = gi.AllSubseeds[i]
			case gi.Subseed != nil && *gi.Subseed >= 0:
				res.Subseeds[i] = *gi.Subseed + int64(i)
			default:
				res.Subseeds[i] = -1
			}
		}
	}
	return res, nil
}

// parseInfo reads the info document; a malformed one reads as empty (the
// images are what matter).
func parseInfo(info string) generationInfo {
	var gi generationInfo
	if info != "" {
		_ = json.Unmarshal([]byte(info), &gi)
	}
	return gi
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
// prefix and missing padding, and checks it is PNG, JPEG or WebP. Another
// image format is an *sdclient.PermanentError naming the server setting to
// change.
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
		if name := otherFormat(b); name != "" {
			return sdclient.Image{}, &sdclient.PermanentError{Reason: fmt.Sprintf(
				"the backend sends %s images, which Easel cannot use: set its image file format to png "+
					"(SD.Next and A1111 setting samples_format; Settings → Saving images)", name)}
		}
		return sdclient.Image{}, errors.New("not a PNG, JPEG or WebP image")
	}
	return sdclient.Image{Data: b, Format: f}, nil
}

// otherFormat names image formats a server can be set to answer in that
// Easel does not handle; "" when b is none of them.
func otherFormat(b []byte) string {
	has := func(prefix string) bool { return len(b) >= len(prefix) && string(b[:len(prefix)]) == prefix }
	switch {
	case has("\xff\x0a"), has("\x00\x00\x00\x0cJXL \r\n\x87\n"):
		return "JPEG XL"
	case has("II*\x00"), has("MM\x00*"):
		return "TIFF"
	case has("\x00\x00\x00\x0cjP  \r\n\x87\n"), has("\xff\x4f\xff\x51"):
		return "JPEG 2000"
	case has("GIF87a"), has("GIF89a"):
		return "GIF"
	case has("BM"):
		return "BMP"
	case len(b) >= 12 && string(b[4:8]) == "ftyp" && (string(b[8:12]) == "avif" || string(b[8:12]) == "avis"):
		return "AVIF"
	}
	return ""
}

// internalProgress is modules/progress.py's ProgressResponse. Progress,
// ETA and the preview are only there while the task is active; absent
// numbers read as 0.
type internalProgress struct {
	Active    bool `json:"active"`
	Queued    bool `json:"queued"`
	Completed bool `json:"completed"`
	// Progress is 0..1 (0 while the model loads: job_count -1).
	Progress float64 `json:"-"`
	// ETA is in seconds.
	ETA float64 `json:"-"`
	// LivePreview is a data: URL, or "" when unchanged since the
	// id_live_preview we sent (or off).
	LivePreview   string `json:"-"`
	IDLivePreview int    `json:"-"`
	TextInfo      string `json:"-"`
}

// parseInternalProgress reads a /internal/progress answer. Fields may be
// null or missing; numbers are clamped (progress to 0..1).
func parseInternalProgress(raw []byte) (internalProgress, error) {
	var a struct {
		Active        *bool    `json:"active"`
		Queued        bool     `json:"queued"`
		Completed     bool     `json:"completed"`
		Progress      *float64 `json:"progress"`
		ETA           *float64 `json:"eta"`
		LivePreview   *string  `json:"live_preview"`
		IDLivePreview *float64 `json:"id_live_preview"`
		TextInfo      *string  `json:"textinfo"`
	}
	if err := json.Unmarshal(raw, &a); err != nil {
		return internalProgress{}, fmt.Errorf("answer is not ProgressResponse JSON: %w", err)
	}
	if a.Active == nil {
		return internalProgress{}, errors.New("answer is not ProgressResponse JSON: no active field")
	}
	p := internalProgress{Active: *a.Active, Queued: a.Queued, Completed: a.Completed, IDLivePreview: -1}
	if a.Progress != nil {
		p.Progress = clamp(*a.Progress, 0, 1)
	}
	if a.ETA != nil {
		p.ETA = clamp(*a.ETA, 0, (24 * time.Hour).Seconds())
	}
	if a.LivePreview != nil && strings.HasPrefix(*a.LivePreview, "data:") {
		p.LivePreview = *a.LivePreview
	}
	if a.IDLivePreview != nil {
		p.IDLivePreview = toInt(*a.IDLivePreview)
	}
	if a.TextInfo != nil {
		p.TextInfo = *a.TextInfo
	}
	return p, nil
}

// parseServerIdle reads the server-wide GET /sdapi/v1/progress answer
// (ProgressResponse) for one thing: whether the server runs nothing
// (state.job_count 0). ok is false when the answer cannot say.
func parseServerIdle(raw []byte) (idle, ok bool) {
	var a struct {
		State *struct {
			JobCount *float64 `json:"job_count"`
		} `json:"state"`
	}
	if json.Unmarshal(raw, &a) != nil || a.State == nil || a.State.JobCount == nil {
		return false, false
	}
	return toInt(*a.State.JobCount) == 0, true
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
