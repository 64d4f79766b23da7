package worker_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/bench"
	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/sdclient"
	"github.com/easelbot/easel/worker"
)

// panicky panics on its first generation, then works.
type panicky struct {
	bench.Noop
	calls atomic.Int32
}

func (p *panicky) Generate(ctx context.Context, req sdclient.Request, progress func(sdclient.Progress)) (*sdclient.Result, error) {
	if p.calls.Add(1) == 1 {
		panic("bug in a backend client")
	}
	return p.Noop.Generate(ctx, req, progress)
}

// A panic while running a job fails that attempt with a retry; the worker
// lives on and the retry succeeds.
func TestPanicInJobIsRecovered(t *testing.T) {
	ctx, sched := scheduled(t, scheduler.Config{MaxAttempts: 3, RetryBackoff: 5 * time.Millisecond,
		RetryBackoffMax: 5 * time.Millisecond})
	startWorker(t, ctx, sched, "p", []worker.Backend{{Name: "p", Backend: &panicky{}}}, func(worker.Observation) {})
	b := &bundle{ctx: ctx, sched: sched}
	id := b.submit(t, 1)
	evs := b.events(t, id)
	require.Equal(t, []string{"queued", "started", "retrying", "started", "succeeded"}, types(evs))
	require.Contains(t, evs[2].Reason, "bug in a backend client")
}
