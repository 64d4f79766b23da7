package slack_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/adapters"
	easelslack "github.com/easelbot/easel/adapters/slack"
	"github.com/easelbot/easel/adapters/slack/slackfake"
	"github.com/easelbot/easel/commands"
	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/sdclient/a1111"
	"github.com/easelbot/easel/sdclient/fakesd"
	"github.com/easelbot/easel/storage"
	"github.com/easelbot/easel/worker"
)

const secret = "signing-secret-for-tests"

type bundle struct {
	ctx   context.Context
	fake  *slackfake.Server
	app   *httptest.Server
	bot   *easelslack.Adapter
	sched *scheduler.Scheduler
	svc   *commands.Service
	store *storage.Store
	sd    *fakesd.Server
}

type options struct {
	step     time.Duration
	appToken string
	budget   int
	limits   commands.Limits
	noStart  bool
	join     bool
	scopes   []string
	// redis, when set, is the test's own redis-server (outage tests);
	// redisTimeout is the adapter's Redis budget.
	redis        *redistest.Server
	redisTimeout time.Duration
}

func setup(t *testing.T, step time.Duration) *bundle { return setupWith(t, options{step: step}) }

// setupWith runs a worker on the fake SD backend, the relay and the Slack
// adapter against the enforcing Slack fake, in workspace T1 with public
// channel C1 (the bot is a member) and C2 (it is not).
func setupWith(t *testing.T, o options) *bundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*slackfake.WaitTimeout)
	t.Cleanup(cancel)
	var store *storage.Store
	if o.redis != nil {
		var err error
		store, err = storage.Open(ctx, o.redis.Config(), zap.NewNop())
		require.NoError(t, err)
		t.Cleanup(store.Close)
	} else {
		store = redistest.Store(t)
	}
	sched, err := scheduler.New(ctx, store, scheduler.Config{}, zap.NewNop())
	require.NoError(t, err)
	pol, err := scheduler.NewPolicies(sched, scheduler.PolicyConfig{})
	require.NoError(t, err)
	svc, err := commands.New(sched, pol, o.limits, zap.NewNop())
	require.NoError(t, err)
	sd := fakesd.New(fakesd.Config{StepDuration: o.step, Instant: o.step == 0, PreviewEvery: 2})
	sdSrv := httptest.NewServer(sd.Handler())
	t.Cleanup(sdSrv.Close)
	client, err := a1111.New(a1111.Config{BaseURL: sdSrv.URL, ProgressInterval: 5 * time.Millisecond})
	require.NoError(t, err)
	w, err := worker.New(worker.Config{Name: "w"}, sched, []worker.Backend{{Name: "gpu0", Backend: client}}, zap.NewNop())
	require.NoError(t, err)
	fake := slackfake.New(slackfake.Config{Scopes: o.scopes})
	t.Cleanup(fake.Close)
	fake.AddChannel(slackfake.Channel{ID: "C1", Member: true})
	fake.AddChannel(slackfake.Channel{ID: "C2"})
	fake.AddChannel(slackfake.Channel{ID: "G1", Private: true})
	for _, u := range []string{"U0", "U1", "U2", "U3", "U7"} {
		fake.AddUser(slackfake.User{ID: u, Name: strings.ToLower(u)})
	}
	fake.AddUser(slackfake.User{ID: "UADMIN1", Name: "boss", Admin: true})
	t.Cleanup(func() {
		require.Empty(t, fake.Violations(), "Slack rules broken")
	})
	bot, err := easelslack.New(easelslack.Config{BotToken: "xoxb-test", SigningSecret: secret, AppToken: o.appToken,
		APIBase: fake.URL(), EditInterval: 20 * time.Millisecond, UpdatesPerMinute: o.budget, JoinChannels: o.join, RedisTimeout: o.redisTimeout}, svc, sched, zap.NewNop())
	require.NoError(t, err)
	mux := http.NewServeMux()
	for p, h := range bot.Routes() {
		mux.Handle(p, h)
	}
	app := httptest.NewServer(mux)
	t.Cleanup(app.Close)
	b := &bundle{ctx: ctx, fake: fake, app: app, bot: bot, sched: sched, svc: svc, store: store, sd: sd}
	if o.noStart {
		return b
	}
	relay := adapters.NewRelay(sched, zap.NewNop(), bot)
	require.NoError(t, w.Start(ctx))
	require.NoError(t, relay.Start(ctx))
	require.NoError(t, bot.Start(ctx))
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = bot.Stop(c)
		_ = relay.Stop(c)
		_ = w.Stop(c)
	})
	return b
}

// sign returns Slack's signature headers for body at ts.
func sign(body string, ts time.Time) (string, string) {
	s := strconv.FormatInt(ts.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("v0:" + s + ":" + body))
	return s, "v0=" + hex.EncodeToString(mac.Sum(nil))
}

// post sends a request signed like Slack (or not, per mutate).
func (b *bundle) post(t *testing.T, path, contentType, body string, mutate func(http.Header)) int {
	t.Helper()
	ts, sig := sign(body, time.Now())
	return b.postSigned(t, path, contentType, body, ts, sig, mutate)
}

