package discord_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	_ "image/jpeg"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/adapters/discord/discordtest"
	"github.com/easelbot/easel/commands"
	"github.com/easelbot/easel/scheduler"
)

// finish runs a job for user in guild through the service and waits for its
// end (its origin is no chat's: nothing renders it).
func (b *bundle) finish(t *testing.T, guild, user, prompt string) string {
	t.Helper()
	seed := int64(100)
	res, _, err := b.svc.Imagine(b.ctx, commands.Caller{Tenant: "discord:" + guild, User: user}, json.RawMessage(`{"kind":"test"}`),
		commands.Imagine{Prompt: prompt, Steps: 2, Width: 512, Height: 384, Seed: &seed}, "")
	require.NoError(t, err)
	require.NoError(t, b.sched.Follow(b.ctx, res.ID, 0, func(scheduler.Event) error { return nil }))
	return res.ID
}

func historyCmd() map[string]any {
	return map[string]any{"id": "cmd-h", "name": "history", "type": 1}
}

// pageEdit waits for the edit of token's answer that carries a page (or the
// empty-history line) and returns it.
func pageEdit(t *testing.T, b *bundle, token string) discordtest.Call {
	t.Helper()
	var page discordtest.Call
	waitFor(t, b.fake, "history page "+token, func(cs []discordtest.Call) bool {
		for _, e := range edits(cs, token) {
			page = e
			return true
		}
		return false
	})
	return page
}

func embeds(c discordtest.Call) []map[string]any {
	var out []map[string]any
	list, _ := c.Body["embeds"].([]any)
	for _, e := range list {
		out = append(out, e.(map[string]any))
	}
	return out
}

// buttons returns a page's paging buttons by label: custom id and disabled.
func buttons(c discordtest.Call) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, row := range c.Body["components"].([]any) {
		for _, x := range row.(map[string]any)["components"].([]any) {
			btn := x.(map[string]any)
			out[btn["label"].(string)] = btn
		}
	}
	return out
}

// /history answers privately with the user's own finished jobs, five a
// page with thumbnails; Older and Newer edit the same answer.
func TestHistoryPagesWithButtons(t *testing.T) {
	t.Parallel()
	b := setup(t, 0, nil)
	var mine []string
	for n := range 7 {
		mine = append(mine, b.finish(t, "g1", "42", fmt.Sprintf("lighthouse %d", n)))
	}
	other := b.finish(t, "g1", "7", "someone else's")

	i, token := interaction(2, who{user: "42", guild: "g1"}, historyCmd())
	b.fake.Dispatch(i)
	page := pageEdit(t, b, token)
	cbs := callbacks(b.fake.Calls(), token)
	require.Len(t, cbs, 1)
	require.Equal(t, 5.0, cbs[0].Body["type"], "deferred")
	require.Equal(t, 64.0, cbs[0].Body["data"].(map[string]any)["flags"], "ephemeral")

	es := embeds(page)
	require.Len(t, es, 5)
	for n, e := range es {
		require.Equal(t, fmt.Sprintf("lighthouse %d", 6-n), e["title"], "newest first")
		d := e["description"].(string)
		require.Contains(t, d, "default model · 512×384 · seed 100 · <t:")
		require.Contains(t, d, "1 image(s)")
		require.Contains(t, d, mine[6-n])
		require.NotContains(t, d, other)
		require.Equal(t, "attachment://h-"+mine[6-n]+".jpg", e["image"].(map[string]any)["url"])
	}
	require.Len(t, page.Files, 5)
	require.Equal(t, page.Files, page.Attached, "every thumbnail is listed in attachments")
	for _, raw := range page.FileBytes {
		cfg, format, err := image.DecodeConfig(bytes.NewReader(raw))
		require.NoError(t, err)
		require.Equal(t, "jpeg", format)
		require.Equal(t, 256, max(cfg.Width, cfg.Height), "a thumbnail, not the image")
	}
	btn := buttons(page)
	require.Equal(t, true, btn["Newer"]["disabled"])
	require.NotEqual(t, true, btn["Older"]["disabled"])

	// Older: the same message shows the last two jobs.
	click, ctoken := interaction(3, who{user: "42", guild: "g1"}, map[string]any{"custom_id": btn["Older"]["custom_id"], "component_type": 2})
	b.fake.Dispatch(click)
	page = pageEdit(t, b, ctoken)
	require.Equal(t, 6.0, callbacks(b.fake.Calls(), ctoken)[0].Body["type"], "a deferred update of the same message")
	es = embeds(page)
	require.Len(t, es, 2)
	require.Equal(t, "lighthouse 1", es[0]["title"])
	require.Equal(t, "lighthouse 0", es[1]["title"])
	require.Len(t, page.Attached, 2, "the first page's thumbnails are dropped")
	btn = buttons(page)
	require.Equal(t, true, btn["Older"]["disabled"])
	require.NotEqual(t, true, btn["Newer"]["disabled"])

	// Newer: back to the first page.
	click, ntoken := interaction(3, who{user: "42", guild: "g1"}, map[string]any{"custom_id": btn["Newer"]["custom_id"], "component_type": 2})
	b.fake.Dispatch(click)
	page = pageEdit(t, b, ntoken)
	es = embeds(page)
	require.Len(t, es, 5)
	require.Equal(t, "lighthouse 6", es[0]["title"])
	require.Equal(t, true, buttons(page)["Newer"]["disabled"])

	// The other member sees only their job, even clicking 42's button.
	i, otoken := interaction(2, who{user: "7", guild: "g1"}, historyCmd())
	b.fake.Dispatch(i)
	es = embeds(pageEdit(t, b, otoken))
	require.Len(t, es, 1)
	require.Equal(t, "someone else's", es[0]["title"])
	click, xtoken := interaction(3, who{user: "7", guild: "g1"}, map[string]any{"custom_id": "easel:hist:o:" + mine[4], "component_type": 2})
	b.fake.Dispatch(click)
	page = pageEdit(t, b, xtoken)
	require.Empty(t, embeds(page))
	require.NotContains(t, string(discordtest.MustJSON(page.Body)), "lighthouse")
}

// An empty history says so, in the user's language.
func TestHistoryEmpty(t *testing.T) {
	t.Parallel()
	b := setup(t, 0, nil)
	i, token := interaction(2, who{user: "42", guild: "g1"}, historyCmd())
	b.fake.Dispatch(i)
	page := pageEdit(t, b, token)
	require.Contains(t, page.Body["content"], "no finished images yet")
	require.Empty(t, embeds(page))
	require.Empty(t, page.Body["components"])

	i, token = interaction(2, who{user: "42", guild: "g1"}, historyCmd())
	i["locale"] = "de"
	b.fake.Dispatch(i)
	require.Contains(t, pageEdit(t, b, token).Body["content"], "noch keine fertigen Bilder")
}
