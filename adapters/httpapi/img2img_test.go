package httpapi_test

import (
	"bytes"
	"encoding/base64"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/storage"
	"github.com/easelbot/easel/storage/blob"
)

// noisePNG is a w×h PNG of noise: it does not compress, so its size is
// about 3·w·h bytes.
func noisePNG(t *testing.T, w, h int) []byte {
	t.Helper()
	r := rand.New(rand.NewPCG(3, 4))
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetNRGBA(x, y, color.NRGBA{uint8(r.Uint32()), uint8(r.Uint32()), uint8(r.Uint32()), 255})
		}
	}
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, img))
	return buf.Bytes()
}

// fsBlobs keeps images in files under dir.
func fsBlobs(t *testing.T, dir string) func(*storage.Store) blob.Store {
	return func(*storage.Store) blob.Store {
		fs, err := blob.NewFS(dir, blob.TTL{})
		require.NoError(t, err)
		return fs
	}
}

// An img2img job's init image goes to the blob store at submit, not into
// Redis: the job's record and request hold no image bytes, and the backend
// gets the very image the client sent.
func TestInitImageKeptOutOfRedis(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b, store := setupBlobs(t, fsBlobs(t, dir))
	src := noisePNG(t, 110, 110) // within http.max_body_bytes as base64
	require.Greater(t, len(src), 30_000)
	resp, m := b.do(t, "POST", "/v1/jobs", "", map[string]any{"prompt": "a lighthouse, oil painting", "steps": 4, "seed": 5,
		"init_image": "data:image/png;base64," + base64.StdEncoding.EncodeToString(src), "denoising_strength": 0.5})
	require.Equal(t, http.StatusAccepted, resp.StatusCode, m)
	id := m["id"].(string)
	events := b.sse(t, "/v1/jobs/"+id+"/events", "")
	require.Equal(t, "succeeded", events[len(events)-1])

	// The backend received the same image.
	last := b.fake.LastRequest()
	require.Len(t, last.InitImages, 1)
	got, err := base64.StdEncoding.DecodeString(last.InitImages[0])
	require.NoError(t, err)
	require.Equal(t, src, got)
	require.NotNil(t, last.DenoisingStrength)
	require.InDelta(t, 0.5, *last.DenoisingStrength, 1e-9)
	// It is a file beside the job's results.
	onDisk, err := os.ReadFile(filepath.Join(dir, "results", id+".0.init"))
	require.NoError(t, err)
	require.Equal(t, src, onDisk)

	// Redis: the request is a few hundred bytes, and no key of the job
	// holds anything near the image's size.
	c := store.Client
	n, err := c.Do(b.ctx, c.B().Strlen().Key(store.Keys.JobRequest(id)).Build()).AsInt64()
	require.NoError(t, err)
	require.Less(t, n, int64(512), "the request holds no image")
	for _, k := range []string{store.Keys.Job(id), store.Keys.JobRequest(id)} {
		n, err := c.Do(b.ctx, c.B().MemoryUsage().Key(k).Build()).AsInt64()
		require.NoError(t, err)
		require.Less(t, n, int64(2048), k)
	}
	// The API shows that the request had an init image, not its bytes.
	_, m = b.do(t, "GET", "/v1/jobs/"+id, "", nil)
	require.Equal(t, map[string]any{"omitted": true, "bytes": float64(len(src))}, m["request"].(map[string]any)["init_image"])
}

// A job whose init image is gone from the store fails at once, saying so,
// without a retry.
func TestInitImageGoneFailsJob(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b, _ := setupBlobsIdle(t, fsBlobs(t, dir))
	src := noisePNG(t, 64, 64)
	resp, m := b.do(t, "POST", "/v1/jobs", "", map[string]any{"prompt": "a lighthouse", "steps": 4,
		"init_image": base64.StdEncoding.EncodeToString(src)})
	require.Equal(t, http.StatusAccepted, resp.StatusCode, m)
	id := m["id"].(string)
	require.NoError(t, os.Remove(filepath.Join(dir, "results", id+".0.init")))
	b.startWorker(t)
	events := b.sse(t, "/v1/jobs/"+id+"/events", "")
	require.Equal(t, []string{"queued", "started", "failed"}, events)
	_, m = b.do(t, "GET", "/v1/jobs/"+id, "", nil)
	require.Equal(t, "failed", m["status"])
	j, err := b.sched.Get(b.ctx, id)
	require.NoError(t, err)
	require.Equal(t, 1, j.Attempt, "no retry")
	require.Equal(t, "bad_request", j.ErrorCode)
	require.Contains(t, j.Error, "init image is gone")
	require.Empty(t, b.fake.Tasks(), "the backend was never asked")
}
