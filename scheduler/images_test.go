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
