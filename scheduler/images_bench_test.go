package scheduler_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/storage"
	"github.com/easelbot/easel/storage/blob"
)

// BenchmarkRedisBytesPerFinishedJob measures what Redis holds per finished
// job with one 1.5 MB image (an SDXL PNG), with the images in Redis (the
// demo's store, and every setup before storage.blobs) and in files: Redis's
// used_memory grown per job (shared streams included) and MEMORY USAGE of
// the job's own keys, once each job's own event stream is gone (deleted
// here, as Redis does when its FinishedEventsGrace runs out). `easel bench`
// measures the same with progress events and real expiry.
func BenchmarkRedisBytesPerFinishedJob(b *testing.B) {
	image := make([]byte, 1500*1000)
	for i := range image {
		image[i] = byte(i * 7)
	}
	for _, kind := range []string{blob.KindRedis, blob.KindFS} {
		b.Run(kind, func(b *testing.B) {
			ctx := context.Background()
			store := redistest.Store(b)
			if kind == blob.KindFS {
				fs, err := blob.NewFS(b.TempDir(), blob.TTL{})
				require.NoError(b, err)
				store.Blobs = fs
			}
			s, err := scheduler.New(ctx, store, scheduler.Config{}, zap.NewNop())
			require.NoError(b, err)
			slot := s.Slot("w", "fake")
			payload, _ := json.Marshal(map[string]any{"prompt": "a lighthouse at dusk, volumetric light", "width": 1024, "height": 1024, "steps": 30, "seed": 7})
			before := usedMemory(b, store)
			var own int64
			var ids []string
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r, err := s.Submit(ctx, scheduler.SubmitRequest{Tenant: "api:a", User: "u" + strconv.Itoa(i%50), Payload: payload, Images: 1})
				require.NoError(b, err)
				l, err := slot.Next(ctx, 5*time.Second)
				require.NoError(b, err)
				require.NotNil(b, l)
				require.NoError(b, l.Succeed(ctx, [][]byte{image}, []int64{7}, `{"prompt":"a lighthouse at dusk"}`))
				ids = append(ids, r.ID)
			}
			b.StopTimer()
			for _, id := range ids {
				require.NoError(b, store.Client.Do(ctx, store.Client.B().Del().Key(store.Keys.JobEvents(id)).Build()).Error())
				own += jobKeysMemory(b, store, id)
			}
			b.ReportMetric(float64(usedMemory(b, store)-before)/float64(b.N), "redis-bytes/job")
			b.ReportMetric(float64(own)/float64(b.N), "job-key-bytes/job")
		})
	}
}

func usedMemory(b *testing.B, store *storage.Store) int64 {
	info, err := store.Client.Do(context.Background(), store.Client.B().Info().Section("memory").Build()).ToString()
	require.NoError(b, err)
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			require.NoError(b, err)
			return n
		}
	}
	b.Fatal("no used_memory in INFO")
	return 0
}

// jobKeysMemory is MEMORY USAGE of every key of one job, images included.
func jobKeysMemory(b *testing.B, store *storage.Store, id string) int64 {
	c, k := store.Client, store.Keys
	var total int64
	for _, key := range []string{k.Job(id), k.JobRequest(id), k.JobEvents(id), k.Delivery(id), k.Blob(id, 1, "0"), k.Blob(id, 1, "info")} {
		n, err := c.Do(context.Background(), c.B().MemoryUsage().Key(key).Build()).AsInt64()
		if err == nil {
			total += n
		}
	}
	return total
}
