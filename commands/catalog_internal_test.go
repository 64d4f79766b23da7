package commands

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/sdclient"
)

func TestMergeCatalog(t *testing.T) {
	t.Parallel()
	cat := mergeCatalog(map[string]advertised{
		"a": {Models: []string{"sd15", "xl"}, Loaded: "xl", Samplers: []string{"Euler a", "DPM++ 2M"}, Schedulers: []string{"karras"},
			LoRAs: []string{"detail"}, Upscalers: []string{"R-ESRGAN 4x+"}},
		"b": {Models: []string{"xl"}, Loaded: "xl.safetensors [31e35c80fc]", Samplers: []string{"euler"}},
	})
	require.Equal(t, []string{"a", "b"}, cat.Backends)
	require.Equal(t, []CatalogModel{
		{Name: "sd15", Backends: []string{"a"}, LoadedOn: []string{}},
		{Name: "xl", Backends: []string{"a", "b"}, LoadedOn: []string{"a", "b"}},
	}, cat.Models)
	require.Equal(t, []string{"DPM++ 2M", "Euler a", "euler"}, cat.Samplers)
	require.Equal(t, []string{"karras"}, cat.Schedulers)
	require.Equal(t, []string{"detail"}, cat.LoRAs)
	require.Equal(t, []string{"R-ESRGAN 4x+"}, cat.Upscalers)

	empty := mergeCatalog(nil)
	require.Empty(t, empty.Backends)
	require.NotNil(t, empty.Models, "JSON lists, not null")
}

func TestCheckCatalog(t *testing.T) {
	t.Parallel()
	cat := mergeCatalog(map[string]advertised{
		"a1111": {Models: []string{"sd_xl_base_1.0", "sub_anime"}, Samplers: []string{"Euler a", "DPM++ 2M", "DPM++ 2M SDE"},
			Schedulers: []string{"karras", "exponential"}, LoRAs: []string{"add_detail"}},
		"comfy": {Models: []string{"flux1-dev.safetensors"}, Samplers: []string{"euler_ancestral", "dpmpp_2m", "uni_pc"},
			Schedulers: []string{"normal", "sgm_uniform"}, LoRAs: []string{"film/grain.safetensors"}},
	})
	for _, c := range []struct {
		im    Imagine
		field string
	}{
		{Imagine{Model: "sd_xl_base_1.0"}, ""},
		{Imagine{Model: "SD_XL_BASE_1.0.safetensors [31e35c80fc]"}, ""},
		{Imagine{Model: "flux1-dev"}, ""},
		{Imagine{Model: "sub/anime.ckpt"}, ""},
		{Imagine{Model: "sdxl-turbo"}, "model"},
		{Imagine{Sampler: "Euler a"}, ""},
		{Imagine{Sampler: "euler ancestral"}, ""},
		{Imagine{Sampler: "DPM++ 2M Karras"}, ""},
		{Imagine{Sampler: "DPM++ 2M SDE Exponential"}, ""},
		{Imagine{Sampler: "UniPC"}, ""},
		{Imagine{Sampler: "LMS"}, "sampler"},
		{Imagine{Sampler: "DPM++ 2M Bogus"}, "sampler"},
		{Imagine{Sampler: "日本"}, "sampler"},
		{Imagine{Scheduler: "SGM Uniform"}, ""},
		{Imagine{Scheduler: "cosine"}, "scheduler"},
		{Imagine{LoRAs: []sdclient.LoRA{{Name: "add_detail", Weight: 1}, {Name: "film/grain", Weight: 0.5}}}, ""},
		{Imagine{LoRAs: []sdclient.LoRA{{Name: "add_detail", Weight: 1}, {Name: "nope", Weight: 0.5}}}, "loras"},
	} {
		t.Run(fmt.Sprint(c.im.Model, c.im.Sampler, c.im.Scheduler, c.im.LoRAs), func(t *testing.T) {
			err := cat.checkCatalog(&c.im)
			if c.field == "" {
				require.NoError(t, err)
				return
			}
			var ve *ValidationError
			require.ErrorAs(t, err, &ve)
			require.Equal(t, c.field, ve.Field)
			require.Contains(t, ve.Message, "choose from")
		})
	}

	// The message lists the valid choices, capped.
	err := cat.checkCatalog(&Imagine{Model: "nope"})
	require.ErrorContains(t, err, `model: "nope" is not a model any backend offers; choose from flux1-dev.safetensors, sd_xl_base_1.0, sub_anime`)
	var many advertised
	for i := range 40 {
		many.Samplers = append(many.Samplers, fmt.Sprintf("s%02d", i))
	}
	err = mergeCatalog(map[string]advertised{"x": many}).checkCatalog(&Imagine{Sampler: "nope"})
	require.ErrorContains(t, err, "s14 … and 25 more")
	require.NotContains(t, err.Error(), "s15")

	// Nothing advertised (just started): names pass; the backend checks them.
	require.NoError(t, mergeCatalog(nil).checkCatalog(&Imagine{Model: "anything", Sampler: "any", Scheduler: "x",
		LoRAs: []sdclient.LoRA{{Name: "y", Weight: 1}}}))
	// A backend that lists no schedulers or LoRAs checks none.
	require.NoError(t, mergeCatalog(map[string]advertised{"old": {Models: []string{"m"}, Samplers: []string{"Euler"}}}).
		checkCatalog(&Imagine{Scheduler: "karras", LoRAs: []sdclient.LoRA{{Name: "y", Weight: 1}}}))
}

