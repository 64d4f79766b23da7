package commands

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/sdclient"
)

func TestParseFlags(t *testing.T) {
	t.Parallel()
	im, help, err := ParseFlags("a lighthouse at dusk --ar 16:9 --steps 30 --seed 42 --no fog and rain --n 2 --sampler Euler a")
	require.NoError(t, err)
	require.False(t, help)
	require.Equal(t, "a lighthouse at dusk", im.Prompt)
	require.Equal(t, 1024, im.Width)
	require.Equal(t, 576, im.Height)
	require.Equal(t, 30, im.Steps)
	require.Equal(t, int64(42), *im.Seed)
	require.Equal(t, "fog and rain", im.NegativePrompt)
	require.Equal(t, 2, im.Count)
	require.Equal(t, "Euler a", im.Sampler)
	im, _, err = ParseFlags("a fox --lora detail:0.8 --lora film grain:0.5,x --scheduler SGM Uniform --strength 0.6")
	require.NoError(t, err)
	require.Equal(t, []sdclient.LoRA{{Name: "detail", Weight: 0.8}, {Name: "film grain", Weight: 0.5}, {Name: "x", Weight: 1}}, im.LoRAs)
	require.Equal(t, "SGM Uniform", im.Scheduler)
	require.Equal(t, 0.6, im.DenoisingStrength)

	_, help, err = ParseFlags("anything --help")
	require.NoError(t, err)
	require.True(t, help)
	for in, field := range map[string]string{
		"--steps 20":         "prompt",
		"a fox --ar 2:1":     "--ar",
		"a fox --steps x":    "--steps",
		"a fox --colour 3":   "--colour",
		"a fox --seed":       "--seed",
		"a fox --w 0":        "--w",
		"a fox --n 0":        "--n",
		"a fox --lora x:9":   "--lora",
		"a fox --strength 2": "--strength",
	} {
		_, _, err := ParseFlags(in)
		var ve *ValidationError
		require.ErrorAs(t, err, &ve, in)
		require.Equal(t, field, ve.Field, in)
	}
}

func FuzzParseFlags(f *testing.F) {
	f.Add("a fox --ar 16:9 --steps 30 --no fog --n 2")
	f.Add("--help")
	f.Add("x --seed -1 --cfg 7.5 --model sd xl")
	l := limits(f)
	f.Fuzz(func(t *testing.T, s string) {
		im, help, err := ParseFlags(s)
		if err != nil || help {
			return
		}
		require.NotEmpty(t, im.Prompt)
		if l.Validate(&im, scheduler.Policy{}) == nil {
			require.True(t, im.Steps >= 1 && im.Steps <= 150)
		}
	})
}
