package a1111

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/easelbot/easel/sdclient"
)

// defaultUpscaler is used when UpscaleRequest.Upscaler is empty; A1111 ships
// it with every install.
const defaultUpscaler = "R-ESRGAN 4x+"

// Upscale enlarges one image with POST /sdapi/v1/extra-single-image. The
// upscaler is checked against the server's list first (unknown: an
// *sdclient.PermanentError with the valid names). The call has no task id
// and no progress, so it is bounded as a whole by Timeouts.Queue (waiting
// behind other clients) plus Timeouts.Stall; running out is
// sdclient.ErrStalled. The result has one image and one seed, 0.
func (c *Client) Upscale(ctx context.Context, req sdclient.UpscaleRequest) (*sdclient.Result, error) {
	cat, _, err := c.cachedCatalog(ctx, catalogMaxAge)
	if err != nil {
		return nil, fmt.Errorf("a1111: catalog: %w", err)
	}
	upscaler := req.Upscaler
	if upscaler == "" {
		upscaler = defaultUpscaler
		if _, ok := find(cat.upscalers, upscaler); !ok {
			for _, u := range cat.upscalers {
				if u.Name != "None" {
					upscaler = u.Name
					break
				}
			}
		}
	}
	name, ok := find(cat.upscalers, upscaler)
	if !ok {
		return nil, unknownName("upscaler", upscaler, cat.pub.Upscalers, nil)
	}
	body, err := json.Marshal(map[string]any{
		"image":            base64.StdEncoding.EncodeToString(req.Image),
		"resize_mode":      0, // scale by upscaling_resize
		"upscaling_resize": req.Factor,
		"upscaler_1":       name,
	})
	if err != nil {
		return nil, fmt.Errorf("a1111: extra-single-image: %w", err)
	}
	bound := c.cfg.Timeouts.Queue + c.cfg.Timeouts.Stall
	cctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	raw, err := c.call(cctx, http.MethodPost, pathExtraSingle, body)
	if err != nil {
		if ctx.Err() == nil && errors.Is(cctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("a1111: extra-single-image: %w: no answer within %s (queue + stall timeouts)", sdclient.ErrStalled, bound)
		}
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
