package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"image"
	_ "image/jpeg"
	_ "image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/adapters/httpapi"
	"github.com/easelbot/easel/commands"
	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/storage"
	"github.com/easelbot/easel/storage/blob"
)

// setupBlobs is setup with a worker and images in the given store.
func setupBlobs(t *testing.T, blobs func(*storage.Store) blob.Store) (*bundle, *storage.Store) {
	t.Helper()
	b, store := setupBlobsIdle(t, blobs)
	b.startWorker(t)
	return b, store
}

// setupBlobsIdle is setupBlobs without the worker (startWorker starts it).
func setupBlobsIdle(t *testing.T, blobs func(*storage.Store) blob.Store) (*bundle, *storage.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	store := redistest.Store(t)
	store.Blobs = blobs(store)
	sched, err := scheduler.New(ctx, store, scheduler.Config{}, zap.NewNop())
	require.NoError(t, err)
	pol, err := scheduler.NewPolicies(sched, scheduler.PolicyConfig{})
	require.NoError(t, err)
	svc, err := commands.New(sched, pol, commands.Limits{}, zap.NewNop())
	require.NoError(t, err)
	api, err := httpapi.New(httpapi.Config{}, svc, sched, zap.NewNop())
	require.NoError(t, err)
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	b := &bundle{ctx: ctx, sched: sched, api: api, srv: srv}
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = api.Stop(c)
	})
	return b, store
}

// finished submits a job over HTTP, follows it to the end and returns its
// id and first image's URL.
func (b *bundle) finished(t *testing.T, width, height int) (string, string) {
	t.Helper()
	resp, m := b.do(t, "POST", "/v1/jobs", "", map[string]any{"prompt": "a lighthouse", "width": width, "height": height, "steps": 6, "seed": 3})
	require.Equal(t, http.StatusAccepted, resp.StatusCode, m)
	id := m["id"].(string)
	events := b.sse(t, "/v1/jobs/"+id+"/events", "")
	require.Equal(t, "succeeded", events[len(events)-1])
	_, m = b.do(t, "GET", "/v1/jobs/"+id, "", nil)
	return id, m["images"].([]any)[0].(map[string]any)["url"].(string)
}

// sseData reads a job's event stream to its end and returns each event's
// data.
func (b *bundle) sseData(t *testing.T, path string) []map[string]any {
	t.Helper()
	req, err := http.NewRequestWithContext(b.ctx, http.MethodGet, b.srv.URL+path, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var evs []map[string]any
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			var m map[string]any
			require.NoError(t, json.Unmarshal([]byte(data), &m))
			evs = append(evs, m)
		}
	}
	return evs
}

func get(t *testing.T, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, body
}

// A job's images are written to disk and served from there with an ETag,
// ranges and immutable caching; Redis keeps under 2 KiB for the finished
// job whatever the image's size, and a late subscriber still gets its end.
func TestImagesServedFromDisk(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b, store := setupBlobs(t, func(*storage.Store) blob.Store {
		fs, err := blob.NewFS(dir, blob.TTL{})
		require.NoError(t, err)
		return fs
	})
	id, url := b.finished(t, 1024, 1024)
	onDisk, err := os.ReadFile(filepath.Join(dir, "results", id+".1.0"))
	require.NoError(t, err)

	resp, body := get(t, b.srv.URL+url)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, onDisk, body)
	require.Equal(t, "image/png", resp.Header.Get("Content-Type"))
	etag := resp.Header.Get("ETag")
	require.Equal(t, `"`+id+`.1.0"`, etag)
	require.Contains(t, resp.Header.Get("Cache-Control"), "immutable")
	require.Equal(t, "bytes", resp.Header.Get("Accept-Ranges"))

	resp, body = get(t, b.srv.URL+url, "Range", "bytes=1-3")
	require.Equal(t, http.StatusPartialContent, resp.StatusCode)
	require.Equal(t, "PNG", string(body))
	require.Contains(t, resp.Header.Get("Content-Range"), "bytes 1-3/")

	resp, body = get(t, b.srv.URL+url, "If-None-Match", etag)
	require.Equal(t, http.StatusNotModified, resp.StatusCode)
	require.Empty(t, body)

	// The job's own event stream lives FinishedEventsGrace after the end;
	// after it (deleted here as Redis does when it expires) a subscriber
	// gets the first and the final event, rebuilt from the record, with the
	// images and the info (kept beside the images: it is long).
	c := store.Client
	ttl, err := c.Do(b.ctx, c.B().Pttl().Key(store.Keys.JobEvents(id)).Build()).AsInt64()
	require.NoError(t, err)
	require.Positive(t, ttl)
	require.LessOrEqual(t, ttl, scheduler.FinishedEventsGrace.Milliseconds())
	require.Equal(t, []string{"queued", "started", "progress", "succeeded"}, b.sse(t, "/v1/jobs/"+id+"/events", ""))
	require.NoError(t, c.Do(b.ctx, c.B().Del().Key(store.Keys.JobEvents(id)).Build()).Error())
	late := b.sseData(t, "/v1/jobs/"+id+"/events")
	require.Len(t, late, 2)
	require.Equal(t, "queued", late[0]["type"])
	require.Equal(t, "succeeded", late[1]["type"])
	require.EqualValues(t, 1, late[1]["images"])
	require.Contains(t, late[1]["info"], `"prompt":"a lighthouse"`)
	_, m := b.do(t, "GET", "/v1/jobs/"+id, "", nil)
	require.Equal(t, "succeeded", m["status"])

	// Redis holds no image, and under 2 KiB for the finished job: its
	// record (a compact listpack hash: the long info text is beside the
	// images) and its request. MEMORY USAGE of those keys depends on their
	// contents only, not on how many progress events the run happened to
	// make (the stream that held those is gone).
	keys, err := c.Do(b.ctx, c.B().Keys().Pattern(store.Keys.Prefix+":blob:*").Build()).AsStrSlice()
	require.NoError(t, err)
	require.Empty(t, keys)
	keys, err = c.Do(b.ctx, c.B().Keys().Pattern("*"+id+"*").Build()).AsStrSlice()
	require.NoError(t, err)
	require.ElementsMatch(t, []string{store.Keys.Job(id), store.Keys.JobRequest(id)}, keys)
	enc, err := c.Do(b.ctx, c.B().ObjectEncoding().Key(store.Keys.Job(id)).Build()).ToString()
	require.NoError(t, err)
	require.Equal(t, "listpack", enc)
	var total int64
	for _, k := range keys {
		n, err := c.Do(b.ctx, c.B().MemoryUsage().Key(k).Build()).AsInt64()
		require.NoError(t, err)
		t.Logf("%s: %d", k, n)
		total += n
	}
	t.Logf("Redis bytes for the finished job (image %d bytes on disk): %d", len(onDisk), total)
	require.Less(t, total, int64(2048))

	// Served from the disk: gone from there, gone from the API.
	require.NoError(t, os.Remove(filepath.Join(dir, "results", id+".1.0")))
	resp, _ = get(t, b.srv.URL+url)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
}

