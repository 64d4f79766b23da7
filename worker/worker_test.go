package worker_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/sdclient"
	"github.com/easelbot/easel/sdclient/a1111"
	"github.com/easelbot/easel/sdclient/fakesd"
	"github.com/easelbot/easel/worker"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*pipe)._background"),
		// rueidis sleeps out a reconnect back-off in a goroutine of its own (singleflight DelayDo), which can outlive a closed client by up to a second.
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*call).DelayDo.func1"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("os/exec.(*Cmd).Wait"),
		goleak.IgnoreAnyFunction("github.com/easelbot/easel/internal/redisproc.startOn.func1"))
}

type bundle struct {
	ctx   context.Context
	sched *scheduler.Scheduler
	fake  *fakesd.Server
	w     *worker.Worker
	m     *scheduler.Maintainer
	// sig has the worker's observations (setup's worker only).
	sig *signals
}

// setup runs a worker over one fake A1111 backend ("fake"); observers, if
// any, see its observations (before the bundle's signals).
func setup(t *testing.T, scfg scheduler.Config, fcfg fakesd.Config, observers ...func(worker.Observation)) *bundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	store := redistest.Store(t)
	sched, err := scheduler.New(ctx, store, scfg, zap.NewNop())
	require.NoError(t, err)
	fake := fakesd.New(fcfg)
	srv := httptest.NewServer(fake.Handler())
	t.Cleanup(srv.Close)
	client, err := a1111.New(a1111.Config{BaseURL: srv.URL, ProgressInterval: 5 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(client.Close) // ends a watch of an abandoned task
	w, err := worker.New(worker.Config{Name: "t", HealthInterval: 10 * time.Millisecond, BlockTimeout: time.Second}, sched,
		[]worker.Backend{{Name: "fake", Backend: client}}, zap.NewNop())
	require.NoError(t, err)
	for _, fn := range observers {
		w.Observe(fn)
	}
	sig := &signals{}
	w.Observe(sig.observe)
	require.NoError(t, w.Start(ctx))
	m := scheduler.NewMaintainer(sched, "m", zap.NewNop())
	require.NoError(t, m.Start(ctx))
	t.Cleanup(func() {
		stop, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		require.NoError(t, w.Stop(stop))
		require.NoError(t, m.Stop(stop))
	})
	return &bundle{ctx: ctx, sched: sched, fake: fake, w: w, m: m, sig: sig}
}

func (b *bundle) submit(t *testing.T, steps int) string {
	p, _ := json.Marshal(map[string]any{"prompt": "a red fox", "width": 64, "height": 64, "steps": steps, "seed": 3, "count": 1})
	r, err := b.sched.Submit(b.ctx, scheduler.SubmitRequest{Tenant: "api:t", User: "u", Payload: p, Images: 1})
	require.NoError(t, err)
	return r.ID
}

func (b *bundle) events(t *testing.T, id string) []scheduler.Event {
	var evs []scheduler.Event
	require.NoError(t, b.sched.Follow(b.ctx, id, 0, func(e scheduler.Event) error { evs = append(evs, e); return nil }))
	return evs
}

func types(evs []scheduler.Event) []string {
	var out []string
	for _, e := range evs {
		if len(out) == 0 || out[len(out)-1] != string(e.Type) {
			out = append(out, string(e.Type))
		}
	}
	return out
}

func TestRunsJobWithProgress(t *testing.T) {
	b := setup(t, scheduler.Config{}, fakesd.Config{StepDuration: 10 * time.Millisecond, PreviewEvery: 3})
	id := b.submit(t, 10)
	evs := b.events(t, id)
	require.Equal(t, []string{"queued", "started", "progress", "succeeded"}, types(evs))
	j, err := b.sched.Get(b.ctx, id)
	require.NoError(t, err)
	img, err := b.sched.Image(b.ctx, j, 0)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(img), "\x89PNG"))
	require.Equal(t, []int64{3}, j.Seeds)
}

