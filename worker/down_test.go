package worker_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/sdclient/a1111"
	"github.com/easelbot/easel/sdclient/fakesd"
	"github.com/easelbot/easel/worker"
)

// signals turns a worker's observations into channels to wait on, one per
// backend and kind.
type signals struct {
	mu sync.Mutex
	ch map[string]chan struct{}
}

func (s *signals) of(backend, kind string) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = map[string]chan struct{}{}
	}
	c := s.ch[backend+" "+kind]
	if c == nil {
		c = make(chan struct{}, 64)
		s.ch[backend+" "+kind] = c
	}
	return c
}

func (s *signals) observe(o worker.Observation) {
	select {
	case s.of(o.Backend, o.Kind) <- struct{}{}:
	default:
	}
}

// wait waits for the next observation of kind on backend.
func (s *signals) wait(t *testing.T, ctx context.Context, backend, kind string) {
	t.Helper()
	select {
	case <-s.of(backend, kind):
	case <-ctx.Done():
		t.Fatalf("backend %s: no %q observed", backend, kind)
	}
}

// checkedBackendOn is backendOn, and a channel that receives at each health
// check the client sends (a1111's Health is GET /sdapi/v1/progress), also
// while the fake is down.
func checkedBackendOn(t *testing.T, fake *fakesd.Server) (*a1111.Client, <-chan struct{}) {
	t.Helper()
	checks := make(chan struct{}, 1024)
	h := fake.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/sdapi/v1/progress" {
			select {
			case checks <- struct{}{}:
			default:
			}
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(fake.Close)
	client, err := a1111.New(a1111.Config{BaseURL: srv.URL, ProgressInterval: 5 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(client.Close)
	return client, checks
}

// requireOneAttempt checks that a job's events show one attempt, started
// once and succeeded.
func requireOneAttempt(t *testing.T, evs []scheduler.Event) {
	t.Helper()
	var started int
	for _, e := range evs {
		require.NotEqual(t, scheduler.EventRetrying, e.Type, "%v", types(evs))
		if e.Type == scheduler.EventStarted {
			started++
		}
	}
	require.Equal(t, 1, started, "%v", types(evs))
	require.Equal(t, "succeeded", string(evs[len(evs)-1].Type), "%v", types(evs))
}

// A backend the idle health checks find down is not offered: a job
// submitted meanwhile waits (it is not dispatched there, so no attempt is
// used), also across the slot's renewals, and runs as its first attempt
// once a check finds the backend back.
func TestIdleDownBackendTakesNoJob(t *testing.T) {
	t.Parallel()
	ctx, sched := scheduled(t, scheduler.Config{MaxAttempts: 3, RetryBackoff: 5 * time.Millisecond})
	fake := fakesd.New(fakesd.Config{StepDuration: 2 * time.Millisecond})
	client, checks := checkedBackendOn(t, fake)
	var sig signals
	// A short block: the slot comes back to renew its offer many times
	// while the backend is down.
	startWorkerWith(t, ctx, worker.Config{Name: "w", HealthInterval: 10 * time.Millisecond, BlockTimeout: 20 * time.Millisecond},
		sched, []worker.Backend{{Name: "gpu", Backend: client}}, sig.observe)
	sig.wait(t, ctx, "gpu", "advertised")

	fake.SetDown(true)
	sig.wait(t, ctx, "gpu", "down")
	b := &bundle{ctx: ctx, sched: sched}
	id := b.submit(t, 2)
	j, err := sched.Get(ctx, id)
	require.NoError(t, err)
	require.Equal(t, scheduler.StatusQueued, j.Status, "not dispatched to the down backend at submit")
	// Ten more failed checks, some 100 ms, five of the slot's blocks.
	for range 10 {
		select {
		case <-checks:
		case <-ctx.Done():
			t.Fatal("no health checks while down")
		}
	}
	j, err = sched.Get(ctx, id)
	require.NoError(t, err)
	require.Equal(t, scheduler.StatusQueued, j.Status, "still waiting")
	require.Zero(t, j.Attempt)
	waiting, err := sched.WaitingFor(ctx)
	require.NoError(t, err)
	require.NotNil(t, waiting, "queued jobs say what they wait for")
	require.Equal(t, "gpu", waiting.Backends[0].Name)

	fake.SetDown(false)
	sig.wait(t, ctx, "gpu", "up")
	waiting, err = sched.WaitingFor(ctx)
	require.NoError(t, err)
	require.Nil(t, waiting)
	requireOneAttempt(t, b.events(t, id))
	j, err = sched.Get(ctx, id)
	require.NoError(t, err)
	require.Equal(t, 1, j.Attempt, "the first attempt ran it")
	require.Equal(t, 1, fake.Generations())
}

// With one of two backends down by its idle checks, jobs go to the other.
func TestIdleDownBackendJobsGoToHealthyOne(t *testing.T) {
	t.Parallel()
	ctx, sched := scheduled(t, scheduler.Config{MaxAttempts: 3, RetryBackoff: 5 * time.Millisecond})
	dead := fakesd.New(fakesd.Config{StepDuration: 2 * time.Millisecond})
	good := fakesd.New(fakesd.Config{StepDuration: 2 * time.Millisecond})
	var sig signals
	startWorker(t, ctx, sched, "w", []worker.Backend{{Name: "dead", Backend: backendOn(t, dead)}, {Name: "good", Backend: backendOn(t, good)}},
		sig.observe)
	sig.wait(t, ctx, "dead", "advertised")
	sig.wait(t, ctx, "good", "advertised")
	dead.SetDown(true)
	sig.wait(t, ctx, "dead", "down")
	b := &bundle{ctx: ctx, sched: sched}
	for range 4 {
		id := b.submit(t, 2)
		requireOneAttempt(t, b.events(t, id))
		j, err := sched.Get(ctx, id)
		require.NoError(t, err)
		require.Equal(t, "good", j.Backend)
		require.Equal(t, 1, j.Attempt)
	}
	require.Zero(t, dead.Generations())
}

// Two workers advertise the same backend name (scaled workers): it stays
// listed while one of them runs, and goes when the last stops gracefully,
// without waiting for the advertisement's TTL.
func TestGracefulStopWithdrawsOwnAdOnly(t *testing.T) {
	t.Parallel()
	ctx, sched := scheduled(t, scheduler.Config{})
	var sig1, sig2 signals
	w1 := startWorker(t, ctx, sched, "w1", []worker.Backend{{Name: "gpu", Backend: backendOn(t, fakesd.New(fakesd.Config{}))}}, sig1.observe)
	w2 := startWorker(t, ctx, sched, "w2", []worker.Backend{{Name: "gpu", Backend: backendOn(t, fakesd.New(fakesd.Config{}))}}, sig2.observe)
	sig1.wait(t, ctx, "gpu", "advertised")
	sig2.wait(t, ctx, "gpu", "advertised")
	listed := func() bool {
		ads, err := sched.BackendAds(ctx)
		require.NoError(t, err)
		ad, ok := ads["gpu"]
		return ok && !ad.Down
	}
	require.True(t, listed())
	require.NoError(t, w1.Stop(ctx))
	require.True(t, listed(), "w2 still advertises gpu")
	require.NoError(t, w2.Stop(ctx))
	require.False(t, listed(), "no worker advertises gpu")
}

// A job dispatched to a backend's slot just as the idle checks find the
// backend down (before they withdraw the offer) is handed back, not run
// there; the slot is paused first, so the hand-back does not dispatch it
// there again. It runs once the backend is back.
func TestJobGivenAsBackendGoesDownIsHandedBack(t *testing.T) {
	t.Parallel()
	ctx, sched := scheduled(t, scheduler.Config{MaxAttempts: 3, RetryBackoff: 5 * time.Millisecond})
	fake := fakesd.New(fakesd.Config{StepDuration: 2 * time.Millisecond})
	var sig signals
	// No idle check comes during the test: the test plays their part.
	w := startWorkerWith(t, ctx, worker.Config{Name: "w", HealthInterval: time.Hour, BlockTimeout: 20 * time.Millisecond},
		sched, []worker.Backend{{Name: "gpu", Backend: backendOn(t, fake)}}, sig.observe)
	sig.wait(t, ctx, "gpu", "advertised")

	w.MarkDownOnly("gpu")
	b := &bundle{ctx: ctx, sched: sched}
	id := b.submit(t, 2) // dispatched at once: the slot is still offered
	var seen []string
	errHandedBack := errors.New("handed back")
	err := sched.Follow(ctx, id, 0, func(e scheduler.Event) error {
		seen = append(seen, string(e.Type))
		if e.Type == scheduler.EventQueued && len(seen) > 1 {
			return errHandedBack
		}
		return nil
	})
	require.ErrorIs(t, err, errHandedBack, "%v", seen)
	require.Equal(t, []string{"queued", "started", "queued"}, seen)
	j, err := sched.Get(ctx, id)
	require.NoError(t, err)
	require.Equal(t, scheduler.StatusQueued, j.Status, "not dispatched to the paused slot again")
	require.Zero(t, fake.Generations())

	w.MarkUp(ctx, "gpu")
	evs := b.events(t, id)
	require.Equal(t, "succeeded", string(evs[len(evs)-1].Type), "%v", types(evs))
	require.NotContains(t, types(evs), "retrying", "the hand-back used no attempt")
	var started int
	for _, e := range evs {
		if e.Type == scheduler.EventStarted {
			started++
		}
	}
	require.Equal(t, 2, started, "handed back once, then run: %v", types(evs))
	require.Equal(t, 1, fake.Generations())
}
