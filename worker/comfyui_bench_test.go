package worker_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/sdclient/comfyui"
	"github.com/easelbot/easel/sdclient/comfyui/comfytest"
	"github.com/easelbot/easel/worker"
)

// BenchmarkComfyUIResultToSucceeded measures, per job, the time from the
// ComfyUI fake ending a prompt (history written, "executing" null sent) to
// a follower of the job receiving its succeeded event: the client's
// history and /view round trips, the worker's blob writes and the succeed
// script, and event delivery. Real Redis, real HTTP and websocket on
// loopback; one-step prompts of 512×512, one image.
func BenchmarkComfyUIResultToSucceeded(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sched, err := scheduler.New(ctx, redistest.Store(b), scheduler.Config{}, zap.NewNop())
	require.NoError(b, err)
	fake := comfytest.New(comfytest.Config{StepDuration: time.Microsecond, NoPreviews: true})
	srv := httptest.NewServer(fake.Handler())
	defer func() { fake.Close(); srv.Close() }()
	client, err := comfyui.New(comfyui.Config{BaseURL: srv.URL})
	require.NoError(b, err)
	w, err := worker.New(worker.Config{Name: "b", HealthInterval: 10 * time.Millisecond, BlockTimeout: time.Second}, sched,
		[]worker.Backend{{Name: "comfy", Backend: client}}, zap.NewNop())
	require.NoError(b, err)
	require.NoError(b, w.Start(ctx))
	defer func() {
		stop, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		_ = w.Stop(stop)
	}()

	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		// A new seed per job, or ComfyUI's cache would answer.
		p, _ := json.Marshal(map[string]any{"prompt": "bench", "width": 512, "height": 512, "steps": 1, "seed": i, "count": 1})
		r, err := sched.Submit(ctx, scheduler.SubmitRequest{Tenant: "api:b", User: "u", Payload: p, Images: 1})
		require.NoError(b, err)
		var got time.Time
		require.NoError(b, sched.Follow(ctx, r.ID, 0, func(e scheduler.Event) error {
			if e.Type == scheduler.EventSucceeded {
				got = time.Now()
			}
			return nil
		}))
		require.False(b, got.IsZero(), "job %s did not succeed", r.ID)
		ps := fake.Prompts()
		lat = append(lat, got.Sub(fake.Finished(ps[len(ps)-1].ID)))
	}
	b.StopTimer()
	slices.Sort(lat)
	q := func(f float64) float64 {
		return float64(lat[min(int(f*float64(len(lat))), len(lat)-1)].Microseconds()) / 1000
	}
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}
