package scheduler_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/scheduler"
)

// Several workers may advertise one backend name (scaled workers): the name
// is listed while any of them advertises it, up when any of them finds it
// up; a graceful stop withdraws only that worker's advertisement, and a
// killed worker's runs out at its TTL.
func TestBackendAdsPerWorker(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.UnixMilli(1_800_000_000_000)
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	b := setup(t, scheduler.Config{Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }})
	ads := func() map[string]string {
		t.Helper()
		m, err := b.s.BackendAds(b.ctx)
		require.NoError(t, err)
		out := map[string]string{}
		for name, ad := range m {
			out[name] = string(ad.Catalog)
			if ad.Down {
				out[name] = "down " + out[name]
			}
		}
		return out
	}
	const ttl = 15 * time.Minute
	require.NoError(t, b.s.AdvertiseBackend(b.ctx, "w1", "gpu", []byte(`{"v":1}`), ttl))
	require.NoError(t, b.s.AdvertiseBackend(b.ctx, "w1", "cpu", []byte(`{"v":0}`), ttl))
	advance(time.Minute)
	require.NoError(t, b.s.AdvertiseBackendDown(b.ctx, "w2", "gpu", []byte(`{"v":2}`), ttl))
	require.Equal(t, map[string]string{"gpu": `{"v":1}`, "cpu": `{"v":0}`}, ads(), "up beats a fresher down")
	require.NoError(t, b.s.AdvertiseBackend(b.ctx, "w2", "gpu", []byte(`{"v":3}`), ttl))
	require.Equal(t, `{"v":3}`, ads()["gpu"], "the fresher of two up")
	advance(time.Minute)
	require.NoError(t, b.s.AdvertiseBackendDown(b.ctx, "w1", "gpu", []byte(`{"v":4}`), ttl))
	require.Equal(t, `{"v":3}`, ads()["gpu"], "up while one worker finds it up")
	advance(time.Minute)
	require.NoError(t, b.s.AdvertiseBackendDown(b.ctx, "w2", "gpu", []byte(`{"v":5}`), ttl))
	require.Equal(t, `down {"v":5}`, ads()["gpu"], "down when every worker finds it down")

	// w1 stops gracefully: w2 still advertises gpu; cpu was w1's alone.
	require.NoError(t, b.s.WithdrawBackends(b.ctx, "w1", "gpu", "cpu"))
	require.Equal(t, map[string]string{"gpu": `down {"v":5}`}, ads())
	require.NoError(t, b.s.AdvertiseBackend(b.ctx, "w2", "gpu", []byte(`{"v":6}`), ttl))
	require.NoError(t, b.s.WithdrawBackends(b.ctx, "w2"), "no names: nothing withdrawn")

	// w2 is killed: its advertisement lasts its TTL, no longer.
	advance(ttl - time.Millisecond)
	require.Equal(t, map[string]string{"gpu": `{"v":6}`}, ads())
	advance(2 * time.Millisecond)
	require.Empty(t, ads())
}
