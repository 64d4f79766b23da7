package commands

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/sdclient"
)

func TestRerun(t *testing.T) {
	t.Parallel()
	job := &scheduler.Job{ID: "j", Payload: json.RawMessage(`{"prompt":"a fox","width":512,"height":512,"steps":20,"seed":7,"count":2}`),
		Seeds: []int64{7, 8}}
	im, err := Rerun(job, -1)
	require.NoError(t, err)
	require.Equal(t, int64(-1), *im.Seed)
	require.Equal(t, 2, im.Count)
	require.Zero(t, im.VariationStrength)
	require.Nil(t, im.VariationOf)
	im, err = Rerun(job, 1)
	require.NoError(t, err)
	require.Equal(t, int64(8), *im.Seed)
	require.Equal(t, 1, im.Count)
	require.Equal(t, variationStrength, im.VariationStrength)
	require.Equal(t, &sdclient.ImageRef{Job: "j", Image: 1}, im.VariationOf, "a variation names its image for img2img-only backends")
	_, err = Rerun(job, 2)
	var ve *ValidationError
	require.ErrorAs(t, err, &ve)
	require.Equal(t, "image", ve.Field)
}

// A rerun of an img2img job keeps its init image (the payload's base64),
// strength, LoRAs and scheduler; the image decodes again on submit.
func TestRerunImg2Img(t *testing.T) {
	t.Parallel()
	png := pngBytes(t, 24, 16)
	payload, err := json.Marshal(sdclient.Request{Prompt: "a fox", Width: 64, Height: 64, Steps: 4, Seed: 3, Count: 1,
		InitImage: png, DenoisingStrength: 0.4, Scheduler: "karras", LoRAs: []sdclient.LoRA{{Name: "d", Weight: 0.5}}})
	require.NoError(t, err)
	im, err := Rerun(&scheduler.Job{ID: "j", Payload: payload, Seeds: []int64{3}}, 0)
	require.NoError(t, err)
	require.Equal(t, 0.4, im.DenoisingStrength)
	require.Equal(t, "karras", im.Scheduler)
	require.Equal(t, []sdclient.LoRA{{Name: "d", Weight: 0.5}}, im.LoRAs)
	data, err := DecodeInlineImage("init_image", im.InitImage, 1<<20)
	require.NoError(t, err)
	require.Equal(t, png, data)
}

// A rerun of an img2img job whose init image is in the blob store names
// the job it comes from; the service reads the image from there.
func TestRerunStoredInitImage(t *testing.T) {
	t.Parallel()
	payload, err := json.Marshal(sdclient.Request{Prompt: "a fox", Width: 64, Height: 64, Steps: 4, Seed: 3, Count: 1,
		InitImageBytes: 1234, DenoisingStrength: 0.4})
	require.NoError(t, err)
	im, err := Rerun(&scheduler.Job{ID: "j1", Payload: payload, Seeds: []int64{3}}, -1)
	require.NoError(t, err)
	require.Equal(t, "j1", im.InitImageFrom)
	require.Empty(t, im.InitImage)
	require.Equal(t, 0.4, im.DenoisingStrength)
	im, err = Rerun(&scheduler.Job{ID: "j2", Payload: json.RawMessage(`{"prompt":"x"}`)}, -1)
	require.NoError(t, err)
	require.Empty(t, im.InitImageFrom, "txt2img stays txt2img")
}
