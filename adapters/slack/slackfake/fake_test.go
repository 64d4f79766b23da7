package slackfake_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
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

// The file methods are Tier 4 per workspace and chat.update Tier 3: past
// the burst they answer 429 with Retry-After.
func TestFileAndUpdateRateLimits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := slackfake.New(slackfake.Config{FilesPerMinute: 3, UpdatesPerMinute: 1})
	defer f.Close()
	f.AddChannel(slackfake.Channel{ID: "C1", Member: true})
	api := slack.New("xoxb-test", slack.OptionAPIURL(f.URL()))
	up, err := api.GetUploadURLExternalContext(ctx, slack.GetUploadURLExternalParameters{FileName: "a.png", FileSize: 3})
	require.NoError(t, err)
	require.NoError(t, api.UploadToURL(ctx, slack.UploadToURLParameters{UploadURL: up.UploadURL, Reader: bytes.NewReader([]byte("abc")), Filename: "a.png"}))
	_, err = api.CompleteUploadExternalContext(ctx, slack.CompleteUploadExternalParameters{Files: []slack.FileSummary{{ID: "F404"}}, Channel: "C1"})
	require.Equal(t, "file_not_found", code(err), "a file id getUploadURLExternal never gave")
	_, err = api.CompleteUploadExternalContext(ctx, slack.CompleteUploadExternalParameters{Files: []slack.FileSummary{{ID: up.FileID}}, Channel: "C1"})
	require.NoError(t, err, "the third file call of a burst of three")
	_, err = api.GetUploadURLExternalContext(ctx, slack.GetUploadURLExternalParameters{FileName: "b.png", FileSize: 3})
	require.Equal(t, "ratelimited", code(err), "the fourth")
	var rl *slack.RateLimitedError
	require.ErrorAs(t, err, &rl)
	require.Positive(t, rl.RetryAfter, "429 with Retry-After")
	_, err = api.CompleteUploadExternalContext(ctx, slack.CompleteUploadExternalParameters{Files: []slack.FileSummary{{ID: up.FileID}}, Channel: "C1"})
	require.Equal(t, "ratelimited", code(err), "completeUploadExternal shares the limit")
	f.Advance(time.Minute)
	_, err = api.CompleteUploadExternalContext(ctx, slack.CompleteUploadExternalParameters{Files: []slack.FileSummary{{ID: up.FileID}}, Channel: "C1"})
	require.Equal(t, "file_not_found", code(err), "a minute later: answered again, and a file is completed once")

	_, ts, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("hi", false))
	require.NoError(t, err)
	_, _, _, err = api.UpdateMessageContext(ctx, "C1", ts, slack.MsgOptionText("one", false))
	require.NoError(t, err)
	_, _, _, err = api.UpdateMessageContext(ctx, "C1", ts, slack.MsgOptionText("two", false))
	require.Equal(t, "ratelimited", code(err), "chat.update past its per-workspace tier")
}

