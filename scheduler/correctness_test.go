package scheduler_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/scheduler"
)

// A worker killed without a goodbye leaves an offer that runs out with its
// lease: it takes no job, and the next job goes to a live slot.
func TestAbandonedSlotTakesNoWork(t *testing.T) {
	t.Parallel()
	now := time.Now()
	b := setup(t, scheduler.Config{Lease: time.Second, Now: func() time.Time { return now }})
	dead := b.s.Slot("killed", "b") // never closed: its process is gone
	l, err := dead.Next(b.ctx, 0)
	require.NoError(t, err)
	require.Nil(t, l)
	now = now.Add(1500 * time.Millisecond)
	id := b.submit(t, "api:a", "u", "A")
	j, err := b.s.Get(b.ctx, id)
	require.NoError(t, err)
	require.Equal(t, scheduler.StatusQueued, j.Status, "the expired offer took nothing")
	l = b.take(t, "live")
	require.Equal(t, id, l.JobID)
	// Before it runs out, an offer does take work.
	l2, err := dead.Next(b.ctx, 0)
	require.NoError(t, err)
	require.Nil(t, l2)
	id2 := b.submit(t, "api:a", "u", "B")
	j, err = b.s.Get(b.ctx, id2)
	require.NoError(t, err)
	require.Equal(t, scheduler.StatusRunning, j.Status)
}

// More leases expire at once than one XAUTOCLAIM page holds: the reclaim
// follows the cursor and takes back every one.
func TestReclaimFollowsCursor(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{Lease: 300 * time.Millisecond, MaxAttempts: 5, RetryBackoff: time.Millisecond,
		RetryBackoffMax: time.Millisecond})
	const n = 1500
	cmds := make([]scheduler.SubmitRequest, n)
	for i := range cmds {
		cmds[i] = scheduler.SubmitRequest{Tenant: fmt.Sprint("api:t", i%10), User: fmt.Sprint("u", i%7), Payload: json.RawMessage(`{}`)}
	}
	for _, r := range cmds {
		_, err := b.s.Submit(b.ctx, r)
		require.NoError(t, err)
	}
	sl := b.slot(t, "doomed")
	for range n {
		l, err := sl.Next(b.ctx, 0)
		require.NoError(t, err)
		require.NotNil(t, l)
	}
	m := scheduler.NewMaintainer(b.s, "m", zap.NewNop())
	total := 0
	require.Eventually(t, func() bool {
		got, err := m.Reclaim(b.ctx)
		require.NoError(t, err)
		total += got
		return total >= n
	}, 20*time.Second, 50*time.Millisecond)
	require.Equal(t, n, total)
}

// Weight and cap are the tenant's policy: a submit carrying an older
// policy (another instance's cache) does not overwrite them.
func TestSubmitDoesNotOverwriteTenantPolicy(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{})
	ps, err := scheduler.NewPolicies(b.s, scheduler.PolicyConfig{})
	require.NoError(t, err)
	_, err = ps.Set(b.ctx, "api:a", "", "max_running", "1")
	require.NoError(t, err)
	for range 2 {
		_, err := b.s.Submit(b.ctx, scheduler.SubmitRequest{Tenant: "api:a", User: "u", Payload: json.RawMessage(`{}`),
			Admission: &scheduler.Admission{MaxRunning: 5}})
		require.NoError(t, err)
	}
	b.take(t, "w1")
	sl := b.slot(t, "w2")
	l, err := sl.Next(b.ctx, 0)
	require.NoError(t, err)
	require.Nil(t, l, "the cap of 1 set by policy holds")
}

// A tenant's bookkeeping holds fields for users with work waiting, not for
// every user ever seen.
func TestTenantStateDoesNotGrowWithUsers(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{})
	for i := range 200 {
		_, err := b.s.Submit(b.ctx, scheduler.SubmitRequest{Tenant: "api:a", User: fmt.Sprint("user", i),
			Payload: json.RawMessage(`{}`), Admission: &scheduler.Admission{UserWeight: 2}})
		require.NoError(t, err)
	}
	for range 200 {
		require.NoError(t, b.take(t, "w").Succeed(b.ctx, nil, nil, ""))
	}
	fields, idle := b.s.TenantStateSize(b.ctx, "api:a")
	require.Less(t, fields, 20, "tenant hash fields")
	require.Less(t, idle, 5, "idle users remembered")
}

// A zombie attempt (its lease was reclaimed) writes no result images.
func TestZombieWritesNoImages(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{})
	id := b.submit(t, "api:a", "u", "A")
	zombie := b.take(t, "w")
	_, err := b.s.Cancel(b.ctx, id, "u")
	require.NoError(t, err)
	require.ErrorIs(t, zombie.Succeed(b.ctx, [][]byte{[]byte("orphan")}, nil, ""), scheduler.ErrStale)
	n, err := b.s.BlobCount(context.Background(), id)
	require.NoError(t, err)
	require.Zero(t, n)
}
