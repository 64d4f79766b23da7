package discord_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

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

// setupLimits is setup with request limits (NSFW tags) of the test's own.
func setupLimits(t *testing.T, limits commands.Limits, mutate func(*discord.Config)) *bundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	t.Cleanup(cancel)
	sched, err := scheduler.New(ctx, redistest.Store(t), scheduler.Config{}, zap.NewNop())
	require.NoError(t, err)
	pol, err := scheduler.NewPolicies(sched, scheduler.PolicyConfig{})
	require.NoError(t, err)
	svc, err := commands.New(sched, pol, limits, zap.NewNop())
	require.NoError(t, err)
	sd := fakesd.New(fakesd.Config{StepDuration: 5 * time.Millisecond, PreviewEvery: 2})
	sdSrv := httptest.NewServer(sd.Handler())
	t.Cleanup(sdSrv.Close)
	client, err := a1111.New(a1111.Config{BaseURL: sdSrv.URL, ProgressInterval: 5 * time.Millisecond})
	require.NoError(t, err)
	w, err := worker.New(worker.Config{Name: "w"}, sched, []worker.Backend{{Name: "gpu0", Backend: client}}, zap.NewNop())
	require.NoError(t, err)
	fake := discordtest.New(t.Logf)
	t.Cleanup(fake.Close)
	cfg := discord.Config{Token: "test-token", APIBase: fake.URL, EditInterval: 30 * time.Millisecond, Shards: 1}
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
	return &bundle{ctx: ctx, fake: fake, sd: sd, sched: sched, bot: bot}
}

func answer(t *testing.T, b *bundle, i map[string]any, token string) map[string]any {
	t.Helper()
	b.fake.Dispatch(i)
	calls := waitFor(t, b.fake, "interaction answer", func(cs []discordtest.Call) bool { return len(callbacks(cs, token)) == 1 })
	return callbacks(calls, token)[0].Body["data"].(map[string]any)
}

func admin(sub string, opts map[string]any) map[string]any {
	var list []any
	for k, v := range opts {
		typ := 3
		if _, ok := v.(bool); ok {
			typ = 5
		}
		list = append(list, map[string]any{"name": k, "type": typ, "value": v})
	}
	return map[string]any{"id": "cmd2", "name": "easel-admin", "type": 1,
		"options": []any{map[string]any{"name": sub, "type": 1, "options": list}}}
}

// An NSFW-tagged model is refused in a normal channel and in a DM (by
// default), and runs in the age-restricted channel; spoilers prefix the
// final files' names once an admin turns them on.
func TestNSFWModelOnlyInAgeRestrictedChannels(t *testing.T) {
	t.Parallel()
	b := setupLimits(t, commands.Limits{NSFWModels: []string{"fake-xl"}, NSFWLoRAs: []string{"fake-style"}}, nil)

	for _, tc := range []struct {
		name string
		opts map[string]any
		w    who
	}{
		{"model in a normal channel", map[string]any{"prompt": "a fox", "model": "fake-xl", "steps": 2}, who{user: "42", guild: "g1"}},
		{"LoRA in a normal channel", map[string]any{"prompt": "a fox", "loras": "fake-style:0.5", "steps": 2}, who{user: "42", guild: "g1"}},
		{"model in a DM", map[string]any{"prompt": "a fox", "model": "fake-xl", "steps": 2}, who{user: "42"}},
	} {
		i, token := interaction(2, tc.w, imagine(tc.opts))
		r := answer(t, b, i, token)
		require.Contains(t, r["content"], "NSFW", tc.name)
		require.Contains(t, r["content"], "age-restricted", tc.name)
		require.Equal(t, 64.0, r["flags"], "%s: ephemeral", tc.name)
	}
	for _, tenant := range []string{"discord:g1", "discord:dm:42"} {
		active, err := b.sched.Active(b.ctx, tenant)
		require.NoError(t, err)
		require.Empty(t, active, "nothing enqueued for %s", tenant)
	}

	// An admin turns spoilers on.
	i, token := interaction(2, who{user: "9", guild: "g1", perms: 1 << 5}, admin("spoilers", map[string]any{"on": true}))
	require.Contains(t, answer(t, b, i, token)["content"], "spoilers")

	i, token = interaction(2, who{user: "42", guild: "g1"}, imagine(map[string]any{"prompt": "a fox", "model": "fake-xl", "steps": 2}))
	i["channel_id"] = discordtest.AgeRestrictedChannel
	b.fake.Dispatch(i)
	calls := waitFor(t, b.fake, "final edit", finalEdit(token))
	all := edits(calls, token)
	final := all[len(all)-1]
	require.Len(t, final.Files, 1)
	require.True(t, strings.HasPrefix(final.Files[0], "SPOILER_easel-"), final.Files[0])
	require.Contains(t, b.sd.LastRequest().OverrideSettings["sd_model_checkpoint"], "fake-xl")
}

