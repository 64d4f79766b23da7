package scheduler_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/scheduler"
)

// TestOnCluster runs the scheduler's paths on a real three-master Redis
// Cluster: fair order across tenants, progress and events, retry through the
// delayed set, cancel of a running job, reclaim of an expired lease, policy
// usage. (EASEL_TEST_REDIS=cluster runs the whole suite there.)
func TestOnCluster(t *testing.T) {
	t.Parallel()
	store := redistest.ClusterStore(t)
	s, err := scheduler.New(context.Background(), store, scheduler.Config{Lease: 300 * time.Millisecond,
		RetryBackoff: time.Millisecond, RetryBackoffMax: time.Millisecond}, zap.NewNop())
	require.NoError(t, err)
	b := &bundle{s: s}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b.ctx = ctx

	b.submit(t, "api:x", "u", "X")
	busy := b.take(t, "w1")
	for _, j := range []struct{ tenant, name string }{
		{"api:A", "A1"}, {"api:A", "A2"}, {"api:B", "B1"}, {"api:C", "C1"}, {"api:C", "C2"}, {"api:A", "A3"},
	} {
		b.submit(t, j.tenant, "u", j.name)
	}
	require.NoError(t, busy.Succeed(ctx, [][]byte{[]byte("img")}, []int64{1}, ""))
	var order []string
	for i := range 6 {
		l := b.take(t, "w1")
		order = append(order, prompt(t, l))
		require.NoError(t, l.Progress(ctx, 1, 2, .5, time.Second, []byte("preview")))
		if i == 5 {
			retried, err := l.Fail(ctx, "backend_error", "boom", true)
			require.NoError(t, err)
			require.True(t, retried)
			// A maintainer promotes the retry when due, to the slot
			// blocked in Next; stopped at once, it reclaims no lease.
			m := scheduler.NewMaintainer(s, "m", zap.NewNop())
			require.NoError(t, m.Start(ctx))
			l = b.take(t, "w1")
			require.NoError(t, m.Stop(ctx))
			require.Equal(t, "A3", prompt(t, l), "the retry runs again")
		}
		require.NoError(t, l.Succeed(ctx, [][]byte{[]byte(prompt(t, l))}, []int64{int64(i)}, "info"))
		var types []scheduler.EventType
		require.NoError(t, s.Follow(ctx, l.JobID, 0, func(e scheduler.Event) error { types = append(types, e.Type); return nil }))
		require.Equal(t, scheduler.EventSucceeded, types[len(types)-1])
		j, err := s.Get(ctx, l.JobID)
		require.NoError(t, err)
		img, err := s.Image(ctx, j, 0)
		require.NoError(t, err)
		require.Equal(t, prompt(t, l), string(img))
	}
	require.Equal(t, []string{"A1", "B1", "C1", "A2", "C2", "A3"}, order)

	// Cancel a running job: its worker hears of it.
	id := b.submit(t, "api:A", "u", "A4")
	l := b.take(t, "w1")
	got := make(chan string, 1)
	subCtx, stop := context.WithCancel(ctx)
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- s.CancelNotices(subCtx, func() { close(ready) }, func(id string) { got <- id }) }()
	<-ready
	st, err := s.Cancel(ctx, id, "admin")
	require.NoError(t, err)
	require.Equal(t, scheduler.StatusRunning, st)
	require.Equal(t, id, <-got)
	stop()
	require.ErrorIs(t, <-done, context.Canceled, "the subscription ends with its context")
	require.ErrorIs(t, l.Succeed(ctx, nil, nil, ""), scheduler.ErrStale)

	// A lease nobody renews is reclaimed and retried.
	id = b.submit(t, "api:B", "u", "B2")
	b.take(t, "dead-worker")
	// The lease runs out in Redis time: a maintainer reclaims it, and the
	// job's retrying event says so.
	m := scheduler.NewMaintainer(s, "m", zap.NewNop())
	require.NoError(t, m.Start(ctx))
	waitEvent(t, ctx, s, id, retried(1))
	require.NoError(t, m.Stop(ctx))
	j, err := s.Get(ctx, id)
	require.NoError(t, err)
	require.Equal(t, scheduler.StatusQueued, j.Status)

	// Policies and usage live in the shard too.
	ps, err := scheduler.NewPolicies(s, scheduler.PolicyConfig{})
	require.NoError(t, err)
	_, err = ps.Set(ctx, "api:A", "", "max_running", "2")
	require.NoError(t, err)
	p, err := ps.Resolve(ctx, "api:A", "u")
	require.NoError(t, err)
	require.Equal(t, 2, *p.MaxRunning)
	_, err = s.Submit(ctx, scheduler.SubmitRequest{Tenant: "api:A", User: "ann", Payload: json.RawMessage(`{}`), Images: 2})
	require.NoError(t, err)
	top, err := ps.TopUsers(ctx, "api:A", 5)
	require.NoError(t, err)
	require.Equal(t, []scheduler.Usage{{User: "ann", Images: 2}}, top)
}

// TestClusterShardKeysOnOneNode checks that every scheduler key of a shard
// hashes to the one slot of its tag, whatever the tenant, user or job.
func TestClusterShardKeysOnOneNode(t *testing.T) {
	t.Parallel()
	store := redistest.ClusterStore(t)
	s, err := scheduler.New(context.Background(), store, scheduler.Config{}, zap.NewNop())
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 20 {
		p, _ := json.Marshal(map[string]int{"n": i})
		_, err := s.Submit(ctx, scheduler.SubmitRequest{Tenant: fmt.Sprint("api:t", i%7), User: fmt.Sprint("u", i%5), Payload: p, Images: 1})
		require.NoError(t, err)
	}
	slots := map[int64]bool{}
	c := store.Client
	for _, node := range c.Nodes() {
		keys, err := node.Do(ctx, node.B().Keys().Pattern(store.Keys.ShardPrefix()+"*").Build()).AsStrSlice()
		require.NoError(t, err)
		for _, k := range keys {
			slot, err := node.Do(ctx, node.B().ClusterKeyslot().Key(k).Build()).AsInt64()
			require.NoError(t, err)
			slots[slot] = true
		}
	}
	require.Len(t, slots, 1, "one slot for the whole shard")
}