func (b *bundle) postSigned(t *testing.T, path, contentType, body, ts, sig string, mutate func(http.Header)) int {
	t.Helper()
	req, _ := http.NewRequestWithContext(b.ctx, "POST", b.app.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("X-Slack-Request-Timestamp", ts)
	req.Header.Set("X-Slack-Signature", sig)
	if mutate != nil {
		mutate(req.Header)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

var eventSeq struct {
	mu sync.Mutex
	n  int
}

func nextSeq() int {
	eventSeq.mu.Lock()
	defer eventSeq.mu.Unlock()
	eventSeq.n++
	return eventSeq.n
}

// mentionEvent is an app_mention callback as Slack sends it (the fake
// builds it: text in Slack's format, the bot's mention first).
func mentionEvent(t testing.TB, m slackfake.Mention) (string, string) {
	t.Helper()
	raw, id := slackfake.MentionEvent(t, m)
	return string(raw), id
}

// slashBody is a form-encoded /imagine as Slack sends it.
func slashBody(fake *slackfake.Server, channel, user, text string) string {
	return url.Values{"token": {"x"}, "team_id": {"T1"}, "channel_id": {channel}, "user_id": {user},
		"command": {"/imagine"}, "text": {text}, "response_url": {fake.NewResponseURL()},
		"trigger_id": {fmt.Sprintf("trig.%d", nextSeq())}}.Encode()
}

func calls(cs []slackfake.Call, method string) []slackfake.Call {
	var out []slackfake.Call
	for _, c := range cs {
		if c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

func okCalls(cs []slackfake.Call, method string) []slackfake.Call {
	var out []slackfake.Call
	for _, c := range calls(cs, method) {
		if c.Error == "" {
			out = append(out, c)
		}
	}
	return out
}

func finals(cs []slackfake.Call) int {
	n := 0
	for _, c := range okCalls(cs, "chat.update") {
		if strings.Contains(c.Form.Get("blocks"), "easel:reroll:") {
			n++
		}
	}
	return n
}

func finalUpdate(cs []slackfake.Call) bool { return finals(cs) >= 1 }

func ephemeralWith(cs []slackfake.Call, text string) bool {
	for _, c := range okCalls(cs, "chat.postEphemeral") {
		if strings.Contains(c.Form.Get("text"), text) {
			return true
		}
	}
	return false
}

func TestMentionProgressPreviewUploadAndButtons(t *testing.T) {
	t.Parallel()
	b := setup(t, 10*time.Millisecond)
	body, _ := mentionEvent(t, slackfake.Mention{User: "U1", Text: "a lighthouse at dusk --ar 16:9 --steps 10 --n 2"})
	require.Equal(t, 200, b.post(t, "/slack/events", "application/json", body, nil))
	cs := b.fake.Wait(t, "final update", finalUpdate)
	post := okCalls(cs, "chat.postMessage")[0]
	require.Equal(t, "C1", post.Form.Get("channel"))
	require.NotEmpty(t, post.Form.Get("thread_ts"), "the reply is in a thread")
	require.GreaterOrEqual(t, len(okCalls(cs, "chat.update")), 2, "progress updates before the final one")
	previews := 0
	for _, c := range okCalls(cs, "chat.update") {
		if strings.Contains(c.Form.Get("blocks"), `"slack_file"`) {
			previews++
		}
	}
	require.Positive(t, previews, "a progress update shows the latest preview")
	done := okCalls(cs, "files.completeUploadExternal")
	var shared []slackfake.Call
	for _, c := range done {
		if c.Form.Get("channel_id") != "" {
			shared = append(shared, c)
		}
	}
	require.Len(t, shared, 1, "the result is shared once")
	require.Equal(t, post.Form.Get("thread_ts"), shared[0].Form.Get("thread_ts"), "images go into the thread")
	require.Equal(t, "C1", shared[0].Form.Get("channel_id"))
	b.fake.Wait(t, "previews deleted", func(cs []slackfake.Call) bool {
		return len(okCalls(cs, "files.delete")) == countPreviewUploads(cs)
	})
	images := 0
	for _, f := range b.fake.Files() {
		if f.Channel == "C1" {
			images++
			require.True(t, strings.HasPrefix(string(f.Bytes), "\x89PNG"))
		} else {
			require.True(t, f.Deleted || !f.Completed, "preview files are deleted after the final state")
		}
	}
	require.Equal(t, 2, images)

	// Reroll by the requester starts another job; a click by someone else is refused.
	final := okCalls(cs, "chat.update")
	blocks := final[len(final)-1].Form.Get("blocks")
	jobID := strings.Split(strings.Split(blocks, "easel:reroll:")[1], `"`)[0]
	require.Equal(t, 200, b.click(t, "U2", "easel:reroll:"+jobID, ""))
	b.fake.Wait(t, "refusal", func(cs []slackfake.Call) bool { return ephemeralWith(cs, "Only the person who asked") })
	require.Equal(t, 200, b.click(t, "U1", "easel:reroll:"+jobID, ""))
	b.fake.Wait(t, "reroll final", func(cs []slackfake.Call) bool { return finals(cs) == 2 })
}

// click sends a signed block_actions payload.
func (b *bundle) click(t *testing.T, user, action, trigger string) int {
	t.Helper()
	if trigger == "" {
		trigger = fmt.Sprintf("trig.%d", nextSeq())
	}
	payload, _ := json.Marshal(map[string]any{"type": "block_actions", "team": map[string]any{"id": "T1"},
		"user": map[string]any{"id": user}, "channel": map[string]any{"id": "C1"}, "trigger_id": trigger,
		"response_url": b.fake.NewResponseURL(),
		"actions":      []any{map[string]any{"action_id": action, "block_id": "r-1", "value": action, "type": "button"}}})
	return b.post(t, "/slack/interactivity", "application/x-www-form-urlencoded", "payload="+url.QueryEscape(string(payload)), nil)
}

func TestSignaturesAndRetries(t *testing.T) {
	t.Parallel()
	b := setup(t, 0)
	body, id := mentionEvent(t, slackfake.Mention{User: "U1", Text: "a fox --steps 2"})
	require.Equal(t, 401, b.post(t, "/slack/events", "application/json", body, func(h http.Header) {
		h.Set("X-Slack-Signature", "v0=deadbeef")
	}), "forged signature")
	require.Equal(t, 401, b.post(t, "/slack/events", "application/json", body, func(h http.Header) {
		ts, sig := sign(body, time.Now().Add(-6*time.Minute))
		h.Set("X-Slack-Request-Timestamp", ts)
		h.Set("X-Slack-Signature", sig)
	}), "stale timestamp, correctly signed")
	require.Equal(t, 401, b.post(t, "/slack/events", "application/json", body, func(h http.Header) {
		h.Del("X-Slack-Signature")
		h.Del("X-Slack-Request-Timestamp")
	}), "missing headers")
	active, err := b.sched.Active(b.ctx, "slack:T1")
	require.NoError(t, err)
	require.Empty(t, active, "nothing enqueued")

	// The real delivery and Slack's retry of it enqueue once.
	require.Equal(t, 200, b.post(t, "/slack/events", "application/json", body, nil))
	require.Equal(t, 200, b.post(t, "/slack/events", "application/json", body, func(h http.Header) { h.Set("X-Slack-Retry-Num", "1") }))
	cs := b.fake.Wait(t, "final", finalUpdate)
	require.Len(t, okCalls(cs, "chat.postMessage"), 1, "event %s handled once", id)

	// URL verification answers the challenge.
	req, _ := json.Marshal(map[string]any{"type": "url_verification", "challenge": "c123", "token": "x"})
	require.Equal(t, 200, b.post(t, "/slack/events", "application/json", string(req), nil))
}

// TestReplayedSlashCommandAndClickEnqueueOnce: an exact replay of a signed
// slash command or interactivity payload inside the signature window is
// recognised by its body digest.
func TestReplayedSlashCommandAndClickEnqueueOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, 0)
	body := slashBody(b.fake, "C1", "U1", "a replayed fox --steps 2")
	ts, sig := sign(body, time.Now())
	for range 3 {
		require.Equal(t, 200, b.postSigned(t, "/slack/commands", "application/x-www-form-urlencoded", body, ts, sig, nil))
	}
	cs := b.fake.Wait(t, "final", finalUpdate)
	require.Len(t, okCalls(cs, "chat.postMessage"), 1, "one reply, one job")
	jobs, err := b.svc.Queue(b.ctx, commands.Caller{Tenant: "slack:T1", User: "U1"})
	require.NoError(t, err)
	require.Empty(t, jobs)

	final := okCalls(cs, "chat.update")
	jobID := strings.Split(strings.Split(final[len(final)-1].Form.Get("blocks"), "easel:reroll:")[1], `"`)[0]
	payload, _ := json.Marshal(map[string]any{"type": "block_actions", "team": map[string]any{"id": "T1"},
		"user": map[string]any{"id": "U1"}, "channel": map[string]any{"id": "C1"}, "trigger_id": "trig.click",
		"actions": []any{map[string]any{"action_id": "easel:reroll:" + jobID, "block_id": "r", "type": "button"}}})
	click := "payload=" + url.QueryEscape(string(payload))
	ts, sig = sign(click, time.Now())
	for range 2 {
		require.Equal(t, 200, b.postSigned(t, "/slack/interactivity", "application/x-www-form-urlencoded", click, ts, sig, nil))
	}
	cs = b.fake.Wait(t, "reroll final", func(cs []slackfake.Call) bool { return finals(cs) == 2 })
	require.Len(t, okCalls(cs, "chat.postMessage"), 2, "the replayed click made one job")
}

// TestFinalUpdateRefusedUploadsOnce: when Slack refuses the final update
// for good, the images are shared exactly once and the result reaches the
// thread as a new message; when it refuses for a while (429s), the relay's
// retries repeat only the update.
func TestFinalUpdateRefusedUploadsOnce(t *testing.T) {
	t.Parallel()
	for _, code := range []string{"msg_too_long", "invalid_blocks", "message_not_found", "ratelimited"} {
		t.Run(code, func(t *testing.T) {
			t.Parallel()
			b := setup(t, 0)
			isFinal := func(f url.Values) bool { return strings.Contains(f.Get("blocks"), "easel:reroll:") }
			n := -1
			if code == "ratelimited" {
				n = 5 // the adapter rides out 3, the relay retries the rest
			}
			b.fake.FailIf("chat.update", isFinal, code, n)
			body, _ := mentionEvent(t, slackfake.Mention{User: "U1", Text: "a fox --steps 2 --n 2"})
			require.Equal(t, 200, b.post(t, "/slack/events", "application/json", body, nil))
			var cs []slackfake.Call
			if code == "ratelimited" {
				cs = b.fake.Wait(t, "final after 429s", finalUpdate)
			} else {
				cs = b.fake.Wait(t, "fallback message", func(cs []slackfake.Call) bool {
					return len(okCalls(cs, "chat.postMessage")) == 2
				})
				fallback := okCalls(cs, "chat.postMessage")[1]
				require.Contains(t, fallback.Form.Get("text"), "Done")
				require.Equal(t, okCalls(cs, "chat.postMessage")[0].Form.Get("thread_ts"), fallback.Form.Get("thread_ts"))
			}
			shared := 0
			for _, c := range okCalls(cs, "files.completeUploadExternal") {
				if c.Form.Get("channel_id") != "" {
					shared++
				}
			}
			require.Equal(t, 1, shared, "images shared once")
			require.Len(t, calls(cs, "files.getUploadURLExternal"), 2+countPreviewUploads(cs))
		})
	}
}

func countPreviewUploads(cs []slackfake.Call) int {
	n := 0
	for _, c := range calls(cs, "files.getUploadURLExternal") {
		if strings.Contains(c.Form.Get("filename"), "preview") {
			n++
		}
	}
	return n
}

// TestReplyMessageDeleted: the reply was deleted before the final state
// (message_not_found): the result goes into the thread as a new message
// with its buttons.
func TestReplyMessageDeleted(t *testing.T) {
	t.Parallel()
	b := setup(t, 30*time.Millisecond)
	body, _ := mentionEvent(t, slackfake.Mention{User: "U1", Text: "a fox --steps 6"})
	require.Equal(t, 200, b.post(t, "/slack/events", "application/json", body, nil))
	b.fake.Wait(t, "reply", func(cs []slackfake.Call) bool { return len(okCalls(cs, "chat.postMessage")) == 1 })
	var ts string
	for _, m := range b.fake.Messages("C1") {
		if m.Text != "" && !m.Ephemeral {
			ts = m.TS
		}
	}
	b.fake.DeleteMessage("C1", ts)
	cs := b.fake.Wait(t, "new message with buttons", func(cs []slackfake.Call) bool {
		for _, c := range okCalls(cs, "chat.postMessage")[1:] {
			if strings.Contains(c.Form.Get("blocks"), "easel:reroll:") {
				return true
			}
		}
		return false
	})
	require.Equal(t, okCalls(cs, "chat.postMessage")[0].Form.Get("thread_ts"), okCalls(cs, "chat.postMessage")[1].Form.Get("thread_ts"))
}

// TestSlashCommandInChannelWithoutBot: /imagine in a channel the bot is not
// in: the user is told how to invite it and the result arrives through the
// command's response_url, images shown by file id.
func TestSlashCommandInChannelWithoutBot(t *testing.T) {
	t.Parallel()
	b := setup(t, 30*time.Millisecond)
	body := slashBody(b.fake, "C2", "U1", "a fox outside --steps 10")
	require.Equal(t, 200, b.post(t, "/slack/commands", "application/x-www-form-urlencoded", body, nil))
	cs := b.fake.Wait(t, "result via response_url", func(cs []slackfake.Call) bool {
		for _, p := range b.fake.ResponsePosts() {
			if p.Body["response_type"] == "in_channel" {
				return true
			}
		}
		return false
	})
	require.Empty(t, okCalls(cs, "chat.postMessage"), "the bot cannot post in C2")
	var hint, result bool
	for _, p := range b.fake.ResponsePosts() {
		text, _ := p.Body["text"].(string)
		if strings.Contains(text, "/invite") && p.Body["response_type"] == "ephemeral" {
			hint = true
		}
		if p.Body["response_type"] == "in_channel" {
			raw, _ := json.Marshal(p.Body["blocks"])
			require.Contains(t, string(raw), `"slack_file"`)
			require.Contains(t, text, "a fox outside")
			result = true
		}
	}
	require.True(t, hint, "the user is told how to invite the bot")
	require.True(t, result)
	notes := 0
	for _, p := range b.fake.ResponsePosts() {
		if text, _ := p.Body["text"].(string); strings.Contains(text, "Starting on gpu0") || strings.Contains(text, "▰") {
			notes++
		}
	}
	require.Equal(t, 1, notes, "one progress note through the response_url")
	require.LessOrEqual(t, len(b.fake.ResponsePosts()), 5, "a response_url takes 5 messages")
	require.Empty(t, b.fake.DMChannel("U1"), "no direct message needed")
}

// TestSlashResultAfterResponseURLExpired: when the command's response_url
// no longer works (Slack keeps it 30 minutes), the result comes as a
// direct message with the images, saying why; they are uploaded once.
func TestSlashResultAfterResponseURLExpired(t *testing.T) {
	t.Parallel()
	b := setup(t, 0)
	body := slashBody(b.fake, "C2", "U1", "a slow fox --steps 2")
	b.fake.Advance(31 * time.Minute)
	require.Equal(t, 200, b.post(t, "/slack/commands", "application/x-www-form-urlencoded", body, nil))
	cs := b.fake.Wait(t, "direct message with the result", func(cs []slackfake.Call) bool {
		for _, c := range okCalls(cs, "chat.postMessage") {
			if c.Form.Get("channel") == "U1" && strings.Contains(c.Form.Get("blocks"), `"slack_file"`) {
				return true
			}
		}
		return false
	})
	require.Empty(t, b.fake.ResponsePosts(), "every use of the expired response_url was refused")
	var dm slackfake.Call
	for _, c := range okCalls(cs, "chat.postMessage") {
		if strings.Contains(c.Form.Get("blocks"), `"slack_file"`) {
			dm = c
		}
	}
	require.Contains(t, dm.Form.Get("text"), "expired_url")
	var inDM bool
	for _, m := range b.fake.Messages(b.fake.DMChannel("U1")) {
		inDM = inDM || strings.Contains(m.Text, "a slow fox")
	}
	require.True(t, inDM, "the result lives in the DM's own channel (D…)")
	require.Contains(t, dm.Form.Get("text"), "a slow fox")
	require.Contains(t, dm.Form.Get("text"), "/invite")
	require.Len(t, calls(cs, "files.getUploadURLExternal"), 1, "the image is uploaded once")
	require.Len(t, okCalls(cs, "files.completeUploadExternal"), 1)
}

// TestFinalUpdateNoAccessToldByDM: the images were shared, then the
// channel became unreachable (archived) before the final update: the
// update, the fallback post in the thread and the ephemeral notice are
// refused, so the user is told in a direct message; the images are not
// uploaded again.
func TestFinalUpdateNoAccessToldByDM(t *testing.T) {
	t.Parallel()
	b := setup(t, 0)
	isFinal := func(f url.Values) bool { return strings.Contains(f.Get("blocks"), "easel:reroll:") }
	b.fake.FailIf("chat.update", isFinal, "is_archived", -1)
	b.fake.FailIf("chat.postMessage", func(f url.Values) bool { return f.Get("channel") == "C1" && strings.Contains(f.Get("text"), "Done") }, "is_archived", -1)
	b.fake.FailIf("chat.postEphemeral", func(url.Values) bool { return true }, "is_archived", -1)
	body, _ := mentionEvent(t, slackfake.Mention{User: "U1", Text: "a fox --steps 2"})
	require.Equal(t, 200, b.post(t, "/slack/events", "application/json", body, nil))
	cs := b.fake.Wait(t, "direct message", func(cs []slackfake.Call) bool {
		for _, c := range okCalls(cs, "chat.postMessage") {
			if c.Form.Get("channel") == "U1" && strings.Contains(c.Form.Get("text"), "couldn't update its message (is_archived)") {
				return true
			}
		}
		return false
	})
	require.Len(t, calls(cs, "files.getUploadURLExternal"), 1, "the image is uploaded once")
	n := 0
	for _, c := range calls(cs, "chat.update") {
		if isFinal(c.Form) {
			n++
		}
	}
	require.Equal(t, 1, n, "a permanent refusal is not retried")
}

// TestBotRemovedFromChannelMidJob: the bot is removed from the channel
// while a job runs (after its reply was posted, Slack answers
// not_in_channel to everything in C1); the final share is refused and the
// user is told in a direct message; nothing is retried.
func TestBotRemovedFromChannelMidJob(t *testing.T) {
	t.Parallel()
	b := setup(t, 20*time.Millisecond)
	inC1 := func(f url.Values) bool { return f.Get("channel") == "C1" || f.Get("channel_id") == "C1" }
	for _, m := range []string{"chat.update", "chat.postEphemeral", "files.completeUploadExternal"} {
		b.fake.FailIf(m, inC1, "not_in_channel", -1)
	}
	body, _ := mentionEvent(t, slackfake.Mention{User: "U1", Text: "a fox --steps 6"})
	require.Equal(t, 200, b.post(t, "/slack/events", "application/json", body, nil))
	cs := b.fake.Wait(t, "direct message", func(cs []slackfake.Call) bool {
		for _, c := range okCalls(cs, "chat.postMessage") {
			if c.Form.Get("channel") == "U1" && strings.Contains(c.Form.Get("text"), "couldn't share it here (not_in_channel)") {
				return true
			}
		}
		return false
	})
	shared := calls(cs, "files.completeUploadExternal")
	n := 0
	for _, c := range shared {
		if c.Form.Get("channel_id") != "" {
			n++
			require.Equal(t, "not_in_channel", c.Error)
		}
	}
	require.Equal(t, 1, n, "the refused share is not retried")
	require.Len(t, calls(cs, "files.getUploadURLExternal"), 1+countPreviewUploads(cs), "the image is uploaded once")
}

// TestJoinChannels: with join_channels and the channels:join scope, the bot
// joins a public channel it is not in and answers there as usual; a private
// channel cannot be joined and falls back to response_url.
func TestJoinChannels(t *testing.T) {
	t.Parallel()
	b := setupWith(t, options{join: true, scopes: []string{"chat:write", "files:write", "users:read", "commands", "channels:join"}})
	body := slashBody(b.fake, "C2", "U1", "a joined fox --steps 2")
	require.Equal(t, 200, b.post(t, "/slack/commands", "application/x-www-form-urlencoded", body, nil))
	cs := b.fake.Wait(t, "final in C2", finalUpdate)
	require.Len(t, okCalls(cs, "conversations.join"), 1)
	require.Equal(t, "C2", okCalls(cs, "chat.postMessage")[0].Form.Get("channel"))

	body = slashBody(b.fake, "G1", "U1", "a private fox --steps 2")
	require.Equal(t, 200, b.post(t, "/slack/commands", "application/x-www-form-urlencoded", body, nil))
	b.fake.Wait(t, "result via response_url", func([]slackfake.Call) bool {
		for _, p := range b.fake.ResponsePosts() {
			if p.Body["response_type"] == "in_channel" {
				return true
			}
		}
		return false
	})
}

// TestFailedPostsAreExplained: a mention whose reply cannot be posted, and
// an upscale click whose reply cannot be posted, tell the user and enqueue
// nothing.
func TestFailedPostsAreExplained(t *testing.T) {
	t.Parallel()
	b := setup(t, 0)
	b.fake.FailNext("chat.postMessage", "ratelimited", "ratelimited", "ratelimited", "ratelimited")
	body, _ := mentionEvent(t, slackfake.Mention{User: "U1", Text: "a fox --steps 2"})
	require.Equal(t, 200, b.post(t, "/slack/events", "application/json", body, nil))
	b.fake.Wait(t, "explanation", func(cs []slackfake.Call) bool { return ephemeralWith(cs, "nothing was queued") })
	jobs, err := b.sched.Active(b.ctx, "slack:T1")
	require.NoError(t, err)
	require.Empty(t, jobs)

	body, _ = mentionEvent(t, slackfake.Mention{User: "U1", Text: "a fox --steps 2"})
	require.Equal(t, 200, b.post(t, "/slack/events", "application/json", body, nil))
	cs := b.fake.Wait(t, "final", finalUpdate)
	final := okCalls(cs, "chat.update")
	jobID := strings.Split(strings.Split(final[len(final)-1].Form.Get("blocks"), "easel:reroll:")[1], `"`)[0]
	b.fake.FailIf("chat.postMessage", func(f url.Values) bool { return strings.Contains(f.Get("text"), "Upscaling") }, "is_archived", -1)
	require.Equal(t, 200, b.click(t, "U1", "easel:up:"+jobID+":0", ""))
	b.fake.Wait(t, "upscale explanation", func(cs []slackfake.Call) bool { return ephemeralWith(cs, "can't post in this channel") })
	jobs, err = b.sched.Active(b.ctx, "slack:T1")
	require.NoError(t, err)
	for _, j := range jobs {
		require.NotEqual(t, scheduler.StatusQueued, j.Status, "no upscale job without a message")
	}
}

func TestEditedMentionsAndBotsStartNothing(t *testing.T) {
	t.Parallel()
	b := setup(t, 0)
	// A mention makes one job; fixing a typo in it (Slack delivers the
	// message again with "edited" and a new event id) makes none.
	original, _ := mentionEvent(t, slackfake.Mention{User: "U1", Text: "a fxo --steps 2", TS: "1690000000.777777"})
	require.Equal(t, 200, b.post(t, "/slack/events", "application/json", original, nil))
	b.fake.Wait(t, "final", finalUpdate)
	edited, _ := mentionEvent(t, slackfake.Mention{User: "U1", Text: "a fox --steps 2", TS: "1690000000.777777", EditedTS: "1690000001.000000"})
	bot, _ := mentionEvent(t, slackfake.Mention{User: "U2", Text: "a robot --steps 2", BotID: "B1"})
	require.Equal(t, 200, b.post(t, "/slack/events", "application/json", bot, nil))
	require.Equal(t, 200, b.post(t, "/slack/events", "application/json", edited, nil))
	cs := b.fake.Wait(t, "hint", func(cs []slackfake.Call) bool { return ephemeralWith(cs, "Editing a message") })
	require.Len(t, calls(cs, "chat.postMessage"), 1, "only the original mention made a job")
	require.Len(t, calls(cs, "chat.postEphemeral"), 1, "nothing for the bot's message")
	jobs, err := b.sched.Active(b.ctx, "slack:T1")
	require.NoError(t, err)
	require.Empty(t, jobs)
	require.Equal(t, "a fxo", b.sd.LastRequest().Prompt)
}

// TestPromptUnescaped: Slack's escapes, mentions and links are undone
// before the prompt reaches validation and the backend; the prompt shown
// back is escaped again.
func TestPromptUnescaped(t *testing.T) {
	t.Parallel()
	b := setup(t, 0)
	text := slackfake.Escape("salt & pepper <3 ") + slackfake.UserRef("U999") + " by " + slackfake.ChannelRef("C9", "art") + " " +
		slackfake.LinkRef("https://ex.am/ple", "ex.am/ple") + " --steps 2"
	// A file without url_private (no files:read) is ignored.
	body, _ := mentionEvent(t, slackfake.Mention{User: "U1", Text: text, ThreadTS: "1690000000.424242",
		Files: []slackfake.MentionFile{{ID: "FUSER", Name: "ref.png"}}})
	require.Equal(t, 200, b.post(t, "/slack/events", "application/json", body, nil))
	cs := b.fake.Wait(t, "final", finalUpdate)
	require.Equal(t, "1690000000.424242", okCalls(cs, "chat.postMessage")[0].Form.Get("thread_ts"), "a mention in a thread is answered there")
	require.Equal(t, "salt & pepper <3 by #art ex.am/ple", b.sd.LastRequest().Prompt)
	final := okCalls(cs, "chat.update")
	require.Contains(t, final[len(final)-1].Form.Get("text"), "salt &amp; pepper &lt;3")
}

// TestLongPromptFitsSlack: with max_prompt_length above Slack's 3 000
// characters per section, every update still fits (the shown prompt is
// clipped; the job gets all of it).
func TestLongPromptFitsSlack(t *testing.T) {
	t.Parallel()
	b := setupWith(t, options{limits: commands.Limits{MaxPromptLength: 6000}})
	prompt := strings.Repeat("a very long & detailed prompt ", 150)[:4400]
	body, _ := mentionEvent(t, slackfake.Mention{User: "U1", Text: slackfake.Escape(prompt) + " --steps 2"})
	require.Equal(t, 200, b.post(t, "/slack/events", "application/json", body, nil))
	cs := b.fake.Wait(t, "final", finalUpdate)
	for _, c := range calls(cs, "chat.update") {
		require.Empty(t, c.Error)
	}
	require.Equal(t, strings.Join(strings.Fields(prompt), " "), b.sd.LastRequest().Prompt)
}

func TestRateLimitedUpdateStillDeliversFinal(t *testing.T) {
	t.Parallel()
	b := setup(t, 5*time.Millisecond)
	b.fake.FailNext("chat.update", "ratelimited")
	b.fake.FailNext("files.completeUploadExternal", "ratelimited")
	body, _ := mentionEvent(t, slackfake.Mention{User: "U1", Text: "a fox --steps 4"})
	require.Equal(t, 200, b.post(t, "/slack/events", "application/json", body, nil))
	cs := b.fake.Wait(t, "final after 429", finalUpdate)
	require.Equal(t, "ratelimited", calls(cs, "files.completeUploadExternal")[0].Error, "the file method was limited once")
}

func TestAdminCommandsAndUserCache(t *testing.T) {
	t.Parallel()
	b := setup(t, 0)
	body, _ := mentionEvent(t, slackfake.Mention{User: "U7", Text: "admin set max_steps 30"})
	require.Equal(t, 200, b.post(t, "/slack/events", "application/json", body, nil))
	cs := b.fake.Wait(t, "refusal", func(cs []slackfake.Call) bool { return len(calls(cs, "chat.postEphemeral")) == 1 })
	refusal := calls(cs, "chat.postEphemeral")[0]
	require.Contains(t, refusal.Form.Get("text"), "Only workspace admins")
	require.Equal(t, "U7", refusal.Form.Get("user"), "only the asker sees it")
	require.NotEmpty(t, refusal.Form.Get("thread_ts"))
	for i := range 2 {
		body, _ = mentionEvent(t, slackfake.Mention{User: "UADMIN1", Text: "admin set max_steps 30"})
		require.Equal(t, 200, b.post(t, "/slack/events", "application/json", body, nil))
		cs = b.fake.Wait(t, "applied", func(cs []slackfake.Call) bool { return len(calls(cs, "chat.postEphemeral")) == 2+i })
		require.Contains(t, calls(cs, "chat.postEphemeral")[1+i].Form.Get("text"), "Set `max_steps` to `30`")
	}
	n := 0
	for _, c := range calls(cs, "users.info") {
		if c.Form.Get("user") == "UADMIN1" {
			n++
		}
	}
	require.Equal(t, 1, n, "users.info answers are cached")
	body, _ = mentionEvent(t, slackfake.Mention{User: "U7", Text: "a fox --steps 40"})
	require.Equal(t, 200, b.post(t, "/slack/events", "application/json", body, nil))
	b.fake.Wait(t, "validation", func(cs []slackfake.Call) bool {
		for _, c := range append(calls(cs, "chat.update"), calls(cs, "chat.postEphemeral")...) {
			if strings.Contains(c.Form.Get("text"), "steps: must be between 1 and 30 (got 40)") {
				return true
			}
		}
		return false
	})
}

// TestSocketMode: with an app token the same handlers run over Socket Mode:
// envelopes are acknowledged, a mention makes a job that finishes in the
// thread; Slack's disconnect mid-job reconnects and loses nothing; a
// redelivered event (retry_attempt 1, same event id) is ignored; /imagine
// works.
func TestSocketMode(t *testing.T) {
	t.Parallel()
	b := setupWith(t, options{step: 20 * time.Millisecond, appToken: "xapp-test"})
	b.fake.WaitConnected(t, 1)
	waitState(t, b.bot, "ready", func(err error) bool { return err == nil })
	body, _ := mentionEvent(t, slackfake.Mention{User: "U1", Text: "a fox over socket mode --steps 8"})
	ack, err := b.fake.Send("events_api", json.RawMessage(body), 0)
	require.NoError(t, err)
	waitClosed(t, ack, "ack")
	b.fake.Wait(t, "reply", func(cs []slackfake.Call) bool { return len(okCalls(cs, "chat.postMessage")) == 1 })
	b.fake.Disconnect("refresh_requested")
	b.fake.WaitConnected(t, 2)
	ack, err = b.fake.Send("events_api", json.RawMessage(body), 1) // Slack's redelivery
	require.NoError(t, err)
	waitClosed(t, ack, "redelivery ack")
	b.fake.Wait(t, "final", finalUpdate)
	b.fake.Disconnect("warning")
	b.fake.WaitConnected(t, 3)
	slash, _ := json.Marshal(map[string]any{"token": "x", "team_id": "T1", "channel_id": "C1", "user_id": "U1",
		"command": "/imagine", "text": "a second fox --steps 2", "trigger_id": "trig.sock", "response_url": b.fake.NewResponseURL()})
	ack, err = b.fake.Send("slash_commands", slash, 0)
	require.NoError(t, err)
	waitClosed(t, ack, "slash ack")
	cs := b.fake.Wait(t, "slash final", func(cs []slackfake.Call) bool { return finals(cs) == 2 })
	require.Len(t, okCalls(cs, "chat.postMessage"), 2, "the redelivered mention made no second job")
}

// waitState waits until the adapter's readiness satisfies ok.
func waitState(t *testing.T, bot *easelslack.Adapter, what string, ok func(error) bool) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		ch := bot.StateChanged()
		if ok(bot.Ready(context.Background())) {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("adapter never %s: %v", what, bot.Ready(context.Background()))
		}
	}
}

func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s", what)
	}
}