func TestBackendErrorRetriedThenFailed(t *testing.T) {
	b := setup(t, scheduler.Config{MaxAttempts: 3, RetryBackoff: 5 * time.Millisecond, RetryBackoffMax: 20 * time.Millisecond},
		fakesd.Config{})
	b.fake.FailNext(3, 500)
	id := b.submit(t, 2)
	evs := b.events(t, id)
	require.Equal(t, []string{"queued", "started", "retrying", "started", "retrying", "started", "failed"}, types(evs))
	last := evs[len(evs)-1]
	require.Equal(t, "backend_error", last.Code)
	require.Contains(t, last.Message, "backend fake failed")
	require.Contains(t, last.Message, "HTTP 500")
	j, err := b.sched.Get(b.ctx, id)
	require.NoError(t, err)
	require.Equal(t, scheduler.StatusFailed, j.Status)
	active, err := b.sched.Active(b.ctx, "api:t")
	require.NoError(t, err)
	require.Empty(t, active, "nothing stuck in running")
}

func TestBackendDownThenBack(t *testing.T) {
	var fake atomic.Pointer[fakesd.Server]
	var once sync.Once
	b := setup(t, scheduler.Config{MaxAttempts: 5, RetryBackoff: 5 * time.Millisecond, RetryBackoffMax: 10 * time.Millisecond},
		fakesd.Config{}, func(o worker.Observation) {
			// The backend dies as the first attempt starts (down before
			// the job, the idle checks would keep the job from it).
			if o.Kind == "started" {
				once.Do(func() { fake.Load().SetDown(true) })
			}
		})
	fake.Store(b.fake)
	id := b.submit(t, 2)
	// The first attempt fails as unavailable; the backend comes back and
	// the retry succeeds.
	require.NoError(t, b.sched.Follow(b.ctx, id, 0, func(e scheduler.Event) error {
		if e.Type == scheduler.EventRetrying {
			b.fake.SetDown(false)
			require.Contains(t, e.Reason, "backend fake failed")
		}
		return nil
	}))
	j, err := b.sched.Get(b.ctx, id)
	require.NoError(t, err)
	require.Equal(t, scheduler.StatusSucceeded, j.Status)
}

func TestCancelRunningInterruptsBackend(t *testing.T) {
	b := setup(t, scheduler.Config{}, fakesd.Config{StepDuration: 20 * time.Millisecond})
	id := b.submit(t, 1000)
	require.NoError(t, b.fake.WaitStarted(b.ctx, 1))
	// The worker's cancel subscription is live before it takes jobs.
	st, err := b.sched.Cancel(b.ctx, id, "u")
	require.NoError(t, err)
	require.Contains(t, []scheduler.Status{scheduler.StatusRunning, scheduler.StatusDispatched}, st)
	// The client interrupts our running task before the attempt ends.
	b.sig.wait(t, b.ctx, "fake", "finished")
	require.Equal(t, 1, b.fake.Interrupts())
	got := types(b.events(t, id))
	require.Equal(t, []string{"queued", "started"}, got[:2])
	require.Equal(t, "canceled", got[len(got)-1], "%v", got)
	require.NotContains(t, got, "succeeded")
	// The slot is free again: the next job runs.
	id2 := b.submit(t, 2)
	got = types(b.events(t, id2))
	require.Equal(t, "succeeded", got[len(got)-1], "%v", got)
}

func TestGracefulStopHandsJobBack(t *testing.T) {
	b := setup(t, scheduler.Config{}, fakesd.Config{StepDuration: 20 * time.Millisecond})
	id := b.submit(t, 1000)
	require.NoError(t, b.fake.WaitStarted(b.ctx, 1))
	stop, c := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer c()
	require.NoError(t, b.w.Stop(stop)) // grace runs out: interrupt and hand back
	j, err := b.sched.Get(b.ctx, id)
	require.NoError(t, err)
	require.Equal(t, scheduler.StatusQueued, j.Status)
	pos, err := b.sched.Position(b.ctx, id)
	require.NoError(t, err)
	require.Equal(t, 1, pos)
}

// backendOn serves a fake and returns an a1111 client of it with short
// phase timeouts.
func backendOn(t *testing.T, fake *fakesd.Server) *a1111.Client {
	t.Helper()
	srv := httptest.NewServer(fake.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(fake.Close)
	client, err := a1111.New(a1111.Config{BaseURL: srv.URL, ProgressInterval: 5 * time.Millisecond,
		Timeouts: sdclient.Timeouts{Stall: 300 * time.Millisecond}})
	require.NoError(t, err)
	t.Cleanup(client.Close)
	return client
}

// scheduled returns a 30-second test context and a scheduler on a fresh
// Redis with its maintainer running (stopped at cleanup), for tests that
// start their own workers.
func scheduled(t *testing.T, cfg scheduler.Config) (context.Context, *scheduler.Scheduler) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	sched, err := scheduler.New(ctx, redistest.Store(t), cfg, zap.NewNop())
	require.NoError(t, err)
	m := scheduler.NewMaintainer(sched, "m", zap.NewNop())
	require.NoError(t, m.Start(ctx))
	t.Cleanup(func() {
		stop, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		require.NoError(t, m.Stop(stop))
	})
	return ctx, sched
}

