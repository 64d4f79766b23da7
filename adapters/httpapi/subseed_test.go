package httpapi_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/scheduler"
)

// A variation's subseeds (the backend's all_subseeds) are kept with the
// job's result and shown beside the seeds: in the job's JSON and in its
// succeeded event. A job that is no variation shows none.
func TestVariationShowsSubseeds(t *testing.T) {
	t.Parallel()
	b := setup(t, opts{worker: true})
	run := func(body map[string]any) (string, map[string]any) {
		resp, m := b.do(t, "POST", "/v1/jobs", "", body)
		require.Equal(t, http.StatusAccepted, resp.StatusCode, m)
		id := m["id"].(string)
		events := b.sse(t, "/v1/jobs/"+id+"/events", "")
		require.Equal(t, "succeeded", events[len(events)-1])
		resp, m = b.do(t, "GET", "/v1/jobs/"+id, "", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, m)
		return id, m
	}

	id, m := run(map[string]any{"prompt": "a lighthouse", "width": 64, "height": 64, "steps": 2, "seed": 9, "count": 2,
		"variation_strength": 0.35})
	j, err := b.sched.Get(b.ctx, id)
	require.NoError(t, err)
	// What the backend reported, from its own info JSON.
	var info struct {
		AllSeeds    []int64 `json:"all_seeds"`
		AllSubseeds []int64 `json:"all_subseeds"`
	}
	raw, err := b.sched.Info(b.ctx, j)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal([]byte(raw), &info))
	require.Len(t, info.AllSubseeds, 2)
	require.Equal(t, info.AllSubseeds, j.Subseeds, "stored with the result")
	imgs := m["images"].([]any)
	require.Len(t, imgs, 2)
	for i, img := range imgs {
		im := img.(map[string]any)
		require.Equal(t, float64(info.AllSeeds[i]), im["seed"])
		require.Equal(t, float64(info.AllSubseeds[i]), im["subseed"], "image %d", i)
	}
	var done scheduler.Event
	require.NoError(t, b.sched.Follow(b.ctx, id, 0, func(e scheduler.Event) error { done = e; return nil }))
	require.Equal(t, scheduler.EventSucceeded, done.Type)
	require.Equal(t, info.AllSubseeds, done.Subseeds)

	id, m = run(map[string]any{"prompt": "a lighthouse", "width": 64, "height": 64, "steps": 2, "seed": 9})
	require.NotContains(t, m["images"].([]any)[0].(map[string]any), "subseed", "no variation, no subseed")
	j, err = b.sched.Get(b.ctx, id)
	require.NoError(t, err)
	require.Nil(t, j.Subseeds)
}
