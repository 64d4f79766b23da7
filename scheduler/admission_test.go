package scheduler_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/scheduler"
)

func (b *bundle) submitWith(t *testing.T, tenant, user, name string, cost float64, images int, a *scheduler.Admission) (scheduler.SubmitResult, error) {
	t.Helper()
	p, _ := json.Marshal(map[string]string{"prompt": name})
	return b.s.Submit(b.ctx, scheduler.SubmitRequest{Tenant: tenant, User: user, Payload: p, Cost: cost, Images: images, Admission: a})
}

func refusal(t *testing.T, err error) *scheduler.RefusedError {
	t.Helper()
	var re *scheduler.RefusedError
	require.True(t, errors.As(err, &re), "want a refusal, got %v", err)
	return re
}

func TestRateLimitBurstThenRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	b := setup(t, scheduler.Config{Now: func() time.Time { return now }})
	a := &scheduler.Admission{UserRate: scheduler.Rate{PerMinute: 6, Burst: 3}}
	for i := range 3 {
		_, err := b.submitWith(t, "api:a", "u", fmt.Sprint(i), 1, 1, a)
		require.NoError(t, err, "burst of 3")
	}
	_, err := b.submitWith(t, "api:a", "u", "x", 1, 1, a)
	re := refusal(t, err)
	require.Equal(t, scheduler.RefusedUserRate, re.Reason)
	require.Equal(t, 10*time.Second, re.RetryAfter, "6/min: one every 10 s")
	require.Contains(t, re.Error(), "try again in 10 s")
	// Another user of the same tenant is not limited by u's rate.
	_, err = b.submitWith(t, "api:a", "v", "y", 1, 1, a)
	require.NoError(t, err)
	now = now.Add(re.RetryAfter - time.Millisecond)
	_, err = b.submitWith(t, "api:a", "u", "x", 1, 1, a)
	require.Equal(t, scheduler.RefusedUserRate, refusal(t, err).Reason)
	now = now.Add(time.Millisecond)
	_, err = b.submitWith(t, "api:a", "u", "x", 1, 1, a)
	require.NoError(t, err, "accepted after waiting")
}

func TestTenantRateLimit(t *testing.T) {
	t.Parallel()
	now := time.Now()
	b := setup(t, scheduler.Config{Now: func() time.Time { return now }})
	a := &scheduler.Admission{TenantRate: scheduler.Rate{PerMinute: 60, Burst: 2}}
	for _, u := range []string{"u1", "u2"} {
		_, err := b.submitWith(t, "api:a", u, "x", 1, 1, a)
		require.NoError(t, err)
	}
	_, err := b.submitWith(t, "api:a", "u3", "x", 1, 1, a)
	re := refusal(t, err)
	require.Equal(t, scheduler.RefusedTenantRate, re.Reason)
	require.Equal(t, time.Second, re.RetryAfter)
}

func TestDailyQuotaRejectAndRelax(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 18, 47, 0, 0, time.UTC)
	b := setup(t, scheduler.Config{Now: func() time.Time { return now }})
	reject := &scheduler.Admission{UserDailyImages: 5}
	_, err := b.submitWith(t, "api:a", "u", "a", 1, 4, reject)
	require.NoError(t, err)
	_, err = b.submitWith(t, "api:a", "u", "b", 1, 2, reject)
	re := refusal(t, err)
	require.Equal(t, scheduler.RefusedUserQuota, re.Reason)
	require.Equal(t, 5*time.Hour+13*time.Minute, re.RetryAfter, "resets at UTC midnight")
	require.Contains(t, re.Error(), "resets in 5 h 13 m")
	_, err = b.submitWith(t, "api:a", "u", "c", 1, 1, reject)
	require.NoError(t, err, "one image still fits")

	// Relax mode: over-quota jobs still run, behind everyone's normal jobs.
	relax := &scheduler.Admission{UserDailyImages: 5, Relax: true}
	r, err := b.submitWith(t, "api:a", "u", "relaxed", 1, 1, relax)
	require.NoError(t, err)
	require.True(t, r.Relaxed)
	_, err = b.submitWith(t, "api:b", "w", "normal", 1, 1, relax)
	require.NoError(t, err)
	var order []string
	for range 4 {
		l := b.take(t, "w")
		order = append(order, prompt(t, l))
		require.NoError(t, l.Succeed(b.ctx, nil, nil, ""))
	}
	require.Equal(t, []string{"a", "normal", "c", "relaxed"}, order)

	// The next UTC day the quota is fresh.
	now = now.Add(6 * time.Hour)
	_, err = b.submitWith(t, "api:a", "u", "d", 1, 5, reject)
	require.NoError(t, err)
}