// In a thread the parent channel's age restriction decides (a thread
// object carries no nsfw flag of its own).
func TestNSFWInThreadsFollowsParent(t *testing.T) {
	t.Parallel()
	b := setupLimits(t, commands.Limits{NSFWModels: []string{"fake-xl"}}, nil)
	i, token := interaction(2, who{user: "42", guild: "g1"}, imagine(map[string]any{"prompt": "a fox", "model": "fake-xl", "steps": 2}))
	i["channel_id"] = discordtest.NormalThread
	require.Contains(t, answer(t, b, i, token)["content"], "age-restricted", "a thread in a normal channel")

	i, token = interaction(2, who{user: "42", guild: "g1"}, imagine(map[string]any{"prompt": "a fox", "model": "fake-xl", "steps": 2}))
	i["channel_id"] = discordtest.AgeRestrictedThread
	b.fake.Dispatch(i)
	waitFor(t, b.fake, "final edit in the age-restricted channel's thread", finalEdit(token))
	require.Contains(t, b.sd.LastRequest().OverrideSettings["sd_model_checkpoint"], "fake-xl")
}

func TestNSFWInDMsWhenAllowed(t *testing.T) {
	t.Parallel()
	b := setupLimits(t, commands.Limits{NSFWModels: []string{"fake-xl"}}, func(c *discord.Config) { c.NSFWInDMs = true })
	i, token := interaction(2, who{user: "42"}, imagine(map[string]any{"prompt": "a fox", "model": "fake-xl", "steps": 2}))
	b.fake.Dispatch(i)
	waitFor(t, b.fake, "final edit", finalEdit(token))
}

// The registered commands carry German and Japanese names and
// descriptions, on the commands and on every option.
func TestRegisteredCommandsAreLocalized(t *testing.T) {
	t.Parallel()
	b := setupLimits(t, commands.Limits{}, nil)
	calls := waitFor(t, b.fake, "command registration", func(cs []discordtest.Call) bool {
		for _, c := range cs {
			if c.Method == "PUT" && c.Path == "/applications/app1/commands" {
				return true
			}
		}
		return false
	})
	var defs []struct {
		Name         string            `json:"name"`
		Names        map[string]string `json:"name_localizations"`
		Descriptions map[string]string `json:"description_localizations"`
		Options      []struct {
			Name         string            `json:"name"`
			Descriptions map[string]string `json:"description_localizations"`
		} `json:"options"`
	}
	for _, c := range calls {
		if c.Method == "PUT" && c.Path == "/applications/app1/commands" {
			require.NoError(t, json.Unmarshal(c.Raw, &defs))
		}
	}
	require.NotEmpty(t, defs)
	for _, d := range defs {
		for _, loc := range []string{"de", "ja"} {
			require.NotEmpty(t, d.Descriptions[loc], "%s: %s description", d.Name, loc)
			for _, o := range d.Options {
				require.NotEmpty(t, o.Descriptions[loc], "%s %s: %s description", d.Name, o.Name, loc)
			}
		}
		if d.Name == "imagine" {
			require.Equal(t, "bild", d.Names["de"])
			require.Equal(t, "画像生成", d.Names["ja"])
		}
	}
}

