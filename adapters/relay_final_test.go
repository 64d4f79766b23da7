package adapters

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/scheduler"
)

// deadlineRenderer records whether its render had a deadline and when.
type deadlineRenderer struct{ deadline time.Time }

func (*deadlineRenderer) Kind() string               { return "test" }
func (*deadlineRenderer) MinInterval() time.Duration { return 0 }
func (d *deadlineRenderer) Render(ctx context.Context, _ *scheduler.Job, _ scheduler.Event) error {
	d.deadline, _ = ctx.Deadline()
	return nil
}

// The final delivery's claim outlives its render, and a claim held by
// another relay does not count as delivered: the entry stays for the sweep.
func TestFinalClaim(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	store := redistest.Store(t)
	sched, err := scheduler.New(ctx, store, scheduler.Config{}, zap.NewNop())
	require.NoError(t, err)
	r := NewRelay(sched, zap.NewNop())
	r.SetConsumer("me")
	res, err := sched.Submit(ctx, scheduler.SubmitRequest{Tenant: "api:a", User: "u", Payload: json.RawMessage(`{}`)})
	require.NoError(t, err)
	ev := scheduler.Event{Type: scheduler.EventSucceeded, JobID: res.ID, Seq: 3, Time: time.Now()}
	c, key := store.Client, store.Keys.Delivery(res.ID)
	rd := &deadlineRenderer{}

	// Another relay holds the claim (it may have died mid-render).
	require.NoError(t, c.Do(ctx, c.B().Set().Key(key).Value("claimed:other").Px(time.Minute).Build()).Error())
	require.False(t, r.final(ctx, rd, res.ID, ev), "not settled while another relay holds the claim")
	require.True(t, rd.deadline.IsZero(), "not rendered")

	// The claim is gone (released or run out): this relay delivers, within
	// a render deadline shorter than its claim.
	require.NoError(t, c.Do(ctx, c.B().Del().Key(key).Build()).Error())
	t0 := time.Now()
	require.True(t, r.final(ctx, rd, res.ID, ev))
	require.False(t, rd.deadline.IsZero())
	require.Less(t, rd.deadline.Sub(t0), finalClaim)
	v, err := c.Do(ctx, c.B().Get().Key(key).Build()).ToString()
	require.NoError(t, err)
	require.Equal(t, "done:3", v)
	// Once done, every relay counts it as settled.
	r.SetConsumer("other")
	rd.deadline = time.Time{}
	require.True(t, r.final(ctx, rd, res.ID, ev))
	require.True(t, rd.deadline.IsZero(), "not rendered twice")
}