// With presign on, the API redirects to a presigned URL of the object.
func TestImagesPresignedRedirect(t *testing.T) {
	t.Parallel()
	backend := s3mem.New()
	s3srv := httptest.NewServer(gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog())).Server())
	t.Cleanup(s3srv.Close)
	require.NoError(t, backend.CreateBucket("images"))
	b, _ := setupBlobs(t, func(*storage.Store) blob.Store {
		s, err := blob.NewS3(context.Background(), blob.S3Config{Endpoint: s3srv.URL, Bucket: "images", Region: "us-east-1", PathStyle: true},
			"test-access", "test-secret", blob.TTL{}, true, time.Minute)
		require.NoError(t, err)
		return s
	})
	id, url := b.finished(t, 256, 256)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(b.srv.URL + url)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode)
	loc := resp.Header.Get("Location")
	require.True(t, strings.HasPrefix(loc, s3srv.URL+"/images/results/"+id+".1.0?"), loc)
	require.Contains(t, loc, "X-Amz-Signature=")
	_, body := get(t, loc)
	require.True(t, strings.HasPrefix(string(body), "\x89PNG"))
}

// ?size=thumb serves a JPEG thumbnail, made once and kept beside the image
// in the store, with its own ETag and the same caching; a bad size is
// refused naming the field.
func TestImageThumbnails(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b, _ := setupBlobs(t, func(*storage.Store) blob.Store {
		fs, err := blob.NewFS(dir, blob.TTL{})
		require.NoError(t, err)
		return fs
	})
	id, url := b.finished(t, 1024, 768)
	_, full := get(t, b.srv.URL+url)
	fullCfg, _, err := image.DecodeConfig(bytes.NewReader(full))
	require.NoError(t, err)
	_, m := b.do(t, "GET", "/v1/jobs/"+id, "", nil)
	thumbURL := m["images"].([]any)[0].(map[string]any)["thumb_url"].(string)
	require.Equal(t, url+"?size=thumb", thumbURL)
	stored := filepath.Join(dir, "results", id+".1.t0")
	require.NoFileExists(t, stored)

	resp, body := get(t, b.srv.URL+thumbURL)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Equal(t, "image/jpeg", resp.Header.Get("Content-Type"))
	require.Equal(t, `"`+id+`.1.t0"`, resp.Header.Get("ETag"))
	require.Contains(t, resp.Header.Get("Cache-Control"), "immutable")
	cfg, format, err := image.DecodeConfig(bytes.NewReader(body))
	require.NoError(t, err)
	require.Equal(t, "jpeg", format)
	require.Equal(t, scheduler.ThumbSide, max(cfg.Width, cfg.Height))
	require.InDelta(t, float64(fullCfg.Width)/float64(fullCfg.Height), float64(cfg.Width)/float64(cfg.Height), 0.01)
	require.Less(t, len(body), len(full))
	onDisk, err := os.ReadFile(stored)
	require.NoError(t, err)
	require.Equal(t, onDisk, body)

	// The second ask reads the stored thumbnail rather than making one.
	require.NoError(t, os.WriteFile(stored, []byte("\xFF\xD8\xFFkept"), 0o600))
	resp, body = get(t, b.srv.URL+thumbURL)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "\xFF\xD8\xFFkept", string(body))
	resp, _ = get(t, b.srv.URL+thumbURL, "If-None-Match", `"`+id+`.1.t0"`)
	require.Equal(t, http.StatusNotModified, resp.StatusCode)

	resp, body = get(t, b.srv.URL+url+"?size=huge")
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Contains(t, string(body), `"field":"size"`)
	require.Contains(t, string(body), "size: must be")
	resp, _ = get(t, b.srv.URL+"/v1/jobs/"+id+"/images/5?size=thumb")
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
}
