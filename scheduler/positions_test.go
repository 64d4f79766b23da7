package scheduler_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/scheduler"
)

// testClock is a clock the test moves; the maintainer reads it too.
type testClock struct{ ms atomic.Int64 }

func newClock(t time.Time) *testClock {
	c := &testClock{}
	c.ms.Store(t.UnixMilli())
	return c
}
func (c *testClock) now() time.Time      { return time.UnixMilli(c.ms.Load()) }
func (c *testClock) add(d time.Duration) { c.ms.Add(d.Milliseconds()) }
func (b *bundle) follow(t *testing.T, id string) <-chan scheduler.Event {
	t.Helper()
	ch := make(chan scheduler.Event, 100)
	ctx, cancel := context.WithCancel(b.ctx)
	t.Cleanup(cancel)
	go func() {
		_ = b.s.Follow(ctx, id, 0, func(e scheduler.Event) error { ch <- e; return nil })
	}()
	return ch
}

func nextEvent(t *testing.T, ch <-chan scheduler.Event) scheduler.Event {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(20 * time.Second):
		require.FailNow(t, "no event")
		return scheduler.Event{}
	}
}

func startMaintainer(t *testing.T, b *bundle) *scheduler.Maintainer {
	t.Helper()
	m := scheduler.NewMaintainer(b.s, "m", zap.NewNop())
	require.NoError(t, m.Start(b.ctx))
	t.Cleanup(func() { require.NoError(t, m.Stop(context.Background())) })
	return m
}

// TestPositionCountsDown: three jobs queued behind a busy slot; as jobs
// finish, the last one's subscriber sees 3, 2, 1 and then its start, with
// ETAs from the average run time.
func TestPositionCountsDown(t *testing.T) {
	t.Parallel()
	clock := newClock(time.Date(2026, 12, 1, 19, 0, 0, 0, time.UTC))
	b := setup(t, scheduler.Config{Now: clock.now, PositionInterval: 20 * time.Millisecond})
	b.submit(t, "api:a", "u", "X")
	l := b.take(t, "w1")
	b.submit(t, "api:a", "u", "A")
	b.submit(t, "api:a", "u", "B")
	last := b.submit(t, "api:a", "u", "C")
	ch := b.follow(t, last)
	e := nextEvent(t, ch)
	require.Equal(t, scheduler.EventQueued, e.Type)
	require.Equal(t, 3, e.Position)
	startMaintainer(t, b)

	for _, want := range []int{2, 1} {
		clock.add(10 * time.Second) // every job runs 10s: the average
		require.NoError(t, l.Succeed(b.ctx, nil, nil, ""))
		l = b.take(t, "w1")
		e = nextEvent(t, ch)
		require.Equal(t, scheduler.EventPosition, e.Type)
		require.Equal(t, want, e.Position)
		// One slot serves: `want` rounds of 10s before its turn.
		require.InDelta(t, float64(want)*10, e.ETASec, 0.01)
		require.Nil(t, e.Waiting)
	}
	clock.add(10 * time.Second)
	require.NoError(t, l.Succeed(b.ctx, nil, nil, ""))
	l = b.take(t, "w1")
	require.Equal(t, last, l.JobID)
	e = nextEvent(t, ch)
	require.Equal(t, scheduler.EventStarted, e.Type)
}

// TestPositionsCoalesce: a burst of dispatches gives each queued job one
// position event with its new place, and a pass that finds nothing changed
// sends none.
func TestPositionsCoalesce(t *testing.T) {
	t.Parallel()
	// An interval no test outlives: only the kicks below run passes.
	b := setup(t, scheduler.Config{PositionInterval: time.Hour})
	var busy []*scheduler.Lease
	for i, w := range []string{"w1", "w2", "w3"} {
		b.submit(t, "api:a", "u", "X"+string(rune('1'+i)))
		busy = append(busy, b.take(t, w))
	}
	var ids []string
	for _, n := range []string{"A", "B", "C", "D", "E"} {
		ids = append(ids, b.submit(t, "api:a", "u", n))
	}
	m := startMaintainer(t, b)
	for i, w := range []string{"w1", "w2", "w3"} {
		require.NoError(t, busy[i].Succeed(b.ctx, nil, nil, ""))
		b.take(t, w)
	}
	require.NoError(t, m.KickPositions(b.ctx))
	for i, want := range map[int]int{3: 1, 4: 2} {
		evs, _, err := b.s.History(b.ctx, ids[i], 0)
		require.NoError(t, err)
		var got []int
		for _, e := range evs {
			if e.Type == scheduler.EventPosition {
				got = append(got, e.Position)
			}
		}
		require.Equal(t, []int{want}, got, "job %d", i)
	}
	n, err := b.s.Positions(b.ctx)
	require.NoError(t, err)
	require.Zero(t, n, "nothing changed: no events")
}

// TestWaitingForBackend: while no slot is offered, none runs and a backend
// is reported down, queued jobs say so (event and WaitingFor); it clears
// when the backend is back.
func TestWaitingForBackend(t *testing.T) {
	t.Parallel()
	clock := newClock(time.Date(2026, 12, 1, 19, 5, 0, 0, time.UTC))
	b := setup(t, scheduler.Config{Now: clock.now})
	since := time.Date(2026, 12, 1, 19, 2, 11, 0, time.UTC)
	require.NoError(t, b.s.BackendDown(b.ctx, "gpu0", since))
	id := b.submit(t, "api:a", "u", "A")
	n, err := b.s.Positions(b.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	const msg = "waiting for a GPU backend (gpu0 unreachable since 19:02:11 UTC)"
	w, err := b.s.WaitingFor(b.ctx)
	require.NoError(t, err)
	require.Equal(t, &scheduler.Waiting{Message: msg, Backends: []scheduler.DownBackend{{Name: "gpu0", Since: since}}}, w)
	evs, _, err := b.s.History(b.ctx, id, 0)
	require.NoError(t, err)
	last := evs[len(evs)-1]
	require.Equal(t, scheduler.EventPosition, last.Type)
	require.Equal(t, 1, last.Position)
	require.Equal(t, w.Message, last.Waiting.Message)
	require.True(t, since.Equal(last.Waiting.Backends[0].Since))

	// A report not repeated for minutes is stale (its worker died).
	clock.add(3 * time.Minute)
	w, err = b.s.WaitingFor(b.ctx)
	require.NoError(t, err)
	require.Nil(t, w)
	require.NoError(t, b.s.BackendDown(b.ctx, "gpu0", since))

	require.NoError(t, b.s.BackendUp(b.ctx, "gpu0"))
	w, err = b.s.WaitingFor(b.ctx)
	require.NoError(t, err)
	require.Nil(t, w)
	n, err = b.s.Positions(b.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	evs, _, err = b.s.History(b.ctx, id, 0)
	require.NoError(t, err)
	last = evs[len(evs)-1]
	require.Equal(t, scheduler.EventPosition, last.Type)
	require.Nil(t, last.Waiting)
}
