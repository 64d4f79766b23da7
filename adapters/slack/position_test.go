package slack_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	easelslack "github.com/easelbot/easel/adapters/slack"
	"github.com/easelbot/easel/commands"
	"github.com/easelbot/easel/scheduler"
)

// TestQueuedMessageShowsPosition: the scheduler's position events (a new
// place with its wait; every backend down) update the job's thread reply.
func TestQueuedMessageShowsPosition(t *testing.T) {
	t.Parallel()
	b := setupWith(t, options{noStart: true}) // no worker: the job stays queued
	ts := b.fake.AddMessage("C1", "Submitting…")
	origin, _ := json.Marshal(easelslack.Origin{Kind: "slack", Team: "T1", Channel: "C1", ThreadTS: ts, ReplyTS: ts, User: "U1"})
	res, _, err := b.svc.Imagine(b.ctx, commands.Caller{Tenant: "slack:T1", User: "U1"}, origin, commands.Imagine{Prompt: "a fox", Steps: 20}, "")
	require.NoError(t, err)
	job, err := b.sched.Get(b.ctx, res.ID)
	require.NoError(t, err)
	require.NoError(t, b.bot.Render(b.ctx, job, scheduler.Event{Type: scheduler.EventPosition, JobID: job.ID, Seq: 2, Position: 2, ETASec: 41.6}))

	// The real event: a backend reported down, nothing offered or running.
	since := time.Now().Add(-time.Minute).Truncate(time.Second).UTC()
	require.NoError(t, b.sched.BackendDown(b.ctx, "gpu0", since))
	n, err := b.sched.Positions(b.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	evs, _, err := b.sched.History(b.ctx, job.ID, 1)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.NotNil(t, evs[0].Waiting)
	require.NoError(t, b.bot.Render(b.ctx, job, evs[0]))

	ups := okCalls(b.fake.Calls(), "chat.update")
	require.Len(t, ups, 2)
	require.Contains(t, ups[0].Form.Get("text"), "Queued — #2 in line, ~42s")
	require.Contains(t, ups[1].Form.Get("text"), fmt.Sprintf("Queued — #1 in line — waiting for a GPU backend (gpu0 unreachable since <!date^%d^{time_secs}|%s UTC>)",
		since.Unix(), since.Format(time.TimeOnly)))
}
