package scheduler_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/sdclient/a1111"
	"github.com/easelbot/easel/sdclient/fakesd"
	"github.com/easelbot/easel/worker"
)

// TestJobOnCluster runs a job end to end on a three-master Redis Cluster:
// submit, a worker on the fake A1111 server, progress, succeeded with its
// image.
func TestJobOnCluster(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sched, err := scheduler.New(ctx, redistest.ClusterStore(t), scheduler.Config{}, zap.NewNop())
	require.NoError(t, err)
	srv := httptest.NewServer(fakesd.New(fakesd.Config{StepDuration: 5 * time.Millisecond, PreviewEvery: 2}).Handler())
	defer srv.Close()
	client, err := a1111.New(a1111.Config{BaseURL: srv.URL, ProgressInterval: 5 * time.Millisecond})
	require.NoError(t, err)
	w, err := worker.New(worker.Config{Name: "c", HealthInterval: 10 * time.Millisecond, BlockTimeout: time.Second}, sched,
		[]worker.Backend{{Name: "fake", Backend: client}}, zap.NewNop())
	require.NoError(t, err)
	require.NoError(t, w.Start(ctx))
	defer func() {
		stop, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		require.NoError(t, w.Stop(stop))
	}()
	p, _ := json.Marshal(map[string]any{"prompt": "a red fox", "width": 64, "height": 64, "steps": 6, "seed": 3, "count": 1})
	r, err := sched.Submit(ctx, scheduler.SubmitRequest{Tenant: "api:t", User: "u", Payload: p, Images: 1})
	require.NoError(t, err)
	id := r.ID
	var got []scheduler.EventType
	require.NoError(t, sched.Follow(ctx, id, 0, func(e scheduler.Event) error { got = append(got, e.Type); return nil }))
	require.Equal(t, scheduler.EventQueued, got[0])
	require.Contains(t, got, scheduler.EventStarted)
	require.Contains(t, got, scheduler.EventProgress)
	require.Equal(t, scheduler.EventSucceeded, got[len(got)-1])
	j, err := sched.Get(ctx, id)
	require.NoError(t, err)
	require.Equal(t, scheduler.StatusSucceeded, j.Status)
	img, err := sched.Image(ctx, j, 0)
	require.NoError(t, err)
	require.NotEmpty(t, img)
}
