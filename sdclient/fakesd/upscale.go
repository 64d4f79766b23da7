package fakesd

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/draw"
	_ "image/jpeg" // extras accept JPEG sources, as A1111 does
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
)

// extrasRequest is the part of A1111's ExtrasSingleImageRequest the fake
// reads.
type extrasRequest struct {
	Image           string  `json:"image"`
	ResizeMode      int     `json:"resize_mode"`
	UpscalingResize float64 `json:"upscaling_resize"`
	Upscaler1       string  `json:"upscaler_1"`
}

// extraSingleImage serves POST /sdapi/v1/extra-single-image: a nearest
// neighbour enlargement by upscaling_resize (1 to 4), under the queue lock.
func (s *Server) extraSingleImage(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		return
	}
	req := extrasRequest{UpscalingResize: 2, Upscaler1: "None"}
	if err := json.Unmarshal(body, &req); err != nil {
		writeValidation(w, []validationError{jsonError(err)})
		return
	}
	if req.UpscalingResize < 1 || req.UpscalingResize > 4 {
		writeValidation(w, []validationError{{Loc: []any{"body", "upscaling_resize"},
			Msg: "ensure this value is between 1 and 4", Type: "value_error.number"}})
		return
	}
	if !slices.Contains(s.cfg.Upscalers, req.Upscaler1) {
		// scripts/postprocessing_upscale.py asserts the upscaler exists; the
		// exception handler makes that a 500, the same for every retry.
		writeException(w, "AssertionError", "could not find upscaler named "+req.Upscaler1)
		return
	}
	src, err := decodeSource(req.Image, maxUpscaled*s.cfg.MaxSize)
	if err != nil {
		// A1111's decode_base64_to_image raises this HTTPException.
		writeHTTPException(w, http.StatusInternalServerError, "Invalid encoded image")
		return
	}
	b := src.Bounds()
	dw := int(math.Round(float64(b.Dx()) * req.UpscalingResize))
	dh := int(math.Round(float64(b.Dy()) * req.UpscalingResize))
	if limit := maxUpscaled * s.cfg.MaxSize; dw > limit || dh > limit {
		writeException(w, "OutOfMemoryError", fmt.Sprintf("fakesd: %dx%d is larger than %d pixels a side", dw, dh, limit))
		return
	}

	select {
	case s.queue <- struct{}{}:
	case <-r.Context().Done():
		return
	}
	defer func() { <-s.queue }()
	data, err := encodePNG(enlarge(src, dw, dh))
	if err != nil {
		writeException(w, "RuntimeError", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"image":     base64.StdEncoding.EncodeToString(data),
		"html_info": fmt.Sprintf("<p>Postprocess upscale by: %g, Postprocess upscaler: %s</p>", req.UpscalingResize, req.Upscaler1),
	})
}

// decodeSource decodes a base64 PNG or JPEG, with or without a data: URL
// prefix, of at most limit pixels a side.
func decodeSource(s string, limit int) (image.Image, error) {
	if strings.HasPrefix(s, "data:image/") {
		if _, data, ok := strings.Cut(s, ","); ok {
			s = data
		}
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	if cfg.Width < 1 || cfg.Height < 1 || cfg.Width > limit || cfg.Height > limit {
		return nil, fmt.Errorf("%dx%d image", cfg.Width, cfg.Height)
	}
	img, _, err := image.Decode(bytes.NewReader(raw))
	return img, err
}

// enlarge scales src to w×h by nearest neighbour.
func enlarge(src image.Image, w, h int) *image.NRGBA {
	b := src.Bounds()
	in := image.NewNRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(in, in.Rect, src, b.Min, draw.Src)
	out := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		sy := y * b.Dy() / h
		row := in.Pix[sy*in.Stride:]
		dst := out.Pix[y*out.Stride:]
		for x := range w {
			sx := x * b.Dx() / w
			copy(dst[4*x:4*x+4], row[4*sx:4*sx+4])
		}
	}
	return out
}
