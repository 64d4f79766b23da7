package scheduler_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/storage"
	"github.com/easelbot/easel/storage/blob"
)

// setupFS is setup with images in a directory (the durable default).
func setupFS(t *testing.T) (*bundle, string) {
	t.Helper()
	store := redistest.Store(t)
	dir := t.TempDir()
	fs, err := blob.NewFS(dir, blob.TTL{})
	require.NoError(t, err)
	store.Blobs = fs
	s, err := scheduler.New(context.Background(), store, scheduler.Config{}, zap.NewNop())
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return &bundle{s: s, ctx: ctx}, dir
}

func files(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	for _, sub := range []string{"results", "previews"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		require.NoError(t, err)
		for _, e := range entries {
			names = append(names, sub+"/"+e.Name())
		}
	}
	return names
}

// Images go to the image store, never into Redis; the record names the
// accepted attempt's images.
func TestImagesOnDisk(t *testing.T) {
	t.Parallel()
	b, dir := setupFS(t)
	id := b.submit(t, "api:a", "u", "A")
	l := b.take(t, "w")
	require.NoError(t, l.Succeed(b.ctx, [][]byte{[]byte("image-0"), []byte("image-1")}, []int64{1, 2}, ""))
	j, err := b.s.Get(b.ctx, id)
	require.NoError(t, err)
	img, err := b.s.Image(b.ctx, j, 1)
	require.NoError(t, err)
	require.Equal(t, "image-1", string(img))
	o, etag, err := b.s.OpenImage(b.ctx, j, 0)
	require.NoError(t, err)
	require.NoError(t, o.Close())
	require.Equal(t, `"`+id+`.1.0"`, etag)
	_, _, err = b.s.OpenImage(b.ctx, j, 2)
	require.ErrorIs(t, err, storage.ErrNotFound)
	require.ElementsMatch(t, []string{"results/" + id + ".1.0", "results/" + id + ".1.1"}, files(t, dir))
	_, err = b.s.ImageURL(b.ctx, j, 0)
	require.ErrorIs(t, err, blob.ErrNoPresign)
}

// A stale attempt writes no result image and leaves no preview behind.
func TestStaleAttemptWritesNoBlobs(t *testing.T) {
	t.Parallel()
	b, dir := setupFS(t)
	id := b.submit(t, "api:a", "u", "A")
	zombie := b.take(t, "w")
	_, err := b.s.Cancel(b.ctx, id, "u")
	require.NoError(t, err)
	require.ErrorIs(t, zombie.Progress(b.ctx, 3, 10, 0.3, 0, []byte("preview")), scheduler.ErrStale)
	require.ErrorIs(t, zombie.Succeed(b.ctx, [][]byte{[]byte("orphan")}, nil, ""), scheduler.ErrStale)
	require.Empty(t, files(t, dir))
	_, err = b.s.Preview(b.ctx, id, "1-3")
	require.ErrorIs(t, err, storage.ErrNotFound)
}

// Only a running attempt's latest preview is kept.
func TestOnlyLatestPreviewKept(t *testing.T) {
	t.Parallel()
	b, dir := setupFS(t)
	id := b.submit(t, "api:a", "u", "A")
	l := b.take(t, "w")
	for step := 1; step <= 3; step++ {
		require.NoError(t, l.Progress(b.ctx, step, 3, float64(step)/3, 0, []byte{byte(step)}))
	}
	require.Equal(t, []string{"previews/" + id + ".1.p3"}, files(t, dir))
	p, err := b.s.Preview(b.ctx, id, "1-3")
	require.NoError(t, err)
	require.Equal(t, []byte{3}, p)
	_, err = b.s.Preview(b.ctx, id, "1-2")
	require.ErrorIs(t, err, storage.ErrNotFound)
	j, err := b.s.Get(b.ctx, id)
	require.NoError(t, err)
	require.Equal(t, "1-3", j.Preview)
}

