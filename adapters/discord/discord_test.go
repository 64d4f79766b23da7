package discord_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	_ "image/jpeg"
	"image/png"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/adapters"
	"github.com/easelbot/easel/adapters/discord"
	"github.com/easelbot/easel/adapters/discord/discordtest"
	"github.com/easelbot/easel/commands"
	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/sdclient/a1111"
	"github.com/easelbot/easel/sdclient/fakesd"
	"github.com/easelbot/easel/worker"
)

type bundle struct {
	ctx   context.Context
	fake  *discordtest.Server
	sd    *fakesd.Server
	sched *scheduler.Scheduler
	svc   *commands.Service
	bot   *discord.Adapter
	// advertised is closed once the worker has published its backend's
	// catalog (models, samplers).
	advertised <-chan struct{}
}

func setup(t *testing.T, step time.Duration, mutate func(*discord.Config), fakeOpts ...discordtest.Option) *bundle {
	t.Helper()
	return setupSD(t, fakesd.Config{StepDuration: step, PreviewEvery: 2}, mutate, fakeOpts...)
}

// setupSD is setup with the fake backend's configuration sdCfg.
func setupSD(t *testing.T, sdCfg fakesd.Config, mutate func(*discord.Config), fakeOpts ...discordtest.Option) *bundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	t.Cleanup(cancel)
	store := redistest.Store(t)
	sched, err := scheduler.New(ctx, store, scheduler.Config{}, zap.NewNop())
	require.NoError(t, err)
	pol, err := scheduler.NewPolicies(sched, scheduler.PolicyConfig{})
	require.NoError(t, err)
	// Attachments come from an image server on loopback: allowed here.
	svc, err := commands.New(sched, pol, commands.Limits{AllowPrivateImageURLs: true}, zap.NewNop())
	require.NoError(t, err)
	sd := fakesd.New(sdCfg)
	sdSrv := httptest.NewServer(sd.Handler())
	t.Cleanup(sdSrv.Close)
	client, err := a1111.New(a1111.Config{BaseURL: sdSrv.URL, ProgressInterval: 5 * time.Millisecond})
	require.NoError(t, err)
	w, err := worker.New(worker.Config{Name: "w"}, sched, []worker.Backend{{Name: "gpu0", Backend: client}}, zap.NewNop())
	require.NoError(t, err)
	advertised := make(chan struct{})
	var once sync.Once
	w.Observe(func(o worker.Observation) {
		if o.Kind == "advertised" {
			once.Do(func() { close(advertised) })
		}
	})
	fake := discordtest.New(t.Logf, fakeOpts...)
	t.Cleanup(fake.Close)
	cfg := discord.Config{Token: "test-token", APIBase: fake.URL, EditInterval: 30 * time.Millisecond}
	if mutate != nil {
		mutate(&cfg)
	}
	bot, err := discord.New(cfg, svc, sched, zap.NewNop())
	require.NoError(t, err)
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
	return &bundle{ctx: ctx, fake: fake, sd: sd, sched: sched, svc: svc, bot: bot, advertised: advertised}
}

type who struct {
	user  string
	guild string // "" for a DM
	perms int64
}

func interaction(typ int, w who, data map[string]any) (map[string]any, string) {
	id := discordtest.Snowflake(time.Now())
	token := "tok-" + id
	i := map[string]any{"id": id, "application_id": "app1", "type": typ, "token": token, "version": 1,
		"channel_id": "c1", "data": data}
	u := map[string]any{"id": w.user, "username": "u" + w.user}
	if w.guild != "" {
		i["guild_id"] = w.guild
		i["member"] = map[string]any{"user": u, "permissions": fmt.Sprint(w.perms), "roles": []string{}}
	} else {
		i["user"] = u
	}
	return i, token
}

func imagine(opts map[string]any) map[string]any {
	var list []any
	for k, v := range opts {
		typ := 3
		if _, ok := v.(int); ok {
			typ = 4
		}
		list = append(list, map[string]any{"name": k, "type": typ, "value": v})
	}
	return map[string]any{"id": "cmd1", "name": "imagine", "type": 1, "options": list}
}

