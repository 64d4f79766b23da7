package httpapi_test

import (
	"bufio"
	"context"
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/adapters/httpapi"
	"github.com/easelbot/easel/commands"
	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/scheduler"
)

// TestEndToEndShardsOnCluster runs HTTP jobs end to end with
// scheduler.shards: 3 on a three-master Redis Cluster: three API keys whose
// tenants land on the three shards submit a job each; one worker (a fake
// A1111 over HTTP) runs them all; each job's event stream, record, image
// and the queue listing are read back through the API by id alone.
func TestEndToEndShardsOnCluster(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	sched, err := scheduler.New(ctx, redistest.ClusterStore(t), scheduler.Config{Shards: 3}, zap.NewNop())
	require.NoError(t, err)
	keys := map[string]string{}
	keyOf := make([]string, 3)
	for i := 0; i < 1000 && (keyOf[0] == "" || keyOf[1] == "" || keyOf[2] == ""); i++ {
		name := fmt.Sprintf("team%d", i)
		if sh := sched.ShardOf("api:" + name); keyOf[sh] == "" {
			k := fmt.Sprintf("key-%s-0123456789abcdef", name)
			keyOf[sh], keys[k] = k, name
		}
	}
	pol, err := scheduler.NewPolicies(sched, scheduler.PolicyConfig{})
	require.NoError(t, err)
	svc, err := commands.New(sched, pol, commands.Limits{}, zap.NewNop())
	require.NoError(t, err)
	api, err := httpapi.New(httpapi.Config{Keys: keys}, svc, sched, zap.NewNop())
	require.NoError(t, err)
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = api.Stop(c)
	})
	b := &bundle{ctx: ctx, sched: sched, api: api, srv: srv}
	b.startWorker(t)
	ids := make([]string, 3)
	for sh, key := range keyOf {
		resp, m := b.do(t, "POST", "/v1/jobs", key, map[string]any{"prompt": fmt.Sprint("shard ", sh), "width": 64, "height": 64, "steps": 4, "seed": sh})
		require.Equal(t, http.StatusAccepted, resp.StatusCode, m)
		ids[sh] = m["id"].(string)
	}
	get := func(path, key string) *http.Response {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+path, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		t.Cleanup(func() { _ = resp.Body.Close() })
		return resp
	}
	for sh, id := range ids {
		// The event stream ends with the job's end.
		resp := get("/v1/jobs/"+id+"/events", keyOf[sh])
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var types []string
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if ev, ok := strings.CutPrefix(sc.Text(), "event: "); ok && (len(types) == 0 || types[len(types)-1] != ev) {
				types = append(types, ev)
			}
		}
		require.Equal(t, "queued", types[0], "shard %d", sh)
		require.Equal(t, "succeeded", types[len(types)-1], "shard %d: %v", sh, types)
		require.Contains(t, types, "started")
		resp2, m := b.do(t, "GET", "/v1/jobs/"+id, keyOf[sh], nil)
		require.Equal(t, http.StatusOK, resp2.StatusCode)
		require.Equal(t, "succeeded", m["status"])
		imgs := m["images"].([]any)
		require.Len(t, imgs, 1)
		img := get(imgs[0].(map[string]any)["url"].(string), keyOf[sh])
		require.Equal(t, http.StatusOK, img.StatusCode)
		decoded, err := png.Decode(img.Body)
		require.NoError(t, err)
		require.Equal(t, 64, decoded.Bounds().Dx())
		// Another tenant's key does not see it.
		resp3, _ := b.do(t, "GET", "/v1/jobs/"+id, keyOf[(sh+1)%3], nil)
		require.Equal(t, http.StatusNotFound, resp3.StatusCode)
	}
}
