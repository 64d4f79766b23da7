package scheduler_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/scheduler"
)

// routedSlot offers a slot of backend (subscribing it) and advertises caps.
func (b *bundle) routedSlot(t *testing.T, consumer, backend string, caps scheduler.Capabilities) *scheduler.Slot {
	t.Helper()
	sl := b.s.Slot(consumer, backend)
	t.Cleanup(func() { _ = sl.Close(context.Background()) })
	l, err := sl.Next(b.ctx, 0)
	require.NoError(t, err)
	require.Nil(t, l, "nothing queued yet")
	require.NoError(t, sl.Advertise(b.ctx, caps, time.Minute))
	return sl
}

func (b *bundle) submitModel(t *testing.T, tenant, name, model string) string {
	t.Helper()
	p, _ := json.Marshal(map[string]string{"prompt": name})
	r, err := b.s.Submit(b.ctx, scheduler.SubmitRequest{Tenant: tenant, User: "u", Payload: p, Model: model})
	require.NoError(t, err)
	return r.ID
}

func next(t *testing.T, ctx context.Context, sl *scheduler.Slot) *scheduler.Lease {
	t.Helper()
	l, err := sl.Next(ctx, 5*time.Second)
	require.NoError(t, err)
	require.NotNil(t, l, "no job dispatched to %s", sl.Backend)
	return l
}

func (b *bundle) status(t *testing.T, id string) scheduler.Status {
	t.Helper()
	j, err := b.s.Get(b.ctx, id)
	require.NoError(t, err)
	return j.Status
}

func TestModelKeyFoldsSpellings(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"sd_xl_base_1.0", "sd_xl_base_1.0"},
		{"SD_XL_BASE_1.0.safetensors [31e35c80fc]", "sd_xl_base_1.0"},
		{"sdxl/juggernaut.safetensors", "sdxl_juggernaut"},
		{`sdxl\juggernaut.ckpt`, "sdxl_juggernaut"},
		{" flux1-dev.gguf ", "flux1-dev"},
		{"a\tb\nc", "a b c"},
		{"", ""},
	} {
		require.Equal(t, c.want, scheduler.ModelKey(c.in), c.in)
	}
}

// Each job lands on a slot whose backend has its model, whatever the order
// the slots offered in; a job that names no model runs anywhere.
func TestRoutingByModel(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{})
	sx := b.routedSlot(t, "wx", "bx", scheduler.Capabilities{Models: []string{"x.safetensors"}, Loaded: "x.safetensors [0123456789]"})
	sy := b.routedSlot(t, "wy", "by", scheduler.Capabilities{Models: []string{"sub/y.safetensors"}, Loaded: "sub_y"})
	// Both free: y would go to the slot idle longest (sx) without routing.
	y := b.submitModel(t, "api:a", "Y", "sub_y")
	ly := next(t, b.ctx, sy)
	require.Equal(t, "Y", prompt(t, ly))
	x := b.submitModel(t, "api:a", "X", "X")
	require.Equal(t, "X", prompt(t, next(t, b.ctx, sx)))
	for id, backend := range map[string]string{x: "bx", y: "by"} {
		j, err := b.s.Get(b.ctx, id)
		require.NoError(t, err)
		require.Equal(t, backend, j.Backend)
	}
	// sx busy: a second x job waits for sx even when sy frees up.
	x2 := b.submitModel(t, "api:b", "X2", "x")
	require.NoError(t, ly.Succeed(b.ctx, nil, nil, ""))
	l, err := sy.Next(b.ctx, 0)
	require.NoError(t, err)
	require.Nil(t, l, "sy has no x")
	require.Equal(t, scheduler.StatusQueued, b.status(t, x2))
	b.submitModel(t, "api:c", "any", "")
	require.Equal(t, "any", prompt(t, next(t, b.ctx, sy)), "a job without a model takes any slot, past the waiting x job")
}

// A slot that never advertised takes only jobs that name no model.
func TestRoutingSlotWithoutCapabilities(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{})
	x := b.submitModel(t, "api:a", "X", "x")
	b.submitModel(t, "api:b", "plain", "")
	require.Equal(t, "plain", prompt(t, b.take(t, "w")))
	require.Equal(t, scheduler.StatusQueued, b.status(t, x))
}

// Among slots that have the model, the one that has it loaded wins, even
// when another has been idle longer (or is the caller's own).
func TestRoutingPrefersLoaded(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{})
	cold := b.routedSlot(t, "a-cold", "cold", scheduler.Capabilities{Models: []string{"x", "y"}, Loaded: "y"})
	warm := b.routedSlot(t, "b-warm", "warm", scheduler.Capabilities{Models: []string{"x", "y"}, Loaded: "x"})
	b.submitModel(t, "api:a", "X", "x")
	require.Equal(t, "X", prompt(t, next(t, b.ctx, warm)))
	b.submitModel(t, "api:a", "Y", "y")
	require.Equal(t, "Y", prompt(t, next(t, b.ctx, cold)))
}

