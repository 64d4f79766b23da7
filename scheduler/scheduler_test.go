package scheduler_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/storage"
)

type bundle struct {
	s     *scheduler.Scheduler
	store *storage.Store
	ctx   context.Context
	slots map[string]*scheduler.Slot
}

// slot returns the worker slot of consumer, closed when the test ends.
func (b *bundle) slot(t *testing.T, consumer string) *scheduler.Slot {
	t.Helper()
	if sl := b.slots[consumer]; sl != nil {
		return sl
	}
	if b.slots == nil {
		b.slots = map[string]*scheduler.Slot{}
	}
	sl := b.s.Slot(consumer, "test")
	b.slots[consumer] = sl
	t.Cleanup(func() { _ = sl.Close(context.Background()) })
	return sl
}

func setup(t *testing.T, cfg scheduler.Config) *bundle {
	t.Helper()
	store := redistest.Store(t)
	s, err := scheduler.New(context.Background(), store, cfg, zap.NewNop())
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return &bundle{s: s, ctx: ctx, store: store}
}

func (b *bundle) submit(t *testing.T, tenant, user, name string) string {
	t.Helper()
	p, _ := json.Marshal(map[string]string{"prompt": name})
	r, err := b.s.Submit(b.ctx, scheduler.SubmitRequest{Tenant: tenant, User: user, Payload: p})
	require.NoError(t, err)
	return r.ID
}

// take offers consumer's slot and returns the lease of the job it got.
func (b *bundle) take(t *testing.T, consumer string) *scheduler.Lease {
	t.Helper()
	l, err := b.slot(t, consumer).Next(b.ctx, 5*time.Second)
	require.NoError(t, err)
	require.NotNil(t, l, "no job dispatched")
	return l
}

// waitEvent follows job id's events (Follow: its history, then blocking
// reads of the events stream) until match accepts one, and returns it. It
// fails the test when the job ends unmatched or after a generous 20 s.
func waitEvent(t *testing.T, ctx context.Context, s *scheduler.Scheduler, id string, match func(scheduler.Event) bool) scheduler.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	errFound := errors.New("found")
	var got scheduler.Event
	err := s.Follow(ctx, id, 0, func(e scheduler.Event) error {
		if match(e) {
			got = e
			return errFound
		}
		return nil
	})
	if !errors.Is(err, errFound) {
		require.FailNow(t, "no awaited event", "job %s: Follow ended with %v", id, err)
	}
	return got
}

// retried matches the retrying event of attempt.
func retried(attempt int) func(scheduler.Event) bool {
	return func(e scheduler.Event) bool { return e.Type == scheduler.EventRetrying && e.Attempt == attempt }
}

func prompt(t *testing.T, l *scheduler.Lease) string {
	var p map[string]string
	require.NoError(t, json.Unmarshal(l.Payload, &p))
	return p["prompt"]
}

func TestFairOrderAcrossTenants(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{})
	b.submit(t, "api:x", "u", "X")
	busy := b.take(t, "w1")
	for _, j := range []struct{ tenant, name string }{
		{"api:A", "A1"}, {"api:A", "A2"}, {"api:B", "B1"}, {"api:C", "C1"}, {"api:C", "C2"}, {"api:A", "A3"},
	} {
		b.submit(t, j.tenant, "u", j.name)
	}
	require.NoError(t, busy.Succeed(b.ctx, nil, nil, ""))
	var order []string
	for range 6 {
		l := b.take(t, "w1")
		order = append(order, prompt(t, l))
		require.NoError(t, l.Succeed(b.ctx, nil, nil, ""))
	}
	require.Equal(t, []string{"A1", "B1", "C1", "A2", "C2", "A3"}, order)
}

func TestFairOrderAcrossUsers(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{})
	b.submit(t, "api:t", "x", "X")
	busy := b.take(t, "w1")
	for _, j := range []struct{ user, name string }{
		{"A", "A1"}, {"A", "A2"}, {"B", "B1"}, {"C", "C1"}, {"C", "C2"}, {"A", "A3"},
	} {
		b.submit(t, "api:t", j.user, j.name)
	}
	require.NoError(t, busy.Succeed(b.ctx, nil, nil, ""))
	var order []string
	for range 6 {
		l := b.take(t, "w1")
		order = append(order, prompt(t, l))
		require.NoError(t, l.Succeed(b.ctx, nil, nil, ""))
	}
	require.Equal(t, []string{"A1", "B1", "C1", "A2", "C2", "A3"}, order)
}

