package slackfake_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/slack-go/slack"
	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/adapters/slack/slackfake"
)

func code(err error) string {
	var se slack.SlackErrorResponse
	var rl *slack.RateLimitedError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &se):
		return se.Err
	case errors.As(err, &rl):
		return "ratelimited"
	}
	return err.Error()
}

// TestRules: the fake answers as Slack documents, so tests against it mean
// something.
func TestRules(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := slackfake.New(slackfake.Config{PostBurst: 2})
	defer f.Close()
	f.AddChannel(slackfake.Channel{ID: "C1", Member: true})
	f.AddChannel(slackfake.Channel{ID: "C2"})
	f.AddChannel(slackfake.Channel{ID: "G1", Private: true})
	f.AddChannel(slackfake.Channel{ID: "C3", Member: true, Archived: true})
	api := slack.New("xoxb-test", slack.OptionAPIURL(f.URL()))
	post := func(ch string, opts ...slack.MsgOption) (string, string) {
		_, ts, err := api.PostMessageContext(ctx, ch, append([]slack.MsgOption{slack.MsgOptionText("hi", false)}, opts...)...)
		return ts, code(err)
	}

	_, e := post("C2")
	require.Equal(t, "not_in_channel", e)
	_, e = post("G1")
	require.Equal(t, "channel_not_found", e)
	_, e = post("C9")
	require.Equal(t, "channel_not_found", e)
	_, e = post("C3")
	require.Equal(t, "is_archived", e)
	_, _, err := slack.New("xoxb-wrong", slack.OptionAPIURL(f.URL())).PostMessageContext(ctx, "C1", slack.MsgOptionText("x", false))
	require.Equal(t, "invalid_auth", code(err))

	ts, e := post("C1")
	require.Empty(t, e)
	_, e = post("C1")
	require.Empty(t, e)
	_, e = post("C1")
	require.Equal(t, "ratelimited", e, "about one message a second per channel, short bursts")

	_, _, _, err = api.UpdateMessageContext(ctx, "C1", "1.2", slack.MsgOptionText("x", false))
	require.Equal(t, "message_not_found", code(err))
	_, _, _, err = api.UpdateMessageContext(ctx, "C1", ts, slack.MsgOptionText(strings.Repeat("x", 40001), false))
	require.Equal(t, "msg_too_long", code(err))
	long := slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, strings.Repeat("x", 3001), false, false), nil, nil)
	_, _, _, err = api.UpdateMessageContext(ctx, "C1", ts, slack.MsgOptionBlocks(long))
	require.Equal(t, "invalid_blocks", code(err), "section text over 3000")
	dup := func() slack.Block {
		return slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, "x", false, false), nil, nil, slack.SectionBlockOptionBlockID("same"))
	}
	_, _, _, err = api.UpdateMessageContext(ctx, "C1", ts, slack.MsgOptionBlocks(dup(), dup()))
	require.Equal(t, "invalid_blocks", code(err), "duplicate block_id in a message")
	many := make([]slack.Block, 51)
	for i := range many {
		many[i] = slack.NewDividerBlock()
	}
	_, _, _, err = api.UpdateMessageContext(ctx, "C1", ts, slack.MsgOptionBlocks(many...))
	require.Equal(t, "invalid_blocks", code(err), "more than 50 blocks")
	btn := slack.NewButtonBlockElement("a", "v", slack.NewTextBlockObject(slack.PlainTextType, strings.Repeat("b", 76), false, false))
	_, _, _, err = api.UpdateMessageContext(ctx, "C1", ts, slack.MsgOptionBlocks(slack.NewActionBlock("x", btn)))
	require.Equal(t, "invalid_blocks", code(err), "button label over 75")
	img := slack.NewImageBlock("", "alt", "img", nil)
	img.SlackFile = &slack.SlackFileObject{ID: "FNOPE"}
	_, _, _, err = api.UpdateMessageContext(ctx, "C1", ts, slack.MsgOptionBlocks(img))
	require.Equal(t, "invalid_blocks", code(err), "an image of a file the app cannot see")

	// block_id reuse across updates is documented, not refused: a violation.
	_, _, _, err = api.UpdateMessageContext(ctx, "C1", ts, slack.MsgOptionBlocks(dup()))
	require.NoError(t, err)
	require.Empty(t, f.Violations())
	_, _, _, err = api.UpdateMessageContext(ctx, "C1", ts, slack.MsgOptionBlocks(dup()))
	require.NoError(t, err)
	require.Len(t, f.Violations(), 1)

	// Uploads: the bytes must match the announced length; completion needs
	// uploaded files and membership.
	up, err := api.GetUploadURLExternalContext(ctx, slack.GetUploadURLExternalParameters{FileName: "a.png", FileSize: 10})
	require.NoError(t, err)
	require.Error(t, api.UploadToURL(ctx, slack.UploadToURLParameters{UploadURL: up.UploadURL, Reader: bytes.NewReader([]byte("short")), Filename: "a.png"}))
	_, err = api.CompleteUploadExternalContext(ctx, slack.CompleteUploadExternalParameters{Files: []slack.FileSummary{{ID: up.FileID}}, Channel: "C1"})
	require.Equal(t, "file_not_found", code(err))
	up, err = api.GetUploadURLExternalContext(ctx, slack.GetUploadURLExternalParameters{FileName: "b.png", FileSize: 5})
	require.NoError(t, err)
	require.NoError(t, api.UploadToURL(ctx, slack.UploadToURLParameters{UploadURL: up.UploadURL, Reader: bytes.NewReader([]byte("12345")), Filename: "b.png"}))
	_, err = api.CompleteUploadExternalContext(ctx, slack.CompleteUploadExternalParameters{Files: []slack.FileSummary{{ID: up.FileID}}, Channel: "C2"})
	require.Equal(t, "not_in_channel", code(err))
	_, err = api.CompleteUploadExternalContext(ctx, slack.CompleteUploadExternalParameters{Files: []slack.FileSummary{{ID: up.FileID}}, Channel: "C1", ThreadTimestamp: ts})
	require.NoError(t, err)

	// response_url: five uses.
	u := f.NewResponseURL()
	for i := range 6 {
		resp, err := http.Post(u, "application/json", strings.NewReader(`{"text":"hi"}`))
		require.NoError(t, err)
		resp.Body.Close()
		if i < 5 {
			require.Equal(t, 200, resp.StatusCode)
		} else {
			require.Equal(t, 404, resp.StatusCode, "used_url after 5 uses")
		}
	}

	// Scopes.
	g := slackfake.New(slackfake.Config{Scopes: []string{"chat:write"}})
	defer g.Close()
	_, err = slack.New("xoxb-test", slack.OptionAPIURL(g.URL())).GetUserInfoContext(ctx, "U1")
	require.Equal(t, "missing_scope", code(err))
}

// A section's image accessory needs alt text and exactly one source, and a
// slack_file the app can access.
func TestSectionAccessory(t *testing.T) {
	t.Parallel()
	f := slackfake.New(slackfake.Config{})
	defer f.Close()
	f.AddChannel(slackfake.Channel{ID: "C1", Member: true})
	api := slack.New("xoxb-test", slack.OptionAPIURL(f.URL()))
	post := func(acc *slack.ImageBlockElement) string {
		s := slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, "x", false, false), nil, slack.NewAccessory(acc))
		_, _, err := api.PostMessageContext(context.Background(), "C1", slack.MsgOptionBlocks(s))
		return code(err)
	}
	require.Equal(t, "", post(slack.NewImageBlockElement("https://example.com/a.png", "a picture")))
	require.Equal(t, "invalid_blocks", post(slack.NewImageBlockElement("https://example.com/a.png", "")))
	require.Equal(t, "invalid_blocks", post(slack.NewImageBlockElementSlackFile(&slack.SlackFileObject{ID: "F404"}, "a picture")))
}
