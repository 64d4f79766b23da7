package commands

import (
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/scheduler"
)

func limits(t testing.TB) Limits {
	var l Limits
	require.NoError(t, l.fill())
	return l
}

func TestValidate(t *testing.T) {
	t.Parallel()
	seed := int64(-5)
	for _, c := range []struct {
		name  string
		im    Imagine
		p     scheduler.Policy
		field string
		msg   string
	}{
		{"missing prompt", Imagine{}, scheduler.Policy{}, "prompt", "is required"},
		{"blank prompt", Imagine{Prompt: "   "}, scheduler.Policy{}, "prompt", "is required"},
		{"huge width", Imagine{Prompt: "x", Width: 100000}, scheduler.Policy{}, "width", "between 64 and 2048 (got 100000)"},
		{"odd height", Imagine{Prompt: "x", Height: 513}, scheduler.Policy{}, "height", "multiple of 8"},
		{"negative steps", Imagine{Prompt: "x", Steps: -1}, scheduler.Policy{}, "steps", "between 1 and 150 (got -1)"},
		{"server steps", Imagine{Prompt: "x", Steps: 60}, scheduler.Policy{MaxSteps: scheduler.Ptr(50)}, "steps", "between 1 and 50 (got 60)"},
		{"count 50", Imagine{Prompt: "x", Count: 50}, scheduler.Policy{}, "count", "between 1 and 4 (got 50)"},
		{"cfg", Imagine{Prompt: "x", CFGScale: 99}, scheduler.Policy{}, "cfg_scale", "between 1 and 30"},
		{"distilled cfg", Imagine{Prompt: "x", DistilledCFGScale: 31}, scheduler.Policy{}, "distilled_cfg_scale", "at most 30 (got 31)"},
		{"negative distilled cfg", Imagine{Prompt: "x", DistilledCFGScale: -1}, scheduler.Policy{}, "distilled_cfg_scale", "greater than 0"},
		{"seed", Imagine{Prompt: "x", Seed: &seed}, scheduler.Policy{}, "seed", "-1 (random)"},
		{"invalid utf8", Imagine{Prompt: "bad \xff"}, scheduler.Policy{}, "prompt", "UTF-8"},
		{"long prompt", Imagine{Prompt: strings.Repeat("é", 2001)}, scheduler.Policy{}, "prompt", "at most 2000 characters (got 2001)"},
		{"pixels", Imagine{Prompt: "x", Width: 2048, Height: 2048}, scheduler.Policy{MaxPixels: scheduler.Ptr(1024 * 1024)}, "width", "at most 1048576 pixels"},
		{"deny", Imagine{Prompt: "some Gore"}, scheduler.Policy{DenyWords: []string{"gore"}}, "prompt", `contains "gore"`},
		{"model", Imagine{Prompt: "x", Model: "other"}, scheduler.Policy{AllowedModels: []string{"sdxl"}}, "model", "must be one of sdxl"},
	} {
		t.Run(c.name, func(t *testing.T) {
			im := c.im
			err := limits(t).Validate(&im, c.p)
			var ve *ValidationError
			require.ErrorAs(t, err, &ve)
			require.Equal(t, c.field, ve.Field)
			require.Contains(t, ve.Message, c.msg)
		})
	}
	im := Imagine{Prompt: "  a fox "}
	require.NoError(t, limits(t).Validate(&im, scheduler.Policy{}))
	require.Equal(t, Imagine{Prompt: "a fox", Width: 512, Height: 512, Steps: 20, CFGScale: 7, Count: 1, Seed: im.Seed}, im)
	require.Equal(t, int64(-1), *im.Seed)
	require.Equal(t, 1.0, limits(t).Cost(&im))
	im.Width, im.Height, im.Steps = 1024, 1024, 50
	require.Equal(t, 10.0, limits(t).Cost(&im))
}

func FuzzValidate(f *testing.F) {
	f.Add("a fox", "", 512, 512, 20, 7.0, int64(-1), 1, "", "")
	f.Add("", "neg", 100000, -1, -1, 99.0, int64(-9), 50, "sdxl", "Euler a")
	f.Add("\xff", "x", 8, 8, 0, 0.0, int64(0), 0, "\x00", "")
	f.Add(" x ", "", 2048, 2048, 150, 30.0, int64(math.MaxUint32), 4, "", "")
	l := limits(f)
	f.Fuzz(func(t *testing.T, prompt, neg string, w, h, steps int, cfg float64, seed int64, count int, model, sampler string) {
		im := Imagine{Prompt: prompt, NegativePrompt: neg, Width: w, Height: h, Steps: steps, CFGScale: cfg, Seed: &seed,
			Count: count, Model: model, Sampler: sampler}
		err := l.Validate(&im, scheduler.Policy{})
		if err != nil {
			var ve *ValidationError
			require.ErrorAs(t, err, &ve)
			require.NotEmpty(t, ve.Field)
			require.NotEmpty(t, ve.Message)
			return
		}
		for _, s := range []string{im.Prompt, im.NegativePrompt, im.Model, im.Sampler} {
			require.True(t, utf8.ValidString(s) && !strings.ContainsRune(s, 0))
		}
		require.NotEmpty(t, im.Prompt)
		require.LessOrEqual(t, utf8.RuneCountInString(im.Prompt), 2000)
		require.LessOrEqual(t, utf8.RuneCountInString(im.NegativePrompt), 2000)
		require.True(t, im.Width >= 64 && im.Width <= 2048 && im.Width%8 == 0)
		require.True(t, im.Height >= 64 && im.Height <= 2048 && im.Height%8 == 0)
		require.True(t, im.Steps >= 1 && im.Steps <= 150)
		require.True(t, im.Count >= 1 && im.Count <= 4)
		require.True(t, im.CFGScale >= 1 && im.CFGScale <= 30)
		require.True(t, *im.Seed >= -1 && *im.Seed <= math.MaxUint32)
		c := l.Cost(&im)
		require.True(t, c > 0 && !math.IsInf(c, 0), "cost %g", c)
	})
}