func TestNewcomerOvertakesFlood(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{})
	for i := range 50 {
		b.submit(t, "api:flood", "u", fmt.Sprint("F", i))
	}
	l := b.take(t, "w")
	require.Equal(t, "F0", prompt(t, l))
	require.NoError(t, l.Succeed(b.ctx, nil, nil, ""))
	b.submit(t, "api:new", "u", "N")
	l = b.take(t, "w")
	require.Equal(t, "N", prompt(t, l))
}

func TestLateBoundDispatch(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{})
	id := b.submit(t, "api:a", "u", "A1")
	j, err := b.s.Get(b.ctx, id)
	require.NoError(t, err)
	require.Equal(t, scheduler.StatusQueued, j.Status, "no slot offered: must stay queued")
	sl := b.slot(t, "w")
	l, err := sl.Next(b.ctx, 0)
	require.NoError(t, err)
	require.Equal(t, id, l.JobID)
	j, err = b.s.Get(b.ctx, id)
	require.NoError(t, err)
	require.Equal(t, scheduler.StatusRunning, j.Status, "started as it is dispatched")
	require.Equal(t, 1, j.Attempt)
	require.Equal(t, "test", j.Backend)
	require.NoError(t, l.Succeed(b.ctx, nil, nil, ""))
	// A slot offered with nothing queued takes the next submit at once, and
	// hears of it on its channel.
	l, err = sl.Next(b.ctx, 0)
	require.NoError(t, err)
	require.Nil(t, l)
	r, err := b.s.Submit(b.ctx, scheduler.SubmitRequest{Tenant: "api:a", User: "u", Payload: json.RawMessage(`{"x":1}`)})
	require.NoError(t, err)
	require.Equal(t, 0, r.Position, "dispatched at once")
	l, err = sl.Next(b.ctx, 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, r.ID, l.JobID)
	require.JSONEq(t, `{"x":1}`, string(l.Payload))
}

// A follower from the start gets every event in order; one arriving after
// the end gets the first and the terminal event, rebuilt from the record
// (the job's own stream is gone), with the images, seeds and info.
func TestEventsInOrder(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{})
	id := b.submit(t, "api:a", "u", "A")
	l := b.take(t, "w")
	got := make(chan scheduler.Event, 10)
	done := make(chan error, 1)
	go func() {
		done <- b.s.Follow(b.ctx, id, 0, func(e scheduler.Event) error { got <- e; return nil })
	}()
	var evs []scheduler.Event
	next := func() scheduler.Event {
		select {
		case e := <-got:
			evs = append(evs, e)
			return e
		case <-b.ctx.Done():
			t.Fatal("no event")
			return scheduler.Event{}
		}
	}
	require.Equal(t, scheduler.EventQueued, next().Type)
	require.Equal(t, scheduler.EventStarted, next().Type)
	require.NoError(t, l.Progress(b.ctx, 1, 2, 0.5, time.Second, []byte("preview")))
	require.Equal(t, scheduler.EventProgress, next().Type)
	require.NoError(t, l.Succeed(b.ctx, [][]byte{[]byte("img")}, []int64{42}, "info"))
	require.Equal(t, scheduler.EventSucceeded, next().Type)
	require.NoError(t, <-done)
	for i, e := range evs {
		require.Equal(t, int64(i+1), e.Seq)
		require.Equal(t, id, e.JobID)
	}
	require.Equal(t, 1, evs[0].Position)
	require.Equal(t, "test", evs[1].Backend)
	p, err := b.s.Preview(b.ctx, id, evs[2].Preview)
	require.NoError(t, err)
	require.Equal(t, "preview", string(p))
	j, err := b.s.Get(b.ctx, id)
	require.NoError(t, err)
	require.Equal(t, evs[2].Preview, j.Preview, "the record keeps the latest preview")
	require.Equal(t, []int64{42}, evs[3].Seeds)
	require.Equal(t, 1, evs[3].Images)
	require.Equal(t, "info", evs[3].Info)
	require.Equal(t, scheduler.StatusSucceeded, j.Status)
	img, err := b.s.Image(b.ctx, j, 0)
	require.NoError(t, err)
	require.Equal(t, "img", string(img))

	// Within the grace after the end, a follower reads the whole history.
	var again []scheduler.Event
	require.NoError(t, b.s.Follow(b.ctx, id, 0, func(e scheduler.Event) error { again = append(again, e); return nil }))
	require.Equal(t, evs, again)
	ttl, err := b.store.Client.Do(b.ctx, b.store.Client.B().Pttl().Key(b.store.Keys.JobEvents(id)).Build()).AsInt64()
	require.NoError(t, err)
	require.Positive(t, ttl)
	require.LessOrEqual(t, ttl, scheduler.FinishedEventsGrace.Milliseconds())
	// After it the stream is gone (deleted here as Redis does when it
	// expires): a late follower gets the first event and the terminal one,
	// as they were.
	expireEvents(t, b, id)
	var late []scheduler.Event
	require.NoError(t, b.s.Follow(b.ctx, id, 0, func(e scheduler.Event) error { late = append(late, e); return nil }))
	require.Equal(t, []scheduler.Event{evs[0], evs[3]}, late)
	hist, over, err := b.s.History(b.ctx, id, 0)
	require.NoError(t, err)
	require.True(t, over)
	require.Equal(t, late, hist)
	// Resuming after seq 3 gives only the terminal event; after it, none.
	late = nil
	require.NoError(t, b.s.Follow(b.ctx, id, 3, func(e scheduler.Event) error { late = append(late, e); return nil }))
	require.Equal(t, []scheduler.Event{evs[3]}, late)
	hist, over, err = b.s.History(b.ctx, id, 4)
	require.NoError(t, err)
	require.True(t, over)
	require.Empty(t, hist)
}

