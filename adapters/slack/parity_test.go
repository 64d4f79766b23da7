package slack_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/adapters/slack/slackfake"
	"github.com/easelbot/easel/commands"
)

func textWith(cs []slackfake.Call, method, text string) bool {
	for _, c := range calls(cs, method) {
		if strings.Contains(c.Form.Get("text"), text) || strings.Contains(c.Form.Get("blocks"), text) {
			return true
		}
	}
	return false
}

// An NSFW-tagged model runs only in a channel on the workspace's
// allow-list, which admins edit with `admin nsfw on|off`.
func TestSlackNSFWChannelAllowList(t *testing.T) {
	t.Parallel()
	b := setupWith(t, options{step: 0, limits: commands.Limits{NSFWModels: []string{"fake-xl"}}})
	mention := func(user, text string) {
		body, _ := mentionEvent(t, slackfake.Mention{User: user, Text: text})
		require.Equal(t, 200, b.post(t, "/slack/events", "application/json", body, nil))
	}
	mention("U1", "a fox --model fake-xl --steps 2")
	b.fake.Wait(t, "refusal", func(cs []slackfake.Call) bool {
		return textWith(cs, "chat.update", "tagged NSFW") || textWith(cs, "chat.postEphemeral", "tagged NSFW")
	})
	active, err := b.sched.Active(b.ctx, "slack:T1")
	require.NoError(t, err)
	require.Empty(t, active, "nothing enqueued")

	mention("U1", "admin nsfw on")
	b.fake.Wait(t, "non-admin refused", func(cs []slackfake.Call) bool { return ephemeralWith(cs, "Only workspace admins") })
	mention("UADMIN1", "admin nsfw on")
	b.fake.Wait(t, "allowed", func(cs []slackfake.Call) bool { return ephemeralWith(cs, "may now run in this channel") })
	ok, err := b.svc.NSFWChannel(b.ctx, "slack:T1", "C1")
	require.NoError(t, err)
	require.True(t, ok)

	mention("U1", "a fox --model fake-xl --steps 2")
	b.fake.Wait(t, "final", finalUpdate)
	require.Contains(t, b.sd.LastRequest().OverrideSettings["sd_model_checkpoint"], "fake-xl")

	mention("UADMIN1", "admin nsfw off")
	b.fake.Wait(t, "disallowed", func(cs []slackfake.Call) bool { return ephemeralWith(cs, "may no longer run") })
	ok, err = b.svc.NSFWChannel(b.ctx, "slack:T1", "C1")
	require.NoError(t, err)
	require.False(t, ok)
}

// A user whose Slack locale is German (users.info) gets German status and
// final text; workspace and channel defaults set with `admin defaults`
// apply to the request.
func TestSlackGermanUserAndDefaults(t *testing.T) {
	t.Parallel()
	b := setupWith(t, options{step: 0})
	b.fake.AddUser(slackfake.User{ID: "UDE", Name: "hans", Locale: "de-DE"})
	mention := func(user, text string) {
		body, _ := mentionEvent(t, slackfake.Mention{User: user, Text: text})
		require.Equal(t, 200, b.post(t, "/slack/events", "application/json", body, nil))
	}
	mention("UADMIN1", "admin defaults steps 9")
	b.fake.Wait(t, "workspace default", func(cs []slackfake.Call) bool { return ephemeralWith(cs, "Set the workspace default `steps` to `9`") })
	mention("UADMIN1", "admin defaults channel negative_prompt blurry, dark")
	b.fake.Wait(t, "channel default", func(cs []slackfake.Call) bool { return ephemeralWith(cs, "Set the channel default `negative_prompt`") })
	mention("UADMIN1", "admin defaults steps 9999")
	b.fake.Wait(t, "bad default", func(cs []slackfake.Call) bool { return ephemeralWith(cs, "steps: must be between") })

	mention("UDE", "ein Fuchs")
	b.fake.Wait(t, "German final", func(cs []slackfake.Call) bool { return textWith(cs, "chat.update", "Fertig · 512×512 · 9 Schritte") })
	require.Equal(t, "blurry, dark", b.sd.LastRequest().NegativePrompt)

	mention("UDE", "ein Fuchs --steps 9999")
	b.fake.Wait(t, "German refusal with a German detail", func(cs []slackfake.Call) bool {
		const want = "steps: muss zwischen 1 und 150 liegen (erhalten: 9999). Siehe `--help`"
		return textWith(cs, "chat.update", want) || textWith(cs, "chat.postEphemeral", want)
	})
}