// startWorker starts a worker (stopped at cleanup, if the test did not).
func startWorker(t *testing.T, ctx context.Context, sched *scheduler.Scheduler, name string, backends []worker.Backend, observe func(worker.Observation)) *worker.Worker {
	t.Helper()
	return startWorkerWith(t, ctx, worker.Config{Name: name, HealthInterval: 10 * time.Millisecond, BlockTimeout: time.Second}, sched, backends, observe)
}

// startWorkerWith is startWorker with a configuration of the test's own.
func startWorkerWith(t *testing.T, ctx context.Context, cfg worker.Config, sched *scheduler.Scheduler, backends []worker.Backend, observe func(worker.Observation)) *worker.Worker {
	t.Helper()
	w, err := worker.New(cfg, sched, backends, zap.NewNop())
	require.NoError(t, err)
	w.Observe(observe)
	require.NoError(t, w.Start(ctx))
	t.Cleanup(func() {
		stop, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		require.NoError(t, w.Stop(stop))
	})
	return w
}

// A backend that accepts the job and never answers costs one stall
// timeout, not a lease renewed forever: the attempt is abandoned and the
// job is retried and succeeds on the other backend.
func TestStalledBackendRetriedOnAnother(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stall func(*fakesd.Server)
		// interrupts is how many interrupts the stalled backend gets:
		// one for our own running task; none for a request it never
		// started.
		interrupts int
	}{
		{"accepts and never answers", func(f *fakesd.Server) { f.SetHang(true) }, 0},
		{"stops advancing mid-sampling", func(f *fakesd.Server) { f.StallAt(2) }, 1},
	} {
		t.Run(tc.name, func(t *testing.T) { stalledRetriedOnAnother(t, tc.stall, tc.interrupts) })
	}
}

func stalledRetriedOnAnother(t *testing.T, stall func(*fakesd.Server), interrupts int) {
	ctx, sched := scheduled(t, scheduler.Config{MaxAttempts: 5, RetryBackoff: 5 * time.Millisecond,
		RetryBackoffMax: 20 * time.Millisecond})
	stuck := fakesd.New(fakesd.Config{StepDuration: 5 * time.Millisecond})
	stall(stuck)
	good := fakesd.New(fakesd.Config{StepDuration: 5 * time.Millisecond})

	var mu sync.Mutex
	var seen []worker.Observation
	took := make(chan struct{}, 1)
	observe := func(o worker.Observation) {
		mu.Lock()
		seen = append(seen, o)
		mu.Unlock()
		if o.Backend == "stuck" && o.Kind == "started" {
			select {
			case took <- struct{}{}:
			default:
			}
		}
	}
	// Only the stuck backend runs at first, so the first attempt is its.
	startWorker(t, ctx, sched, "w1", []worker.Backend{{Name: "stuck", Backend: backendOn(t, stuck)}}, observe)
	b := &bundle{ctx: ctx, sched: sched}
	id := b.submit(t, 4)
	select {
	case <-took:
	case <-ctx.Done():
		t.Fatal("the stuck backend never took the job")
	}
	startWorker(t, ctx, sched, "w2", []worker.Backend{{Name: "good", Backend: backendOn(t, good)}}, observe)

	evs := b.events(t, id)
	require.Equal(t, "succeeded", string(evs[len(evs)-1].Type), "%v", types(evs))
	var retry *scheduler.Event
	for i := range evs {
		if evs[i].Type == scheduler.EventRetrying && retry == nil {
			retry = &evs[i]
		}
	}
	require.NotNil(t, retry, "%v", types(evs))
	var first, second time.Time
	for _, e := range evs {
		if e.Type == scheduler.EventStarted {
			if first.IsZero() {
				first = e.Time
			} else if second.IsZero() {
				second = e.Time
			}
		}
	}
	t.Logf("stall timeout 300ms: first attempt start → retrying %s, retrying → retry started %s",
		retry.Time.Sub(first), second.Sub(retry.Time))
	require.Contains(t, retry.Reason, "backend stuck failed")
	require.Contains(t, retry.Reason, "backend stalled")
	j, err := b.sched.Get(ctx, id)
	require.NoError(t, err)
	require.Equal(t, scheduler.StatusSucceeded, j.Status)
	require.Equal(t, 1, good.Generations(), "the retry ran on the good backend")
	require.Zero(t, good.Interrupts(), "only the stalled backend's task is interrupted")
	require.Equal(t, interrupts, stuck.Interrupts())
	mu.Lock()
	defer mu.Unlock()
	for _, o := range seen {
		require.NotEqual(t, "down", o.Kind, "a stall keeps the backend in rotation")
	}
}