func hasCustomID(c discordtest.Call, prefix string) bool {
	return strings.Contains(string(discordtest.MustJSON(c.Body["components"])), prefix)
}

func callbacks(calls []discordtest.Call, token string) []discordtest.Call {
	var out []discordtest.Call
	for _, c := range calls {
		if strings.Contains(c.Path, token) && strings.HasSuffix(c.Path, "/callback") {
			out = append(out, c)
		}
	}
	return out
}

func edits(calls []discordtest.Call, token string) []discordtest.Call {
	var out []discordtest.Call
	for _, c := range calls {
		if c.Method == "PATCH" && strings.Contains(c.Path, "/webhooks/app1/"+token+"/messages/@original") && c.Status == 200 {
			out = append(out, c)
		}
	}
	return out
}

func finalEdit(token string) func([]discordtest.Call) bool {
	return func(calls []discordtest.Call) bool {
		for _, c := range edits(calls, token) {
			if hasCustomID(c, "easel:reroll:") {
				return true
			}
		}
		return false
	}
}

func TestImagineProgressAndFinal(t *testing.T) {
	t.Parallel()
	b := setup(t, 15*time.Millisecond, nil)
	calls := waitFor(t, b.fake, "command registration", func(cs []discordtest.Call) bool {
		for _, c := range cs {
			if c.Method == "PUT" && c.Path == "/applications/app1/commands" {
				return true
			}
		}
		return false
	})
	require.NotEmpty(t, calls)
	require.ElementsMatch(t, []int{0, 1}, b.fake.Shards(), "the shard count comes from /gateway/bot")
	sent := time.Now()
	i, token := interaction(2, who{user: "42", guild: "g1"}, imagine(map[string]any{"prompt": "a lighthouse at dusk", "count": 2, "steps": 12, "aspect": "16:9"}))
	b.fake.Dispatch(i)
	calls = waitFor(t, b.fake, "interaction answer", func(cs []discordtest.Call) bool { return len(callbacks(cs, token)) == 1 })
	cb := callbacks(calls, token)[0]
	require.Less(t, cb.At.Sub(sent), 3*time.Second, "answered within Discord's 3 s")
	require.Equal(t, 4.0, cb.Body["type"])
	require.Contains(t, cb.Body["data"].(map[string]any)["content"], "a lighthouse at dusk")

	calls = waitFor(t, b.fake, "final edit", finalEdit(token))
	all := edits(calls, token)
	var previews int
	for _, e := range all {
		if len(e.Files) == 1 && strings.HasPrefix(e.Files[0], "preview") {
			previews++
		}
	}
	require.Positive(t, previews, "a progress edit carries the preview: %s", discordtest.Summary(all))
	final := all[len(all)-1]
	require.Len(t, final.Files, 2)
	for _, raw := range final.FileBytes {
		img, err := png.Decode(bytes.NewReader(raw))
		require.NoError(t, err)
		require.Equal(t, 1024, img.Bounds().Dx())
		require.Equal(t, 576, img.Bounds().Dy())
	}
	require.True(t, hasCustomID(final, "easel:var:"))
	require.Contains(t, final.Body["content"], "seed")
	// The final edit is delivered once.
	n := 0
	for _, e := range all {
		if hasCustomID(e, "easel:reroll:") {
			n++
		}
	}
	require.Equal(t, 1, n)
}