// expireEvents deletes a finished job's event stream, as Redis does when
// its FinishedEventsGrace runs out.
func expireEvents(t *testing.T, b *bundle, id string) {
	t.Helper()
	c := b.store.Client
	ttl, err := c.Do(b.ctx, c.B().Pttl().Key(b.store.Keys.JobEvents(id)).Build()).AsInt64()
	require.NoError(t, err)
	require.Positive(t, ttl, "the finished job's stream has its grace")
	require.NoError(t, c.Do(b.ctx, c.B().Del().Key(b.store.Keys.JobEvents(id)).Build()).Error())
}

// A job whose events after the first are only its first attempt's
// started event and the terminal one never gets a stream of its own (two
// writes and an expiry fewer per job): History rebuilds both from the
// record, equal to the events sent live, while the job runs and, for the
// started event, as long as the stream would have lived after the end.
// A job canceled while queued has no stream either.
func TestEventsKeptInRecord(t *testing.T) {
	t.Parallel()
	clock := newClock(time.Now())
	b := setup(t, scheduler.Config{Now: clock.now})
	c := b.store.Client
	noStream := func(id string) {
		t.Helper()
		n, err := c.Do(b.ctx, c.B().Exists().Key(b.store.Keys.JobEvents(id)).Build()).AsInt64()
		require.NoError(t, err)
		require.Zero(t, n, "the job has no stream of its own")
	}
	_, pos, err := b.s.ReadEvents(b.ctx, "", 0)
	require.NoError(t, err)
	live := func(id string, n int) []scheduler.Event {
		t.Helper()
		var out []scheduler.Event
		for len(out) < n {
			evs, next, err := b.s.ReadEvents(b.ctx, pos, 5*time.Second)
			require.NoError(t, err)
			require.NoError(t, b.ctx.Err())
			pos = next
			for _, e := range evs {
				if e.JobID == id {
					out = append(out, e)
				}
			}
		}
		return out
	}
	history := func(id string, after int64) ([]scheduler.Event, bool) {
		t.Helper()
		evs, over, err := b.s.History(b.ctx, id, after)
		require.NoError(t, err)
		return evs, over
	}

	id := b.submit(t, "api:a", "u", "A")
	l := b.take(t, "w")
	sent := live(id, 2)
	require.Equal(t, scheduler.EventStarted, sent[1].Type)
	require.Equal(t, "test", sent[1].Backend)
	require.Equal(t, 1, sent[1].Attempt)
	noStream(id)
	evs, over := history(id, 0)
	require.False(t, over)
	require.Equal(t, sent, evs, "running: queued and started, rebuilt")
	evs, _ = history(id, 1)
	require.Equal(t, sent[1:], evs)

	clock.add(time.Second)
	require.NoError(t, l.Succeed(b.ctx, [][]byte{[]byte("img")}, []int64{42}, "info"))
	sent = append(sent, live(id, 1)...)
	require.Equal(t, scheduler.EventSucceeded, sent[2].Type)
	noStream(id)
	evs, over = history(id, 0)
	require.True(t, over)
	require.Equal(t, sent, evs, "within the grace: the whole history")
	for after := int64(1); after <= 2; after++ {
		evs, _ = history(id, after)
		require.Equal(t, sent[after:], evs)
	}
	evs, _ = history(id, 3)
	require.Empty(t, evs)
	var followed []scheduler.Event
	require.NoError(t, b.s.Follow(b.ctx, id, 0, func(e scheduler.Event) error { followed = append(followed, e); return nil }))
	require.Equal(t, sent, followed)
	// After the grace, as when the stream has expired: the first event and
	// the terminal one.
	clock.add(scheduler.FinishedEventsGrace)
	evs, _ = history(id, 0)
	require.Equal(t, []scheduler.Event{sent[0], sent[2]}, evs)

	// Canceled while queued (no worker slot offered): queued and canceled.
	id = b.submit(t, "api:a", "u", "B")
	st, err := b.s.Cancel(b.ctx, id, "u")
	require.NoError(t, err)
	require.Equal(t, scheduler.StatusQueued, st)
	sent = live(id, 2)
	require.Equal(t, scheduler.EventCanceled, sent[1].Type)
	noStream(id)
	evs, over = history(id, 0)
	require.True(t, over)
	require.Equal(t, sent, evs)

	// A variation's subseeds come back in the rebuilt terminal event.
	id = b.submit(t, "api:a", "u", "C")
	l = b.take(t, "w")
	_, err = l.SucceedWith(b.ctx, scheduler.Result{Images: [][]byte{[]byte("img")}, Seeds: []int64{7}, Subseeds: []int64{8}}, false)
	require.NoError(t, err)
	sent = live(id, 3)
	require.Equal(t, []int64{8}, sent[2].Subseeds)
	noStream(id)
	evs, _ = history(id, 0)
	require.Equal(t, sent, evs)
}

