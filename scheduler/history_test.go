package scheduler_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/scheduler"
)

func ids(p scheduler.HistoryPage) []string {
	var out []string
	for _, j := range p.Jobs {
		out = append(out, j.ID)
	}
	return out
}

// History pages forward with Next and back with Prev (FinishedNewer), and
// lists only the user's jobs when a user is given.
func TestHistoryPagesBothWays(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{})
	for i := range 5 {
		b.submit(t, "api:a", "u", "job")
		require.NoError(t, b.take(t, "w").Succeed(b.ctx, [][]byte{{byte(i)}}, []int64{int64(i)}, ""))
	}
	b.submit(t, "api:a", "other", "job")
	require.NoError(t, b.take(t, "w").Succeed(b.ctx, [][]byte{{9}}, []int64{9}, ""))

	all, err := b.s.FinishedPage(b.ctx, "api:a", "u", "", 10)
	require.NoError(t, err)
	want := ids(all)
	require.Len(t, want, 5)
	require.Empty(t, all.Next)
	require.Empty(t, all.Prev)

	p1, err := b.s.FinishedPage(b.ctx, "api:a", "u", "", 2)
	require.NoError(t, err)
	require.Equal(t, want[:2], ids(p1))
	require.Empty(t, p1.Prev)
	p2, err := b.s.FinishedPage(b.ctx, "api:a", "u", p1.Next, 2)
	require.NoError(t, err)
	require.Equal(t, want[2:4], ids(p2))
	p3, err := b.s.FinishedPage(b.ctx, "api:a", "u", p2.Next, 2)
	require.NoError(t, err)
	require.Equal(t, want[4:], ids(p3))
	require.Empty(t, p3.Next)
	require.Equal(t, want[4], p3.Prev)

	back, err := b.s.FinishedNewer(b.ctx, "api:a", "u", p3.Prev, 2)
	require.NoError(t, err)
	require.Equal(t, want[2:4], ids(back))
	require.Equal(t, want[2], back.Prev)
	require.Equal(t, want[3], back.Next)
	fwd, err := b.s.FinishedPage(b.ctx, "api:a", "u", back.Next, 2)
	require.NoError(t, err)
	require.Equal(t, want[4:], ids(fwd))
	first, err := b.s.FinishedNewer(b.ctx, "api:a", "u", back.Prev, 2)
	require.NoError(t, err)
	require.Equal(t, want[:2], ids(first))
	require.Empty(t, first.Prev)

	// Newer than the newest: nothing; a short first page keeps its size.
	none, err := b.s.FinishedNewer(b.ctx, "api:a", "u", want[0], 2)
	require.NoError(t, err)
	require.Empty(t, none.Jobs)
	short, err := b.s.FinishedNewer(b.ctx, "api:a", "u", want[1], 2)
	require.NoError(t, err)
	require.Equal(t, want[:1], ids(short))

	var bad *scheduler.InvalidError
	_, err = b.s.FinishedNewer(b.ctx, "api:a", "u", "no spaces", 2)
	require.ErrorAs(t, err, &bad)
	require.Equal(t, "cursor", bad.Field)
}

// With shards, each tenant's history is read from its own shard.
func TestHistoryOnEveryShard(t *testing.T) {
	t.Parallel()
	b := sharded(t, redistest.Store(t), scheduler.Config{Shards: 3})
	tenants := tenantPerShard(t, b.s, "api:h")
	for _, tenant := range tenants {
		b.submit(t, tenant, "u", "job")
		require.NoError(t, b.take(t, "w").Succeed(b.ctx, [][]byte{{1}}, []int64{1}, ""))
	}
	for _, tenant := range tenants {
		p, err := b.s.FinishedPage(b.ctx, tenant, "u", "", 10)
		require.NoError(t, err)
		require.Len(t, p.Jobs, 1, tenant)
		require.Equal(t, tenant, p.Jobs[0].Tenant)
		r, err := b.s.Refusals(b.ctx, tenant)
		require.NoError(t, err)
		require.Empty(t, r)
	}
	// Entitled reads every shard's backlogged tenants and their weights
	// (a weight is written by a tenant's first submit: new tenants).
	tenants = tenantPerShard(t, b.s, "api:w")
	for i, tenant := range tenants {
		_, err := b.s.Submit(b.ctx, scheduler.SubmitRequest{Tenant: tenant, User: "u", Payload: []byte(`{}`),
			Admission: &scheduler.Admission{TenantWeight: float64(i + 1), UserWeight: 1}})
		require.NoError(t, err)
	}
	e, err := b.s.Entitled(b.ctx, tenants[2])
	require.NoError(t, err)
	require.InDeltaMapValues(t, map[string]float64{tenants[0]: 1.0 / 6, tenants[1]: 2.0 / 6, tenants[2]: 3.0 / 6}, e.Tenants, 1e-9)
	require.Equal(t, map[string]float64{"u": 1}, e.Users)
}