// With images in files, a Redis capped at 64 MB keeps accepting and
// finishing jobs whose images add up to several times that; with images in
// Redis the same Redis refuses writes after a few dozen.
func TestMaxmemoryRedisKeepsFinishingJobsWithFS(t *testing.T) {
	t.Parallel()
	image := make([]byte, 1500*1000)
	for i := range image {
		image[i] = byte(i * 7)
	}
	for _, kind := range []string{blob.KindFS, blob.KindRedis} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			srv := redistest.NewServer(t)
			store, err := storage.Open(ctx, storage.Config{URL: srv.URL, Prefix: "mm"}, zap.NewNop())
			require.NoError(t, err)
			t.Cleanup(store.Close)
			c := store.Client
			require.NoError(t, c.Do(ctx, c.B().ConfigSet().ParameterValue().ParameterValue("maxmemory", "64mb").ParameterValue("maxmemory-policy", "noeviction").Build()).Error())
			if kind == blob.KindFS {
				fs, err := blob.NewFS(t.TempDir(), blob.TTL{})
				require.NoError(t, err)
				store.Blobs = fs
			}
			s, err := scheduler.New(ctx, store, scheduler.Config{}, zap.NewNop())
			require.NoError(t, err)
			slot := s.Slot("w", "fake")
			const jobs = 200 // 300 MB of images
			var failed error
			done := 0
			for i := 0; i < jobs && failed == nil; i++ {
				r, err := s.Submit(ctx, scheduler.SubmitRequest{Tenant: "api:a", User: "u", Payload: []byte(`{"prompt":"x"}`), Images: 1})
				if err != nil {
					failed = err
					break
				}
				l, err := slot.Next(ctx, 5*time.Second)
				require.NoError(t, err)
				require.NotNil(t, l)
				if failed = l.Succeed(ctx, [][]byte{image}, []int64{1}, ""); failed == nil {
					j, err := s.Get(ctx, r.ID)
					require.NoError(t, err)
					require.Equal(t, scheduler.StatusSucceeded, j.Status)
					done++
				}
			}
			if kind == blob.KindRedis {
				require.ErrorContains(t, failed, "OOM", "images in Redis fill a 64 MB Redis (%d jobs finished)", done)
				require.Less(t, done, 60)
				return
			}
			require.NoError(t, failed)
			require.Equal(t, jobs, done)
		})
	}
}

// An init image is written to the image store at submit, under the job,
// and read back through the lease; a duplicate or refused submit leaves
// no file behind, and a missing one is ErrInitImageGone.
func TestInitImageStoredAtSubmit(t *testing.T) {
	t.Parallel()
	b, dir := setupFS(t)
	src := []byte("\x89PNG init image")
	req := scheduler.SubmitRequest{Tenant: "api:a", User: "u", Payload: []byte(`{"init_image_bytes":16}`), InitImage: src,
		IdempotencyKey: "k", Admission: &scheduler.Admission{MaxPendingPerUser: 1}}
	r, err := b.s.Submit(b.ctx, req)
	require.NoError(t, err)
	require.Equal(t, []string{"results/" + r.ID + ".0.init"}, files(t, dir))
	dup, err := b.s.Submit(b.ctx, req)
	require.NoError(t, err)
	require.True(t, dup.Duplicate)
	req.IdempotencyKey = "k2"
	_, err = b.s.Submit(b.ctx, req)
	var refused *scheduler.RefusedError
	require.ErrorAs(t, err, &refused)
	require.Equal(t, []string{"results/" + r.ID + ".0.init"}, files(t, dir), "no file of the duplicate or the refused submit")

	l := b.take(t, "w")
	require.Equal(t, r.ID, l.JobID)
	got, err := l.InitImage(b.ctx)
	require.NoError(t, err)
	require.Equal(t, src, got)
	require.NoError(t, os.Remove(filepath.Join(dir, "results", r.ID+".0.init")))
	_, err = l.InitImage(b.ctx)
	require.ErrorIs(t, err, scheduler.ErrInitImageGone)
}
