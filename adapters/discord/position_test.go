package discord_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/adapters/discord/discordtest"
	"github.com/easelbot/easel/scheduler"
)

// TestQueuedMessageShowsPosition: a position event edits the job's message
// with the new place in line and wait, or with the backends it waits for
// (their time in Discord's own timestamp markup).
func TestQueuedMessageShowsPosition(t *testing.T) {
	t.Parallel()
	b := setup(t, 100*time.Millisecond, nil)
	i, token := interaction(2, who{user: "42", guild: "g1"}, imagine(map[string]any{"prompt": "a lighthouse", "steps": 20}))
	r := answer(t, b, i, token)
	m := regexp.MustCompile(`easel:cancel:([^"]+)`).FindStringSubmatch(string(discordtest.MustJSON(r["components"])))
	require.NotNil(t, m, "a cancel button names the job")
	job, err := b.sched.Get(b.ctx, m[1])
	require.NoError(t, err)
	since := time.Date(2026, 12, 1, 19, 2, 11, 0, time.UTC)
	for _, ev := range []scheduler.Event{
		{Type: scheduler.EventPosition, JobID: job.ID, Seq: 2, Position: 2, ETASec: 41.6},
		{Type: scheduler.EventPosition, JobID: job.ID, Seq: 3, Position: 1,
			Waiting: &scheduler.Waiting{Backends: []scheduler.DownBackend{{Name: "gpu0", Since: since}}}},
	} {
		require.NoError(t, b.bot.Render(b.ctx, job, ev))
	}
	var contents []string
	for _, e := range edits(b.fake.Calls(), token) {
		c, _ := e.Body["content"].(string)
		contents = append(contents, c)
	}
	all := strings.Join(contents, "\n")
	require.Contains(t, all, "Queued — #2 in line, ~42s")
	require.Contains(t, all, fmt.Sprintf("Queued — #1 in line — waiting for a GPU backend (gpu0 unreachable since <t:%d:T>)", since.Unix()))
}
