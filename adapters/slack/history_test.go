package slack_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/adapters/slack/slackfake"
	"github.com/easelbot/easel/commands"
	"github.com/easelbot/easel/scheduler"
)

// finish runs a job for user through the service and waits for its end
// (its origin is no chat's: nothing renders or uploads it).
func (b *bundle) finish(t *testing.T, user, prompt string) {
	t.Helper()
	seed := int64(5)
	res, _, err := b.svc.Imagine(b.ctx, commands.Caller{Tenant: "slack:T1", User: user}, json.RawMessage(`{"kind":"test"}`),
		commands.Imagine{Prompt: prompt, Steps: 2, Seed: &seed}, "")
	require.NoError(t, err)
	require.NoError(t, b.sched.Follow(b.ctx, res.ID, 0, func(scheduler.Event) error { return nil }))
}

type historyBlock struct {
	Type string `json:"type"`
	Text *struct {
		Text string `json:"text"`
	} `json:"text"`
	Accessory *struct {
		Type      string `json:"type"`
		SlackFile *struct {
			ID string `json:"id"`
		} `json:"slack_file"`
	} `json:"accessory"`
	Elements []struct {
		ActionID string `json:"action_id"`
	} `json:"elements"`
}

// historyPage reads a page's sections (one per job, after the title) and
// its More button's action_id ("" without one).
func historyPage(t *testing.T, raw string) ([]historyBlock, string) {
	t.Helper()
	var blocks []historyBlock
	require.NoError(t, json.Unmarshal([]byte(raw), &blocks))
	var entries []historyBlock
	more := ""
	for n, b := range blocks {
		switch {
		case b.Type == "actions":
			more = b.Elements[0].ActionID
		case b.Type == "section" && n > 0:
			entries = append(entries, b)
		}
	}
	return entries, more
}

func ephemeralBlocks(cs []slackfake.Call, user string) []string {
	var out []string
	for _, c := range okCalls(cs, "chat.postEphemeral") {
		if c.Form.Get("user") == user && c.Form.Get("blocks") != "" {
			out = append(out, c.Form.Get("blocks"))
		}
	}
	return out
}

// `@easel history` answers only the asker with their own finished jobs,
// newest first, five a page with the image Easel uploaded beside each;
// More replaces the page with the next through the click's response_url.
func TestHistoryPagedWithMore(t *testing.T) {
	t.Parallel()
	b := setup(t, 0)
	// Five jobs from no chat (nothing uploaded), then two mentions, whose
	// images Easel uploads into their threads.
	for n := range 5 {
		b.finish(t, "U1", "lighthouse number "+string(rune('A'+n)))
	}
	b.finish(t, "U2", "someone else's")
	for n := range 2 {
		body, _ := mentionEvent(t, slackfake.Mention{User: "U1", Text: "lighthouse number " + string(rune('F'+n)) + " --steps 2 --seed 5"})
		require.Equal(t, 200, b.post(t, "/slack/events", "application/json", body, nil))
		b.fake.Wait(t, "final", func(cs []slackfake.Call) bool { return finals(cs) == n+1 })
	}
	want, err := b.sched.FinishedPage(b.ctx, "slack:T1", "U1", "", 10)
	require.NoError(t, err)
	require.Len(t, want.Jobs, 7)

	body, _ := mentionEvent(t, slackfake.Mention{User: "U1", Text: "history"})
	require.Equal(t, 200, b.post(t, "/slack/events", "application/json", body, nil))
	cs := b.fake.Wait(t, "history page", func(cs []slackfake.Call) bool { return len(ephemeralBlocks(cs, "U1")) == 1 })
	page := okCalls(cs, "chat.postEphemeral")
	require.NotEmpty(t, page[len(page)-1].Form.Get("thread_ts"), "in the mention's thread")
	entries, more := historyPage(t, ephemeralBlocks(cs, "U1")[0])
	require.Len(t, entries, 5)
	for n, e := range entries {
		j := want.Jobs[n]
		require.Contains(t, e.Text.Text, "`"+j.ID+"`", "newest first")
		require.Contains(t, e.Text.Text, "*lighthouse number ")
		require.Contains(t, e.Text.Text, "seed 5")
		require.Contains(t, e.Text.Text, "<!date^")
		require.Contains(t, e.Text.Text, "1 image(s)")
		if n >= 2 {
			require.Nil(t, e.Accessory, "no image was uploaded to Slack")
			continue
		}
		require.NotNil(t, e.Accessory, "the uploaded image beside the entry")
		require.Equal(t, "image", e.Accessory.Type)
		require.NotEmpty(t, e.Accessory.SlackFile.ID)
	}
	require.True(t, strings.HasPrefix(more, "easel:hist:"), more)

	require.Equal(t, 200, b.click(t, "U1", more, ""))
	b.fake.Wait(t, "second page", func([]slackfake.Call) bool { return len(b.fake.ResponsePosts()) == 1 })
	next := b.fake.ResponsePosts()[0].Body
	require.Equal(t, true, next["replace_original"])
	raw, _ := json.Marshal(next["blocks"])
	entries, more = historyPage(t, string(raw))
	require.Len(t, entries, 2)
	require.Contains(t, entries[0].Text.Text, want.Jobs[5].ID)
	require.Contains(t, entries[1].Text.Text, want.Jobs[6].ID)
	require.Empty(t, more, "no More on the last page")

	// U2 sees only their job; U3 has none and is told so.
	body, _ = mentionEvent(t, slackfake.Mention{User: "U2", Text: "history"})
	require.Equal(t, 200, b.post(t, "/slack/events", "application/json", body, nil))
	cs = b.fake.Wait(t, "U2's history", func(cs []slackfake.Call) bool { return len(ephemeralBlocks(cs, "U2")) == 1 })
	entries, more = historyPage(t, ephemeralBlocks(cs, "U2")[0])
	require.Len(t, entries, 1)
	require.Contains(t, entries[0].Text.Text, "someone else")
	require.Empty(t, more)
	for _, j := range want.Jobs {
		require.NotContains(t, ephemeralBlocks(cs, "U2")[0], j.ID)
	}
	body, _ = mentionEvent(t, slackfake.Mention{User: "U3", Text: "history"})
	require.Equal(t, 200, b.post(t, "/slack/events", "application/json", body, nil))
	b.fake.Wait(t, "empty history", func(cs []slackfake.Call) bool { return ephemeralWith(cs, "no finished images yet") })
}