// A user's id as channel is a DM (the App Home's Messages tab) whose own
// id is D…, as conversations.open answers; no token is not_authed; a response_url expires after 30 minutes.
func TestDirectMessagesTokensAndExpiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := slackfake.New(slackfake.Config{})
	defer f.Close()
	f.AddUser(slackfake.User{ID: "U1"})
	api := slack.New("xoxb-test", slack.OptionAPIURL(f.URL()))
	ch, ts, err := api.PostMessageContext(ctx, "U1", slack.MsgOptionText("psst", false))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(ch, "D"), "the answer names the DM's own id, not the user's: %s", ch)
	require.Equal(t, ch, f.DMChannel("U1"))
	require.Len(t, f.Messages(ch), 1)
	require.Empty(t, f.Messages("U1"), "nothing lives under the user's id")
	_, _, _, err = api.UpdateMessageContext(ctx, "U1", ts, slack.MsgOptionText("edited", false))
	require.Equal(t, "channel_not_found", code(err), "an update names the DM's id")
	_, _, _, err = api.UpdateMessageContext(ctx, ch, ts, slack.MsgOptionText("edited", false))
	require.NoError(t, err)
	again, _, err := api.PostMessageContext(ctx, "U1", slack.MsgOptionText("again", false))
	require.NoError(t, err)
	require.Equal(t, ch, again, "one DM per user")

	// conversations.open needs im:write and answers the same D… id.
	_, _, _, err = api.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{"U1"}})
	require.Equal(t, "missing_scope", code(err))
	f2 := slackfake.New(slackfake.Config{Scopes: []string{"chat:write", "im:write"}})
	defer f2.Close()
	f2.AddUser(slackfake.User{ID: "U1"})
	api2 := slack.New("xoxb-test", slack.OptionAPIURL(f2.URL()))
	opened, _, _, err := api2.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{"U1"}})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(opened.ID, "D"), opened.ID)
	posted, _, err := api2.PostMessageContext(ctx, "U1", slack.MsgOptionText("hi", false))
	require.NoError(t, err)
	require.Equal(t, opened.ID, posted, "a post to the user's id lands in the opened DM")
	_, _, err = api2.PostMessageContext(ctx, opened.ID, slack.MsgOptionText("hi again", false))
	require.NoError(t, err)
	require.Len(t, f2.Messages(opened.ID), 2)
	_, _, _, err = api2.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{"U404"}})
	require.Equal(t, "user_not_found", code(err))
	_, _, _, err = api2.OpenConversationContext(ctx, &slack.OpenConversationParameters{ChannelID: "D404"})
	require.Equal(t, "channel_not_found", code(err))
	resumed, _, _, err := api2.OpenConversationContext(ctx, &slack.OpenConversationParameters{ChannelID: opened.ID})
	require.NoError(t, err)
	require.Equal(t, opened.ID, resumed.ID)
	_, _, err = api.PostMessageContext(ctx, "U404", slack.MsgOptionText("psst", false))
	require.Equal(t, "channel_not_found", code(err))
	_, _, err = slack.New("", slack.OptionAPIURL(f.URL())).PostMessageContext(ctx, "U1", slack.MsgOptionText("x", false))
	require.Equal(t, "not_authed", code(err))
	_, _, err = api.PostMessageContext(ctx, "U1", slack.MsgOptionText(strings.Repeat("x", 40001), false))
	require.Equal(t, "msg_too_long", code(err), "a DM is checked like any message")

	u := f.NewResponseURL()
	f.Advance(31 * time.Minute)
	resp, err := http.Post(u, "application/json", strings.NewReader(`{"text":"late"}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 404, resp.StatusCode, "expired_url after 30 minutes")
	require.Equal(t, "expired_url", f.Calls()[len(f.Calls())-1].Error)
}

// Socket Mode: apps.connections.open takes only the app token; an
// event not acknowledged within the ack timeout is recorded (not a
// violation: Slack redelivers it) and comes again with retry_attempt 1 and
// retry_reason; an ack's response payload is recorded; an event still
// unacknowledged after the third retry, or an unacknowledged slash command,
// is a violation; disconnect names its reason and closes the connection.
func TestSocketModeRules(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := slackfake.New(slackfake.Config{AckTimeout: 200 * time.Millisecond})
	defer f.Close()
	_, _, err := slack.New("xoxb-test", slack.OptionAPIURL(f.URL()), slack.OptionAppLevelToken("xoxb-test")).StartSocketModeContext(ctx)
	require.Equal(t, "invalid_auth", code(err), "a bot token cannot open Socket Mode")
	_, wsURL, err := slack.New("xoxb-test", slack.OptionAPIURL(f.URL()), slack.OptionAppLevelToken("xapp-test")).StartSocketModeContext(ctx)
	require.NoError(t, err)
	conn, _, err := websocket.DefaultDialer.Dial(wsURL, nil)
	require.NoError(t, err)
	defer conn.Close()
	type envelope struct {
		Type         string          `json:"type"`
		EnvelopeID   string          `json:"envelope_id"`
		RetryAttempt int             `json:"retry_attempt"`
		RetryReason  string          `json:"retry_reason"`
		Reason       string          `json:"reason"`
		Payload      json.RawMessage `json:"payload"`
	}
	read := func() envelope {
		t.Helper()
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(30*time.Second)))
		var e envelope
		require.NoError(t, conn.ReadJSON(&e))
		return e
	}
	require.Equal(t, "hello", read().Type)
	f.WaitConnected(t, 1)

	body, _ := slackfake.MentionEvent(t, slackfake.Mention{User: "U1", Text: "a fox"})
	_, err = f.Send("events_api", body, 0)
	require.NoError(t, err)
	first := read()
	require.Equal(t, "events_api", first.Type)
	require.Zero(t, first.RetryAttempt)
	again := read() // not acknowledged: Slack sends it again
	require.Equal(t, 1, again.RetryAttempt)
	require.Equal(t, "timeout", again.RetryReason)
	require.NotEqual(t, first.EnvelopeID, again.EnvelopeID)
	require.JSONEq(t, string(first.Payload), string(again.Payload), "the same event")
	require.NoError(t, conn.WriteJSON(map[string]any{"envelope_id": again.EnvelopeID, "payload": map[string]string{"text": "hi"}}))
	cs := f.Wait(t, "ack", func(cs []slackfake.Call) bool {
		for _, c := range cs {
			if c.Method == "socket.ack" && c.Form.Get("envelope_id") == again.EnvelopeID {
				return true
			}
		}
		return false
	})
	var retries, acks []slackfake.Call
	for _, c := range cs {
		switch c.Method {
		case "socket.retry":
			retries = append(retries, c)
		case "socket.ack":
			acks = append(acks, c)
		}
	}
	require.Len(t, retries, 1)
	require.Equal(t, first.EnvelopeID, retries[0].Form.Get("envelope_id"))
	require.Equal(t, "0", retries[0].Form.Get("retry_attempt"))
	require.JSONEq(t, `{"text":"hi"}`, acks[0].Form.Get("payload"))
	require.Empty(t, f.Violations(), "an unacknowledged event is redelivered, not an error")

	// Never acknowledged: after the third retry the event is lost.
	_, err = f.Send("events_api", body, 0)
	require.NoError(t, err)
	for i := range 4 {
		require.Equal(t, i, read().RetryAttempt)
	}
	slash, _ := json.Marshal(map[string]string{"command": "/imagine"})
	_, err = f.Send("slash_commands", slash, 0)
	require.NoError(t, err)
	require.Equal(t, "slash_commands", read().Type)
	f.Wait(t, "violations", func([]slackfake.Call) bool { return len(f.Violations()) == 2 })
	require.Contains(t, strings.Join(f.Violations(), "\n"), "(events_api, retry_attempt 3) not acknowledged")
	require.Contains(t, strings.Join(f.Violations(), "\n"), "(slash_commands, retry_attempt 0) not acknowledged")

	f.Disconnect("refresh_requested")
	d := read()
	require.Equal(t, "disconnect", d.Type)
	require.Equal(t, "refresh_requested", d.Reason)
	var m map[string]any
	require.Error(t, conn.ReadJSON(&m), "the connection is closed after disconnect")
	require.Equal(t, 1, f.Opened())
}

// Mentions are built as Slack sends them: the bot's mention first, typed
// text escaped, edits with "edited", bot messages with bot_id, thread
// replies with thread_ts, attachments as files.
func TestMentionPayload(t *testing.T) {
	t.Parallel()
	text := slackfake.Escape("salt & pepper <3") + " " + slackfake.UserRef("U999") + " by " + slackfake.ChannelRef("C9", "art") +
		" " + slackfake.LinkRef("https://ex.am/ple?a=1&b=2", "ex.am")
	require.Equal(t, "salt &amp; pepper &lt;3 <@U999> by <#C9|art> <https://ex.am/ple?a=1&amp;b=2|ex.am>", text)
	raw, id := slackfake.MentionEvent(t, slackfake.Mention{User: "U1", Text: text, ThreadTS: "1.5", EditedTS: "2.5", BotID: "B1",
		Files: []slackfake.MentionFile{{ID: "F1", Name: "a.png", Mimetype: "image/png", URLPrivate: "https://files.slack.com/a.png"}}})
	ev, err := slackevents.ParseEvent(raw, slackevents.OptionNoVerifyToken())
	require.NoError(t, err)
	require.Equal(t, slackevents.CallbackEvent, ev.Type)
	require.Equal(t, "T1", ev.TeamID)
	m, ok := ev.InnerEvent.Data.(*slackevents.AppMentionEvent)
	require.True(t, ok)
	require.Equal(t, "<@UBOT> "+text, m.Text)
	require.Equal(t, "1.5", m.ThreadTimeStamp)
	require.NotNil(t, m.Edited)
	require.Equal(t, "2.5", m.Edited.TimeStamp)
	require.Equal(t, "B1", m.BotID)
	require.Len(t, m.Files, 1)
	require.Equal(t, "https://files.slack.com/a.png", m.Files[0].URLPrivate)
	_, id2 := slackfake.MentionEvent(t, slackfake.Mention{User: "U1", Text: "x"})
	require.NotEqual(t, id, id2, "every delivery has its own event id")

	for _, bad := range []string{"salt & pepper", "a <3", "x > y", "<javascript:x>", "&amp"} {
		require.Error(t, slackfake.CheckFormat(bad), bad)
	}
	for _, good := range []string{"", "a fox --ar 16:9", text, "<!here> <!date^1^{date}|x> <mailto:a@b.c|mail>"} {
		require.NoError(t, slackfake.CheckFormat(good), good)
	}
}
