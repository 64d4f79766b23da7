package scheduler

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/storage"
)

func TestPruneAdsContract(t *testing.T) {
	t.Parallel()
	s, ctx := contractSetup(t, Config{})
	pruneAdsContract(t, s, ctx)
}

// pruneAdsContract calls lua/pruneads.lua directly and checks its reply and
// the fields it leaves (TestEveryScriptOnCluster runs it on the cluster
// too).
func pruneAdsContract(t *testing.T, s *Scheduler, ctx context.Context) {
	t.Helper()
	key := s.keys.Backends()
	require.NoError(t, s.client.Do(ctx, s.client.B().Hset().Key(key).FieldValue().
		FieldValue("a\tw1", "1:{}").FieldValue("b\tw1", "2:down:{}").FieldValue("c\tw2", "3:{}").Build()).Error())
	// pruneads: the number deleted. A field still holding the value given
	// goes; one holding another value (advertised again) stays; a missing
	// one is no error; a field not named stays.
	c := pruneAdsCall{Key: key, Expired: map[string]string{"a\tw1": "1:{}", "b\tw1": "1:down:{}", "d\tw3": "1:{}"}}
	n, err := s.runner.call(ctx, scriptPruneAds, c.keys(), c.argv()).AsInt64()
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
	m, err := s.client.Do(ctx, s.client.B().Hgetall().Key(key).Build()).AsStrMap()
	require.NoError(t, err)
	require.Equal(t, map[string]string{"b\tw1": "2:down:{}", "c\tw2": "3:{}"}, m)
	// Nothing to prune: 0.
	n, err = s.runner.call(ctx, scriptPruneAds, []string{key}, nil).AsInt64()
	require.NoError(t, err)
	require.Zero(t, n)
	require.NoError(t, s.client.Do(ctx, s.client.B().Del().Key(key).Build()).Error())
}

// A worker that advertises again between BackendAds' read, which found its
// ad expired, and the prune of what it read keeps its fresh ad: the backend
// stays listed. A field still expired when the prune runs is deleted. The
// test runs BackendAds' two steps itself and advertises between them.
func TestBackendAdsPruneKeepsReadvertised(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.UnixMilli(1_800_000_000_000)
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	s, ctx := contractSetup(t, Config{Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }})
	fields := func() map[string]string {
		t.Helper()
		m, err := s.client.Do(ctx, s.client.B().Hgetall().Key(s.keys.Backends()).Build()).AsStrMap()
		require.NoError(t, err)
		return m
	}

	const ttl = time.Minute
	require.NoError(t, s.AdvertiseBackend(ctx, "w1", "gpu", []byte(`{"v":1}`), ttl))
	require.NoError(t, s.AdvertiseBackendDown(ctx, "w2", "cpu", []byte(`{"v":1}`), ttl))
	advance(2 * ttl)
	live, expired, err := s.readAds(ctx)
	require.NoError(t, err)
	require.Empty(t, live)
	require.Len(t, expired, 2)

	// w1 refreshes its ad before the prune; w2 does not.
	require.NoError(t, s.AdvertiseBackend(ctx, "w1", "gpu", []byte(`{"v":2}`), ttl))
	fresh := fields()[adField("w1", "gpu")]
	n, err := s.pruneAds(ctx, expired)
	require.NoError(t, err)
	require.Equal(t, 1, n, "only w2's ad, still expired, is deleted")
	require.Equal(t, map[string]string{adField("w1", "gpu"): fresh}, fields())
	ads, err := s.BackendAds(ctx)
	require.NoError(t, err)
	require.Equal(t, map[string]BackendAd{"gpu": {Catalog: []byte(`{"v":2}`)}}, ads)

	// Once w1's ad expires too, BackendAds drops it and prunes it.
	advance(2 * ttl)
	ads, err = s.BackendAds(ctx)
	require.NoError(t, err)
	require.Empty(t, ads)
	require.Empty(t, fields())
}

// skewed is a scheduler on store whose machine's clock is off by skew: its
// Config.Now is left to the default (so the scripts read Redis's TIME, as
// in production), then the Go-side clock is skewed.
func skewed(t *testing.T, store *storage.Store, skew time.Duration) *Scheduler {
	t.Helper()
	return skewedWith(t, store, Config{}, skew)
}

// skewedWith is skewed with cfg (whose Now must be nil).
func skewedWith(t *testing.T, store *storage.Store, cfg Config, skew time.Duration) *Scheduler {
	t.Helper()
	s, err := New(context.Background(), store, cfg, zap.NewNop())
	require.NoError(t, err)
	require.False(t, s.clock)
	s.cfg.Now = func() time.Time { return time.Now().Add(skew) }
	return s
}

// Advertisements expire by Redis's clock, not the worker's or the
// reader's: a worker whose clock is 20 minutes behind and an API whose
// clock is 20 minutes ahead still agree that a fresh 15-minute ad is live
// (by their own clocks it would have expired before it was written), and
// the reader does not prune it.
func TestBackendAdsExpireByRedisClock(t *testing.T) {
	t.Parallel()
	store := redistest.Store(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	worker := skewed(t, store, -20*time.Minute)
	reader := skewed(t, store, 20*time.Minute)
	const ttl = 15 * time.Minute
	require.NoError(t, worker.AdvertiseBackend(ctx, "w1", "gpu", []byte(`{"v":1}`), ttl))
	require.NoError(t, worker.AdvertiseBackendDown(ctx, "w1", "cpu", []byte(`{"v":2}`), ttl))
	for _, s := range []*Scheduler{reader, worker} {
		ads, err := s.BackendAds(ctx)
		require.NoError(t, err)
		require.Equal(t, map[string]BackendAd{"gpu": {Catalog: []byte(`{"v":1}`)}, "cpu": {Catalog: []byte(`{"v":2}`), Down: true}}, ads)
	}
	n, err := store.Client.Do(ctx, store.Client.B().Hlen().Key(reader.keys.Backends()).Build()).AsInt64()
	require.NoError(t, err)
	require.Equal(t, int64(2), n, "a fresh ad is not pruned")

	// An ad that has run out by Redis's clock is dropped and pruned, though
	// the worker's clock (behind) would still call it live.
	require.NoError(t, worker.AdvertiseBackend(ctx, "w2", "old", []byte(`{}`), -time.Millisecond))
	ads, err := worker.BackendAds(ctx)
	require.NoError(t, err)
	require.NotContains(t, ads, "old")
	n, err = store.Client.Do(ctx, store.Client.B().Hlen().Key(reader.keys.Backends()).Build()).AsInt64()
	require.NoError(t, err)
	require.Equal(t, int64(2), n, "the expired ad is pruned")
}