// A German user's /imagine in a channel without the bot ends, through the
// command's response_url, with the German final line.
func TestSlackGermanResultThroughResponseURL(t *testing.T) {
	t.Parallel()
	b := setupWith(t, options{step: 0})
	b.fake.AddUser(slackfake.User{ID: "UDE", Name: "hans", Locale: "de-DE"})
	body := slashBody(b.fake, "C2", "UDE", "ein Fuchs draußen --steps 2")
	require.Equal(t, 200, b.post(t, "/slack/commands", "application/x-www-form-urlencoded", body, nil))
	var text string
	b.fake.Wait(t, "result via response_url", func([]slackfake.Call) bool {
		for _, p := range b.fake.ResponsePosts() {
			if p.Body["response_type"] == "in_channel" {
				text, _ = p.Body["text"].(string)
				return true
			}
		}
		return false
	})
	require.Contains(t, text, "Fertig · 512×512 · 2 Schritte · Seed ")
	require.Contains(t, text, "<@UDE>")
	b.fake.Wait(t, "German invite hint via response_url", func([]slackfake.Call) bool {
		for _, p := range b.fake.ResponsePosts() {
			if s, _ := p.Body["text"].(string); strings.Contains(s, "Ich bin kein Mitglied dieses Kanals") {
				return true
			}
		}
		return false
	})
}

// A German user's button clicks keep their language: a reroll's final
// message and an upscale's line are German, and so is the refusal a
// German bystander gets for someone else's buttons.
func TestSlackGermanClicks(t *testing.T) {
	t.Parallel()
	b := setupWith(t, options{step: 0})
	b.fake.AddUser(slackfake.User{ID: "UDE", Name: "hans", Locale: "de-DE"})
	b.fake.AddUser(slackfake.User{ID: "UDE2", Name: "grete", Locale: "de-DE"})
	body, _ := mentionEvent(t, slackfake.Mention{User: "UDE", Text: "ein Fuchs --steps 2"})
	require.Equal(t, 200, b.post(t, "/slack/events", "application/json", body, nil))
	cs := b.fake.Wait(t, "final", finalUpdate)
	var blocks string
	for _, c := range okCalls(cs, "chat.update") {
		if strings.Contains(c.Form.Get("blocks"), "easel:reroll:") {
			blocks = c.Form.Get("blocks")
		}
	}
	jobID := strings.Split(strings.Split(blocks, "easel:reroll:")[1], `"`)[0]

	require.Equal(t, 200, b.click(t, "UDE2", "easel:reroll:"+jobID, ""))
	b.fake.Wait(t, "German refusal", func(cs []slackfake.Call) bool { return ephemeralWith(cs, "Nur wer gefragt hat") })

	require.Equal(t, 200, b.click(t, "UDE", "easel:reroll:"+jobID, ""))
	cs = b.fake.Wait(t, "reroll final", func(cs []slackfake.Call) bool { return finals(cs) == 2 })
	for _, c := range okCalls(cs, "chat.update") {
		if strings.Contains(c.Form.Get("blocks"), "easel:reroll:") {
			require.Contains(t, c.Form.Get("text"), "Fertig · 512×512 · 2 Schritte")
		}
	}

	require.Equal(t, 200, b.click(t, "UDE", "easel:up:"+jobID+":0", ""))
	b.fake.Wait(t, "German upscale line", func(cs []slackfake.Call) bool { return textWith(cs, "chat.postMessage", "Bild 1 wird hochskaliert") })
}

