package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/sdclient/fakesd"
	"github.com/easelbot/easel/storage"
	"github.com/easelbot/easel/storage/blob"
)

var easelBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "easel-bin-")
	if err != nil {
		panic(err)
	}
	easelBin = filepath.Join(dir, "easel")
	out, err := exec.Command("go", "build", "-o", easelBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build easel: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// proc is an easel child process.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	log  *strings.Builder
}

func startProc(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(easelBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var log strings.Builder
	cmd.Stdout = &syncWriter{b: &log, changed: make(chan struct{})}
	cmd.Stderr = cmd.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	p := &proc{cmd: cmd, done: make(chan struct{}), log: &log}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s %v output:\n%s", filepath.Base(easelBin), args, log.String())
		}
	})
	return p
}

type syncWriter struct {
	mu sync.Mutex
	b  *strings.Builder
	// changed is closed and replaced by every write.
	changed chan struct{}
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	close(w.changed)
	w.changed = make(chan struct{})
	return w.b.Write(p)
}

// waitOutput blocks until the process has written one of subs (woken by
// each of its writes); it fails the test if the process exits first or
// after a generous timeout.
func (p *proc) waitOutput(t *testing.T, timeout time.Duration, subs ...string) {
	t.Helper()
	w := p.cmd.Stdout.(*syncWriter)
	written := func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		out := w.b.String()
		return slices.ContainsFunc(subs, func(s string) bool { return strings.Contains(out, s) })
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		ch := w.changed // taken before the check: no write falls between
		w.mu.Unlock()
		if written() {
			return
		}
		select {
		case <-ch:
		case <-p.done:
			if !written() {
				require.FailNow(t, "process exited", "%v never wrote %q", p.cmd.Args[1:], subs)
			}
			return
		case <-deadline.C:
			require.FailNow(t, "no output", "%v did not write %q within %s", p.cmd.Args[1:], subs, timeout)
		}
	}
}

// waitListening waits until the process logs that it listens on hostport:
// every easel role and fake logs its URL once its listener is open, the
// address followed by "/" (serve, worker) or "," (fakesd, fakecomfy).
func (p *proc) waitListening(t *testing.T, hostport string) {
	t.Helper()
	p.waitOutput(t, 30*time.Second, "http://"+hostport+"/", "http://"+hostport+",")
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// TestKilledWorkerJobFinishesElsewhereOnce: a worker process is SIGKILLed
// mid-job; after its lease the job is reclaimed, finishes on another worker,
// and exactly one succeeded event and one set of images exist.
//
// The first worker's backend cannot finish the job: it stalls after its
// first step until interrupted (fakesd StallAt), which nobody does, so the
// kill always lands mid-job however late it comes (with one shared fake
// running 30 steps of 100 ms, a loaded machine once let the first worker
// finish before the kill). The second worker has a backend of its own that
// runs normally: A1111 keeps running an abandoned task, so a shared stalled
// one would hold the queue lock forever.
func TestKilledWorkerJobFinishesElsewhereOnce(t *testing.T) {
	t.Parallel()
	rcfg := redistest.Config(t)
	fakeURL := func(fake *fakesd.Server) string {
		srv := httptest.NewServer(fake.Handler())
		// After the workers' cleanup (LIFO): the server closes first, which
		// ends the stalled task, then the listener.
		t.Cleanup(srv.Close)
		t.Cleanup(fake.Close)
		return srv.URL
	}
	stuck := fakesd.New(fakesd.Config{StepDuration: 100 * time.Millisecond, NoPreviews: true})
	stuck.StallAt(1)
	good := fakesd.New(fakesd.Config{StepDuration: 100 * time.Millisecond, NoPreviews: true})
	backends := func(url string) string {
		return "EASEL_BACKENDS=[{name: fake, kind: fakesd, url: \"" + url + "\"}]"
	}
	env := []string{
		"EASEL_REDIS_URL=" + rcfg.URL,
		"EASEL_REDIS_PREFIX=" + rcfg.Prefix,
		"EASEL_SCHEDULER_LEASE=1s",
		"EASEL_SCHEDULER_RETRY_BACKOFF=10ms",
		"EASEL_LOG_LEVEL=debug",
	}
	stuckURL, goodURL := fakeURL(stuck), fakeURL(good)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	store, err := storage.Open(ctx, rcfg, zap.NewNop())
	require.NoError(t, err)
	defer store.Close()
	sched, err := scheduler.New(ctx, store, scheduler.Config{}, zap.NewNop())
	require.NoError(t, err)
	env = append(env, sharedImages(t, store))

	first := startProc(t, append(env, "EASEL_WORKER_NAME=first", backends(stuckURL)), "worker")
	payload, _ := json.Marshal(map[string]any{"prompt": "a red fox", "width": 64, "height": 64, "steps": 30, "count": 1, "seed": 7})
	res, err := sched.Submit(ctx, scheduler.SubmitRequest{Tenant: "api:t", User: "u", Payload: payload, Images: 1})
	require.NoError(t, err)

	// Kill the first worker once its backend reports progress (its one
	// step: the job cannot end there).
	err = sched.Follow(ctx, res.ID, 0, func(e scheduler.Event) error {
		if e.Type == scheduler.EventProgress {
			return errStop
		}
		return nil
	})
	require.ErrorIs(t, err, errStop)
	require.NoError(t, first.cmd.Process.Signal(syscall.SIGKILL))
	<-first.done
	startProc(t, append(env, "EASEL_WORKER_NAME=second", backends(goodURL)), "worker")

	var types []scheduler.EventType
	succeeded := 0
	err = sched.Follow(ctx, res.ID, 0, func(e scheduler.Event) error {
		if len(types) == 0 || types[len(types)-1] != e.Type {
			types = append(types, e.Type)
		}
		if e.Type == scheduler.EventSucceeded {
			succeeded++
		}
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, 1, succeeded)
	require.Equal(t, []scheduler.EventType{"queued", "started", "progress", "retrying", "started", "progress", "succeeded"}, types)
	j, err := sched.Get(ctx, res.ID)
	require.NoError(t, err)
	require.Equal(t, scheduler.StatusSucceeded, j.Status)
	require.Equal(t, 2, j.Attempt)
	require.Equal(t, 1, j.Images)
	img, err := sched.Image(ctx, j, 0)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(img), "\x89PNG"))
	// The dead attempt left no images of its own.
	_, err = store.Blobs.Open(ctx, blob.Ref{Job: res.ID, Attempt: 1, Name: "0"})
	require.ErrorIs(t, err, blob.ErrNotFound)
	require.Equal(t, 1, stuck.Generations())
	require.Equal(t, 1, good.Generations())
}

var errStop = errors.New("stop following")
