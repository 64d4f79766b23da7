package storage_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/internal/redisproc"
	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/storage"
)

// redis.url accepts Sentinel, as the README shows: the sentinels' address
// and master_set. The store asks the sentinel (a real redis-server
// --sentinel on loopback) for the master and talks to it, and a job runs
// through the scheduler on that connection.
func TestOpenThroughSentinel(t *testing.T) {
	t.Parallel()
	if !redisproc.Available() {
		t.Skip("redis-server not on PATH (./test.sh installs it)")
	}
	master, err := redisproc.StartServer(t.TempDir(), nil)
	require.NoError(t, err)
	t.Cleanup(master.Kill)
	sentinel, err := redisproc.StartSentinel(t.TempDir(), "easelmaster", master.Addr)
	require.NoError(t, err)
	t.Cleanup(sentinel.Kill)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := storage.Open(ctx, storage.Config{URL: sentinel.URL + "?master_set=easelmaster", Prefix: "sentinel"}, zap.NewNop())
	require.NoError(t, err)
	defer store.Close()

	sched, err := scheduler.New(ctx, store, scheduler.Config{}, zap.NewNop())
	require.NoError(t, err)
	res, err := sched.Submit(ctx, scheduler.SubmitRequest{Tenant: "api:s", User: "u", Payload: json.RawMessage(`{}`)})
	require.NoError(t, err)
	sl := sched.Slot("w", "b")
	defer func() { _ = sl.Close(context.Background()) }()
	l, err := sl.Next(ctx, 5*time.Second)
	require.NoError(t, err)
	require.NotNil(t, l)
	require.Equal(t, res.ID, l.JobID)
	require.NoError(t, l.Succeed(ctx, nil, nil, ""))

	// The job record is on the master the sentinel named.
	direct, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{master.Addr}, DisableCache: true, ForceSingleClient: true})
	require.NoError(t, err)
	defer direct.Close()
	st, err := direct.Do(ctx, direct.B().Hget().Key(store.Keys.Job(res.ID)).Field("status").Build()).ToString()
	require.NoError(t, err)
	require.Equal(t, string(scheduler.StatusSucceeded), st)
}
