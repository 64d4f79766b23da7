package scheduler_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/storage/blob"
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

// 1 500 leases in flight, the first 1 100 live and the last 400 expired:
// one XAUTOCLAIM call looks at no more than ten times its page (1 000
// entries) from its cursor, so a reclaim that did not follow the cursor
// would find only live leases and stop. One Reclaim takes back all 400,
// and none of the live ones; once those expire too, all 1 500 have been
// reclaimed. Expiry is set on the entries themselves (XCLAIM IDLE), not
// waited for.
func TestReclaimFollowsCursor(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{Lease: time.Hour, MaxAttempts: 5, RetryBackoff: time.Millisecond,
		RetryBackoffMax: time.Millisecond})
	const n, live = 1500, 1100
	for i := range n {
		_, err := b.s.Submit(b.ctx, scheduler.SubmitRequest{Tenant: fmt.Sprint("api:t", i%10), User: fmt.Sprint("u", i%7),
			Payload: json.RawMessage(`{}`)})
		require.NoError(t, err)
	}
	sl := b.slot(t, "doomed")
	ids := make([]string, n)
	for i := range n {
		l, err := sl.Next(b.ctx, 0)
		require.NoError(t, err)
		require.NotNil(t, l)
		ids[i] = l.JobID
	}
	c, work := b.store.Client, b.store.Keys.Work()
	pending, err := c.Do(b.ctx, c.B().Xpending().Key(work).Group(scheduler.WorkersGroup).Start("-").End("+").Count(2*n).Build()).ToArray()
	require.NoError(t, err)
	require.Len(t, pending, n)
	entries := make([]string, n)
	for i, p := range pending {
		f, err := p.ToArray()
		require.NoError(t, err)
		entries[i], err = f[0].ToString()
		require.NoError(t, err)
	}
	expire := func(entries []string) {
		t.Helper()
		require.NoError(t, c.Do(b.ctx, c.B().Xclaim().Key(work).Group(scheduler.WorkersGroup).Consumer("doomed").MinIdleTime("0").
			Id(entries...).Idle(2*time.Hour.Milliseconds()).Justid().Build()).Error())
	}
	m := scheduler.NewMaintainer(b.s, "m", zap.NewNop())

	expire(entries[live:])
	got, err := m.Reclaim(b.ctx)
	require.NoError(t, err)
	require.Equal(t, n-live, got, "every expired lease behind the live ones, in one Reclaim")
	for i, id := range ids {
		j, err := b.s.Get(b.ctx, id)
		require.NoError(t, err)
		require.Equal(t, i < live, j.Status == scheduler.StatusRunning && j.Attempt == 1, "job %d: %s, attempt %d", i, j.Status, j.Attempt)
	}

	expire(entries[:live])
	got, err = m.Reclaim(b.ctx)
	require.NoError(t, err)
	require.Equal(t, live, got)
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

// The owner's weight for a tenant changes with the configuration: once a
// process started with the new weight submits, the tenant has it, and a
// process still running the old configuration (started before) does not
// write the old one back, however often it submits.
func TestOwnerWeightChangeReachesTenant(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{})
	submit := func(s *scheduler.Scheduler, tenant string, weight float64) {
		t.Helper()
		_, err := s.Submit(b.ctx, scheduler.SubmitRequest{Tenant: tenant, User: "u", Payload: json.RawMessage(`{}`),
			Admission: &scheduler.Admission{TenantWeight: weight, MaxPendingPerUser: 100}})
		require.NoError(t, err)
	}
	share := func() float64 {
		t.Helper()
		e, err := b.s.Entitled(b.ctx, "api:a")
		require.NoError(t, err)
		return e.Tenants["api:a"]
	}
	submit(b.s, "api:a", 1)
	submit(b.s, "api:b", 1)
	require.InDelta(t, 0.5, share(), 1e-9)

	restarted, err := scheduler.New(context.Background(), b.store, scheduler.Config{}, zap.NewNop())
	require.NoError(t, err)
	submit(restarted, "api:a", 3)
	require.InDelta(t, 0.75, share(), 1e-9, "the new configuration's weight")
	for range 3 {
		submit(b.s, "api:a", 1)
		submit(restarted, "api:b", 1)
	}
	require.InDelta(t, 0.75, share(), 1e-9, "the older process does not flip it back")
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

// putCounter is a blob store that counts the blobs written to it.
type putCounter struct {
	blob.Store
	puts atomic.Int32
}

func (p *putCounter) Put(ctx context.Context, ref blob.Ref, r io.Reader, size int64) error {
	p.puts.Add(1)
	return p.Store.Put(ctx, ref, r, size)
}

// A zombie attempt (its job canceled or its lease reclaimed) writes no
// result image at all: the attempt is checked before the first write, not
// only by the succeed script afterwards (whose refusal deletes what was
// written, so counting what is left would not tell).
func TestZombieWritesNoImages(t *testing.T) {
	t.Parallel()
	store := redistest.Store(t)
	blobs := &putCounter{Store: store.Blobs}
	store.Blobs = blobs
	s, err := scheduler.New(context.Background(), store, scheduler.Config{}, zap.NewNop())
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := &bundle{s: s, ctx: ctx, store: store}
	id := b.submit(t, "api:a", "u", "A")
	zombie := b.take(t, "w")
	_, err = b.s.Cancel(b.ctx, id, "u")
	require.NoError(t, err)
	require.ErrorIs(t, zombie.Succeed(b.ctx, [][]byte{[]byte("orphan"), []byte("orphan")}, nil, ""), scheduler.ErrStale)
	require.Zero(t, blobs.puts.Load(), "images written by a zombie attempt")
	n, err := b.s.BlobCount(context.Background(), id)
	require.NoError(t, err)
	require.Zero(t, n)
	// A live attempt does write them.
	b.submit(t, "api:a", "u", "B")
	require.NoError(t, b.take(t, "w").Succeed(b.ctx, [][]byte{[]byte("image")}, nil, ""))
	require.Equal(t, int32(1), blobs.puts.Load())
}
