package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/internal/redisproc"
	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/storage"
)

// cluster is a set of easel processes on one Redis.
type cluster struct {
	t     *testing.T
	redis storage.Config
	keys  map[string]string // key → tenant
	sched *scheduler.Scheduler
	// images sets the processes' shared image directory.
	images string
}

func (c *cluster) env(extra ...string) []string {
	keys, _ := json.Marshal(c.keys)
	return append([]string{
		"EASEL_REDIS_URL=" + c.redis.URL, "EASEL_REDIS_PREFIX=" + c.redis.Prefix,
		"EASEL_SCHEDULER_LEASE=1s", "EASEL_SCHEDULER_RETRY_BACKOFF=20ms", "EASEL_SCHEDULER_MAX_ATTEMPTS=10",
		"EASEL_HTTP_KEYS=" + string(keys), "EASEL_LOG_FORMAT=json", "EASEL_POLICY_DEFAULTS_MAX_PENDING_PER_USER=0",
		c.images,
	}, extra...)
}

func (c *cluster) fakesd() string {
	addr := freeAddr(c.t)
	startProc(c.t, nil, "fakesd", "--addr", addr, "--step", "2ms", "--preview-every", "0").waitListening(c.t, addr)
	return "http://" + addr
}

func backends(url string) string {
	return fmt.Sprintf(`EASEL_BACKENDS=[{name: sd, kind: fakesd, url: "%s"}]`, url)
}

func (c *cluster) serve(name, sd string) (*proc, string) {
	addr := freeAddr(c.t)
	p := startProc(c.t, c.env(backends(sd), "EASEL_WORKER_NAME="+name, "EASEL_HTTP_ADDR="+addr), "serve")
	p.waitListening(c.t, addr)
	return p, "http://" + addr
}

func (c *cluster) worker(name, sd string) *proc {
	return startProc(c.t, c.env(backends(sd), "EASEL_WORKER_NAME="+name), "worker")
}

func submit(t *testing.T, base, key string, body map[string]any) (string, int) {
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", base+"/v1/jobs", bytes.NewReader(raw))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", 0
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	id, _ := m["id"].(string)
	return id, resp.StatusCode
}

func newCluster(t *testing.T, rcfg storage.Config) *cluster {
	c := &cluster{t: t, redis: rcfg, keys: map[string]string{}}
	for _, tn := range []string{"a", "b", "c", "d"} {
		c.keys["key-"+tn+"-0123456789abcdef"] = tn
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	store, err := storage.Open(ctx, rcfg, zap.NewNop())
	require.NoError(t, err)
	t.Cleanup(store.Close)
	c.images = sharedImages(t, store)
	c.sched, err = scheduler.New(ctx, store, scheduler.Config{}, zap.NewNop())
	require.NoError(t, err)
	return c
}

// finishOnce waits for every job to end and checks each succeeded exactly
// once with its images.
func (c *cluster) finishOnce(ctx context.Context, ids []string) {
	t := c.t
	var wg sync.WaitGroup
	errs := make(chan error, len(ids))
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			err := c.sched.Follow(ctx, id, 0, func(e scheduler.Event) error {
				if e.Type == scheduler.EventSucceeded {
					n++
				}
				return nil
			})
			if err == nil && n != 1 {
				err = fmt.Errorf("job %s: %d succeeded events", id, n)
			}
			if err == nil {
				j, gerr := c.sched.Get(ctx, id)
				if gerr != nil || j.Status != scheduler.StatusSucceeded || j.Images != 1 {
					err = fmt.Errorf("job %s: %v %w", id, j, gerr)
				} else if _, ierr := c.sched.Image(ctx, j, 0); ierr != nil {
					err = fmt.Errorf("job %s image: %w", id, ierr)
				}
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

// TestMultiInstance: two serve and three worker processes on one Redis run
// 200 jobs from four tenants; one serve and one worker are SIGKILLed mid-run.
// Every job finishes exactly once with its image, and the tenants share the
// GPUs evenly.
func TestMultiInstance(t *testing.T) {
	t.Parallel()
	c := newCluster(t, redistest.Config(t))
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	sd := []string{c.fakesd(), c.fakesd(), c.fakesd()}
	_, base1 := c.serve("serve1", sd[0])
	serve2, base2 := c.serve("serve2", sd[1])
	workers := []*proc{c.worker("w1", sd[0]), c.worker("w2", sd[1]), c.worker("w3", sd[2])}
	var ids []string
	keys := make([]string, 0, len(c.keys))
	for k := range c.keys {
		keys = append(keys, k)
	}
	for i := range 200 {
		base := base1
		if i%2 == 1 {
			base = base2
		}
		id, status := submit(t, base, keys[i%len(keys)], map[string]any{"prompt": fmt.Sprint("job ", i), "width": 64, "height": 64,
			"steps": 20, "user": fmt.Sprint("u", i%3)})
		require.Equal(t, http.StatusAccepted, status)
		ids = append(ids, id)
		if i == 100 {
			require.NoError(t, serve2.cmd.Process.Signal(syscall.SIGKILL))
			require.NoError(t, workers[0].cmd.Process.Signal(syscall.SIGKILL))
			base2 = base1
		}
	}
	c.finishOnce(ctx, ids)
	served, err := c.sched.Served(ctx, 10*time.Minute)
	require.NoError(t, err)
	require.Len(t, served, 4)
	require.Greater(t, scheduler.JainIndex(served), 0.95, "%v", served)
}

// TestRedisRestartLosesNothing: with AOF on, redis-server is SIGKILLed and
// restarted mid-run; Easel reconnects by itself and every accepted job
// finishes.
func TestRedisRestartLosesNothing(t *testing.T) {
	t.Parallel()
	aof := []string{"--appendonly", "yes", "--appendfsync", "always"}
	srv, err := redisproc.StartServer(os.TempDir(), aof)
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(srv.Dir) })
	rcfg := storage.Config{URL: srv.URL, Prefix: "restart"}
	c := newCluster(t, rcfg)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	sd := c.fakesd()
	_, base := c.serve("serve", sd)
	c.worker("w", c.fakesd())
	key := ""
	for k := range c.keys {
		key = k
		break
	}
	var ids []string
	for i := range 40 {
		id, status := submit(t, base, key, map[string]any{"prompt": fmt.Sprint("job ", i), "width": 64, "height": 64, "steps": 30})
		require.Equal(t, http.StatusAccepted, status)
		ids = append(ids, id)
	}
	srv.Kill()
	srv, err = srv.Restart(aof)
	require.NoError(t, err)
	t.Cleanup(srv.Kill)
	// Accepted during and after the restart, too.
	for i := range 10 {
		var id string
		var status int
		require.Eventually(t, func() bool {
			id, status = submit(t, base, key, map[string]any{"prompt": fmt.Sprint("after ", i), "width": 64, "height": 64, "steps": 5})
			return status == http.StatusAccepted
		}, 20*time.Second, 50*time.Millisecond)
		ids = append(ids, id)
	}
	c.finishOnce(ctx, ids)
}