func TestButtonsRerollCancelAndOwnership(t *testing.T) {
	t.Parallel()
	b := setup(t, 10*time.Millisecond, nil)
	i, token := interaction(2, who{user: "42", guild: "g1"}, imagine(map[string]any{"prompt": "a fox", "steps": 4}))
	b.fake.Dispatch(i)
	calls := waitFor(t, b.fake, "final edit", finalEdit(token))
	var jobID string
	for _, e := range edits(calls, token) {
		if s := string(discordtest.MustJSON(e.Body["components"])); strings.Contains(s, "easel:reroll:") {
			jobID = strings.Split(strings.Split(s, "easel:reroll:")[1], `"`)[0]
		}
	}
	require.NotEmpty(t, jobID)

	// Another member without Manage Server is refused.
	click, ctoken := interaction(3, who{user: "7", guild: "g1"}, map[string]any{"custom_id": "easel:reroll:" + jobID, "component_type": 2})
	b.fake.Dispatch(click)
	calls = waitFor(t, b.fake, "refusal", func(cs []discordtest.Call) bool { return len(callbacks(cs, ctoken)) == 1 })
	r := callbacks(calls, ctoken)[0].Body["data"].(map[string]any)
	require.Contains(t, r["content"], "Only the person who asked")
	require.Equal(t, 64.0, r["flags"], "ephemeral")

	// The requester's reroll makes a new job that finishes too.
	click, rtoken := interaction(3, who{user: "42", guild: "g1"}, map[string]any{"custom_id": "easel:reroll:" + jobID, "component_type": 2})
	b.fake.Dispatch(click)
	waitFor(t, b.fake, "reroll final", finalEdit(rtoken))

	// Cancel a long running job with its button; the backend is interrupted.
	i, ltoken := interaction(2, who{user: "42", guild: "g1"}, imagine(map[string]any{"prompt": "slow", "steps": 150}))
	b.fake.Dispatch(i)
	require.NoError(t, b.sd.WaitStarted(b.ctx, 3))
	active, err := b.sched.Active(b.ctx, "discord:g1")
	require.NoError(t, err)
	require.Len(t, active, 1)
	click, _ = interaction(3, who{user: "42", guild: "g1"}, map[string]any{"custom_id": "easel:cancel:" + active[0].ID, "component_type": 2})
	b.fake.Dispatch(click)
	waitFor(t, b.fake, "canceled edit", func(cs []discordtest.Call) bool {
		for _, e := range edits(cs, ltoken) {
			if strings.Contains(fmt.Sprint(e.Body["content"]), "Canceled") {
				return true
			}
		}
		return false
	})
	// The canceled event comes first; the worker's interrupt follows.
	ictx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, b.sd.Await(ictx, "the backend interrupted", func() bool { return b.sd.Interrupts() == 1 }))
}

func TestRateLimitedEditsStillDeliverFinal(t *testing.T) {
	t.Parallel()
	b := setup(t, 10*time.Millisecond, nil)
	b.fake.Fail429(3)
	i, token := interaction(2, who{user: "42", guild: "g1"}, imagine(map[string]any{"prompt": "a fox", "steps": 10}))
	b.fake.Dispatch(i)
	calls := waitFor(t, b.fake, "final edit after 429s", finalEdit(token))
	n429 := 0
	for _, c := range calls {
		if c.Status == 429 {
			n429++
		}
	}
	require.Equal(t, 3, n429)
	require.Equal(t, 1, b.fake.MaxInFlight(), "never more than one edit in flight per message")
}

// Once the interaction token has expired, the reply is edited with the bot
// token (a channel message edit), not posted anew.
func TestExpiredTokenEditsWithBotToken(t *testing.T) {
	t.Parallel()
	b := setup(t, 5*time.Millisecond, nil)
	b.fake.ExpireTokens()
	i, tok := interaction(2, who{user: "42", guild: "g1"}, imagine(map[string]any{"prompt": "a fox", "steps": 4}))
	b.fake.Dispatch(i)
	path := "/channels/c1/messages/m-" + tok
	calls := waitFor(t, b.fake, "bot-token edit of the final state", func(cs []discordtest.Call) bool {
		for _, c := range cs {
			if c.Method == "PATCH" && c.Path == path && hasCustomID(c, "easel:reroll:") {
				return true
			}
		}
		return false
	})
	for _, c := range calls {
		require.False(t, c.Method == "POST" && c.Path == "/channels/c1/messages", "no new message")
		if c.Method == "PATCH" && c.Path == path && hasCustomID(c, "easel:reroll:") {
			require.Len(t, c.Files, 1)
			require.Equal(t, c.Files, c.Attached, "the new file is listed in attachments (API v10)")
		}
	}
}