func TestParseLoRAs(t *testing.T) {
	t.Parallel()
	ls, err := ParseLoRAs(" detail:0.8, film grain : -0.5 ,plain,")
	require.NoError(t, err)
	require.Equal(t, []sdclient.LoRA{{Name: "detail", Weight: 0.8}, {Name: "film grain", Weight: -0.5}, {Name: "plain", Weight: 1}}, ls)
	require.Equal(t, "detail:0.8,film grain:-0.5,plain:1", FormatLoRAs(ls))
	ls, err = ParseLoRAs("")
	require.NoError(t, err)
	require.Empty(t, ls)
	for in, msg := range map[string]string{
		"detail:x":            "weight after the colon must be a number",
		"detail:9":            "between -5 and 5 (got 9)",
		"detail:NaN":          "between -5 and 5",
		":0.5":                "needs a name",
		"a:b:0.5":             "must not contain",
		"<lora:x:1>":          "must be a number",
		"a<b":                 "must not contain",
		",,,":                 "name:weight items",
		"a,b,c,d,e,f,g,h,i,j": "at most 8 LoRAs",
	} {
		_, err := ParseLoRAs(in)
		var ve *ValidationError
		require.ErrorAs(t, err, &ve, in)
		require.Equal(t, "loras", ve.Field, in)
		require.Contains(t, ve.Message, msg, in)
	}
}

func FuzzParseLoRAs(f *testing.F) {
	for _, s := range []string{"detail:0.8,film:0.5", "x", "a:b:c", ":", ",", "a:1e308", "a:-0", "é:0.1, ü :2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ls, err := ParseLoRAs(s)
		if err != nil {
			var ve *ValidationError
			require.ErrorAs(t, err, &ve)
			require.Equal(t, "loras", ve.Field)
			return
		}
		require.LessOrEqual(t, len(ls), MaxLoRAs)
		require.NoError(t, checkLoRAs(ls))
		// What it accepts survives a round trip through the option syntax.
		again, err := ParseLoRAs(FormatLoRAs(ls))
		require.NoError(t, err)
		require.Equal(t, len(ls), len(again))
	})
}

func TestFitSize(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ w, h, maxPx, ww, wh int }{
		{512, 512, 1 << 30, 512, 512},
		{513, 771, 1 << 30, 512, 768},
		{4000, 3000, 1 << 30, 2048, 1536},
		{4000, 3000, 1024 * 1024, 1176, 880},
		{10, 10, 1 << 30, 64, 64},
		{8192, 16, 1 << 30, 2048, 64},
	} {
		w, h := fitSize(c.w, c.h, 64, 2048, c.maxPx)
		require.Equal(t, [2]int{c.ww, c.wh}, [2]int{w, h}, "%dx%d", c.w, c.h)
		require.LessOrEqual(t, w*h, max(c.maxPx, 64*64))
	}
	var l Limits
	require.NoError(t, l.fill())
	w, h := l.sizeFor(&InitImage{Width: 1000, Height: 500}, 768, 0, 1<<30)
	require.Equal(t, [2]int{768, 384}, [2]int{w, h})
	w, h = l.sizeFor(&InitImage{Width: 1000, Height: 500}, 0, 300, 1<<30)
	require.Equal(t, [2]int{600, 300}, [2]int{w, h})
}