// A submit's place in line counts the lanes with work of its kind (normal
// or relax) from the global hash's counts of the ready and relax sets, not
// from the sets: they stay equal to the sets through submits, dispatches
// and parking at a cap.
func TestPositionFromKeptLaneCounts(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{})
	noDrift := func() {
		t.Helper()
		drift, err := b.s.CountDrift(b.ctx)
		require.NoError(t, err)
		require.Empty(t, drift)
	}
	normal := &scheduler.Admission{MaxRunning: 1}
	relax := &scheduler.Admission{UserDailyImages: 1, Relax: true}
	var got []int
	for _, tn := range []string{"api:a", "api:b", "api:c"} {
		for range 2 {
			r, err := b.submitWith(t, tn, "u", tn, 1, 0, normal)
			require.NoError(t, err)
			got = append(got, r.Position)
			noDrift()
		}
	}
	// The user's first job uses their one image; the next three are relaxed.
	for range 4 {
		r, err := b.submitWith(t, "api:r", "u", "r", 1, 1, relax)
		require.NoError(t, err)
		got = append(got, r.Position)
		noDrift()
	}
	// Each user's second job waits a round of the lanes with work: 1, 2, 3
	// normal lanes; the relaxed ones (a lane of their own: the first is
	// first there) a round of the one relax lane each.
	require.Equal(t, []int{1, 2, 1, 3, 1, 4, 1, 1, 2, 3}, got)
	for range 10 {
		l := b.take(t, "w")
		noDrift()
		require.NoError(t, l.Succeed(b.ctx, nil, nil, ""))
		noDrift()
	}
}

// A lane count that drifted from its set (a writer that did not keep it,
// such as an older version during an upgrade) is set right when dispatch
// finds the set empty: here every lane with work is at its cap.
func TestLaneCountHealsWhenSetEmpty(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{})
	capped := &scheduler.Admission{MaxRunning: 1}
	for range 2 {
		_, err := b.submitWith(t, "api:a", "u", "a", 1, 0, capped)
		require.NoError(t, err)
	}
	l := b.take(t, "w1")
	c, k := b.store.Client, b.store.Keys
	require.NoError(t, c.Do(b.ctx, c.B().Hset().Key(k.Global()).FieldValue().FieldValue("nready", "7").Build()).Error())
	drift, err := b.s.CountDrift(b.ctx)
	require.NoError(t, err)
	require.NotEmpty(t, drift)
	next, err := b.slot(t, "w2").Next(b.ctx, 0)
	require.NoError(t, err)
	require.Nil(t, next, "the tenant is at its cap")
	drift, err = b.s.CountDrift(b.ctx)
	require.NoError(t, err)
	require.Empty(t, drift)
	require.NoError(t, l.Succeed(b.ctx, nil, nil, ""))
}

func TestCancelRefundsQuota(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{})
	a := &scheduler.Admission{UserDailyImages: 4}
	r, err := b.submitWith(t, "api:a", "u", "a", 1, 4, a)
	require.NoError(t, err)
	_, err = b.submitWith(t, "api:a", "u", "b", 1, 1, a)
	require.Equal(t, scheduler.RefusedUserQuota, refusal(t, err).Reason)
	_, err = b.s.Cancel(b.ctx, r.ID, "u")
	require.NoError(t, err)
	_, err = b.submitWith(t, "api:a", "u", "b", 1, 4, a)
	require.NoError(t, err, "canceled before running: images refunded")
}

func TestPendingCap(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{})
	a := &scheduler.Admission{MaxPendingPerUser: 2}
	for range 2 {
		_, err := b.submitWith(t, "api:a", "u", "x", 1, 1, a)
		require.NoError(t, err)
	}
	_, err := b.submitWith(t, "api:a", "u", "x", 1, 1, a)
	re := refusal(t, err)
	require.Equal(t, scheduler.RefusedUserPending, re.Reason)
	require.Zero(t, re.RetryAfter)
	// Once one leaves the queue, there is room again.
	b.take(t, "w")
	_, err = b.submitWith(t, "api:a", "u", "x", 1, 1, a)
	require.NoError(t, err)
}

