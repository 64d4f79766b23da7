package slack_test

import (
	"bytes"
	"encoding/base64"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/adapters/slack/slackfake"
	"github.com/easelbot/easel/commands"
)

// A mention with an attached image runs img2img: the file is downloaded
// from url_private with the bot token, and the backend gets it; --lora and
// --strength apply. A file that is not an image is refused naming "file",
// with nothing enqueued.
func TestMentionWithAttachedImage(t *testing.T) {
	t.Parallel()
	// Files are served on loopback: private addresses allowed here.
	b := setupWith(t, options{limits: commands.Limits{AllowPrivateImageURLs: true}})
	var pb bytes.Buffer
	require.NoError(t, png.Encode(&pb, image.NewRGBA(image.Rect(0, 0, 128, 80))))
	// files.slack.com answers only to the bot token.
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer xoxb-test" {
			http.Error(w, "unauthorized", http.StatusForbidden)
			return
		}
		if strings.HasSuffix(r.URL.Path, ".png") {
			_, _ = w.Write(pb.Bytes())
			return
		}
		_, _ = w.Write([]byte("just some notes"))
	}))
	t.Cleanup(files.Close)
	file := func(name string) []slackfake.MentionFile {
		return []slackfake.MentionFile{{ID: "F1", Name: name, Mimetype: "image/png",
			URLPrivate: files.URL + "/files-pri/T1-F1/" + name, URLPrivateDownload: files.URL + "/files-pri/T1-F1/download/" + name}}
	}

	body, _ := mentionEvent(t, slackfake.Mention{User: "U1", Text: "a cat in a hat --strength 0.3 --lora fake-detail:0.6 --steps 2", Files: file("cat.png")})
	require.Equal(t, 200, b.post(t, "/slack/events", "application/json", body, nil))
	b.fake.Wait(t, "final update", finalUpdate)
	last := b.sd.LastRequest()
	require.Len(t, last.InitImages, 1)
	src, err := base64.StdEncoding.DecodeString(last.InitImages[0])
	require.NoError(t, err)
	require.Equal(t, pb.Bytes(), src)
	require.Equal(t, 0.3, *last.DenoisingStrength)
	require.Equal(t, [2]int{128, 80}, [2]int{last.Width, last.Height})
	require.Contains(t, last.Prompt, "<lora:fake-detail:0.6>")

	body, _ = mentionEvent(t, slackfake.Mention{User: "U2", Text: "a dog", Files: file("notes.txt")})
	require.Equal(t, 200, b.post(t, "/slack/events", "application/json", body, nil))
	b.fake.Wait(t, "refusal", func(cs []slackfake.Call) bool {
		for _, c := range okCalls(cs, "chat.update") {
			if strings.Contains(c.Form.Get("text"), "file: must be a PNG, JPEG or WebP image") {
				return true
			}
		}
		return ephemeralWith(cs, "file: must be a PNG, JPEG or WebP image")
	})
	jobs, err := b.sched.Active(b.ctx, "slack:T1")
	require.NoError(t, err)
	require.Empty(t, jobs)
}