// A long info text is kept beside the images, not in the record, and
// comes back whole in the late follower's terminal event.
func TestLongInfoKeptBesideImages(t *testing.T) {
	t.Parallel()
	clock := newClock(time.Now())
	b := setup(t, scheduler.Config{Now: clock.now})
	id := b.submit(t, "api:a", "u", "A")
	l := b.take(t, "w")
	info := `{"prompt": "a lighthouse", "infotexts": ["` + strings.Repeat("Steps: 30, Sampler: DPM++ 2M, ", 40) + `"]}`
	require.NoError(t, l.Succeed(b.ctx, [][]byte{[]byte("img")}, []int64{7}, info))
	// No progress: the job never had a stream of its own; after the grace
	// only the terminal event follows the first.
	clock.add(scheduler.FinishedEventsGrace)
	rec, err := b.store.Client.Do(b.ctx, b.store.Client.B().Hget().Key(b.store.Keys.Job(id)).Field("info").Build()).ToString()
	require.NoError(t, err)
	require.Less(t, len(rec), 64, "the record stays within hash-max-listpack-value")
	if os.Getenv("EASEL_TEST_REDIS") != "embedded" { // the in-process Redis has no OBJECT ENCODING
		enc, err := b.store.Client.Do(b.ctx, b.store.Client.B().ObjectEncoding().Key(b.store.Keys.Job(id)).Build()).ToString()
		require.NoError(t, err)
		require.Equal(t, "listpack", enc)
	}
	j, err := b.s.Get(b.ctx, id)
	require.NoError(t, err)
	got, err := b.s.Info(b.ctx, j)
	require.NoError(t, err)
	require.Equal(t, info, got)
	evs, over, err := b.s.History(b.ctx, id, 1)
	require.NoError(t, err)
	require.True(t, over)
	require.Len(t, evs, 1)
	require.Equal(t, info, evs[0].Info)
	require.Equal(t, int64(3), evs[0].Seq)
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{})
	req := scheduler.SubmitRequest{Tenant: "api:a", User: "u", Payload: json.RawMessage(`{}`), IdempotencyKey: "k1"}
	r1, err := b.s.Submit(b.ctx, req)
	require.NoError(t, err)
	r2, err := b.s.Submit(b.ctx, req)
	require.NoError(t, err)
	require.Equal(t, r1.ID, r2.ID)
	require.True(t, r2.Duplicate)
	req.Tenant = "api:b"
	r3, err := b.s.Submit(b.ctx, req)
	require.NoError(t, err)
	require.NotEqual(t, r1.ID, r3.ID, "keys are per tenant")
}

