package commands_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/commands"
	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/sdclient"
)

type bundle struct {
	ctx   context.Context
	sched *scheduler.Scheduler
	svc   *commands.Service
}

func setup(t *testing.T) *bundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	sched, err := scheduler.New(ctx, redistest.Store(t), scheduler.Config{}, zap.NewNop())
	require.NoError(t, err)
	pol, err := scheduler.NewPolicies(sched, scheduler.PolicyConfig{})
	require.NoError(t, err)
	svc, err := commands.New(sched, pol, commands.Limits{}, zap.NewNop())
	require.NoError(t, err)
	return &bundle{ctx: ctx, sched: sched, svc: svc}
}

func (b *bundle) imagine(t *testing.T, c commands.Caller, im commands.Imagine) string {
	t.Helper()
	res, _, err := b.svc.Imagine(b.ctx, c, json.RawMessage(`{"kind":"test"}`), im, "")
	require.NoError(t, err)
	return res.ID
}

var (
	alice = commands.Caller{Tenant: "discord:1", User: "alice"}
	bob   = commands.Caller{Tenant: "discord:1", User: "bob"}
	mod   = commands.Caller{Tenant: "discord:1", User: "mod", Admin: true}
	eve   = commands.Caller{Tenant: "discord:2", User: "eve", Admin: true}
)

// The job payload is what the worker hands the backend: it must decode
// strictly as an sdclient.Request carrying the validated, defaulted request.
func TestImaginePayloadIsBackendRequest(t *testing.T) {
	t.Parallel()
	b := setup(t)
	seed := int64(42)
	res, im, err := b.svc.Imagine(b.ctx, alice, json.RawMessage(`{"kind":"test"}`),
		commands.Imagine{Prompt: " a fox ", Width: 1024, Height: 512, Steps: 40, Seed: &seed, Count: 2, Model: "sdxl"}, "")
	require.NoError(t, err)
	require.Equal(t, "a fox", im.Prompt)
	j, err := b.sched.Get(b.ctx, res.ID)
	require.NoError(t, err)
	require.Equal(t, "discord:1", j.Tenant)
	require.Equal(t, "alice", j.User)
	require.Equal(t, 8.0, j.Cost, "40 steps × 1024×512 × 2 images / (20 × 512×512)")
	require.JSONEq(t, `{"kind":"test"}`, string(j.Origin))

	var req sdclient.Request
	dec := json.NewDecoder(bytes.NewReader(j.Payload))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&req))
	require.Equal(t, "a fox", req.Prompt)
	require.Equal(t, 1024, req.Width)
	require.Equal(t, 512, req.Height)
	require.Equal(t, 40, req.Steps)
	require.Equal(t, 7.0, req.CFGScale)
	require.Equal(t, int64(42), req.Seed)
	require.Equal(t, 2, req.Count)
	require.Equal(t, "sdxl", req.Model)
}

// A variation's payload names its source image (for backends that make
// variations by img2img); a plain request's does not.
func TestVariationPayloadNamesItsImage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	seed := int64(8)
	ref := &sdclient.ImageRef{Job: "j1", Image: 1}
	for _, tc := range []struct {
		strength float64
		want     *sdclient.ImageRef
	}{{0.35, ref}, {0, nil}} {
		res, _, err := b.svc.Imagine(b.ctx, alice, nil,
			commands.Imagine{Prompt: "a fox", Seed: &seed, Count: 1, VariationStrength: tc.strength, VariationOf: ref}, "")
		require.NoError(t, err)
		j, err := b.sched.Get(b.ctx, res.ID)
		require.NoError(t, err)
		var req sdclient.Request
		require.NoError(t, json.Unmarshal(j.Payload, &req))
		require.Equal(t, tc.want, req.VariationOf, "strength %g", tc.strength)
		require.Equal(t, tc.strength, req.SubseedStrength)
	}
}

func TestImagineRefusalEnqueuesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, im := range []commands.Imagine{{}, {Prompt: "x", Width: 100000}, {Prompt: "x", Steps: -1}, {Prompt: "x", Count: 50}} {
		_, _, err := b.svc.Imagine(b.ctx, alice, nil, im, "")
		var ve *commands.ValidationError
		require.ErrorAs(t, err, &ve)
	}
	active, err := b.sched.Active(b.ctx, alice.Tenant)
	require.NoError(t, err)
	require.Empty(t, active)
}

func TestOwnership(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a1 := b.imagine(t, alice, commands.Imagine{Prompt: "one"})
	a2 := b.imagine(t, alice, commands.Imagine{Prompt: "two"})
	b1 := b.imagine(t, bob, commands.Imagine{Prompt: "three"})

	// Another tenant sees nothing, even as its admin.
	_, err := b.svc.Job(b.ctx, eve, a1)
	require.ErrorIs(t, err, commands.ErrNotFound)
	_, err = b.svc.Cancel(b.ctx, eve, a1)
	require.ErrorIs(t, err, commands.ErrNotFound)
	_, err = b.svc.Job(b.ctx, alice, "no-such-job")
	require.ErrorIs(t, err, commands.ErrNotFound)
	q, err := b.svc.Queue(b.ctx, eve)
	require.NoError(t, err)
	require.Empty(t, q)

	// Members of the tenant see its jobs; only the owner or an admin cancels.
	j, err := b.svc.Job(b.ctx, bob, a1)
	require.NoError(t, err)
	require.Equal(t, "alice", j.User)
	_, err = b.svc.Cancel(b.ctx, bob, a1)
	require.ErrorIs(t, err, commands.ErrForbidden)

	q, err = b.svc.Queue(b.ctx, alice)
	require.NoError(t, err)
	require.Len(t, q, 2, "a member's queue holds their own jobs")
	require.Equal(t, []string{a1, a2}, []string{q[0].Job.ID, q[1].Job.ID})
	require.Less(t, q[0].Position, q[1].Position)
	q, err = b.svc.Queue(b.ctx, mod)
	require.NoError(t, err)
	require.Len(t, q, 3, "an admin's queue holds the tenant's")

	j, err = b.svc.Cancel(b.ctx, alice, a1)
	require.NoError(t, err)
	require.Equal(t, scheduler.StatusCanceled, j.Status)
	require.Equal(t, "alice", j.CanceledBy)
	_, err = b.svc.Cancel(b.ctx, alice, a1)
	require.ErrorIs(t, err, commands.ErrFinished)
	j, err = b.svc.Cancel(b.ctx, mod, b1)
	require.NoError(t, err)
	require.Equal(t, "mod", j.CanceledBy)

	q, err = b.svc.Queue(b.ctx, mod)
	require.NoError(t, err)
	require.Len(t, q, 1)
	require.Equal(t, a2, q[0].Job.ID)
}

func TestAdminCommandsNeedAdmin(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := b.svc.Policy(b.ctx, alice)
	require.ErrorIs(t, err, commands.ErrForbidden)
	_, err = b.svc.SetPolicy(b.ctx, alice, "", "max_steps", "30")
	require.ErrorIs(t, err, commands.ErrForbidden)
	require.ErrorIs(t, b.svc.Block(b.ctx, alice, "bob", true), commands.ErrForbidden)
	require.ErrorIs(t, b.svc.ResetUsage(b.ctx, alice, "bob"), commands.ErrForbidden)
	_, err = b.svc.TopUsers(b.ctx, alice, 5)
	require.ErrorIs(t, err, commands.ErrForbidden)

	_, err = b.svc.SetPolicy(b.ctx, mod, "", "max_steps", "30")
	require.NoError(t, err)
	v, err := b.svc.Policy(b.ctx, mod)
	require.NoError(t, err)
	require.Equal(t, 30, *v.Effective.MaxSteps)
}
