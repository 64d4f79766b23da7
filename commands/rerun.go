package commands

import (
	"encoding/json"
	"fmt"

	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/sdclient"
)

// variationStrength is how far a variation strays from its source image.
const variationStrength = 0.35

// Rerun builds the request behind a Reroll (image < 0: the same request with
// a random seed) or a variation of one of the job's images (image n,
// 0-based: that image's seed, one image, a variation strength, and the
// image itself for backends that make variations by img2img).
func Rerun(job *scheduler.Job, image int) (Imagine, error) {
	var im Imagine
	if err := json.Unmarshal(job.Payload, &im); err != nil {
		return im, fmt.Errorf("rerun %s: %w", job.ID, err)
	}
	var stored struct {
		InitImageBytes int `json:"init_image_bytes"`
	}
	if json.Unmarshal(job.Payload, &stored) == nil && stored.InitImageBytes > 0 {
		// An img2img job: its init image is in the blob store.
		im.InitImageFrom = job.ID
	}
	random := int64(-1)
	im.Seed = &random
	if image < 0 {
		return im, nil
	}
	if image >= len(job.Seeds) {
		return im, Invalid("image", "v_image_of_job", len(job.Seeds), image+1)
	}
	seed := job.Seeds[image]
	im.Seed, im.Count, im.VariationStrength = &seed, 1, variationStrength
	im.VariationOf = &sdclient.ImageRef{Job: job.ID, Image: image}
	return im, nil
}
