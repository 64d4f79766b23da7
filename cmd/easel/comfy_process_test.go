package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/storage"
)

// TestComfyUIBackendProcess runs `easel fakecomfy` and an `easel worker`
// configured with kind comfyui through EASEL_BACKENDS, as an owner would:
// a job goes queued → started → progress (with previews) → succeeded.
func TestComfyUIBackendProcess(t *testing.T) {
	t.Parallel()
	rcfg := redistest.Config(t)
	fakeAddr := freeAddr(t)
	startProc(t, nil, "fakecomfy", "--addr", fakeAddr, "--step", "20ms")
	waitHTTP(t, "http://"+fakeAddr+"/system_stats")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	store, err := storage.Open(ctx, rcfg, zap.NewNop())
	require.NoError(t, err)
	defer store.Close()
	startProc(t, []string{
		"EASEL_REDIS_URL=" + rcfg.URL,
		"EASEL_REDIS_PREFIX=" + rcfg.Prefix,
		"EASEL_BACKENDS=[{name: c, kind: comfyui, url: \"http://" + fakeAddr + "\", timeouts: {stall: 10s}}]",
		sharedImages(t, store),
	}, "worker")
	sched, err := scheduler.New(ctx, store, scheduler.Config{}, zap.NewNop())
	require.NoError(t, err)
	payload, _ := json.Marshal(map[string]any{"prompt": "a lighthouse", "width": 96, "height": 64, "steps": 5, "count": 2,
		"seed": -1, "sampler": "Euler a"})
	res, err := sched.Submit(ctx, scheduler.SubmitRequest{Tenant: "api:t", User: "u", Payload: payload, Images: 2})
	require.NoError(t, err)

	var types []scheduler.EventType
	previews := 0
	require.NoError(t, sched.Follow(ctx, res.ID, 0, func(e scheduler.Event) error {
		if len(types) == 0 || types[len(types)-1] != e.Type {
			types = append(types, e.Type)
		}
		if e.Preview != "" {
			previews++
		}
		return nil
	}))
	require.Equal(t, []scheduler.EventType{"queued", "started", "progress", "succeeded"}, types)
	require.Positive(t, previews)
	j, err := sched.Get(ctx, res.ID)
	require.NoError(t, err)
	require.Equal(t, 2, j.Images)
	require.Len(t, j.Seeds, 2)
	require.Equal(t, j.Seeds[0], j.Seeds[1], "a ComfyUI batch shares its seed, reported as run")
	require.GreaterOrEqual(t, j.Seeds[0], int64(0))
	img, err := sched.Image(ctx, j, 1)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(img), "\x89PNG"))
}
