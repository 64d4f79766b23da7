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
