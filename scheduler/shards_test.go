package scheduler_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/storage"
)

// sharded starts a scheduler with shards on store.
func sharded(t *testing.T, store *storage.Store, cfg scheduler.Config) *bundle {
	t.Helper()
	s, err := scheduler.New(context.Background(), store, cfg, zap.NewNop())
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return &bundle{s: s, ctx: ctx, store: store}
}

// tenantPerShard names one tenant on each shard, in shard order.
func tenantPerShard(t *testing.T, s *scheduler.Scheduler, prefix string) []string {
	t.Helper()
	out := make([]string, s.Shards())
	for i := 0; i < 1000; i++ {
		tn := fmt.Sprintf("%s%d", prefix, i)
		if sh := s.ShardOf(tn); out[sh] == "" {
			out[sh] = tn
		}
	}
	for i, tn := range out {
		require.NotEmpty(t, tn, "no tenant found on shard %d", i)
	}
	return out
}

// TestShardsJobsAndReaders runs jobs of tenants on three shards and reads
// them back through every reader that spans tenants.
func TestShardsJobsAndReaders(t *testing.T) {
	t.Parallel()
	b := sharded(t, redistest.Store(t), scheduler.Config{Shards: 3, MaxAttempts: 1})
	tenants := tenantPerShard(t, b.s, "api:t")
	_, cursor, err := b.s.ReadEvents(b.ctx, "", 0)
	require.NoError(t, err)
	require.NoError(t, b.s.JoinEventGroup(b.ctx, scheduler.WebhooksGroup))
	var ids []string
	for _, tn := range tenants {
		ids = append(ids, b.submit(t, tn, "u", tn))
	}
	require.NotContains(t, ids[0], "-", "shard 0 ids are as before")
	require.Contains(t, ids[1], "-", "other shards' ids name their shard")
	for i, tn := range tenants {
		j, err := b.s.Get(b.ctx, ids[i])
		require.NoError(t, err)
		require.Equal(t, tn, j.Tenant)
		page, err := b.s.ActivePage(b.ctx, tn, "", "", 10)
		require.NoError(t, err)
		require.Len(t, page.Entries, 1)
		require.Equal(t, 1, page.Entries[0].Position)
	}
	// One slot takes every shard's job, then a fourth fails for good.
	sl := b.slot(t, "w")
	seen := map[string]bool{}
	for range 3 {
		l, err := sl.Next(b.ctx, time.Second)
		require.NoError(t, err)
		require.NotNil(t, l)
		seen[l.JobID] = true
		require.NoError(t, l.Progress(b.ctx, 1, 2, .5, 0, nil))
		require.NoError(t, l.Succeed(b.ctx, [][]byte{[]byte("img")}, []int64{1}, ""))
	}
	require.Len(t, seen, 3)
	failID := b.submit(t, tenants[2], "u", "doomed")
	l, err := sl.Next(b.ctx, time.Second)
	require.NoError(t, err)
	require.Equal(t, failID, l.JobID)
	_, err = l.Fail(b.ctx, "backend_error", "boom", true)
	require.NoError(t, err)
	dead, err := b.s.DeadLetters(b.ctx, 10)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	require.Equal(t, failID, dead[0].JobID)
	d, err := b.s.DeadLetter(b.ctx, dead[0].Entry)
	require.NoError(t, err)
	require.Equal(t, failID, d.JobID)
	// Cancel finds a finished job's shard from its id.
	_, err = b.s.Cancel(b.ctx, ids[2], "u")
	require.ErrorIs(t, err, scheduler.ErrFinished)

	// The event fan-out sees every shard's events.
	types := map[string][]scheduler.EventType{}
	for n := 0; n < 3*4+2; {
		evs, next, err := b.s.ReadEvents(b.ctx, cursor, 5*time.Second)
		require.NoError(t, err)
		require.NotEmpty(t, evs, "events of %d jobs so far", len(types))
		cursor = next
		for _, e := range evs {
			types[e.JobID] = append(types[e.JobID], e.Type)
			n++
		}
	}
	for _, id := range ids {
		require.Equal(t, []scheduler.EventType{scheduler.EventQueued, scheduler.EventStarted, scheduler.EventProgress,
			scheduler.EventSucceeded}, types[id], id)
	}
	// The relay and webhook groups too, with acks that find their shard.
	relay, err := b.s.RelayRead(b.ctx, "r1", ">", 100, time.Second)
	require.NoError(t, err)
	require.Len(t, relay, 3*4+3)
	for _, e := range relay {
		require.NoError(t, b.s.RelayAck(b.ctx, e.ID))
	}
	again, err := b.s.RelayRead(b.ctx, "r1", "0", 100, 0)
	require.NoError(t, err)
	require.Empty(t, again, "all acknowledged")
	hooks, err := b.s.ReadEventGroup(b.ctx, scheduler.WebhooksGroup, "h", false, 100, time.Second)
	require.NoError(t, err)
	require.Len(t, hooks, 3*4+3)
	require.NoError(t, b.s.HoldEvent(b.ctx, scheduler.WebhooksGroup, "h", hooks[0].EntryID))
	for _, e := range hooks {
		require.NoError(t, b.s.AckEvents(b.ctx, scheduler.WebhooksGroup, e.EntryID))
	}
	claimed, err := b.s.ClaimEvents(b.ctx, scheduler.WebhooksGroup, "h2", 0, 100)
	require.NoError(t, err)
	require.Empty(t, claimed)
	served, err := b.s.Served(b.ctx, 10*time.Minute)
	require.NoError(t, err)
	for _, tn := range tenants {
		require.Positive(t, served[tn], tn)
	}
	// A blocking read wakes for an event on any shard.
	got := make(chan []scheduler.RelayEntry, 1)
	go func() {
		es, _ := b.s.RelayRead(b.ctx, "r1", ">", 100, 10*time.Second)
		got <- es
	}()
	b.submit(t, tenants[1], "u", "late")
	select {
	case es := <-got:
		require.Len(t, es, 1)
		require.True(t, strings.HasPrefix(es[0].ID, "1/"), es[0].ID)
	case <-b.ctx.Done():
		t.Fatal("no wake-up")
	}
}