// A job that succeeds makes its model the slot's loaded one: the next job
// of that model prefers that slot.
func TestRoutingLoadedFollowsTheLastJob(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{})
	// z1 starts with x loaded, a2 with z; both have y.
	z1 := b.routedSlot(t, "z1", "z1", scheduler.Capabilities{Models: []string{"x", "y", "z"}, Loaded: "x"})
	a2 := b.routedSlot(t, "a2", "a2", scheduler.Capabilities{Models: []string{"x", "y", "z"}, Loaded: "z"})
	b.submitModel(t, "api:a", "Z", "z")
	onA2 := next(t, b.ctx, a2)
	b.submitModel(t, "api:a", "Y", "y")
	onZ1 := next(t, b.ctx, z1)
	require.Equal(t, "Y", prompt(t, onZ1))
	// a2 frees first (idle longest), then z1 (now with y loaded).
	require.NoError(t, onA2.Succeed(b.ctx, nil, nil, ""))
	_, err := a2.Next(b.ctx, 0)
	require.NoError(t, err)
	_, err = onZ1.SucceedAndOffer(b.ctx, nil, nil, "")
	require.NoError(t, err)
	b.submitModel(t, "api:a", "Y2", "y")
	require.Equal(t, "Y2", prompt(t, next(t, b.ctx, z1)), "z1 ran y last")
}

// A tenant whose head job has no free slot is skipped, keeps its place and
// is served first when a slot with its model frees up.
func TestRoutingSkippedTenantServedFirst(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{})
	sx := b.routedSlot(t, "wx", "bx", scheduler.Capabilities{Models: []string{"x"}})
	sy := b.routedSlot(t, "wy", "by", scheduler.Capabilities{Models: []string{"y"}})
	b.submitModel(t, "api:z", "X0", "x")
	x0 := next(t, b.ctx, sx)
	a1 := b.submitModel(t, "api:A", "A1", "x") // waits: sx is busy
	b.submitModel(t, "api:B", "B1", "y")
	b1 := next(t, b.ctx, sy)
	require.Equal(t, "B1", prompt(t, b1))
	b.submitModel(t, "api:B", "B2", "y")
	b.submitModel(t, "api:C", "C1", "")
	b.submitModel(t, "api:C", "C2", "")
	// sy frees: A (fairest) is skipped, C (next by virtual time) served.
	_, err := b1.SucceedAndOffer(b.ctx, nil, nil, "")
	require.NoError(t, err)
	require.Equal(t, "C1", prompt(t, next(t, b.ctx, sy)))
	require.Equal(t, scheduler.StatusQueued, b.status(t, a1))
	// sx frees: A1 first, ahead of C2, which could run there too.
	_, err = x0.SucceedAndOffer(b.ctx, nil, nil, "")
	require.NoError(t, err)
	require.Equal(t, "A1", prompt(t, next(t, b.ctx, sx)))
}

// A job whose model no live slot has waits (never handed to another
// backend), says why once, and runs when a slot with the model appears.
func TestRoutingModelGoneWaits(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{})
	sx := b.routedSlot(t, "wx", "bx", scheduler.Capabilities{Models: []string{"x"}})
	id := b.submitModel(t, "api:a", "Z", "z")
	l, err := sx.Next(b.ctx, 0)
	require.NoError(t, err)
	require.Nil(t, l)
	require.Equal(t, scheduler.StatusQueued, b.status(t, id))
	// Another dispatch pass does not repeat the notice.
	b.submitModel(t, "api:b", "X", "x")
	next(t, b.ctx, sx)
	var events []scheduler.Event
	ctx, cancel := context.WithCancel(b.ctx)
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		_ = b.s.Follow(ctx, id, 0, func(e scheduler.Event) error {
			events = append(events, e)
			if e.Type == scheduler.EventStarted {
				cancel()
			}
			return nil
		})
	}()
	sz := b.routedSlot(t, "wz", "bz", scheduler.Capabilities{Models: []string{"z"}})
	require.Equal(t, "Z", prompt(t, next(t, b.ctx, sz)))
	<-followed
	require.NoError(t, b.ctx.Err(), "the started event came")
	var reasons []string
	for _, e := range events {
		if e.Type == scheduler.EventQueued && e.Reason != "" {
			reasons = append(reasons, e.Reason)
		}
	}
	require.Len(t, reasons, 1, "%+v", events)
	require.Contains(t, reasons[0], "no backend offers the model z")
	require.Equal(t, scheduler.EventStarted, events[len(events)-1].Type)
	require.Equal(t, 3, len(events), "queued, queued with the reason, started: %+v", events)
}
