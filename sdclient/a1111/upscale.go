package a1111

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/easelbot/easel/sdclient"
)

// defaultUpscaler is used when UpscaleRequest.Upscaler is empty; A1111 ships
// it with every install.
const defaultUpscaler = "R-ESRGAN 4x+"

// Upscale enlarges one image with POST /sdapi/v1/extra-single-image, within
// Config.Timeout. The result has one image and one seed, 0.
func (c *Client) Upscale(ctx context.Context, req sdclient.UpscaleRequest) (*sdclient.Result, error) {
	upscaler := req.Upscaler
	if upscaler == "" {
		upscaler = defaultUpscaler
	}
	body, err := json.Marshal(map[string]any{
		"image":            base64.StdEncoding.EncodeToString(req.Image),
		"resize_mode":      0, // scale by upscaling_resize
		"upscaling_resize": req.Factor,
		"upscaler_1":       upscaler,
	})
	if err != nil {
		return nil, fmt.Errorf("a1111: extra-single-image: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	raw, err := c.call(ctx, http.MethodPost, pathExtraSingle, body)
	if err != nil {
		return nil, err
	}
	var out struct {
		Image    string `json:"image"`
		HTMLInfo string `json:"html_info"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("a1111: extra-single-image: answer is not ExtrasSingleImageResponse JSON: %w", err)
	}
	img, err := decodeImage(out.Image)
	if err != nil {
		return nil, fmt.Errorf("a1111: extra-single-image: %w", err)
	}
	return &sdclient.Result{Images: []sdclient.Image{img}, Seeds: []int64{0}, Info: out.HTMLInfo}, nil
}