// TestSocketModeInvalidAuth: a wrong app token stops Socket Mode for good
// and /readyz says what to fix.
func TestSocketModeInvalidAuth(t *testing.T) {
	t.Parallel()
	b := setupWith(t, options{appToken: "xapp-wrong"})
	b.fake.Wait(t, "refused connection", func(cs []slackfake.Call) bool {
		for _, c := range calls(cs, "apps.connections.open") {
			if c.Error == "invalid_auth" {
				return true
			}
		}
		return false
	})
	waitState(t, b.bot, "not ready", func(err error) bool { return err != nil && strings.Contains(err.Error(), "slack.app_token") })
	require.ErrorContains(t, b.bot.Ready(b.ctx), "invalid_auth")
}

// TestWorkspaceBudgetSharedAcrossInstances: two serve instances (two
// adapters on one Redis) rendering progress with a preview of one
// workspace share its chat.update budget: the one update allowed carries
// the preview, and only that preview is uploaded.
func TestWorkspaceBudgetSharedAcrossInstances(t *testing.T) {
	t.Parallel()
	b := setupWith(t, options{budget: 2, noStart: true}) // burst 1, 2 a minute
	other, err := easelslack.New(easelslack.Config{BotToken: "xoxb-test", SigningSecret: secret, APIBase: b.fake.URL(),
		UpdatesPerMinute: 2}, b.svc, b.sched, zap.NewNop())
	require.NoError(t, err)
	ts := b.fake.AddMessage("C1", "Submitting…")
	origin, _ := json.Marshal(easelslack.Origin{Kind: "slack", Team: "T1", Channel: "C1", ThreadTS: ts, ReplyTS: ts, User: "U1"})
	res, _, err := b.svc.Imagine(b.ctx, commands.Caller{Tenant: "slack:T1", User: "U1"}, origin, commands.Imagine{Prompt: "a fox", Steps: 20}, "")
	require.NoError(t, err)
	jobID := res.ID
	// A GPU slot takes the job and stores a preview, as the worker does.
	slot := b.sched.Slot("w", "gpu0")
	t.Cleanup(func() { _ = slot.Close(context.Background()) })
	lease, err := slot.Next(b.ctx, 10*time.Second)
	require.NoError(t, err)
	require.Equal(t, jobID, lease.JobID)
	var pb bytes.Buffer
	require.NoError(t, png.Encode(&pb, image.NewGray(image.Rect(0, 0, 8, 8))))
	require.NoError(t, lease.Progress(b.ctx, 1, 20, 0.05, 0, pb.Bytes()))
	job, err := b.sched.Get(b.ctx, jobID)
	require.NoError(t, err)
	require.NotEmpty(t, job.Preview)
	for i := range 6 {
		r := b.bot
		if i%2 == 1 {
			r = other
		}
		ev := scheduler.Event{JobID: jobID, Type: scheduler.EventProgress, Step: i + 1, Steps: 20, Fraction: float64(i+1) / 20, Preview: job.Preview}
		require.NoError(t, r.Render(b.ctx, job, ev))
	}
	cs := b.fake.Calls()
	updates := okCalls(cs, "chat.update")
	require.Len(t, updates, 1, "one budget of burst 1 across both instances")
	require.Contains(t, updates[0].Form.Get("blocks"), `"slack_file"`, "the update within the budget shows the preview")
	require.Equal(t, 1, countPreviewUploads(cs), "a skipped update uploads no preview")
}

func TestHelpAndBadFlagsAreEphemeral(t *testing.T) {
	t.Parallel()
	b := setup(t, 0)
	body, _ := mentionEvent(t, slackfake.Mention{User: "U3", Text: "a fox --ar 2:1"})
	require.Equal(t, 200, b.post(t, "/slack/events", "application/json", body, nil))
	body, _ = mentionEvent(t, slackfake.Mention{User: "U3", Text: "--help"})
	require.Equal(t, 200, b.post(t, "/slack/events", "application/json", body, nil))
	cs := b.fake.Wait(t, "answers", func(cs []slackfake.Call) bool { return len(calls(cs, "chat.postEphemeral")) == 2 })
	var texts []string
	for _, c := range calls(cs, "chat.postEphemeral") {
		texts = append(texts, c.Form.Get("text"))
	}
	require.Contains(t, strings.Join(texts, "\n"), "--ar: must be one of 1:1, 3:4, 4:3, 9:16, 16:9")
	require.Contains(t, strings.Join(texts, "\n"), "--steps")
	require.Empty(t, calls(cs, "chat.postMessage"), "nothing public, nothing queued")
}
