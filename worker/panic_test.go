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

// sickly's health check panics, the first time after signalling checked.
type sickly struct {
	bench.Noop
	checked chan struct{}
	calls   atomic.Int32
}

func (s *sickly) Health(ctx context.Context) error {
	if s.calls.Add(1) == 1 {
		close(s.checked)
		panic("bug in a health check")
	}
	return s.Noop.Health(ctx)
}

// A panic in a backend's health check (the idle watch, or the wait for a
// failed backend) counts as a failed check: the worker lives on and runs
// the next job on that backend.
func TestPanicInHealthCheckIsRecovered(t *testing.T) {
	ctx, sched := scheduled(t, scheduler.Config{})
	be := &sickly{checked: make(chan struct{})}
	startWorker(t, ctx, sched, "h", []worker.Backend{{Name: "h", Backend: be}}, func(worker.Observation) {})
	select {
	case <-be.checked:
	case <-ctx.Done():
		t.Fatal("no health check")
	}
	b := &bundle{ctx: ctx, sched: sched}
	id := b.submit(t, 1)
	evs := b.events(t, id)
	require.Equal(t, "succeeded", string(evs[len(evs)-1].Type))
}

// badCatalog's catalog panics.
type badCatalog struct{ bench.Noop }

func (badCatalog) Catalog(context.Context) (*sdclient.Catalog, error) { panic("bug in a catalog") }

// A panic in one backend's catalog does not stop the advertising: the next
// backend is advertised, and the worker runs jobs.
func TestPanicInCatalogIsRecovered(t *testing.T) {
	ctx, sched := scheduled(t, scheduler.Config{})
	advertised := make(chan string, 4)
	startWorker(t, ctx, sched, "c", []worker.Backend{{Name: "bad", Backend: badCatalog{}}, {Name: "good", Backend: bench.Noop{}}},
		func(o worker.Observation) {
			if o.Kind == "advertised" {
				advertised <- o.Backend
			}
		})
	select {
	case name := <-advertised:
		require.Equal(t, "good", name)
	case <-ctx.Done():
		t.Fatal("no backend advertised after a catalog panicked")
	}
	b := &bundle{ctx: ctx, sched: sched}
	evs := b.events(t, b.submit(t, 1))
	require.Equal(t, "succeeded", string(evs[len(evs)-1].Type))
}
