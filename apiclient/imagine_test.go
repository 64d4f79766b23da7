package apiclient_test

import (
	"bytes"
	"context"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/apiclient"
	"github.com/easelbot/easel/bot"
	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/sdclient/fakesd"
)

type bundle struct {
	ctx  context.Context
	url  string
	app  *bot.App
	fake *fakesd.Server
}

// setup runs a real Easel (serve role) on a test Redis with a fake backend.
func setup(t *testing.T, step time.Duration) *bundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	fake := fakesd.New(fakesd.Config{StepDuration: step, PreviewEvery: 2})
	fsrv := httptest.NewServer(fake.Handler())
	t.Cleanup(fsrv.Close)
	cfg := &bot.Config{Redis: redistest.Config(t)}
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.Backends = []bot.BackendConfig{{Name: "fake", Kind: "fakesd", URL: fsrv.URL}}
	app, err := bot.New(cfg, bot.RoleServe, zap.NewNop(), bot.Options{})
	require.NoError(t, err)
	require.NoError(t, app.Start(ctx))
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = app.Stop(c)
	})
	return &bundle{ctx: ctx, url: "http://" + app.HTTP.Addr(), app: app, fake: fake}
}

func TestImagineWritesImages(t *testing.T) {
	t.Parallel()
	b := setup(t, 2*time.Millisecond)
	dir := t.TempDir()
	var out, errb bytes.Buffer
	code := apiclient.RunImagine(b.ctx, []string{"a red fox in snow", "-o", filepath.Join(dir, "fox.png"), "--server", b.url,
		"-n", "2", "--steps", "6", "--width", "128", "--height", "96"}, &out, &errb)
	require.Equal(t, 0, code, errb.String())
	for _, name := range []string{"fox-1.png", "fox-2.png"} {
		raw, err := os.ReadFile(filepath.Join(dir, name))
		require.NoError(t, err)
		img, err := png.Decode(bytes.NewReader(raw))
		require.NoError(t, err)
		require.Equal(t, 128, img.Bounds().Dx())
		require.Equal(t, 96, img.Bounds().Dy())
	}
	require.Contains(t, out.String(), "fox-1.png (seed ")
}

func TestImagineBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t, 0)
	var out, errb bytes.Buffer
	code := apiclient.RunImagine(b.ctx, []string{"--server", b.url, "--steps", "500", "a fox"}, &out, &errb)
	require.Equal(t, 2, code)
	require.Contains(t, errb.String(), "steps: must be between 1 and 150 (got 500)")
	code = apiclient.RunImagine(b.ctx, []string{"--server", b.url}, &out, &errb)
	require.Equal(t, 2, code, "no prompt")
}

func TestImagineInterruptCancelsJob(t *testing.T) {
	t.Parallel()
	b := setup(t, 20*time.Millisecond)
	ctx, cancel := context.WithCancel(b.ctx)
	go func() {
		_ = b.fake.WaitStarted(b.ctx, 1)
		cancel()
	}()
	var out, errb bytes.Buffer
	code := apiclient.RunImagine(ctx, []string{"--server", b.url, "--steps", "150", "a slow fox"}, &out, &errb)
	require.Equal(t, 130, code, errb.String())
	jobs, err := b.app.Sched.Active(b.ctx, "api:local")
	require.NoError(t, err)
	require.Empty(t, jobs, "the job was canceled on the server")
	require.Eventually(t, func() bool { return b.fake.Interrupts() == 1 }, 5*time.Second, 5*time.Millisecond)
}

// TestEventsResumeAfterDrop cuts the first event stream after its first
// event; the client reconnects with Last-Event-ID and still sees every event
// once, in order.
func TestEventsResumeAfterDrop(t *testing.T) {
	t.Parallel()
	b := setup(t, 5*time.Millisecond)
	target, _ := url.Parse(b.url)
	// Pass requests through as if direct: an open (keyless) Easel refuses
	// proxied ones, so no X-Forwarded-For.
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) }, FlushInterval: -1}
	var streams atomic.Int32
	var lastIDs []string
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/events") {
			lastIDs = append(lastIDs, r.Header.Get("Last-Event-ID"))
			if streams.Add(1) == 1 {
				// Forward the first event only, then drop the connection.
				rec := &cutWriter{ResponseWriter: w, limit: 1}
				proxy.ServeHTTP(rec, r)
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	defer front.Close()
	c, err := apiclient.New(front.URL, "", nil)
	require.NoError(t, err)
	sub, err := c.Submit(b.ctx, apiclient.JobRequest{Prompt: "x", Steps: 8}, "")
	require.NoError(t, err)
	var seqs []int64
	var types []string
	require.NoError(t, c.Events(b.ctx, sub.ID, 0, func(e apiclient.Event) error {
		seqs = append(seqs, e.Seq)
		types = append(types, e.Type)
		return nil
	}))
	require.GreaterOrEqual(t, streams.Load(), int32(2))
	require.Equal(t, "", lastIDs[0])
	require.NotEmpty(t, lastIDs[1], "the second stream resumes with Last-Event-ID")
	for i, s := range seqs {
		require.Equal(t, int64(i+1), s, "every event once, in order: %v", seqs)
	}
	require.Equal(t, "succeeded", types[len(types)-1])
	j, err := c.Job(b.ctx, sub.ID)
	require.NoError(t, err)
	require.Equal(t, string(scheduler.StatusSucceeded), j.Status)
}

// cutWriter passes through limit SSE messages, then fails the stream.
type cutWriter struct {
	http.ResponseWriter
	limit int
	seen  int
}

func (w *cutWriter) Write(p []byte) (int, error) {
	if w.seen >= w.limit {
		panic(http.ErrAbortHandler)
	}
	w.seen += bytes.Count(p, []byte("\n\n"))
	return w.ResponseWriter.Write(p)
}

func (w *cutWriter) Flush() { w.ResponseWriter.(http.Flusher).Flush() }

func TestParseSSE(t *testing.T) {
	t.Parallel()
	in := ": comment\r\nid: 1\r\nevent: queued\r\ndata: {\"a\":1}\r\n\r\nid: 2\ndata: line1\ndata: line2\n\n"
	var got []apiclient.Message
	require.NoError(t, apiclient.ParseSSE(strings.NewReader(in), func(m apiclient.Message) error { got = append(got, m); return nil }))
	require.Equal(t, []apiclient.Message{{ID: "1", Event: "queued", Data: `{"a":1}`}, {ID: "2", Event: "message", Data: "line1\nline2"}}, got)
}

func FuzzParseSSE(f *testing.F) {
	f.Add("id: 1\nevent: progress\ndata: {}\n\n")
	f.Add(": x\r\n\r\ndata\n\n")
	f.Add("data: a\ndata: b\n")
	f.Fuzz(func(t *testing.T, s string) {
		_ = apiclient.ParseSSE(io.LimitReader(strings.NewReader(s), 1<<20), func(m apiclient.Message) error {
			require.NotEmpty(t, m.Event)
			return nil
		})
	})
}