func TestCancelQueuedIsSkippedAtDispatch(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{})
	a1 := b.submit(t, "api:a", "u", "A1")
	b.submit(t, "api:a", "u", "A2")
	st, err := b.s.Cancel(b.ctx, a1, "u")
	require.NoError(t, err)
	require.Equal(t, scheduler.StatusQueued, st)
	_, err = b.s.Cancel(b.ctx, a1, "u")
	require.ErrorIs(t, err, scheduler.ErrFinished)
	_, err = b.s.Cancel(b.ctx, "nope", "u")
	require.ErrorIs(t, err, scheduler.ErrNotFound)
	l := b.take(t, "w")
	require.Equal(t, "A2", prompt(t, l))
	active, err := b.s.Active(b.ctx, "api:a")
	require.NoError(t, err)
	require.Len(t, active, 1)
}

func TestCancelRunningNotifiesWorkerAndFencesIt(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{})
	id := b.submit(t, "api:a", "u", "A")
	l := b.take(t, "w")
	got := make(chan string, 1)
	subCtx, stop := context.WithCancel(b.ctx)
	subscribed := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		subscribed <- b.s.CancelNotices(subCtx, func() { close(ready) }, func(id string) { got <- id })
	}()
	<-ready // Cancel publishes once: wait until the subscription is live.
	st, err := b.s.Cancel(b.ctx, id, "admin")
	require.NoError(t, err)
	require.Equal(t, scheduler.StatusRunning, st)
	require.Equal(t, id, <-got)
	stop()
	require.ErrorIs(t, <-subscribed, context.Canceled, "the subscription ends with its context")
	require.ErrorIs(t, l.Succeed(b.ctx, [][]byte{[]byte("x")}, nil, ""), scheduler.ErrStale)
	require.ErrorIs(t, l.Renew(b.ctx), scheduler.ErrStale)
	j, err := b.s.Get(b.ctx, id)
	require.NoError(t, err)
	require.Equal(t, scheduler.StatusCanceled, j.Status)
	require.Equal(t, "admin", j.CanceledBy)
}

func TestRetryThenDeadLetter(t *testing.T) {
	t.Parallel()
	now := time.Now()
	clock := func() time.Time { return now }
	b := setup(t, scheduler.Config{MaxAttempts: 2, RetryBackoff: time.Second, Now: clock})
	m := scheduler.NewMaintainer(b.s, "m", zap.NewNop())
	id := b.submit(t, "api:a", "u", "A")
	l := b.take(t, "w")
	retried, err := l.Fail(b.ctx, "backend_error", "backend answered HTTP 500", true)
	require.NoError(t, err)
	require.True(t, retried)
	j, _ := b.s.Get(b.ctx, id)
	require.Equal(t, scheduler.StatusQueued, j.Status)
	// Not due yet: nothing to dispatch even with a free slot.
	sl := b.slot(t, "w")
	l, err = sl.Next(b.ctx, 0)
	require.NoError(t, err)
	require.Nil(t, l)
	due, err := m.Promote(b.ctx)
	require.NoError(t, err)
	require.Greater(t, due, now.UnixMilli())
	j, _ = b.s.Get(b.ctx, id)
	require.Equal(t, scheduler.StatusQueued, j.Status)
	now = now.Add(2 * time.Second)
	_, err = m.Promote(b.ctx)
	require.NoError(t, err)
	l, err = sl.Next(b.ctx, 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, 2, l.Attempt)
	retried, err = l.Fail(b.ctx, "backend_error", "backend answered HTTP 500", true)
	require.NoError(t, err)
	require.False(t, retried)
	j, _ = b.s.Get(b.ctx, id)
	require.Equal(t, scheduler.StatusFailed, j.Status)
	require.Equal(t, "backend answered HTTP 500", j.Error)
	var types []scheduler.EventType
	require.NoError(t, b.s.Follow(b.ctx, id, 0, func(e scheduler.Event) error { types = append(types, e.Type); return nil }))
	require.Equal(t, []scheduler.EventType{"queued", "started", "retrying", "started", "failed"}, types)
	// After the grace: the first event and the terminal one, rebuilt.
	expireEvents(t, b, id)
	types = nil
	var end scheduler.Event
	require.NoError(t, b.s.Follow(b.ctx, id, 0, func(e scheduler.Event) error { types = append(types, e.Type); end = e; return nil }))
	require.Equal(t, []scheduler.EventType{"queued", "failed"}, types)
	require.Equal(t, int64(5), end.Seq)
	require.Equal(t, "backend_error", end.Code)
	require.Equal(t, "backend answered HTTP 500", end.Message)
}