func TestConcurrencyCapParksTenant(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{})
	capped := &scheduler.Admission{MaxRunning: 1}
	for i := range 4 {
		_, err := b.submitWith(t, "api:capped", "u", fmt.Sprint("C", i), 1, 1, capped)
		require.NoError(t, err)
		_, err = b.submitWith(t, "api:free", "u", fmt.Sprint("F", i), 1, 1, nil)
		require.NoError(t, err)
	}
	var leases []*scheduler.Lease
	for range 4 {
		leases = append(leases, b.take(t, "w"))
	}
	var got []string
	for _, l := range leases {
		got = append(got, prompt(t, l))
	}
	require.Equal(t, []string{"C0", "F0", "F1", "F2"}, got, "capped tenant runs one; others fill the slots")
	// Finishing the capped tenant's job lets its next one in at once.
	require.NoError(t, leases[0].Succeed(b.ctx, nil, nil, ""))
	l := b.take(t, "w")
	require.Equal(t, "C1", prompt(t, l))
}

// served runs n dispatches with one slot and returns the cost served per tenant.
func (b *bundle) served(t *testing.T, n int) map[string]float64 {
	t.Helper()
	share := map[string]float64{}
	for range n {
		l := b.take(t, "w")
		j, err := b.s.Get(b.ctx, l.JobID)
		require.NoError(t, err)
		share[j.Tenant] += j.Cost
		require.NoError(t, l.Succeed(b.ctx, nil, nil, ""))
	}
	return share
}

func TestWeightedShares(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{})
	for i := range 400 {
		_, err := b.submitWith(t, "api:gold", "u", fmt.Sprint(i), 1, 1, &scheduler.Admission{TenantWeight: 3})
		require.NoError(t, err)
		_, err = b.submitWith(t, "api:plain", "u", fmt.Sprint(i), 1, 1, &scheduler.Admission{TenantWeight: 1})
		require.NoError(t, err)
	}
	share := b.served(t, 400)
	gold := share["api:gold"] / (share["api:gold"] + share["api:plain"])
	require.InDelta(t, 0.75, gold, 0.05)
}

func TestCostAwareShares(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{})
	big := 1024.0 * 1024 * 50 / (512 * 512 * 20) // 10 units
	small := 512.0 * 512 * 20 / (512 * 512 * 20) // 1 unit
	for i := range 300 {
		_, err := b.submitWith(t, "api:big", "u", fmt.Sprint(i), big, 1, nil)
		require.NoError(t, err)
		_, err = b.submitWith(t, "api:small", "u", fmt.Sprint(i), small, 1, nil)
		require.NoError(t, err)
	}
	share := b.served(t, 330)
	total := share["api:big"] + share["api:small"]
	require.InDelta(t, 0.5, share["api:big"]/total, 0.05)
}

func TestUserWithManyJobsDelaysOthersByAtMostOne(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{})
	for i := range 100 {
		b.submit(t, "api:t", "flood", fmt.Sprint("F", i))
	}
	l := b.take(t, "w")
	require.NoError(t, l.Succeed(b.ctx, nil, nil, ""))
	b.submit(t, "api:t", "single", "S")
	l = b.take(t, "w")
	require.Equal(t, "S", prompt(t, l))
}

func TestJainIndexEqualTenants(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{})
	for i := range 50 {
		for _, tn := range []string{"a", "b", "c", "d", "e"} {
			b.submit(t, "api:"+tn, "u", fmt.Sprint(i))
		}
	}
	share := b.served(t, 100)
	var sum, sq float64
	for _, v := range share {
		sum += v
		sq += v * v
	}
	jain := sum * sum / (float64(len(share)) * sq)
	require.Greater(t, jain, 0.99)
	require.False(t, math.IsNaN(jain))
}

// Tenants that submit in bursts, one whole burst after another (not
// interleaved), are still served evenly while all of them wait: Jain's
// index over the cost served in a window of the first 50 jobs is at least
// 0.95. Plain FIFO of the same submissions fails it: the window is the
// first tenant's burst and a bit of the second's.
func TestJainBurstySubmitsFIFOFails(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{})
	tenants := []string{"api:a", "api:b", "api:c", "api:d", "api:e"}
	var fifo []string
	for _, tn := range tenants {
		for i := range 40 {
			b.submit(t, tn, "u"+fmt.Sprint(i%3), fmt.Sprint(i))
			fifo = append(fifo, tn)
		}
	}
	const window = 50
	fifoServed := map[string]float64{}
	easelServed := map[string]float64{}
	for _, tn := range tenants {
		fifoServed[tn], easelServed[tn] = 0, 0
	}
	for _, tn := range fifo[:window] {
		fifoServed[tn]++
	}
	for tn, v := range b.served(t, window) {
		easelServed[tn] += v
	}
	require.Less(t, scheduler.JainIndex(fifoServed), 0.95, "FIFO: %v", fifoServed)
	require.GreaterOrEqual(t, scheduler.JainIndex(easelServed), 0.95, "served %v", easelServed)
	// The fairness metric reads the same from Redis.
	window5, err := b.s.Served(b.ctx, 5*time.Minute)
	require.NoError(t, err)
	require.Equal(t, easelServed, window5)
}