// The fake answers an edit of @original made before the reply with 404
// Unknown Message, like Discord: with replies slowed down, Easel still
// makes every edit after the reply, and none is refused.
func TestEditsWaitForTheReply(t *testing.T) {
	t.Parallel()
	b := setup(t, 5*time.Millisecond, nil)
	b.fake.DelayReplies(400 * time.Millisecond)
	i, tok := interaction(2, who{user: "42", guild: "g1"}, imagine(map[string]any{"prompt": "a slow reply", "steps": 6}))
	b.fake.Dispatch(i)
	calls := waitFor(t, b.fake, "final", finalEdit(tok))
	var replied time.Time
	for _, c := range callbacks(calls, tok) {
		replied = c.At
	}
	require.False(t, replied.IsZero())
	n := 0
	for _, c := range calls {
		if strings.Contains(c.Path, "/webhooks/app1/"+tok+"/messages/@original") {
			require.NotEqual(t, 404, c.Status, "an edit before the reply: %s %s", c.Method, c.Path)
			require.False(t, c.At.Before(replied), "edited before the reply")
			n++
		}
		if c.Method == "PATCH" && len(c.Files) > 0 {
			require.Equal(t, c.Files, c.Attached, "new files are listed in attachments (API v10)")
		}
	}
	require.Greater(t, n, 1)
}

// A job can run to its end between its submit and the interaction's reply
// (issue 11: the relay renders in its own goroutine as soon as the job has
// events): its renders still wait for the reply, and none edits @original
// before it exists. The hook holds the handler after the submit until the
// job has finished.
func TestEditsWaitForTheReplyWhenTheJobEndsFirst(t *testing.T) {
	t.Parallel()
	b := setup(t, 5*time.Millisecond, nil)
	finished := make(chan string, 1)
	discord.OnSubmitted(b.bot, func(jobID string) {
		ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
		defer cancel()
		after := "0-0"
		for ctx.Err() == nil {
			evs, next, err := b.sched.ReadEvents(ctx, after, time.Second)
			if err != nil {
				return
			}
			after = next
			for _, ev := range evs {
				if ev.JobID == jobID && ev.Type.Terminal() {
					finished <- jobID
					return
				}
			}
		}
	})
	i, tok := interaction(2, who{user: "42", guild: "g1"}, imagine(map[string]any{"prompt": "a fast job", "steps": 4}))
	b.fake.Dispatch(i)
	calls := waitFor(t, b.fake, "final", finalEdit(tok))
	select {
	case <-finished:
	default:
		t.Fatal("the job had not finished before the reply: the window was not opened")
	}
	replied := callbacks(calls, tok)
	require.Len(t, replied, 1)
	n := 0
	for _, c := range calls {
		if strings.Contains(c.Path, "/webhooks/app1/"+tok+"/messages/@original") {
			require.NotEqual(t, 404, c.Status, "an edit before the reply: %s %s", c.Method, c.Path)
			require.False(t, c.At.Before(replied[0].At), "edited before the reply")
			n++
		}
	}
	require.Positive(t, n)
}

// With no application in READY, commands are registered under the bot
// user's id, never under an empty application id.
func TestCommandsRegisteredUnderTheBotUser(t *testing.T) {
	t.Parallel()
	b := setup(t, 5*time.Millisecond, func(*discord.Config) {}, discordtest.WithoutApplication())
	calls := waitFor(t, b.fake, "registration", func(cs []discordtest.Call) bool {
		for _, c := range cs {
			if c.Method == "PUT" && strings.HasSuffix(c.Path, "/commands") {
				return true
			}
		}
		return false
	})
	for _, c := range calls {
		if c.Method == "PUT" && strings.HasSuffix(c.Path, "/commands") {
			require.Equal(t, "/applications/1000/commands", c.Path)
		}
	}
}

