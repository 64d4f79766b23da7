package apiclient_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
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

// watchWriter is a stderr that closes seen once want has been written.
type watchWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return n, err
}

func (w *watchWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestWaitingForStoppedBackend: with the only backend stopped, the job's
// status, its event stream and `easel imagine` say it waits for that
// backend and since when; once the backend is back, the job runs.
func TestWaitingForStoppedBackend(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The backend's address, with nothing listening on it yet: stopped.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	cfg := &bot.Config{Redis: redistest.Config(t), Scheduler: scheduler.Config{RetryBackoff: 50 * time.Millisecond,
		RetryBackoffMax: 50 * time.Millisecond, PositionInterval: 20 * time.Millisecond}}
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.Worker.HealthInterval = 50 * time.Millisecond
	cfg.Backends = []bot.BackendConfig{{Name: "gpu0", Kind: "fakesd", URL: "http://" + addr}}
	app, err := bot.New(cfg, bot.RoleServe, zap.NewNop(), bot.Options{})
	require.NoError(t, err)
	require.NoError(t, app.Start(ctx))
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = app.Stop(c)
	})
	url := "http://" + app.HTTP.Addr()
	client, err := apiclient.New(url, "", nil)
	require.NoError(t, err)

	const want = "waiting for a GPU backend (gpu0 unreachable since "
	stderr := &watchWriter{want: want, seen: make(chan struct{})}
	done := make(chan int, 1)
	path := filepath.Join(t.TempDir(), "fox.png")
	go func() {
		done <- apiclient.RunImagine(ctx, []string{"a fox", "-o", path, "--server", url, "--steps", "4",
			"--width", "64", "--height", "64"}, io.Discard, stderr)
	}()
	select {
	case <-stderr.seen:
	case code := <-done:
		require.FailNow(t, "imagine ended before the backend came back", "exit %d: %s", code, stderr.String())
	case <-ctx.Done():
		require.FailNow(t, "imagine never said why the job waits", stderr.String())
	}
	require.Regexp(t, `queued #1: waiting for a GPU backend \(gpu0 unreachable since \d\d:\d\d:\d\d UTC\)\n`, stderr.String())

	// The job's status says the same.
	m := jobIDRe.FindStringSubmatch(stderr.String())
	require.NotNil(t, m, stderr.String())
	j, err := client.Job(ctx, m[1])
	require.NoError(t, err)
	require.Equal(t, "queued", j.Status)
	require.NotNil(t, j.Waiting)
	require.Contains(t, j.Waiting.Message, want)
	require.Equal(t, "gpu0", j.Waiting.Backends[0].Name)
	require.WithinDuration(t, time.Now(), j.Waiting.Backends[0].Since, time.Minute)

	// The backend comes back on its address: the job runs.
	ln, err = net.Listen("tcp", addr)
	require.NoError(t, err)
	srv := &http.Server{Handler: fakesd.New(fakesd.Config{StepDuration: time.Millisecond}).Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("fake backend: %v", err)
		}
	}()
	t.Cleanup(func() { _ = srv.Close() })
	select {
	case code := <-done:
		require.Equal(t, 0, code, stderr.String())
	case <-ctx.Done():
		require.FailNow(t, "the job did not run once the backend was back", stderr.String())
	}
	require.Contains(t, stderr.String(), "running on gpu0")
	j, err = client.Job(ctx, m[1])
	require.NoError(t, err)
	require.Equal(t, "succeeded", j.Status)
	require.Nil(t, j.Waiting)
}