// A request the backend cannot run (an unknown model) fails without retry,
// and the backend stays in rotation for the next job.
func TestPermanentErrorFailsWithoutRetry(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	sched, err := scheduler.New(ctx, redistest.Store(t), scheduler.Config{MaxAttempts: 3, RetryBackoff: 5 * time.Millisecond}, zap.NewNop())
	require.NoError(t, err)
	fake := fakesd.New(fakesd.Config{Instant: true})
	var downs atomic.Int32
	startWorker(t, ctx, sched, "w", []worker.Backend{{Name: "fake", Backend: backendOn(t, fake)}}, func(o worker.Observation) {
		if o.Kind == "down" {
			downs.Add(1)
		}
	})
	b := &bundle{ctx: ctx, sched: sched}
	p, _ := json.Marshal(map[string]any{"prompt": "a red fox", "width": 64, "height": 64, "steps": 2, "seed": 3, "count": 1, "model": "nope"})
	r, err := sched.Submit(ctx, scheduler.SubmitRequest{Tenant: "api:t", User: "u", Payload: p, Images: 1})
	require.NoError(t, err)
	evs := b.events(t, r.ID)
	require.Equal(t, []string{"queued", "started", "failed"}, types(evs))
	last := evs[len(evs)-1]
	require.Equal(t, "backend_rejected", last.Code)
	require.Contains(t, last.Message, `model: "nope" is not on this backend; valid: fake-v1-5, fake-xl, fake-flux`)
	require.Zero(t, fake.Generations(), "nothing ran on the backend")

	id := b.submit(t, 2)
	got := types(b.events(t, id))
	require.Equal(t, "succeeded", got[len(got)-1], "%v", got)
	require.Zero(t, downs.Load(), "the backend stayed in rotation")
}

// The scenario at the job level: someone's long web-UI job runs on
// the shared A1111; an Easel job waiting behind it is cancelled. Their job
// completes uninterrupted, ours is interrupted as it starts, and the job
// ends canceled without waiting for theirs.
func TestCancelQueuedBehindAnotherClient(t *testing.T) {
	b := setup(t, scheduler.Config{}, fakesd.Config{StepDuration: 5 * time.Millisecond})
	theirs, theirDone := b.fake.Submit(fakesd.Txt2ImgRequest{Prompt: "web UI", Width: 64, Height: 64, Steps: 200})
	id := b.submit(t, 4)
	var ours string
	require.NoError(t, b.fake.Await(b.ctx, "our task queued", func() bool {
		for _, task := range b.fake.Tasks() {
			if task.ID != theirs && task.State == "queued" {
				ours = task.ID
				return true
			}
		}
		return false
	}))
	_, err := b.sched.Cancel(b.ctx, id, "u")
	require.NoError(t, err)
	got := types(b.events(t, id))
	require.Equal(t, "canceled", got[len(got)-1], "%v", got)
	info, _ := b.fake.Task(theirs)
	require.Equal(t, "active", info.State, "canceled while their job still runs")

	<-theirDone
	info, _ = b.fake.Task(theirs)
	require.False(t, info.Interrupted, "their job was not interrupted")
	require.Equal(t, 200, info.StepsDone)
	require.NoError(t, b.fake.Await(b.ctx, "our task completed", func() bool {
		info, _ = b.fake.Task(ours)
		return info.State == "completed"
	}))
	require.True(t, info.Interrupted, "ours was interrupted as it started")
	require.Equal(t, 1, b.fake.Interrupts())
	// The slot is free: the next job runs.
	next := types(b.events(t, b.submit(t, 2)))
	require.Equal(t, "succeeded", next[len(next)-1])
}
