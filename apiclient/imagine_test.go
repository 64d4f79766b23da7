package apiclient_test

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/apiclient"
	"github.com/easelbot/easel/scheduler"
)

// imagine runs `easel imagine args…` and returns the exit code, stdout and
// stderr.
func imagine(ctx context.Context, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := apiclient.RunImagine(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

var jobIDRe = regexp.MustCompile(`\(job ([^)\s]+)\)`)

func decodePNG(t *testing.T, path string) (w, h int) {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	img, err := png.Decode(bytes.NewReader(raw))
	require.NoError(t, err)
	return img.Bounds().Dx(), img.Bounds().Dy()
}

func TestImagineWritesPNG(t *testing.T) {
	t.Parallel()
	// Long enough for the worker to see progress (it polls every 250ms).
	b := setup(t, opts{step: 30 * time.Millisecond})
	path := filepath.Join(t.TempDir(), "fox.png")
	// Flags after the prompt, as people type them.
	code, out, errb := imagine(b.ctx, "a red fox", "in snow", "-o", path, "--server", b.url,
		"--steps", "20", "--width", "128", "--height", "96", "--seed", "42")
	require.Equal(t, 0, code, errb)
	w, h := decodePNG(t, path)
	require.Equal(t, []int{128, 96}, []int{w, h})
	require.Equal(t, path+" (seed 42)\n", out)
	require.Regexp(t, `^(queued #1|dispatched) \(job \S+\)\nrunning on fake\n`, errb)
	require.Regexp(t, `sampling(, eta \S+)? +\d+% \|[^|]*\| \(\d+/20\)`, errb, "the progress bar was drawn")

	id := jobIDRe.FindStringSubmatch(errb)[1]
	j, err := b.client.Job(b.ctx, id)
	require.NoError(t, err)
	require.Equal(t, string(scheduler.StatusSucceeded), j.Status)
}

func TestImagineCountTwoWritesTwoFiles(t *testing.T) {
	t.Parallel()
	b := setup(t, opts{})
	dir := t.TempDir()
	code, out, errb := imagine(b.ctx, "--server", b.url, "-n", "2", "--steps", "4", "--width", "64", "--height", "64",
		"--quiet", "-o", filepath.Join(dir, "fox.png"), "two foxes")
	require.Equal(t, 0, code, errb)
	require.Empty(t, errb, "--quiet")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2)
	for i, name := range []string{"fox-1.png", "fox-2.png"} {
		require.True(t, strings.HasPrefix(lines[i], filepath.Join(dir, name)+" (seed "), lines[i])
		w, h := decodePNG(t, filepath.Join(dir, name))
		require.Equal(t, []int{64, 64}, []int{w, h})
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 2)
}

func TestImagineBadRequestNamesField(t *testing.T) {
	t.Parallel()
	b := setup(t, opts{})
	code, out, errb := imagine(b.ctx, "--server", b.url, "--steps", "500", "a fox")
	require.Equal(t, 2, code)
	require.Empty(t, out)
	require.Equal(t, "easel: steps: must be between 1 and 150 (got 500)\n", errb)

	code, _, errb = imagine(b.ctx, "--server", b.url)
	require.Equal(t, 2, code, "no prompt")
	require.Contains(t, errb, "a prompt is required")
	code, _, _ = imagine(b.ctx, "--server", b.url, "--bogus", "a fox")
	require.Equal(t, 2, code, "unknown flag")
	code, _, errb = imagine(b.ctx, "--server", "ftp://x", "a fox")
	require.Equal(t, 2, code)
	require.Contains(t, errb, "easel: --server:")
}

func TestImagineRateLimitedSaysWhenToRetry(t *testing.T) {
	t.Parallel()
	b := setup(t, opts{policy: scheduler.PolicyConfig{Defaults: scheduler.Policy{
		UserRate: &scheduler.Rate{PerMinute: 1, Burst: 1}}}})
	code, _, errb := imagine(b.ctx, "--server", b.url, "--quiet", "-o", filepath.Join(t.TempDir(), "a.png"), "first")
	require.Equal(t, 0, code, errb)
	code, _, errb = imagine(b.ctx, "--server", b.url, "second")
	require.Equal(t, 2, code)
	require.Regexp(t, `^easel: .+ try again in \d+ ?s\)?\n$`, errb)
	require.Equal(t, 1, strings.Count(errb, "try again"), errb)
}

func TestImagineServerDown(t *testing.T) {
	t.Parallel()
	code, _, errb := imagine(context.Background(), "--server", "http://127.0.0.1:1", "a fox")
	require.Equal(t, 1, code)
	require.Contains(t, errb, "is Easel running at http://127.0.0.1:1?")
}

func TestImagineJobFailsAfterRetries(t *testing.T) {
	t.Parallel()
	b := setup(t, opts{sched: scheduler.Config{MaxAttempts: 2, RetryBackoff: time.Millisecond}})
	b.fake.FailNext(100, 500)
	code, out, errb := imagine(b.ctx, "--server", b.url, "a doomed fox")
	require.Equal(t, 1, code, errb)
	require.Empty(t, out)
	require.Contains(t, errb, "retrying in ")
	require.Regexp(t, `easel: job \S+ failed: `, errb)
}

// TestImagineInterruptCancelsJob cancels the context (Ctrl-C in main) while
// the job samples: RunImagine cancels the job on the server and exits 130.
func TestImagineInterruptCancelsJob(t *testing.T) {
	t.Parallel()
	b := setup(t, opts{step: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(b.ctx)
	defer cancel()
	go func() {
		if b.fake.WaitStarted(ctx, 1) == nil {
			cancel()
		}
	}()
	code, out, errb := imagine(ctx, "--server", b.url, "--steps", "150", "a slow fox")
	require.Equal(t, 130, code, errb)
	require.Empty(t, out)
	// The interrupt may come before the submit's answer (the job can start
	// on the backend first): the job is still named and canceled.
	m := regexp.MustCompile(`easel: interrupted; job (\S+) canceled`).FindStringSubmatch(errb)
	require.NotNil(t, m, errb)

	j, err := b.client.Job(b.ctx, m[1])
	require.NoError(t, err)
	require.Equal(t, string(scheduler.StatusCanceled), j.Status)
	var last apiclient.Event
	require.NoError(t, b.client.Events(b.ctx, m[1], 0, func(e apiclient.Event) error { last = e; return nil }))
	require.Equal(t, apiclient.EventCanceled, last.Type)
}

// TestImagineHelpHidesKey: the usage shows where the key comes from, never
// the key.
func TestImagineHelpHidesKey(t *testing.T) {
	t.Setenv("EASEL_API_KEY", "sk-very-secret")
	code, out, errb := imagine(context.Background(), "-h")
	require.Equal(t, 0, code)
	require.Empty(t, out)
	require.Contains(t, errb, "$EASEL_API_KEY")
	require.NotContains(t, errb, "sk-very-secret")
}

// TestImagineShowsPositionCountdown: behind two jobs on the one backend,
// `easel imagine` prints its place in line as it changes, with an ETA
// once a job has finished, then runs.
func TestImagineShowsPositionCountdown(t *testing.T) {
	t.Parallel()
	b := setup(t, opts{step: 50 * time.Millisecond, sched: scheduler.Config{PositionInterval: 20 * time.Millisecond}})
	for _, p := range []string{"first", "second"} {
		_, err := b.client.Submit(b.ctx, apiclient.JobRequest{Prompt: p, Steps: 10, Width: 64, Height: 64}, "")
		require.NoError(t, err)
	}
	path := filepath.Join(t.TempDir(), "third.png")
	code, _, errb := imagine(b.ctx, "third", "-o", path, "--server", b.url, "--steps", "10", "--width", "64", "--height", "64")
	require.Equal(t, 0, code, errb)
	// Its first line is the submit's place; a later one, as the jobs ahead
	// finish (the last before it runs is #1, with the average run time).
	require.Regexp(t, `(?s)^queued #2 \(job \S+\)\n.*queued #1, about \S+\n.*running on fake\n`, errb)
}
