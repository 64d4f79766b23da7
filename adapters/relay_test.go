package adapters_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/adapters"
	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/storage"
)

// counter is a renderer that counts renders per job and event type, and
// can fail its first renders.
type counter struct {
	mu       sync.Mutex
	finals   map[string]int
	progress int
	failN    int
	done     chan string
	interval time.Duration
}

func (c *counter) Kind() string               { return "test" }
func (c *counter) MinInterval() time.Duration { return c.interval }
func (c *counter) Render(_ context.Context, j *scheduler.Job, ev scheduler.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failN > 0 {
		c.failN--
		return context.DeadlineExceeded
	}
	if ev.Type.Terminal() {
		c.finals[j.ID]++
		c.done <- j.ID
	} else if ev.Type == scheduler.EventProgress {
		c.progress++
	}
	return nil
}

// TestFinalDeliveredOnceAcrossRelays: two relays (two serve processes)
// share the events stream; each job's final state is rendered exactly once,
// even when the first render attempt fails, and progress is coalesced.
func TestFinalDeliveredOnceAcrossRelays(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store := redistest.Store(t)
	sched, err := scheduler.New(ctx, store, scheduler.Config{}, zap.NewNop())
	require.NoError(t, err)
	c := &counter{finals: map[string]int{}, failN: 1, done: make(chan string, 100), interval: time.Hour}
	var relays []*adapters.Relay
	for _, name := range []string{"a", "b"} {
		r := adapters.NewRelay(sched, zap.NewNop(), c)
		r.SetConsumer("relay-" + name)
		require.NoError(t, r.Start(ctx))
		relays = append(relays, r)
	}
	defer func() {
		for _, r := range relays {
			_ = r.Stop(context.Background())
		}
	}()
	const jobs = 20
	slot := sched.Slot("w", "b")
	defer func() { _ = slot.Close(context.Background()) }()
	for i := range jobs {
		_, err := sched.Submit(ctx, scheduler.SubmitRequest{Tenant: "api:t", User: "u", Payload: json.RawMessage(`{}`),
			Origin: json.RawMessage(`{"kind":"test"}`)})
		require.NoError(t, err)
		l, err := slot.Next(ctx, time.Second)
		require.NoError(t, err)
		for step := 1; step <= 10; step++ {
			require.NoError(t, l.Progress(ctx, step, 10, float64(step)/10, 0, nil))
		}
		require.NoError(t, l.Succeed(ctx, nil, nil, ""))
		_ = i
	}
	for range jobs {
		select {
		case <-c.done:
		case <-ctx.Done():
			t.Fatal("finals missing")
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	require.Len(t, c.finals, jobs)
	for id, n := range c.finals {
		require.Equal(t, 1, n, "job %s rendered its final state %d times", id, n)
	}
	require.Less(t, c.progress, jobs*10/2, "progress is coalesced (latest wins)")
}

// blocker is a renderer whose renders of final states block until release
// closes (or the render's context ends).
type blocker struct {
	started chan string
	release chan struct{}
}

func (b *blocker) Kind() string               { return "test" }
func (b *blocker) MinInterval() time.Duration { return 0 }
func (b *blocker) Render(ctx context.Context, j *scheduler.Job, ev scheduler.Event) error {
	if !ev.Type.Terminal() {
		return nil
	}
	select {
	case b.started <- j.ID:
	default:
	}
	select {
	case <-b.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// A relay restarted under its name finds its unacknowledged final pending.
// While that final cannot settle (here: the claim of the render cut off by
// the stop is still held; likewise while it renders), the entry stays
// pending, and the read loop must block for new entries rather than read
// the same pending entry again and again.
func TestRestartedRelayDoesNotSpinOnAPendingFinal(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rs := redistest.NewServer(t)
	store, err := storage.Open(ctx, rs.Config(), zap.NewNop())
	require.NoError(t, err)
	defer store.Close()
	sched, err := scheduler.New(ctx, store, scheduler.Config{}, zap.NewNop())
	require.NoError(t, err)

	b := &blocker{started: make(chan string, 1), release: make(chan struct{})}
	first := adapters.NewRelay(sched, zap.NewNop(), b)
	first.SetConsumer("relay-a")
	require.NoError(t, first.Start(ctx))
	_, err = sched.Submit(ctx, scheduler.SubmitRequest{Tenant: "api:t", User: "u", Payload: json.RawMessage(`{}`),
		Origin: json.RawMessage(`{"kind":"test"}`)})
	require.NoError(t, err)
	slot := sched.Slot("w", "b")
	defer func() { _ = slot.Close(context.Background()) }()
	l, err := slot.Next(ctx, 5*time.Second)
	require.NoError(t, err)
	require.NotNil(t, l)
	require.NoError(t, l.Succeed(ctx, nil, nil, ""))
	select {
	case <-b.started:
	case <-ctx.Done():
		t.Fatal("the final was not rendered")
	}
	stopCtx, stopCancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_ = first.Stop(stopCtx) // the render is cut off: the final stays pending
	stopCancel()

	reads := func() int64 {
		calls, err := store.CommandCalls(ctx)
		require.NoError(t, err)
		return calls["xreadgroup"]
	}
	before := reads()
	second := adapters.NewRelay(sched, zap.NewNop(), b)
	second.SetConsumer("relay-a")
	require.NoError(t, second.Start(ctx))
	defer func() { close(b.release); _ = second.Stop(context.Background()) }()
	time.Sleep(time.Second) // a window to count reads in, not a wait for a result
	require.Less(t, reads()-before, int64(5), "the read loop blocks while the pending final cannot settle")
	// The final is not taken for a duplicate and acknowledged: it stays
	// pending for the sweep, which renders it once the claim is free.
	pending, err := store.Client.Do(ctx, store.Client.B().Xpending().Key(store.Keys.Events()).Group(scheduler.RelayGroup).Build()).ToArray()
	require.NoError(t, err)
	n, err := pending[0].AsInt64()
	require.NoError(t, err)
	require.Equal(t, int64(1), n, "the unsettled final stays pending")
}