func TestAdminCommandsAndErrors(t *testing.T) {
	t.Parallel()
	b := setup(t, 5*time.Millisecond, nil)
	set := map[string]any{"id": "cmd2", "name": "easel-admin", "type": 1, "options": []any{map[string]any{
		"name": "set", "type": 1, "options": []any{
			map[string]any{"name": "field", "type": 3, "value": "max_steps"},
			map[string]any{"name": "value", "type": 3, "value": "30"}}}}}
	i, tok := interaction(2, who{user: "7", guild: "g1", perms: 0}, set)
	b.fake.Dispatch(i)
	calls := waitFor(t, b.fake, "refusal", func(cs []discordtest.Call) bool { return len(callbacks(cs, tok)) == 1 })
	require.Contains(t, callbacks(calls, tok)[0].Body["data"].(map[string]any)["content"], "admin")

	i, tok = interaction(2, who{user: "8", guild: "g1", perms: 1 << 5}, set) // Manage Server
	b.fake.Dispatch(i)
	calls = waitFor(t, b.fake, "set", func(cs []discordtest.Call) bool { return len(callbacks(cs, tok)) == 1 })
	require.Contains(t, callbacks(calls, tok)[0].Body["data"].(map[string]any)["content"], "Set `max_steps` to `30`")

	// Validation now uses the server's limit, ephemerally: the set was
	// answered after it was stored and the process's policy cache cleared,
	// so the very next request sees it (no retrying).
	i, tok = interaction(2, who{user: "9", guild: "g1"}, imagine(map[string]any{"prompt": "x", "steps": 40}))
	b.fake.Dispatch(i)
	calls = waitFor(t, b.fake, "answer", func(cs []discordtest.Call) bool { return len(callbacks(cs, tok)) == 1 })
	d := callbacks(calls, tok)[0].Body["data"].(map[string]any)
	require.Contains(t, d["content"], "steps: must be between 1 and 30 (got 40)")
	require.Equal(t, 64.0, d["flags"], "ephemeral")

	// DMs work, as tenant discord:dm:<user>.
	i, tok = interaction(2, who{user: "55"}, imagine(map[string]any{"prompt": "a dm fox", "steps": 3}))
	b.fake.Dispatch(i)
	waitFor(t, b.fake, "dm final", finalEdit(tok))
}

func TestOversizeImagesAreReencoded(t *testing.T) {
	t.Parallel()
	b := setup(t, 0, func(c *discord.Config) { c.MaxUploadBytes = 4000 })
	i, token := interaction(2, who{user: "42", guild: "g1"}, imagine(map[string]any{"prompt": "big", "steps": 2, "width": 512, "height": 512}))
	b.fake.Dispatch(i)
	calls := waitFor(t, b.fake, "final", finalEdit(token))
	es := edits(calls, token)
	final := es[len(es)-1]
	require.Len(t, final.Files, 1)
	require.True(t, strings.HasSuffix(final.Files[0], ".jpg"), final.Files[0])
	require.LessOrEqual(t, len(final.FileBytes[0]), 4000)
	_, format, err := image.Decode(bytes.NewReader(final.FileBytes[0]))
	require.NoError(t, err)
	require.Equal(t, "jpeg", format)
}

// The upload limit Discord sends with the interaction (attachment_size_limit)
// applies over the configured one.
func TestInteractionUploadLimitApplies(t *testing.T) {
	t.Parallel()
	b := setup(t, 0, nil) // MaxUploadBytes: 10 MiB
	i, token := interaction(2, who{user: "42", guild: "g1"}, imagine(map[string]any{"prompt": "big", "steps": 2, "width": 512, "height": 512}))
	i["attachment_size_limit"] = 4000
	b.fake.Dispatch(i)
	calls := waitFor(t, b.fake, "final", finalEdit(token))
	es := edits(calls, token)
	final := es[len(es)-1]
	require.Len(t, final.Files, 1)
	require.True(t, strings.HasSuffix(final.Files[0], ".jpg"), final.Files[0])
	require.LessOrEqual(t, len(final.FileBytes[0]), 4000)
}

