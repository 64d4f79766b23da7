package scheduler_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/scheduler"
)

// The entitled share is a weight over the sum of the backlogged ones':
// tenants with queued work, and the tenant's users with queued work.
func TestEntitledShares(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{})
	submit := func(tenant, user string, tw, uw float64) {
		t.Helper()
		_, err := b.s.Submit(b.ctx, scheduler.SubmitRequest{Tenant: tenant, User: user, Payload: []byte(`{}`),
			Admission: &scheduler.Admission{TenantWeight: tw, UserWeight: uw}})
		require.NoError(t, err)
	}
	// C's only job runs: C is not backlogged.
	submit("api:c", "x", 5, 1)
	b.take(t, "w")
	submit("api:a", "u1", 3, 1)
	submit("api:a", "u2", 3, 3)
	submit("api:a", "u2", 3, 3)
	submit("api:b", "v", 1, 1)

	e, err := b.s.Entitled(b.ctx, "api:a")
	require.NoError(t, err)
	require.InDeltaMapValues(t, map[string]float64{"api:a": 0.75, "api:b": 0.25}, e.Tenants, 1e-9)
	require.InDeltaMapValues(t, map[string]float64{"u1": 0.25, "u2": 0.75}, e.Users, 1e-9)

	e, err = b.s.Entitled(b.ctx, "api:idle")
	require.NoError(t, err)
	require.Len(t, e.Tenants, 2)
	require.Empty(t, e.Users)
}
