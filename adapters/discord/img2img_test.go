package discord_test

import (
	"bytes"
	"encoding/base64"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/bwmarrin/discordgo"
	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/adapters/discord"
	"github.com/easelbot/easel/adapters/discord/discordtest"
	"github.com/easelbot/easel/commands"
	"github.com/easelbot/easel/sdclient"
)

// /imagine image:<attachment> strength:0.4 loras:… — the answer is
// deferred, the attachment (resolved from the interaction) is downloaded,
// and the backend runs img2img with it.
func TestImagineWithAttachment(t *testing.T) {
	t.Parallel()
	b := setup(t, 0, nil)
	var pb bytes.Buffer
	require.NoError(t, png.Encode(&pb, image.NewRGBA(image.Rect(0, 0, 160, 96))))
	imgs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/cat.png" {
			_, _ = w.Write(pb.Bytes())
			return
		}
		_, _ = w.Write([]byte("not an image"))
	}))
	t.Cleanup(imgs.Close)

	cmd := func(file string) map[string]any {
		return map[string]any{"id": "cmd1", "name": "imagine", "type": 1, "options": []any{
			map[string]any{"name": "prompt", "type": 3, "value": "a cat"},
			map[string]any{"name": "image", "type": 11, "value": "att1"},
			map[string]any{"name": "strength", "type": 10, "value": 0.4},
			map[string]any{"name": "loras", "type": 3, "value": "fake-detail:0.7"},
		}, "resolved": map[string]any{"attachments": map[string]any{
			"att1": map[string]any{"id": "att1", "filename": file, "url": imgs.URL + "/" + file, "proxy_url": imgs.URL + "/" + file,
				"size": pb.Len(), "content_type": "image/png"}}}}
	}
	i, tok := interaction(2, who{user: "42", guild: "g1"}, cmd("cat.png"))
	b.fake.Dispatch(i)
	calls := waitFor(t, b.fake, "final", finalEdit(tok))
	cb := callbacks(calls, tok)
	require.Len(t, cb, 1)
	require.Equal(t, 5.0, cb[0].Body["type"], "deferred: the download may outlast Discord's 3 s")
	last := b.sd.LastRequest()
	require.Len(t, last.InitImages, 1)
	src, err := base64.StdEncoding.DecodeString(last.InitImages[0])
	require.NoError(t, err)
	require.Equal(t, pb.Bytes(), src)
	require.Equal(t, 0.4, *last.DenoisingStrength)
	require.Equal(t, [2]int{160, 96}, [2]int{last.Width, last.Height})
	require.Contains(t, last.Prompt, "<lora:fake-detail:0.7>")

	// A file that is not an image: the deferred answer says so, naming the option.
	i, tok = interaction(2, who{user: "42", guild: "g1"}, cmd("notes.txt"))
	b.fake.Dispatch(i)
	calls = waitFor(t, b.fake, "refusal", func(cs []discordtest.Call) bool {
		for _, c := range cs {
			if c.Method == "PATCH" && strings.Contains(c.Path, tok) && strings.Contains(textOf(c.Body["content"]), "image: must be a PNG, JPEG or WebP image") {
				return true
			}
		}
		return false
	})
	require.NotEmpty(t, calls)
	jobs, err := b.sched.Active(b.ctx, "discord:g1")
	require.NoError(t, err)
	require.Empty(t, jobs)
}

// textOf is a JSON string value, or "".
func textOf(v any) string { s, _ := v.(string); return s }

func TestParseImagineImageOptions(t *testing.T) {
	t.Parallel()
	data := discordgo.ApplicationCommandInteractionData{Name: "imagine", Options: []*discordgo.ApplicationCommandInteractionDataOption{
		{Name: "prompt", Type: discordgo.ApplicationCommandOptionString, Value: "x"},
		{Name: "image", Type: discordgo.ApplicationCommandOptionAttachment, Value: "a1"},
		{Name: "strength", Type: discordgo.ApplicationCommandOptionNumber, Value: 0.3},
		{Name: "loras", Type: discordgo.ApplicationCommandOptionString, Value: "a:0.5, b"},
		{Name: "scheduler", Type: discordgo.ApplicationCommandOptionString, Value: "karras"},
	}, Resolved: &discordgo.ApplicationCommandInteractionDataResolved{Attachments: map[string]*discordgo.MessageAttachment{
		"a1": {ID: "a1", URL: "https://cdn.discordapp.com/attachments/1/2/cat.png"}}}}
	im, err := discord.ParseImagine(discord.FromInteraction(data))
	require.NoError(t, err)
	require.Equal(t, "https://cdn.discordapp.com/attachments/1/2/cat.png", im.InitImage)
	require.Equal(t, "image", im.InitImageField)
	require.Equal(t, 0.3, im.DenoisingStrength)
	require.Equal(t, []sdclient.LoRA{{Name: "a", Weight: 0.5}, {Name: "b", Weight: 1}}, im.LoRAs)
	require.Equal(t, "karras", im.Scheduler)

	for _, c := range []struct {
		opts  []discord.Option
		field string
	}{
		{[]discord.Option{{Name: "prompt", Value: "x"}, {Name: "image", Value: ""}}, "image"},
		{[]discord.Option{{Name: "prompt", Value: "x"}, {Name: "strength", Value: 0.5}}, "strength"},
		{[]discord.Option{{Name: "prompt", Value: "x"}, {Name: "loras", Value: "a:zz"}}, "loras"},
	} {
		_, err := discord.ParseImagine(c.opts)
		var ve *commands.ValidationError
		require.ErrorAs(t, err, &ve)
		require.Equal(t, c.field, ve.Field)
	}
}

func FuzzParseImagineImageOptions(f *testing.F) {
	f.Add("detail:0.8,style", 0.5, "https://cdn.discordapp.com/a.png")
	f.Add("a:b:c", 0.0, "")
	f.Add(",,:", 2.0, "x")
	f.Fuzz(func(t *testing.T, loras string, strength float64, image string) {
		im, err := discord.ParseImagine([]discord.Option{{Name: "prompt", Value: "x"}, {Name: "loras", Value: loras},
			{Name: "strength", Value: strength}, {Name: "image", Value: image}})
		if err != nil {
			var ve *commands.ValidationError
			require.ErrorAs(t, err, &ve)
			require.Contains(t, []string{"loras", "strength", "image"}, ve.Field)
			return
		}
		require.True(t, im.DenoisingStrength > 0 && im.DenoisingStrength <= 1)
		require.Equal(t, image, im.InitImage)
		require.LessOrEqual(t, len(im.LoRAs), commands.MaxLoRAs)
	})
}