// A German user's /imagine: the answer, the progress edits and the final
// message are German, and so are the buttons.
func TestGermanImagineExchange(t *testing.T) {
	t.Parallel()
	b := setupLimits(t, commands.Limits{}, nil)
	i, token := interaction(2, who{user: "42", guild: "g1"}, imagine(map[string]any{"prompt": "ein Leuchtturm", "steps": 6}))
	i["locale"] = "de"
	r := answer(t, b, i, token)
	content := r["content"].(string)
	require.True(t, strings.Contains(content, "Wird gestartet") || strings.Contains(content, "In der Warteschlange"), content)
	require.Contains(t, string(discordtest.MustJSON(r["components"])), "Abbrechen")

	calls := waitFor(t, b.fake, "final edit", finalEdit(token))
	all := edits(calls, token)
	var progress bool
	for _, e := range all[:len(all)-1] {
		c, _ := e.Body["content"].(string)
		require.NotContains(t, c, "Queued", "no English progress")
		require.NotContains(t, c, "Starting", "no English progress")
		if strings.Contains(c, "Startet auf") || strings.Contains(c, "/6") {
			progress = true
		}
	}
	require.True(t, progress, "German progress edits: %s", discordtest.Summary(all))
	final := all[len(all)-1]
	require.Contains(t, final.Body["content"], "6 Schritte")
	require.Contains(t, final.Body["content"], "Seed")
	require.Contains(t, string(discordtest.MustJSON(final.Body["components"])), "Neu würfeln")

	// A German refusal names the field in the catalog's frame.
	i, token = interaction(2, who{user: "42", guild: "g1"}, imagine(map[string]any{"prompt": "x", "steps": 999}))
	i["locale"] = "de"
	require.Contains(t, answer(t, b, i, token)["content"], "steps: muss zwischen 1 und 150 liegen (erhalten: 999) auf diesem Server")
	// So does a detail of the Discord adapter's own option checks.
	i, token = interaction(2, who{user: "42", guild: "g1"}, imagine(map[string]any{"prompt": "x", "strength": 0.5}))
	i["locale"] = "de"
	require.Contains(t, answer(t, b, i, token)["content"], "strength: gilt nur mit einem Bild")
}

// Server and channel defaults set with /easel-admin apply under the
// user's /settings.
func TestAdminDefaultsLayeredUnderSettings(t *testing.T) {
	t.Parallel()
	b := setupLimits(t, commands.Limits{}, nil)
	mod := who{user: "9", guild: "g1", perms: 1 << 5}
	for _, opts := range []map[string]any{
		{"field": "steps", "value": "7"},
		{"field": "sampler", "value": "Euler"},
		{"field": "steps", "value": "5", "scope": "channel"},
	} {
		i, token := interaction(2, mod, admin("defaults", opts))
		require.Contains(t, answer(t, b, i, token)["content"], "Set the", opts)
	}
	i, token := interaction(2, mod, admin("defaults", nil))
	shown := answer(t, b, i, token)["content"].(string)
	require.Contains(t, shown, `"steps":7`)
	require.Contains(t, shown, `"steps":5`)
	// A non-admin is refused.
	i, token = interaction(2, who{user: "42", guild: "g1"}, admin("defaults", map[string]any{"field": "steps", "value": "3"}))
	require.Contains(t, answer(t, b, i, token)["content"], "🚫")

	run := func(w who, channel string) string {
		i, token := interaction(2, w, imagine(map[string]any{"prompt": "a fox"}))
		i["channel_id"] = channel
		b.fake.Dispatch(i)
		calls := waitFor(t, b.fake, "final edit", finalEdit(token))
		all := edits(calls, token)
		return all[len(all)-1].Body["content"].(string)
	}
	require.Contains(t, run(who{user: "42", guild: "g1"}, "c1"), "5 steps", "channel default")
	require.Contains(t, run(who{user: "42", guild: "g1"}, discordtest.AgeRestrictedChannel), "7 steps", "server default elsewhere")
	require.Equal(t, "Euler", b.sd.LastRequest().SamplerName)

	// The user's own setting wins.
	i, token = interaction(2, who{user: "42", guild: "g1"}, map[string]any{"id": "cmd3", "name": "settings", "type": 1,
		"options": []any{map[string]any{"name": "field", "type": 3, "value": "steps"}, map[string]any{"name": "value", "type": 3, "value": "3"}}})
	require.Contains(t, answer(t, b, i, token)["content"], `"steps":3`)
	require.Contains(t, run(who{user: "42", guild: "g1"}, "c1"), "3 steps", "user setting over channel default")
}

// A German admin's /easel-admin answers are German too.
func TestGermanAdminAnswers(t *testing.T) {
	t.Parallel()
	b := setupLimits(t, commands.Limits{}, nil)
	mod := who{user: "9", guild: "g1", perms: 1 << 5}
	for _, tc := range []struct {
		sub  string
		opts map[string]any
		want string
	}{
		{"set", map[string]any{"field": "max_steps", "value": "30"}, "`max_steps` auf `30` gesetzt."},
		{"block", map[string]any{"user": "42"}, "<@42> gesperrt."},
		{"unblock", map[string]any{"user": "42"}, "<@42> entsperrt."},
		{"reset", map[string]any{"user": "42"}, "Nutzung von <@42> zurückgesetzt."},
		{"usage", nil, "Aktivste Mitglieder heute:"},
		{"policy", nil, "Einstellbar: "},
	} {
		i, token := interaction(2, mod, admin(tc.sub, tc.opts))
		i["locale"] = "de"
		require.Contains(t, answer(t, b, i, token)["content"], tc.want, tc.sub)
	}
}
