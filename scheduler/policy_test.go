package scheduler_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/scheduler"
)

func TestPolicyLayers(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{})
	owner := scheduler.PolicyConfig{
		Defaults: scheduler.Policy{MaxSteps: scheduler.Ptr(50), UserDailyImages: scheduler.Ptr(20)},
		Tenants:  map[string]scheduler.Policy{"discord:gold": {Weight: scheduler.Ptr(3.0)}},
		Ceilings: scheduler.Policy{MaxSteps: scheduler.Ptr(80)},
	}
	ps, err := scheduler.NewPolicies(b.s, owner)
	require.NoError(t, err)
	p, err := ps.Resolve(b.ctx, "discord:gold", "u1")
	require.NoError(t, err)
	require.Equal(t, 3.0, *p.Weight)
	require.Equal(t, 50, *p.MaxSteps)
	require.Equal(t, 10, *p.MaxPendingPerUser, "built-in default")

	// A tenant admin raises steps within the ceiling, and not beyond it.
	_, err = ps.Set(b.ctx, "discord:gold", "", "max_steps", "70")
	require.NoError(t, err)
	_, err = ps.Set(b.ctx, "discord:gold", "", "max_steps", "81")
	var inv *scheduler.InvalidError
	require.True(t, errors.As(err, &inv))
	require.Equal(t, "max_steps", inv.Field)
	require.Contains(t, inv.Message, "80")
	// Weight is the owner's.
	_, err = ps.Set(b.ctx, "discord:gold", "", "weight", "10")
	require.True(t, errors.As(err, &inv))
	require.Equal(t, "weight", inv.Field)
	// Bad values name the field.
	_, err = ps.Set(b.ctx, "discord:gold", "", "user_rate", "fast")
	require.True(t, errors.As(err, &inv))
	require.Equal(t, "user_rate", inv.Field)
	_, err = ps.Set(b.ctx, "discord:gold", "", "user_rate", "6/3")
	require.NoError(t, err)
	// A user layer over the tenant's.
	_, err = ps.Set(b.ctx, "discord:gold", "u1", "user_daily_images", "5")
	require.NoError(t, err)
	_, err = ps.Set(b.ctx, "discord:gold", "u1", "blocked", "true")
	require.NoError(t, err)

	p, err = ps.Resolve(b.ctx, "discord:gold", "u1")
	require.NoError(t, err)
	require.Equal(t, 70, *p.MaxSteps)
	require.Equal(t, 5, *p.UserDailyImages)
	require.Equal(t, scheduler.Rate{PerMinute: 6, Burst: 3}, *p.UserRate)
	a := p.Admission()
	require.True(t, a.Blocked)
	_, err = b.submitWith(t, "discord:gold", "u1", "x", 1, 1, a)
	require.Equal(t, scheduler.RefusedBlocked, refusal(t, err).Reason)
	p2, err := ps.Resolve(b.ctx, "discord:gold", "u2")
	require.NoError(t, err)
	require.Equal(t, 20, *p2.UserDailyImages, "other users keep the tenant's value")

	// Back to the default.
	_, err = ps.Set(b.ctx, "discord:gold", "", "max_steps", "default")
	require.NoError(t, err)
	p, err = ps.Resolve(b.ctx, "discord:gold", "u2")
	require.NoError(t, err)
	require.Equal(t, 50, *p.MaxSteps)
}

func TestPolicyChangeReachesOtherInstanceWithinASecond(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{})
	other, err := scheduler.New(b.ctx, b.store, scheduler.Config{}, zap.NewNop())
	require.NoError(t, err)
	here, err := scheduler.NewPolicies(b.s, scheduler.PolicyConfig{})
	require.NoError(t, err)
	there, err := scheduler.NewPolicies(other, scheduler.PolicyConfig{})
	require.NoError(t, err)
	p, err := there.Resolve(b.ctx, "api:t", "")
	require.NoError(t, err)
	require.Equal(t, 150, *p.MaxSteps)
	_, err = here.Set(b.ctx, "api:t", "", "max_steps", "30")
	require.NoError(t, err)
	start := time.Now()
	require.Eventually(t, func() bool {
		p, err := there.Resolve(b.ctx, "api:t", "")
		require.NoError(t, err)
		return *p.MaxSteps == 30
	}, time.Second, 10*time.Millisecond)
	require.Less(t, time.Since(start), time.Second+scheduler.PolicyCacheTTL)
}

func TestUsageAndReset(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{})
	ps, err := scheduler.NewPolicies(b.s, scheduler.PolicyConfig{})
	require.NoError(t, err)
	a := &scheduler.Admission{UserDailyImages: 4}
	_, err = b.submitWith(t, "api:t", "ann", "x", 1, 4, a)
	require.NoError(t, err)
	_, err = b.submitWith(t, "api:t", "bob", "x", 1, 2, a)
	require.NoError(t, err)
	top, err := ps.TopUsers(b.ctx, "api:t", 10)
	require.NoError(t, err)
	require.Equal(t, []scheduler.Usage{{User: "ann", Images: 4}, {User: "bob", Images: 2}}, top)
	tn, un, err := ps.UsageToday(b.ctx, "api:t", "ann")
	require.NoError(t, err)
	require.Equal(t, 6, tn)
	require.Equal(t, 4, un)
	require.NoError(t, ps.ResetUsage(b.ctx, "api:t", "ann"))
	_, err = b.submitWith(t, "api:t", "ann", "x", 1, 4, a)
	require.NoError(t, err, "quota reset by an admin")
}

func TestParseRateAndDenyWords(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		want scheduler.Rate
		ok   bool
	}{
		{"6/10", scheduler.Rate{PerMinute: 6, Burst: 10}, true},
		{"6", scheduler.Rate{PerMinute: 6, Burst: 1}, true},
		{"0.5/2", scheduler.Rate{PerMinute: 0.5, Burst: 2}, true},
		{"-1", scheduler.Rate{}, false},
		{"6/0", scheduler.Rate{}, false},
		{"x/1", scheduler.Rate{}, false},
	} {
		got, err := scheduler.ParseRate(c.in)
		if c.ok {
			require.NoError(t, err, c.in)
			require.Equal(t, c.want, got, c.in)
		} else {
			require.Error(t, err, c.in)
		}
	}
	p := scheduler.Policy{DenyWords: []string{"gore", "/blood(y)?/"}}
	require.Equal(t, "gore", p.DeniedWord("some GORE here"))
	require.Equal(t, "", p.DeniedWord("gorey is not the word"))
	require.Equal(t, "/blood(y)?/", p.DeniedWord("a bloody scene"))
	_, err := scheduler.NewPolicies(nil, scheduler.PolicyConfig{Defaults: scheduler.Policy{DenyWords: []string{"/(/"}}})
	require.Error(t, err)
}
