package adapters_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/adapters"
	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/scheduler"
)

// panicker is a renderer with a bug: rendering job bad panics; other jobs'
// final renders are reported on done.
type panicker struct {
	bad  string
	done chan string
}

func (*panicker) Kind() string               { return "test" }
func (*panicker) MinInterval() time.Duration { return 0 }
func (p *panicker) Render(_ context.Context, j *scheduler.Job, ev scheduler.Event) error {
	if j.ID == p.bad {
		panic("bug in a renderer")
	}
	if ev.Type.Terminal() {
		p.done <- j.ID
	}
	return nil
}

// A renderer that panics on one job does not take the relay (or the
// process) down: the next job's final is still delivered, and the
// panicking job's final entry stays pending in the relay group for the
// sweep instead of being acknowledged as delivered.
func TestRendererPanicDoesNotStopTheRelay(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store := redistest.Store(t)
	sched, err := scheduler.New(ctx, store, scheduler.Config{}, zap.NewNop())
	require.NoError(t, err)
	slot := sched.Slot("w", "b")
	defer func() { _ = slot.Close(context.Background()) }()
	run := func() string {
		res, err := sched.Submit(ctx, scheduler.SubmitRequest{Tenant: "api:t", User: "u", Payload: json.RawMessage(`{}`),
			Origin: json.RawMessage(`{"kind":"test"}`)})
		require.NoError(t, err)
		l, err := slot.Next(ctx, 5*time.Second)
		require.NoError(t, err)
		require.Equal(t, res.ID, l.JobID)
		require.NoError(t, l.Succeed(ctx, nil, nil, ""))
		return res.ID
	}
	bad := run()
	p := &panicker{bad: bad, done: make(chan string, 1)}
	r := adapters.NewRelay(sched, zap.NewNop(), p)
	r.SetConsumer("relay")
	require.NoError(t, r.Start(ctx))
	defer func() { _ = r.Stop(context.Background()) }()
	good := run()
	select {
	case id := <-p.done:
		require.Equal(t, good, id)
	case <-ctx.Done():
		t.Fatal("the relay stopped delivering after a renderer panicked")
	}
	// The good job's final may still await its acknowledgement; the bad
	// one's must stay pending.
	c := store.Client
	pending, err := c.Do(ctx, c.B().Xpending().Key(store.Keys.Events()).Group(scheduler.RelayGroup).Start("-").End("+").Count(100).Build()).ToArray()
	require.NoError(t, err)
	var jobs []string
	for _, pe := range pending {
		f, err := pe.ToArray()
		require.NoError(t, err)
		id, err := f[0].ToString()
		require.NoError(t, err)
		entries, err := c.Do(ctx, c.B().Xrange().Key(store.Keys.Events()).Start(id).End(id).Build()).AsXRange()
		require.NoError(t, err)
		require.Len(t, entries, 1)
		ev, err := scheduler.DecodeEvent(entries[0].FieldValues["e"])
		require.NoError(t, err)
		jobs = append(jobs, ev.JobID)
	}
	require.Contains(t, jobs, bad, "the panicked job's final stays pending")
}