func waitFor(t *testing.T, f *discordtest.Server, what string, pred func([]discordtest.Call) bool) []discordtest.Call {
	t.Helper()
	calls, err := f.WaitFor(20*time.Second, what, pred)
	require.NoError(t, err)
	return calls
}

func FuzzParseImagine(f *testing.F) {
	f.Add("a fox", "16:9", 20.0, 7.5, 2.0)
	f.Add("", "7:3", -1.0, 0.0, 1.5)
	f.Fuzz(func(t *testing.T, prompt, aspect string, steps, cfg, count float64) {
		im, err := discord.ParseImagine([]discord.Option{{Name: "prompt", Value: prompt}, {Name: "aspect", Value: aspect},
			{Name: "steps", Value: steps}, {Name: "cfg", Value: cfg}, {Name: "count", Value: count}})
		if err == nil {
			require.NotEmpty(t, strings.TrimSpace(im.Prompt))
			require.Equal(t, steps, float64(im.Steps))
		}
		_ = json.Valid
	})
}

func TestSettingsModelsAndAutocomplete(t *testing.T) {
	t.Parallel()
	b := setup(t, 0, nil)
	set := map[string]any{"id": "cmd3", "name": "settings", "type": 1, "options": []any{
		map[string]any{"name": "field", "type": 3, "value": "steps"}, map[string]any{"name": "value", "type": 3, "value": "7"}}}
	i, tok := interaction(2, who{user: "42", guild: "g1"}, set)
	b.fake.Dispatch(i)
	calls := waitFor(t, b.fake, "settings", func(cs []discordtest.Call) bool { return len(callbacks(cs, tok)) == 1 })
	require.Contains(t, callbacks(calls, tok)[0].Body["data"].(map[string]any)["content"], `"steps":7`)
	bad := map[string]any{"id": "cmd3", "name": "settings", "type": 1, "options": []any{
		map[string]any{"name": "field", "type": 3, "value": "steps"}, map[string]any{"name": "value", "type": 3, "value": "900"}}}
	i, tok = interaction(2, who{user: "42", guild: "g1"}, bad)
	b.fake.Dispatch(i)
	calls = waitFor(t, b.fake, "settings refusal", func(cs []discordtest.Call) bool { return len(callbacks(cs, tok)) == 1 })
	require.Contains(t, callbacks(calls, tok)[0].Body["data"].(map[string]any)["content"], "steps: must be between 1 and 150")

	// The saved default applies to a request that leaves steps out.
	i, tok = interaction(2, who{user: "42", guild: "g1"}, imagine(map[string]any{"prompt": "with defaults"}))
	b.fake.Dispatch(i)
	waitFor(t, b.fake, "final", finalEdit(tok))
	var payloadSteps float64
	jobs, err := b.sched.Active(b.ctx, "discord:g1")
	require.NoError(t, err)
	require.Empty(t, jobs)
	for _, c := range edits(b.fake.Calls(), tok) {
		if strings.Contains(fmt.Sprint(c.Body["content"]), "7 steps") {
			payloadSteps = 7
		}
	}
	require.Equal(t, 7.0, payloadSteps)

	// Autocomplete offers the backend's real models once the worker has
	// advertised them (an empty catalog read is not cached).
	select {
	case <-b.advertised:
	case <-b.ctx.Done():
		t.Fatal("the worker never advertised its backend")
	}
	data := map[string]any{"id": "cmd1", "name": "imagine", "type": 1, "options": []any{
		map[string]any{"name": "prompt", "type": 3, "value": "x"},
		map[string]any{"name": "model", "type": 3, "value": "xl", "focused": true}}}
	i, tok = interaction(4, who{user: "42", guild: "g1"}, data)
	b.fake.Dispatch(i)
	calls = waitFor(t, b.fake, "autocomplete", func(cs []discordtest.Call) bool { return len(callbacks(cs, tok)) == 1 })
	cb := callbacks(calls, tok)[0]
	require.Equal(t, 8.0, cb.Body["type"])
	choices, _ := cb.Body["data"].(map[string]any)["choices"].([]any)
	require.Len(t, choices, 1)
	require.Equal(t, "fake-xl", choices[0].(map[string]any)["value"])
}

