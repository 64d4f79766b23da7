package slackfake

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Mention is an app_mention event as Slack delivers it
// (https://docs.slack.dev/reference/events/app_mention): the message text
// in Slack's format, the bot's own mention first; a mention in a thread
// carries thread_ts; an edited message that mentions the app is delivered
// again with "edited" ({user, ts}) and a new event id; a message posted by
// a bot carries bot_id (and bot_profile); attached files come as file
// objects (https://docs.slack.dev/reference/objects/file-object).
type Mention struct {
	// Team is the workspace (default "T1", the fake's default).
	Team string
	// User is who wrote the message (a bot's user id for a bot message).
	User string
	// Channel is where (default "C1").
	Channel string
	// Text is what follows the bot's mention, in Slack's format: typed
	// text escaped (Escape), mentions and links as Slack writes them
	// (UserRef, ChannelRef, LinkRef). Mention refuses text Slack would
	// never send (a bare &, < or >).
	Text string
	// TS is the message's ts (default: a fresh one).
	TS string
	// ThreadTS is the parent's ts when the message is a thread reply.
	ThreadTS string
	// EditedTS, when set, makes this the delivery of an edit at that ts.
	EditedTS string
	// BotID marks a message posted by a bot (or an app).
	BotID string
	// Files are the files attached to the message.
	Files []MentionFile
	// EventID is the Events API event id (default: a fresh one; an edit
	// gets a new one, as Slack gives it).
	EventID string
}

// MentionFile is a file attached to a message (the fields Easel reads).
type MentionFile struct {
	ID, Name, Mimetype string
	// URLPrivate and URLPrivateDownload need the bot token (files:read).
	URLPrivate, URLPrivateDownload string
}

// BotUser is the fake app's bot user id; Slack starts an app_mention's
// text with its mention.
const BotUser = "UBOT"

// Escape applies Slack's escaping to text a user typed
// (https://docs.slack.dev/messaging/formatting-message-text#escaping):
// & < > become &amp; &lt; &gt;.
func Escape(typed string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(typed)
}

// UserRef is a user mention as Slack writes it: <@U…>.
func UserRef(id string) string { return "<@" + id + ">" }

// ChannelRef is a channel mention as Slack writes it: <#C…|name>.
func ChannelRef(id, name string) string { return "<#" + id + "|" + Escape(name) + ">" }

// LinkRef is a link as Slack writes it: <url|label> (<url> without a
// label), the URL's & escaped too.
func LinkRef(u, label string) string {
	if label == "" {
		return "<" + Escape(u) + ">"
	}
	return "<" + Escape(u) + "|" + Escape(label) + ">"
}

// formatted matches text in Slack's format: escapes, <…> entities
// (mentions, channels, special mentions, dates, links), and text with no
// bare &, < or >.
var formatted = regexp.MustCompile(`^(?:[^&<>]|&amp;|&lt;|&gt;|<(?:@[UW][A-Z0-9]+|#C[A-Z0-9]+(?:\|[^<>]*)?|![a-z^]+[^<>]*|(?:https?|mailto):[^<>|]+(?:\|[^<>]*)?)>)*$`)

// CheckFormat reports text Slack would never send in a message: a bare
// &, < or > (Slack escapes them), or a <…> that is not one of its entities.
func CheckFormat(text string) error {
	if !formatted.MatchString(text) {
		return fmt.Errorf("text %q is not as Slack sends it (escape typed text with Escape, write entities with UserRef, ChannelRef, LinkRef)", text)
	}
	return nil
}

var mentionSeq atomic.Int64

// MentionEvent returns the Events API event_callback for m (the body of an
// HTTP delivery, or the payload of a Socket Mode events_api envelope) and
// its event id. It fails t when m.Text is not in Slack's format.
func MentionEvent(t testing.TB, m Mention) (json.RawMessage, string) {
	t.Helper()
	if err := CheckFormat(m.Text); err != nil {
		t.Fatalf("slackfake: mention: %v", err)
	}
	n := mentionSeq.Add(1)
	team := "T1"
	if m.Team != "" {
		team = m.Team
	}
	if m.Channel == "" {
		m.Channel = "C1"
	}
	if m.TS == "" {
		m.TS = fmt.Sprintf("1690000000.%06d", n)
	}
	if m.EventID == "" {
		m.EventID = "Ev" + strconv.FormatInt(1000000+n, 10)
	}
	ev := map[string]any{"type": "app_mention", "user": m.User, "text": UserRef(BotUser) + " " + m.Text,
		"ts": m.TS, "channel": m.Channel, "event_ts": m.TS}
	if m.ThreadTS != "" {
		ev["thread_ts"] = m.ThreadTS
	}
	if m.EditedTS != "" {
		ev["edited"] = map[string]any{"user": m.User, "ts": m.EditedTS}
		ev["event_ts"] = m.EditedTS
	}
	if m.BotID != "" {
		ev["bot_id"] = m.BotID
		ev["bot_profile"] = map[string]any{"id": m.BotID, "app_id": "A" + m.BotID, "name": "another bot", "team_id": team}
	}
	if len(m.Files) > 0 {
		var files []any
		for _, f := range m.Files {
			files = append(files, map[string]any{"id": f.ID, "name": f.Name, "title": f.Name, "mimetype": f.Mimetype,
				"filetype": strings.TrimPrefix(f.Mimetype, "image/"), "user": m.User,
				"url_private": f.URLPrivate, "url_private_download": f.URLPrivateDownload})
		}
		ev["files"] = files
		ev["upload"] = false
	}
	raw, err := json.Marshal(map[string]any{"token": "verification-token", "team_id": team, "api_app_id": "A1",
		"type": "event_callback", "event_id": m.EventID, "event_time": time.Now().Unix(), "event": ev,
		"authorizations": []any{map[string]any{"team_id": team, "user_id": BotUser, "is_bot": true}}})
	if err != nil {
		t.Fatalf("slackfake: mention: %v", err)
	}
	return raw, m.EventID
}