// TestShardsOneSlotServesEveryShard: one slot, three tenants on three
// shards with their work queued in blocks (FIFO would serve one tenant
// first): the slot takes from the shard whose head has the least virtual
// time, so every round serves each tenant once.
func TestShardsOneSlotServesEveryShard(t *testing.T) {
	t.Parallel()
	b := sharded(t, redistest.Store(t), scheduler.Config{Shards: 3})
	tenants := tenantPerShard(t, b.s, "api:o")
	for _, tn := range tenants {
		for k := range 4 {
			b.submit(t, tn, "u", fmt.Sprintf("%s-%d", tn, k))
		}
	}
	sl := b.slot(t, "w")
	for round := range 4 {
		got := map[string]int{}
		for range 3 {
			l, err := sl.Next(b.ctx, time.Second)
			require.NoError(t, err)
			require.NotNil(t, l)
			j, err := b.s.Get(b.ctx, l.JobID)
			require.NoError(t, err)
			got[j.Tenant]++
			require.NoError(t, l.Succeed(b.ctx, nil, nil, ""))
		}
		require.Len(t, got, 3, "round %d serves every shard once: %v", round, got)
	}
}

// TestShardsDoubleDeliveryHandedBack: a slot waiting for work is offered on
// every shard; two shards dispatch to it at once; it runs one job and hands
// the other back, which then runs next, once.
func TestShardsDoubleDeliveryHandedBack(t *testing.T) {
	t.Parallel()
	b := sharded(t, redistest.Store(t), scheduler.Config{Shards: 3})
	tenants := tenantPerShard(t, b.s, "api:d")
	sl := b.slot(t, "w")
	l, err := sl.Next(b.ctx, 0)
	require.NoError(t, err)
	require.Nil(t, l, "nothing queued: the slot is offered on every shard")
	a := b.submit(t, tenants[0], "u", "a")
	c := b.submit(t, tenants[2], "u", "c")
	for _, id := range []string{a, c} {
		j, err := b.s.Get(b.ctx, id)
		require.NoError(t, err)
		require.Equal(t, scheduler.StatusRunning, j.Status, "both dispatched to the one waiting slot")
	}
	first, err := sl.Next(b.ctx, 5*time.Second)
	require.NoError(t, err)
	require.NotNil(t, first)
	other := a
	if first.JobID == a {
		other = c
	}
	// The other job goes back to its queue: queued again after its start.
	var types []scheduler.EventType
	require.ErrorIs(t, b.s.Follow(b.ctx, other, 0, func(e scheduler.Event) error {
		types = append(types, e.Type)
		if len(types) == 3 {
			return context.Canceled
		}
		return nil
	}), context.Canceled)
	require.Equal(t, []scheduler.EventType{scheduler.EventQueued, scheduler.EventStarted, scheduler.EventQueued}, types)
	require.Equal(t, int64(1), b.s.DoubleDeliveries())
	j, err := b.s.Get(b.ctx, other)
	require.NoError(t, err)
	require.Equal(t, scheduler.StatusQueued, j.Status)
	require.NoError(t, first.Succeed(b.ctx, nil, nil, ""))
	second, err := sl.Next(b.ctx, 5*time.Second)
	require.NoError(t, err)
	require.NotNil(t, second)
	require.Equal(t, other, second.JobID)
	require.Equal(t, 2, second.Attempt, "the attempt number moves on (fencing)")
	require.NoError(t, second.Succeed(b.ctx, nil, nil, ""))
	j, err = b.s.Get(b.ctx, other)
	require.NoError(t, err)
	require.Equal(t, scheduler.StatusSucceeded, j.Status)
}