func TestUpscaleButton(t *testing.T) {
	t.Parallel()
	b := setup(t, 0, nil)
	i, token := interaction(2, who{user: "42", guild: "g1"}, imagine(map[string]any{"prompt": "a fox", "steps": 2, "width": 256, "height": 128, "count": 2}))
	b.fake.Dispatch(i)
	calls := waitFor(t, b.fake, "final", finalEdit(token))
	es := edits(calls, token)
	final := es[len(es)-1]
	require.True(t, hasCustomID(final, "easel:up:"))
	s := string(discordtest.MustJSON(final.Body["components"]))
	jobID := strings.Split(strings.Split(s, "easel:up:")[1], ":")[0]
	click, utoken := interaction(3, who{user: "42", guild: "g1"}, map[string]any{"custom_id": "easel:up:" + jobID + ":1", "component_type": 2})
	b.fake.Dispatch(click)
	calls = waitFor(t, b.fake, "upscaled", func(cs []discordtest.Call) bool {
		for _, e := range edits(cs, utoken) {
			if strings.Contains(fmt.Sprint(e.Body["content"]), "Upscaled ×2 (image 2") && len(e.Files) == 1 {
				return true
			}
		}
		return false
	})
	for _, e := range edits(calls, utoken) {
		if len(e.Files) == 1 && strings.Contains(fmt.Sprint(e.Body["content"]), "Upscaled") {
			img, err := png.Decode(bytes.NewReader(e.FileBytes[0]))
			require.NoError(t, err)
			require.Equal(t, 512, img.Bounds().Dx())
			require.Equal(t, 256, img.Bounds().Dy())
		}
	}
}

// A variation's final message shows each image's seed with its variation
// subseed, as the job stored them.
func TestVariationFinalShowsSubseed(t *testing.T) {
	t.Parallel()
	b := setup(t, 5*time.Millisecond, nil)
	i, token := interaction(2, who{user: "42", guild: "g1"}, imagine(map[string]any{"prompt": "a fox", "steps": 4, "seed": 7}))
	b.fake.Dispatch(i)
	jobOf := func(calls []discordtest.Call, token string) string {
		for _, e := range edits(calls, token) {
			if s := string(discordtest.MustJSON(e.Body["components"])); strings.Contains(s, "easel:reroll:") {
				return strings.Split(strings.Split(s, "easel:reroll:")[1], `"`)[0]
			}
		}
		return ""
	}
	jobID := jobOf(waitFor(t, b.fake, "final edit", finalEdit(token)), token)
	require.NotEmpty(t, jobID)
	src, err := b.sched.Get(b.ctx, jobID)
	require.NoError(t, err)
	require.Nil(t, src.Subseeds, "no variation")

	click, vtoken := interaction(3, who{user: "42", guild: "g1"}, map[string]any{"custom_id": "easel:var:" + jobID + ":0", "component_type": 2})
	b.fake.Dispatch(click)
	calls := waitFor(t, b.fake, "variation final", finalEdit(vtoken))
	varID := jobOf(calls, vtoken)
	require.NotEmpty(t, varID)
	j, err := b.sched.Get(b.ctx, varID)
	require.NoError(t, err)
	require.Len(t, j.Subseeds, 1)
	all := edits(calls, vtoken)
	content := fmt.Sprint(all[len(all)-1].Body["content"])
	require.Contains(t, content, fmt.Sprintf("seed 7 (variation subseed %d)", j.Subseeds[0]), content)
}