// A German workspace admin gets German `admin` replies, and a German user
// German delivery-problem notices: the edit hint, a refused reply post,
// and the final-update failure told by direct message.
func TestSlackGermanAdminAndDeliveryNotices(t *testing.T) {
	t.Parallel()
	b := setupWith(t, options{step: 0})
	b.fake.AddUser(slackfake.User{ID: "UDE", Name: "hans", Locale: "de-DE"})
	b.fake.AddUser(slackfake.User{ID: "UDEADMIN", Name: "chefin", Locale: "de-DE", Admin: true})
	mention := func(m slackfake.Mention) {
		body, _ := mentionEvent(t, m)
		require.Equal(t, 200, b.post(t, "/slack/events", "application/json", body, nil))
	}
	mention(slackfake.Mention{User: "UDE", Text: "admin nsfw on"})
	b.fake.Wait(t, "German non-admin refusal", func(cs []slackfake.Call) bool { return ephemeralWith(cs, "Nur Admins und Inhaber") })
	mention(slackfake.Mention{User: "UDEADMIN", Text: "admin nsfw on"})
	b.fake.Wait(t, "German admin reply", func(cs []slackfake.Call) bool { return ephemeralWith(cs, "dürfen jetzt in diesem Kanal laufen") })
	mention(slackfake.Mention{User: "UDEADMIN", Text: "admin set max_steps 30"})
	b.fake.Wait(t, "German policy reply", func(cs []slackfake.Call) bool { return ephemeralWith(cs, "`max_steps` auf `30` gesetzt") })
	mention(slackfake.Mention{User: "UDEADMIN", Text: "admin defaults channel steps 7"})
	b.fake.Wait(t, "German defaults reply", func(cs []slackfake.Call) bool {
		return ephemeralWith(cs, "Standardwert (Kanal) `steps` auf `7` gesetzt")
	})
	mention(slackfake.Mention{User: "UDEADMIN", Text: "admin set max_steps viele"})
	b.fake.Wait(t, "invalid policy value named", func(cs []slackfake.Call) bool { return ephemeralWith(cs, "⚠️ max_steps: must be a whole number") })
	mention(slackfake.Mention{User: "UDEADMIN", Text: "admin"})
	b.fake.Wait(t, "German admin help", func(cs []slackfake.Call) bool { return ephemeralWith(cs, "Admin-Befehle:") })

	mention(slackfake.Mention{User: "UDE", Text: "ein Fuchs", TS: "1690000000.888888", EditedTS: "1690000001.000000"})
	b.fake.Wait(t, "German edit hint", func(cs []slackfake.Call) bool { return ephemeralWith(cs, "Das Bearbeiten einer Nachricht") })

	b.fake.FailNext("chat.postMessage", "ratelimited", "ratelimited", "ratelimited", "ratelimited")
	mention(slackfake.Mention{User: "UDE", Text: "ein Fuchs --steps 2"})
	b.fake.Wait(t, "German post failure", func(cs []slackfake.Call) bool { return ephemeralWith(cs, "nichts wurde eingereiht") })

	isFinal := func(f url.Values) bool { return strings.Contains(f.Get("blocks"), "easel:reroll:") }
	b.fake.FailIf("chat.update", isFinal, "is_archived", -1)
	b.fake.FailIf("chat.postMessage", func(f url.Values) bool { return f.Get("channel") == "C1" && strings.Contains(f.Get("text"), "Fertig") }, "is_archived", -1)
	b.fake.FailIf("chat.postEphemeral", func(f url.Values) bool { return f.Get("user") == "UDE" }, "is_archived", -1)
	mention(slackfake.Mention{User: "UDE", Text: "ein Fuchs --steps 2"})
	b.fake.Wait(t, "German direct message", func(cs []slackfake.Call) bool {
		for _, c := range okCalls(cs, "chat.postMessage") {
			if strings.Contains(c.Form.Get("text"), "konnte seine Nachricht nicht aktualisieren (is_archived)") {
				return true
			}
		}
		return false
	})
}