// TestShardsFairOnCluster: three equal saturated tenants on the three
// shards of a three-master cluster, their jobs submitted in blocks, served
// by four slots: Jain's index over the cost served while all are
// backlogged is at least 0.95.
func TestShardsFairOnCluster(t *testing.T) {
	t.Parallel()
	b := sharded(t, redistest.ClusterStore(t), scheduler.Config{Shards: 3})
	tenants := tenantPerShard(t, b.s, "api:f")
	const per = 40
	for _, tn := range tenants {
		for k := range per {
			p, _ := json.Marshal(map[string]int{"k": k})
			_, err := b.s.Submit(b.ctx, scheduler.SubmitRequest{Tenant: tn, User: fmt.Sprint("u", k%3), Payload: p, Cost: 1})
			require.NoError(t, err)
		}
	}
	served := map[string]float64{}
	slots := []*scheduler.Slot{b.slot(t, "w1"), b.slot(t, "w2"), b.slot(t, "w3"), b.slot(t, "w4")}
	// Stop while every tenant still has work: 2/3 of the jobs.
	for n := 0; n < 2*per; {
		for _, sl := range slots {
			l, err := sl.Next(b.ctx, time.Second)
			require.NoError(t, err)
			require.NotNil(t, l)
			j, err := b.s.Get(b.ctx, l.JobID)
			require.NoError(t, err)
			served[j.Tenant] += j.Cost
			require.NoError(t, l.Succeed(b.ctx, nil, nil, ""))
			n++
		}
	}
	require.Len(t, served, 3)
	require.GreaterOrEqual(t, scheduler.JainIndex(served), 0.95, "served %v", served)
	require.Zero(t, b.s.DoubleDeliveries(), "a backlogged slot takes from one shard at a time")
}

// TestShardsChangeNeedsEmptyQueue: a scheduler refuses to start with a new
// shard count while jobs wait, and starts once the queue is empty; a job
// finished under the old count is still found by its id.
func TestShardsChangeNeedsEmptyQueue(t *testing.T) {
	t.Parallel()
	store := redistest.Store(t)
	b := sharded(t, store, scheduler.Config{Shards: 3})
	tn := tenantPerShard(t, b.s, "api:c")[2]
	id := b.submit(t, tn, "u", "x")
	_, err := scheduler.New(b.ctx, store, scheduler.Config{Shards: 2}, zap.NewNop())
	var inv *scheduler.InvalidError
	require.ErrorAs(t, err, &inv)
	require.Equal(t, "scheduler.shards", inv.Field)
	l := b.take(t, "w")
	require.NoError(t, l.Succeed(b.ctx, nil, nil, ""))
	s2, err := scheduler.New(b.ctx, store, scheduler.Config{Shards: 2}, zap.NewNop())
	require.NoError(t, err)
	j, err := s2.Get(b.ctx, id)
	require.NoError(t, err)
	require.Equal(t, scheduler.StatusSucceeded, j.Status)
	_, err = scheduler.New(b.ctx, store, scheduler.Config{Shards: 65}, zap.NewNop())
	require.ErrorAs(t, err, &inv)
}

// TestShardsWaitingForCountsEveryShard: a job running on another shard
// than the first means some backend works: queued jobs do not say they
// wait for a backend that is down; once nothing runs anywhere, they do.
func TestShardsWaitingForCountsEveryShard(t *testing.T) {
	t.Parallel()
	b := sharded(t, redistest.Store(t), scheduler.Config{Shards: 3})
	tn := tenantPerShard(t, b.s, "api:w")[2]
	b.submit(t, tn, "u", "x")
	l := b.take(t, "w")
	require.NoError(t, b.slot(t, "w").Withdraw(b.ctx))
	require.NoError(t, b.s.BackendDown(b.ctx, "gpu1", time.Now()))
	w, err := b.s.WaitingFor(b.ctx)
	require.NoError(t, err)
	require.Nil(t, w, "a job runs on shard 2")
	require.NoError(t, l.Succeed(b.ctx, nil, nil, ""))
	w, err = b.s.WaitingFor(b.ctx)
	require.NoError(t, err)
	require.NotNil(t, w)
	require.Equal(t, "gpu1", w.Backends[0].Name)
}

// The calls a lease makes by job id go to the job's shard: a renewal and a
// hand-back of a job on every shard find its live attempt.
func TestShardsLeaseCallsReachTheJobsShard(t *testing.T) {
	t.Parallel()
	b := sharded(t, redistest.Store(t), scheduler.Config{Shards: 3})
	sl := b.slot(t, "w")
	for _, tn := range tenantPerShard(t, b.s, "api:l") {
		id := b.submit(t, tn, "u", "lease")
		l, err := sl.Next(b.ctx, 5*time.Second)
		require.NoError(t, err)
		require.NotNil(t, l)
		require.Equal(t, id, l.JobID)
		require.NoError(t, l.Renew(b.ctx), tn)
		require.NoError(t, l.HandBack(b.ctx), tn)
		j, err := b.s.Get(b.ctx, id)
		require.NoError(t, err)
		require.Equal(t, scheduler.StatusQueued, j.Status, tn)
		_, err = b.s.Cancel(b.ctx, id, "u")
		require.NoError(t, err)
	}
}