// A backend's model with a 150-character name: autocomplete offers it
// within Discord's 100-character limits (the fake refuses a result beyond
// them), and picking the clipped choice runs the real model. Two models
// sharing their first 100 characters get the same clipped value, which
// cannot tell them apart: picking it is refused, naming the field.
func TestAutocompleteLongModelName(t *testing.T) {
	t.Parallel()
	long := "long-" + strings.Repeat("m", 145)
	twinA, twinB := strings.Repeat("t", 120)+"-a", strings.Repeat("t", 120)+"-b"
	require.Equal(t, 150, len(long))
	b := setupSD(t, fakesd.Config{Instant: true, Models: []string{"fake-v1-5", long, twinA, twinB}}, nil)
	select {
	case <-b.advertised:
	case <-b.ctx.Done():
		t.Fatal("the worker never advertised its backend")
	}
	complete := func(typed string) []map[string]any {
		t.Helper()
		data := map[string]any{"id": "cmd1", "name": "imagine", "type": 1, "options": []any{
			map[string]any{"name": "prompt", "type": 3, "value": "x"},
			map[string]any{"name": "model", "type": 3, "value": typed, "focused": true}}}
		i, tok := interaction(4, who{user: "42", guild: "g1"}, data)
		b.fake.Dispatch(i)
		cb := callbacks(waitFor(t, b.fake, "autocomplete", func(cs []discordtest.Call) bool { return len(callbacks(cs, tok)) == 1 }), tok)[0]
		require.Equal(t, 200, cb.Status, "the fake accepted the result: %v", cb.Body)
		require.Equal(t, 8.0, cb.Body["type"])
		var out []map[string]any
		for _, c := range cb.Body["data"].(map[string]any)["choices"].([]any) {
			ch := c.(map[string]any)
			require.LessOrEqual(t, utf8.RuneCountInString(ch["name"].(string)), 100)
			require.LessOrEqual(t, utf8.RuneCountInString(ch["value"].(string)), 100)
			out = append(out, ch)
		}
		return out
	}
	got := complete("long")
	require.Len(t, got, 1)
	value := got[0]["value"].(string)
	require.Len(t, value, 100)
	require.True(t, strings.HasPrefix(long, value), "the value is the name's first 100 characters")
	require.True(t, strings.HasSuffix(got[0]["name"].(string), "…"), "the shown name says it was cut")

	// Picking it submits the real model: the job runs on it.
	i, tok := interaction(2, who{user: "42", guild: "g1"}, imagine(map[string]any{"prompt": "a fox", "steps": 2, "model": value}))
	b.fake.Dispatch(i)
	calls := waitFor(t, b.fake, "final", finalEdit(tok))
	es := edits(calls, tok)
	s := string(discordtest.MustJSON(es[len(es)-1].Body["components"]))
	jobID := strings.Split(strings.Split(s, "easel:reroll:")[1], `"`)[0]
	job, err := b.sched.Get(b.ctx, jobID)
	require.NoError(t, err)
	require.Equal(t, scheduler.StatusSucceeded, job.Status)
	var req struct {
		Model string `json:"model"`
	}
	require.NoError(t, json.Unmarshal(job.Payload, &req))
	require.Equal(t, long, req.Model, "the job names the real model")

	// The twins: offered, but their clipped values are one and the same.
	got = complete("ttt")
	require.Len(t, got, 2)
	require.Equal(t, got[0]["value"], got[1]["value"])
	i, tok = interaction(2, who{user: "43", guild: "g1"}, imagine(map[string]any{"prompt": "a fox", "steps": 2, "model": got[0]["value"]}))
	b.fake.Dispatch(i)
	calls = waitFor(t, b.fake, "refusal", func(cs []discordtest.Call) bool { return len(callbacks(cs, tok)) == 1 })
	content := fmt.Sprint(callbacks(calls, tok)[0].Body["data"].(map[string]any)["content"])
	require.Contains(t, content, "model: \""+got[0]["value"].(string), "the refusal names the field and the value: %s", content)
	require.Contains(t, content, "is not a model any backend offers", content)
	require.Contains(t, content, twinA, "the refusal lists the full names to type instead")
	jobs, err := b.sched.Active(b.ctx, "discord:g1")
	require.NoError(t, err)
	require.Empty(t, jobs, "nothing enqueued")
}