func TestReclaimExpiredLeaseAndFenceZombie(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{Lease: 300 * time.Millisecond, RetryBackoff: time.Millisecond, RetryBackoffMax: time.Millisecond})
	id := b.submit(t, "api:a", "u", "A")
	zombie := b.take(t, "dead-worker")
	// The lease runs out in Redis time: the maintainer reclaims it on its
	// own schedule, and the job's retrying event says it did.
	m := startMaintainer(t, b)
	waitEvent(t, b.ctx, b.s, id, retried(1))
	j, _ := b.s.Get(b.ctx, id)
	require.Equal(t, scheduler.StatusQueued, j.Status)
	// The retry is due within a millisecond or two of backoff; the
	// maintainer promotes it to the slot blocked in Next.
	l := b.take(t, "live-worker")
	require.Equal(t, 2, l.Attempt)
	// The live worker renews nothing here: with the maintainer still
	// running, a loaded machine could let its 300 ms lease run out too and
	// reclaim it before its Succeed below (the test would fence the live
	// worker, not only the zombie).
	require.NoError(t, m.Stop(b.ctx))
	// The zombie wakes up: none of its writes land.
	require.ErrorIs(t, zombie.Progress(b.ctx, 1, 2, .5, 0, nil), scheduler.ErrStale)
	require.ErrorIs(t, zombie.Succeed(b.ctx, [][]byte{[]byte("zombie")}, nil, ""), scheduler.ErrStale)
	_, err := zombie.Fail(b.ctx, "x", "x", true)
	require.ErrorIs(t, err, scheduler.ErrStale)
	require.NoError(t, l.Succeed(b.ctx, [][]byte{[]byte("live")}, nil, ""))
	j, _ = b.s.Get(b.ctx, id)
	img, err := b.s.Image(b.ctx, j, 0)
	require.NoError(t, err)
	require.Equal(t, "live", string(img))
	n := 0
	require.NoError(t, b.s.Follow(b.ctx, id, 0, func(e scheduler.Event) error {
		if e.Type == scheduler.EventSucceeded {
			n++
		}
		return nil
	}))
	require.Equal(t, 1, n)
}

func TestHandBackKeepsAttempts(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{MaxAttempts: 1})
	b.submit(t, "api:a", "u", "A1")
	b.submit(t, "api:a", "u", "A2")
	l := b.take(t, "w")
	require.NoError(t, l.HandBack(b.ctx))
	l2 := b.take(t, "w")
	require.Equal(t, "A1", prompt(t, l2), "handed back to the front")
	require.Equal(t, 2, l2.Attempt, "fencing token moves on")
	retried, err := l2.Fail(b.ctx, "backend_error", "x", true)
	require.NoError(t, err)
	require.False(t, retried, "one real attempt used of one")
}

func TestSubmitRejectsBadNames(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{})
	_, err := b.s.Submit(b.ctx, scheduler.SubmitRequest{Tenant: "bad tenant\"", User: "u", Payload: json.RawMessage(`{}`)})
	var inv *scheduler.InvalidError
	require.True(t, errors.As(err, &inv))
	require.Equal(t, "tenant", inv.Field)
}