// The served cost of a window counts each tenant's dispatches in its
// minutes only, weight-normalised: a tenant's hash keeps its running total
// and its first dispatch in a minute marks the total before it.
func TestServedWindow(t *testing.T) {
	t.Parallel()
	clock := newClock(time.Date(2026, 3, 1, 18, 47, 10, 0, time.UTC))
	b := setup(t, scheduler.Config{Now: clock.now})
	run := func(tenant string, cost float64, a *scheduler.Admission) {
		t.Helper()
		_, err := b.submitWith(t, tenant, "u", tenant, cost, 1, a)
		require.NoError(t, err)
		l := b.take(t, "w")
		require.NoError(t, l.Succeed(b.ctx, nil, nil, ""))
	}
	served := func(window time.Duration) map[string]float64 {
		t.Helper()
		m, err := b.s.Served(b.ctx, window)
		require.NoError(t, err)
		return m
	}
	heavy := &scheduler.Admission{TenantWeight: 4}
	// A global hash an older version wrote says this minute's (old) served
	// hash has its expiry: the marks hash gets its own all the same.
	c, k := b.store.Client, b.store.Keys
	minute := clock.now().UnixMilli() / 60000
	require.NoError(t, c.Do(b.ctx, c.B().Hset().Key(k.Global()).FieldValue().FieldValue("smin", strconv.FormatInt(minute, 10)).Build()).Error())
	run("api:a", 1, nil)
	ttl, err := c.Do(b.ctx, c.B().Pttl().Key(k.ServedMarks(minute)).Build()).AsInt64()
	require.NoError(t, err)
	require.Positive(t, ttl, "the marks hash expires")
	require.LessOrEqual(t, ttl, time.Hour.Milliseconds())
	run("api:a", 2, nil)
	clock.add(time.Minute)
	run("api:a", 0.5, nil)
	run("api:b", 3, heavy)
	run("api:a", 0.25, nil)
	require.Equal(t, map[string]float64{"api:a": 0.75, "api:b": 0.75}, served(time.Minute))
	require.Equal(t, map[string]float64{"api:a": 3.75, "api:b": 0.75}, served(2*time.Minute))
	clock.add(2 * time.Minute)
	require.Empty(t, served(time.Minute))
	require.Equal(t, map[string]float64{"api:a": 0.75, "api:b": 0.75}, served(3*time.Minute))
	run("api:b", 1, heavy)
	require.Equal(t, map[string]float64{"api:b": 0.25}, served(time.Minute))
	require.Equal(t, map[string]float64{"api:a": 3.75, "api:b": 1}, served(4*time.Minute))
}

func TestCollectorReportsQueueAndFairness(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{})
	for i := range 4 {
		b.submit(t, "api:a", "u", fmt.Sprint(i))
		b.submit(t, "api:b", "u", fmt.Sprint(i))
	}
	b.served(t, 4)
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(scheduler.NewCollector(b.s)))
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP easel_queue_pending_jobs Jobs waiting in fair queues (not counting delayed retries).
# TYPE easel_queue_pending_jobs gauge
easel_queue_pending_jobs 4
# HELP easel_fairness_jain_index Jain's fairness index of weight-normalised GPU cost served per tenant over the fairness window (1 = perfectly even).
# TYPE easel_fairness_jain_index gauge
easel_fairness_jain_index 1
# HELP easel_tenant_served_share Share of weight-normalised GPU cost served to the tenant over the fairness window (busiest tenants only).
# TYPE easel_tenant_served_share gauge
easel_tenant_served_share{tenant="api:a"} 0.5
easel_tenant_served_share{tenant="api:b"} 0.5
`), "easel_queue_pending_jobs", "easel_fairness_jain_index", "easel_tenant_served_share"))
	require.InDelta(t, 0.5, scheduler.JainIndex(map[string]float64{"a": 1, "b": 0}), 1e-9)
}
