package worker_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/sdclient"
	"github.com/easelbot/easel/sdclient/fakesd"
	"github.com/easelbot/easel/worker"
)

// routingRig runs one worker over two A1111 fakes with different
// checkpoints, and waits until both have advertised them.
type routingRig struct {
	ctx   context.Context
	sched *scheduler.Scheduler
	fakes map[string]*fakesd.Server
}

func newRoutingRig(t *testing.T, models map[string][]string) *routingRig {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	store := redistest.Store(t)
	sched, err := scheduler.New(ctx, store, scheduler.Config{}, zap.NewNop())
	require.NoError(t, err)
	r := &routingRig{ctx: ctx, sched: sched, fakes: map[string]*fakesd.Server{}}
	var backends []worker.Backend
	for name, ms := range models {
		// The first model is the one loaded at start.
		fake := fakesd.New(fakesd.Config{StepDuration: 2 * time.Millisecond, Models: ms})
		r.fakes[name] = fake
		backends = append(backends, worker.Backend{Name: name, Backend: backendOn(t, fake)})
	}
	var mu sync.Mutex
	advertised := map[string]bool{}
	ready := make(chan struct{})
	startWorker(t, ctx, sched, "w", backends, func(o worker.Observation) {
		if o.Kind != "advertised" {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		advertised[o.Backend] = true
		if len(advertised) == len(models) {
			select {
			case <-ready:
			default:
				close(ready)
			}
		}
	})
	select {
	case <-ready:
	case <-ctx.Done():
		t.Fatal("backends never advertised")
	}
	// Advertised is not offered: a slot offers itself when its goroutine
	// first calls Next, in no order with the advertising. A job for a model
	// that two backends have goes to a free slot that has it, the one with
	// it loaded only if that one is free too (dispatch does not hold a job
	// back for a busier, warmer slot), so a first job submitted before the
	// warm slot's offer ran on the other one (seen at load 12-17). Wait for
	// both offers. Nothing signals an offer (a ZADD inside the offer
	// script, with no callback out of Slot.Next), so this reads the slots'
	// set until both are in it: a condition, not a time, and the bound is
	// only a generous deadline. After this each job's succeed script offers
	// its slot again in the same step as the succeeded event the test
	// waits for, so later jobs need no wait.
	require.Eventually(t, func() bool {
		for name := range models {
			_, err := store.Client.Do(ctx, store.Client.B().Zscore().Key(store.Keys.Slots()).
				Member("w-"+name+"\t"+name).Build()).AsFloat64()
			if err != nil {
				return false
			}
		}
		return true
	}, 20*time.Second, 5*time.Millisecond, "both slots offered")
	return r
}

// run submits a job for model and waits until it ends; it returns the
// backend that ran it.
func (r *routingRig) run(t *testing.T, tenant, model string) string {
	t.Helper()
	return r.wait(t, r.submit(t, tenant, model))
}

func (r *routingRig) submit(t *testing.T, tenant, model string) string {
	t.Helper()
	p, _ := json.Marshal(sdclient.Request{Prompt: "a lighthouse", Width: 64, Height: 64, Steps: 3, Seed: 1, Count: 1, Model: model})
	res, err := r.sched.Submit(r.ctx, scheduler.SubmitRequest{Tenant: tenant, User: "u", Payload: p, Images: 1, Model: model})
	require.NoError(t, err)
	return res.ID
}

// loaded reads each backend's loaded model from the published catalog (what
// GET /v1/models shows), names compared by scheduler.ModelKey.
func (r *routingRig) loaded(t *testing.T) map[string]string {
	t.Helper()
	ads, err := r.sched.BackendAds(r.ctx)
	require.NoError(t, err)
	out := map[string]string{}
	for name, b := range ads {
		var ad worker.Advertised
		require.NoError(t, json.Unmarshal(b.Catalog, &ad))
		out[name] = scheduler.ModelKey(ad.Loaded)
	}
	return out
}

func (r *routingRig) wait(t *testing.T, id string) string {
	t.Helper()
	require.NoError(t, r.sched.Follow(r.ctx, id, 0, func(scheduler.Event) error { return nil }))
	j, err := r.sched.Get(r.ctx, id)
	require.NoError(t, err)
	require.Equal(t, scheduler.StatusSucceeded, j.Status, "%s: %s", j.ErrorCode, j.Error)
	return j.Backend
}

// Two backends with different checkpoints: every job, submitted all at
// once, runs on a backend that has its model, and no backend switches.
func TestRoutingJobsLandOnTheirModel(t *testing.T) {
	r := newRoutingRig(t, map[string][]string{"a": {"alpha"}, "b": {"beta"}})
	want := map[string]string{}
	for i := range 6 {
		model := []string{"alpha", "beta", "alpha.safetensors"}[i%3]
		want[r.submit(t, []string{"api:t1", "api:t2"}[i%2], model)] = map[bool]string{true: "a", false: "b"}[model != "beta"]
	}
	for id, backend := range want {
		require.Equal(t, backend, r.wait(t, id), id)
	}
	require.Equal(t, 4, r.fakes["a"].Generations())
	require.Equal(t, 2, r.fakes["b"].Generations())
	require.Zero(t, r.fakes["a"].Loads()+r.fakes["b"].Loads(), "each ran its loaded checkpoint")
}

// Both backends have the checkpoint and one has it loaded: jobs for it go
// there and nothing reloads; a checkpoint neither has loaded is loaded once,
// and the next job for it runs where it was loaded.
func TestRoutingNoReloadWhenLoadedSomewhere(t *testing.T) {
	r := newRoutingRig(t, map[string][]string{"a": {"alpha", "shared", "other"}, "b": {"shared", "beta", "other"}})
	for range 4 {
		require.Equal(t, "b", r.run(t, "api:t", "shared"))
	}
	require.Equal(t, "a", r.run(t, "api:t", "alpha"))
	require.Zero(t, r.fakes["a"].Loads()+r.fakes["b"].Loads())
	require.Equal(t, map[string]string{"a": "alpha", "b": "shared"}, r.loaded(t))
	first := r.run(t, "api:t", "other")
	require.Equal(t, 1, r.fakes["a"].Loads()+r.fakes["b"].Loads())
	want := map[string]string{"a": "alpha", "b": "shared"}
	want[first] = "other"
	require.Equal(t, want, r.loaded(t), "the catalog knows the switch by the succeeded event")
	for range 3 {
		require.Equal(t, first, r.run(t, "api:t", "other"), "the backend that loaded it last")
	}
	require.Equal(t, 1, r.fakes["a"].Loads()+r.fakes["b"].Loads(), "loaded once")
	// A job without a model runs anywhere, on whatever is loaded.
	r.run(t, "api:t", "")
	require.Equal(t, 1, r.fakes["a"].Loads()+r.fakes["b"].Loads())
}
