package commands

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/sdclient"
)

// Upscale queues an upscale of image n (0-based) of one of the caller's
// finished jobs, through the same fair queue.
func (s *Service) Upscale(ctx context.Context, c Caller, origin json.RawMessage, jobID string, n int, idempotencyKey string) (scheduler.SubmitResult, error) {
	src, err := s.Job(ctx, c, jobID)
	if err != nil {
		return scheduler.SubmitResult{}, err
	}
	if src.Status != scheduler.StatusSucceeded || n < 0 || n >= src.Images {
		return scheduler.SubmitResult{}, Invalid("image", "v_image_of_finished", src.Images, n+1)
	}
	p, err := s.policies.Resolve(ctx, c.Tenant, c.User)
	if err != nil {
		return scheduler.SubmitResult{}, err
	}
	var im Imagine
	_ = json.Unmarshal(src.Payload, &im)
	const factor = 2
	if px := im.Width * im.Height * factor * factor; px > 4*2048*2048 {
		return scheduler.SubmitResult{}, Invalid("image", "v_too_large_upscale", px)
	}
	body, _ := json.Marshal(sdclient.UpscaleJob{Kind: sdclient.KindUpscale, Prompt: im.Prompt, SourceJob: src.ID, SourceImage: n, Factor: factor})
	// An upscale costs about as much GPU as a short generation at the size.
	cost := float64(im.Width*im.Height*factor*factor) / float64(s.limits.CostUnitPixels) * 0.25
	res, err := s.sched.Submit(ctx, scheduler.SubmitRequest{Tenant: c.Tenant, User: c.User, Payload: body, Origin: origin,
		Cost: cost, Images: 1, IdempotencyKey: idempotencyKey, Admission: p.Admission()})
	if err != nil {
		return res, fmt.Errorf("upscale: %w", err)
	}
	return res, nil
}
