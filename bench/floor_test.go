package bench

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/storage"
)

// The floor runs the commands its header lists (17 per job, the EVALSHA per
// 8 jobs on top), costs Redis CPU, and leaves no key behind. Not parallel:
// INFO is server-wide. An idle client connection PINGs every second (the
// client's keepalive), so a few commands more may be counted.
func TestFloor(t *testing.T) {
	ctx := context.Background()
	url := redistest.URL(t)
	store, err := storage.Open(ctx, storage.Config{URL: url}, zap.NewNop())
	require.NoError(t, err)
	defer store.Close()
	keys := func() int64 {
		n, err := store.Client.Do(ctx, store.Client.B().Dbsize().Build()).AsInt64()
		require.NoError(t, err)
		return n
	}
	before := keys()
	res, err := Floor(ctx, url, 200)
	require.NoError(t, err)
	require.Equal(t, 200, res.Jobs)
	requireCommands(t, 17+1.0/8, res.CommandsPerJob, 200)
	require.Positive(t, res.RedisCPUPerJob)
	require.Positive(t, res.JobsPerSec)
	require.Equal(t, before, keys(), "the floor's keys are deleted")
}

// A batch shorter than 8 (n not a multiple of 8) goes through too.
func TestFloorPartialBatch(t *testing.T) {
	res, err := Floor(context.Background(), redistest.URL(t), 13)
	require.NoError(t, err)
	requireCommands(t, 17+2.0/13, res.CommandsPerJob, 13)
}

// requireCommands checks commands per job over n jobs, allowing up to 3
// keepalive PINGs in the run.
func requireCommands(t *testing.T, want, got float64, n int) {
	t.Helper()
	require.GreaterOrEqual(t, got, want-1e-9)
	require.LessOrEqual(t, got, want+3.0/float64(n)+1e-9)
}

func TestFloorNeedsJobs(t *testing.T) {
	t.Parallel()
	_, err := Floor(context.Background(), "redis://127.0.0.1:1", 0)
	require.ErrorContains(t, err, "floor-jobs")
}
